#pragma once
// Per-vCPU state of the KVM backend and the CPUID topology helpers.
#include <linux/kvm.h>
#include <pthread.h>

#include <atomic>
#include <thread>
#include <vector>

#include "vmm/vmm.h"

namespace tsbhyve::vmm {

constexpr int kCapCount = 5;

struct Vcpu {
  int id = 0;
  uint32_t apicId = 0;
  int fd = -1;
  kvm_run* run = nullptr;
  std::vector<kvm_cpuid_entry2> cpuid;
  bool caps[kCapCount] = {false, false, false, false, false};
  X2apicState x2apic = X2apicState::kDisabled;
  std::vector<int> cpuset;
  std::thread thread;
  std::atomic<pthread_t> tid{0};
  std::atomic<bool> inThread{false};
  std::atomic<uint64_t> exits{0};    // bumped on every return from KVM_RUN (watchdog progress)
  // vm_get_stats-style counters, written by the vCPU thread only.
  std::atomic<uint64_t> ioExits{0}, mmioExits{0}, msrExits{0}, nativeHandled{0}, jsHandled{0};
  uint64_t watchdogSeen = 0;          // watchdog-thread private
  std::atomic<bool> haltedIf0{false};     // last check found HLT with interrupts disabled (or waiting for SIPI)
  std::atomic<bool> dumpRequested{false};  // TSBHYVE_VCPU_DUMP: the watchdog asks this thread to print its state
  std::atomic<bool> parked{false};    // waiting in the exit channel: its state may be read and written
};

// x2APIC ID of vCPU `i`: thread, core and socket fields each as wide as their count needs.
uint32_t ApicIdOf(const Topology& t, int i);
Status SupportedCpuid(int kvmFd, std::vector<kvm_cpuid_entry2>* out);
// KVM's supported CPUID adjusted for this vCPU: APIC IDs, leaf 1/4/0xB/0x1F topology, hypervisor bit,
// x2APIC visibility.
std::vector<kvm_cpuid_entry2> TopologyCpuid(const std::vector<kvm_cpuid_entry2>& base, const Topology& t, int vcpu,
                                            bool x2apic);

}  // namespace tsbhyve::vmm
