#pragma once
// In C++, the uapi __DECLARE_FLEX_ARRAY macro gives kvm_cpuid2 and kvm_irq_routing a different size and
// entry offset than the kernel's C layout (12/16 bytes instead of 8), and the size is part of the ioctl
// number. These ioctls are therefore issued with our own numbers over buffers laid out as the kernel
// reads them: an 8-byte header (count, pad/flags) followed directly by the entries.
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace tsbhyve::vmm {
struct KvmFlexHeader {
  uint32_t count;
  uint32_t flags;
};
static_assert(sizeof(KvmFlexHeader) == 8, "flex header");
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, KvmFlexHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, KvmFlexHeader);
constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, KvmFlexHeader);
}  // namespace tsbhyve::vmm
