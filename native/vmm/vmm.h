#pragma once
// The VMM backend interface, shaped like FreeBSD's libvmmapi (vmmapi.h) so bhyve's flow maps onto it
// call for call. native/vmm/kvm implements it over /dev/kvm; native/vmm/freebsd/README.md describes the
// libvmmapi implementation. Errors are Status values (errno + message), never exceptions.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "guestmem/guest_memory.h"
#include "vmm/exit_channel.h"
#include "vmm/ranges.h"

namespace tsbhyve::vmm {

struct Status {
  int err = 0;  // errno-style code, 0 on success
  std::string msg;
  bool ok() const { return err == 0; }
  static Status Ok() { return {}; }
};

// vm_suspend(how) values and the bhyve exit statuses they produce (bhyve(8) EXIT STATUS).
enum class SuspendHow : int { kReset = 0, kPoweroff = 1, kHalt = 2, kTripleFault = 3, kError = 4 };

// VM_CAP_* names that the KVM backend understands.
enum class Cap : int { kHaltExit = 0, kPauseExit = 1, kUnrestrictedGuest = 2, kEnableInvpcid = 3, kIpiExit = 4 };

enum class X2apicState : int { kDisabled = 0, kEnabled = 1 };

struct Topology {
  uint16_t sockets = 1, cores = 1, threads = 1, maxcpus = 1;
};

// Flat register transfer layouts shared with src/vm/registers.ts.
constexpr int kRegCount = 18;   // rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags
constexpr int kSregCount = 43;  // 8 segments x 4, gdt base/limit, idt base/limit, cr0 cr2 cr3 cr4 cr8 efer apic_base

struct Vcpu;

class Vm {
 public:
  // vm_openf(name, VMMAPI_OPEN_CREATE): a new VM, holding the per-name lock for its lifetime.
  static Status Create(const std::string& name, const std::string& lockDir, std::unique_ptr<Vm>* out);
  ~Vm();

  const std::string& name() const { return name_; }
  Status SetTopology(const Topology& t);
  const Topology& topology() const { return topo_; }
  // vm_vcpu_open for ids [0, n): creates the vCPUs with CPUID for the topology.
  Status CreateVcpus(int n);
  int vcpuCount() const { return static_cast<int>(vcpus_.size()); }
  // vm_reinit: a fresh machine state (KVM VM, irqchip, PIT, vCPUs at reset) over the same memory.
  Status Reinit();

  // vm_set_memflags + vm_setup_memory(VM_MMAP_ALL): [0, lowmem) at 0 and the rest from 4 GiB.
  Status SetupMemory(uint64_t size, bool wired, bool incore);
  uint64_t lowmem() const { return lowmem_; }
  uint64_t highmem() const { return highmem_; }
  GuestMemory& memory() { return *mem_; }
  // For workers that may outlive a close(): the accessor object stays alive while they hold it (and the
  // host memory behind it is never unmapped while the process lives).
  std::shared_ptr<const GuestMemory> sharedMemory() const { return mem_; }
  // vm_create_devmem: an anonymous segment the guest sees only once mapped.
  Status CreateDevmem(int segid, const std::string& name, uint64_t len, uint8_t** host);
  // vm_mmap_memseg / vm_munmap_memseg; a mapping without PROT_WRITE is read-only to the guest.
  Status MmapMemseg(uint64_t gpa, int segid, uint64_t off, uint64_t len, int prot);
  Status MunmapMemseg(uint64_t gpa, uint64_t len);

  // Interrupts (in-kernel LAPIC, 24-pin IOAPIC, 8259 pair, 8254).
  Status LapicMsi(uint64_t addr, uint32_t data);
  Status IoapicLine(int pin, int level);  // level 0/1; pulse = 1 then 0
  int IoapicPincount() const { return 24; }
  Status IsaLine(int atpicIrq, int ioapicIrq, int level);
  Status IsaSetTrigger(int irq, bool level);
  // Data-path plumbing: irqfd on a GSI (optionally an MSI route), ioeventfd on a port or MMIO address.
  Status SetMsiRoute(uint32_t gsi, uint64_t addr, uint32_t data);
  Status Irqfd(int fd, uint32_t gsi, bool deassign, int resampleFd = -1);
  // The GSI that drives IOAPIC pin `pin` alone (for level-triggered irqfds of INTx lines).
  static uint32_t IoapicGsi(int pin) { return 40 + uint32_t(pin); }
  Status Ioeventfd(int fd, uint64_t addr, uint32_t len, bool pio, bool matchData, uint64_t data, bool deassign);

  // vCPU state.
  Status GetRegs(int vcpu, uint64_t out[kRegCount]);
  Status SetRegs(int vcpu, const uint64_t in[kRegCount]);
  Status GetSregs(int vcpu, uint64_t out[kSregCount]);
  Status SetSregs(int vcpu, const uint64_t in[kSregCount]);
  Status ResetVcpu(int vcpu);
  Status SetCapability(int vcpu, Cap cap, int value);
  Status GetCapability(int vcpu, Cap cap, int* value);
  Status SetX2apicState(int vcpu, X2apicState s);
  // vm_inject_exception: the exception is delivered before the next instruction the vCPU executes (from
  // an exit handler, after the exiting access completes).
  Status InjectException(int vcpu, int vector, bool errorCodeValid, uint32_t errorCode);
  Status GetCpuid(int vcpu, uint32_t leaf, uint32_t sub, uint32_t out[4]);
  // Exit counters of one vCPU: KVM_RUN returns, port I/O, MMIO, unknown-MSR exits, exits handled by a
  // native device and by TypeScript.
  Status GetStats(int vcpu, uint64_t out[6]);
  void SetStrict(bool io, bool msr) { strictIo_ = io; strictMsr_ = msr; }
  bool userMsrExits() const { return userMsr_; }

