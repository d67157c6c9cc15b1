// CPUID for a vCPU: what KVM supports on this host, with the topology bhyve configures (-c).
#include <errno.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>

#include "vmm/kvm/kvm_flex.h"
#include "vmm/kvm/kvm_vcpu.h"

namespace tsbhyve::vmm {

static uint32_t BitsFor(uint32_t n) {
  uint32_t b = 0;
  while ((1u << b) < n) b++;
  return b;
}

uint32_t ApicIdOf(const Topology& t, int i) {
  const uint32_t tb = BitsFor(t.threads), cb = BitsFor(t.cores);
  const uint32_t thread = uint32_t(i) % t.threads;
  const uint32_t core = (uint32_t(i) / t.threads) % t.cores;
  const uint32_t socket = uint32_t(i) / (uint32_t(t.threads) * t.cores);
  return socket << (tb + cb) | core << tb | thread;
}

Status SupportedCpuid(int kvmFd, std::vector<kvm_cpuid_entry2>* out) {
  for (uint32_t n = 128; n <= 4096; n *= 2) {
    std::vector<uint64_t> words((sizeof(KvmFlexHeader) + n * sizeof(kvm_cpuid_entry2) + 7) / 8, 0);
    auto* h = reinterpret_cast<KvmFlexHeader*>(words.data());
    h->count = n;
    if (ioctl(kvmFd, kGetSupportedCpuid, h) == 0) {
      auto* e = reinterpret_cast<const kvm_cpuid_entry2*>(h + 1);
      out->assign(e, e + (h->count < n ? h->count : n));
      return Status::Ok();
    }
    if (errno != E2BIG) return {errno, std::string("KVM_GET_SUPPORTED_CPUID: ") + std::strerror(errno)};
  }
  return {E2BIG, "KVM_GET_SUPPORTED_CPUID: too many entries"};
}

std::vector<kvm_cpuid_entry2> TopologyCpuid(const std::vector<kvm_cpuid_entry2>& base, const Topology& t, int vcpu,
                                            bool x2apic) {
  std::vector<kvm_cpuid_entry2> out = base;
  const uint32_t apicId = ApicIdOf(t, vcpu);
  const uint32_t tb = BitsFor(t.threads), cb = BitsFor(t.cores);
  const uint32_t perPackage = uint32_t(t.threads) * t.cores;
  for (auto& e : out) {
    switch (e.function) {
      case 1:
        // EBX[31:24] initial APIC ID, [23:16] addressable logical processors per package.
        e.ebx = (e.ebx & 0x0000ffff) | (apicId & 0xff) << 24 | (std::min<uint32_t>(1u << (tb + cb), 255) << 16);
        e.ecx |= 1u << 31;  // running under a hypervisor
        if (!x2apic) e.ecx &= ~(1u << 21);
        if (perPackage > 1) e.edx |= 1u << 28;  // HTT: more than one logical processor per package
        else e.edx &= ~(1u << 28);
        break;
      case 4:
        // EAX[31:26] cores per package - 1; [25:14] logical processors sharing this cache - 1.
        if ((e.eax & 0x1f) != 0) {
          const uint32_t level = (e.eax >> 5) & 7;
          const uint32_t sharing = level >= 3 ? perPackage : t.threads;
          e.eax = (e.eax & 0x3fff) | ((sharing - 1) & 0xfff) << 14 | ((uint32_t(t.cores) - 1) & 0x3f) << 26;
        }
        break;
      default:
        break;
    }
  }
  // Extended topology (leaf 0xB, and 0x1F when the maximum basic leaf reaches it): KVM lists at most a
  // host-shaped sub-leaf 0, so both are rebuilt: sub-leaf 0 the SMT level, 1 the core level, 2 invalid.
  uint32_t maxBasic = 0;
  for (const auto& e : out)
    if (e.function == 0) maxBasic = e.eax;
  out.erase(std::remove_if(out.begin(), out.end(), [](const kvm_cpuid_entry2& e) { return e.function == 0xb || e.function == 0x1f; }),
            out.end());
  for (uint32_t leaf : {0xbu, 0x1fu}) {
    if (leaf > maxBasic) continue;
    for (uint32_t sub = 0; sub < 3; sub++) {
      kvm_cpuid_entry2 e{};
      e.function = leaf;
      e.index = sub;
      e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
      if (sub == 0) { e.eax = tb; e.ebx = t.threads; e.ecx = 1u << 8; }
      if (sub == 1) { e.eax = tb + cb; e.ebx = perPackage; e.ecx = 2u << 8 | 1; }
      if (sub == 2) e.ecx = 2;
      e.edx = apicId;
      out.push_back(e);
    }
  }
  return out;
}

}  // namespace tsbhyve::vmm