  // Exit routing: ranges owned by native devices are handled on the vCPU thread; ranges owned by
  // TypeScript go through the exit channel.
  RangeTable& pio() { return pio_; }
  RangeTable& mmio() { return mmio_; }
  // Native ranges that take precedence over `mmio()`: a C++ device handling part of a BAR whose other
  // registers TypeScript owns (NVMe I/O doorbells inside BAR0). Only native owners belong here.
  RangeTable& mmioOverlay() { return mmioOverlay_; }
  // PCI configuration mechanism #1 (ports 0xCF8 and 0xCFC-0xCFF) handled on the vCPU thread: the address
  // latch lives here, accesses to absent functions read all ones without leaving C++, and accesses to present
  // functions are forwarded as ECAM accesses at `ecamBase` to whoever owns that MMIO range. `present` has one
  // bit per bus/slot/function (bit index bus << 8 | slot << 3 | func). Call before Start.
  void SetPciConf1(uint64_t ecamBase, std::vector<uint8_t> present);
  ExitChannel& channel() { return channel_; }

  // Starts one thread per vCPU (pinned when cpusets[i] is non-empty). `notify` is called from any
  // thread when the channel needs the main thread (coalesced) or when the last vCPU stopped.
  Status Start(const std::vector<std::vector<int>>& cpusets);
  // vm_suspend: every vCPU leaves KVM_RUN and its thread ends; the first reason wins.
  void Suspend(SuspendHow how);
  // An internal error: status 4 with this message (the first message wins).
  void Fail(const std::string& msg);
  bool running() const { return runningThreads_.load() > 0; }
  const std::atomic<int>& runningThreads() const { return runningThreads_; }
  // Joins the vCPU threads after they stopped; returns the exit status (0..4) and the error text.
  int Join(std::string* error);

 private:
  Vm() = default;
  void VcpuLoop(Vcpu* v);
  void WatchdogLoop();
  void CheckHalted(Vcpu* v);
  void DumpVcpu(Vcpu* v);
  void DumpIrqchips();
  bool HandleIo(Vcpu* v);
  bool HandleMmio(Vcpu* v);
  // Routes one MMIO access (a guest access or a forwarded one) to its native or TypeScript owner.
  bool DispatchMmio(Vcpu* v, uint64_t gpa, unsigned len, bool write, uint8_t* data);
  bool HandlePciConf1(Vcpu* v, uint16_t port, unsigned size, bool write, uint8_t* data);
  Status ApplyCpuid(Vcpu* v);
  Status OpenVmFd();
  Status SetSlot(uint32_t slot, uint64_t gpa, uint64_t len, uint8_t* host, bool readonly);
  Status OpenVcpu(int id, X2apicState x2apic, const bool* caps, std::unique_ptr<Vcpu>* out);
  Status CommitRoutes();
  Vcpu* vcpu(int id);
  Status Accessible(int id, Vcpu** out);

  std::string name_;
  int lockFd_ = -1;
  std::string lockPath_;
  int kvmFd_ = -1;
  int vmFd_ = -1;
  int runSize_ = 0;
  Topology topo_;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;

  // Guest RAM: one reservation mirroring the guest-physical layout (host = ramBase_ + gpa).
  uint8_t* ramReserve_ = nullptr;
  uint64_t ramReserveLen_ = 0;
  uint8_t* ramBase_ = nullptr;
  uint64_t lowmem_ = 0, highmem_ = 0;
  std::shared_ptr<GuestMemory> mem_ = std::make_shared<GuestMemory>();
  struct Segment { int segid; std::string name; uint8_t* host; uint64_t len; };
  std::vector<Segment> segments_;
  struct Slot { uint32_t slot; uint64_t gpa, len; uint8_t* host; bool readonly; };
  std::vector<Slot> deviceSlots_;
  uint32_t nextSlot_ = 2;  // 0 = lowmem, 1 = highmem
  std::vector<uint32_t> freeSlots_;

  struct Route { uint32_t gsi; uint32_t type; uint32_t chip; uint32_t pin; uint64_t addr; uint32_t data; };
  std::vector<Route> routes_;
  // Live irqfd and ioeventfd registrations, made again by Reinit.
  struct IrqfdReg { int fd; uint32_t gsi; int resampleFd; };
  struct IoeventfdReg {
    int fd; uint64_t addr; uint32_t len; bool pio, matchData; uint64_t data;
    bool Same(const IoeventfdReg& o) const {
      return fd == o.fd && addr == o.addr && len == o.len && pio == o.pio && matchData == o.matchData && data == o.data;
    }
  };
  std::vector<IrqfdReg> irqfds_;
  std::vector<IoeventfdReg> ioeventfds_;

  bool strictIo_ = false, strictMsr_ = true, userMsr_ = false;
  RangeTable pio_, mmio_, mmioOverlay_;
  bool conf1Enabled_ = false;
  uint64_t conf1Ecam_ = 0;
  std::vector<uint8_t> conf1Present_;
  std::atomic<uint32_t> conf1Addr_{0};
  ExitChannel channel_;

  std::atomic<int> suspendHow_{-1};
  std::atomic<int> runningThreads_{0};
  std::string error_;
  std::atomic<bool> errorSet_{false};
  std::atomic<uint32_t> stopWatchdog_{0};  // a futex word: Join wakes the watchdog's sleep at once
  void* watchdog_ = nullptr;  // std::thread*, kept opaque to keep <thread> out of this header
  bool started_ = false;
  int dumpEveryMs_ = 0;  // TSBHYVE_VCPU_DUMP=seconds: periodic vCPU state dumps on stderr
};

}  // namespace tsbhyve::vmm
