// The KVM backend of vmm.h: VM lifecycle, memory, interrupts and vCPU state over /dev/kvm
// (Documentation/virt/kvm/api.rst). The run loop lives in kvm_vcpu_loop.cc.
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "vmm/kvm/kvm_flex.h"
#include "vmm/kvm/kvm_vcpu.h"
#include "vmm/vmm.h"

namespace tsbhyve::vmm {

namespace {

constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kLowmemLimit = 3 * kGiB;
constexpr uint64_t kHighmemBase = 4 * kGiB;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kGuard = 4ull << 20;  // unmapped guard on each side of the RAM reservation
constexpr uint64_t kHugePage = 2ull << 20;
// KVM's defaults (0xfffbc000/0xfffbd000) fall inside bhyve's boot ROM region [0xff000000, 4G). The three
// TSS pages and the identity-map page go instead to the top of the unused gap below the IOAPIC
// (0xfec00000), which no bhyve device, BAR window or ECAM uses.
constexpr uint64_t kIdentityMapAddr = 0xfebfc000;
constexpr uint64_t kTssAddr = 0xfebfd000;
// GSI routing plan: 0-23 are ISA/IOAPIC lines as on a PC (GSI 0 reaches IOAPIC pin 2, like ACPI's
// IRQ0 override), 24-39 drive one 8259 input alone, 40-63 one IOAPIC pin alone, 64+ are MSI routes.
constexpr uint32_t kGsiPicOnly = 24, kGsiIoapicOnly = 40, kGsiMsiBase = 64;

Status Err(int e, const std::string& what) { return {e ? e : EIO, what + ": " + std::strerror(e ? e : EIO)}; }
Status Inval(const std::string& what) { return {EINVAL, what}; }

bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 229 || n[0] == '.') return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
      return false;
  }
  return true;
}

}  // namespace

Status Vm::Create(const std::string& name, const std::string& lockDir, std::unique_ptr<Vm>* out) {
  if (!ValidName(name)) return Inval("invalid VM name '" + name + "' (letters, digits, '.', '-', '_'; at most 229)");
  std::unique_ptr<Vm> vm(new Vm());
  vm->name_ = name;
  // One VM per name per host: an flock'ed file that dies with its process. The holder removes the file
  // when it closes the VM, so a lock taken on a file that was removed meanwhile is taken again on the
  // path's current file (otherwise two processes could each hold a lock on a different file).
  mkdir(lockDir.c_str(), 0700);
  std::string path = lockDir + "/" + name + ".lock";
  for (;;) {
    vm->lockFd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (vm->lockFd_ < 0) return Err(errno, "cannot open lock file " + path);
    if (flock(vm->lockFd_, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      char buf[32] = {0};
      ssize_t n = pread(vm->lockFd_, buf, sizeof buf - 1, 0);
      std::string holder = n > 0 ? std::string(buf, size_t(n)) : std::string("?");
      while (!holder.empty() && (holder.back() == '\n')) holder.pop_back();
      if (e == EWOULDBLOCK) return {EEXIST, "VM '" + name + "' is already running (process " + holder + ", lock " + path + ")"};
      return Err(e, "cannot lock " + path);
    }
    struct stat held {}, current {};
    if (fstat(vm->lockFd_, &held) == 0 && stat(path.c_str(), &current) == 0 && held.st_ino == current.st_ino &&
        held.st_dev == current.st_dev)
      break;
    close(vm->lockFd_);  // the file we locked was removed by its previous holder: try again
    vm->lockFd_ = -1;
  }
  vm->lockPath_ = path;
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(vm->lockFd_, 0) == 0) (void)!pwrite(vm->lockFd_, pid.data(), pid.size(), 0);

  vm->kvmFd_ = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (vm->kvmFd_ < 0) return Err(errno, "cannot open /dev/kvm");
  if (ioctl(vm->kvmFd_, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) return {ENOTSUP, "unsupported KVM API version"};
  for (int cap : {KVM_CAP_IRQCHIP, KVM_CAP_PIT2, KVM_CAP_READONLY_MEM, KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_SIGNAL_MSI,
                  KVM_CAP_IRQFD, KVM_CAP_IOEVENTFD, KVM_CAP_IRQ_ROUTING, KVM_CAP_SET_IDENTITY_MAP_ADDR}) {
    if (ioctl(vm->kvmFd_, KVM_CHECK_EXTENSION, cap) <= 0)
      return {ENOTSUP, "KVM lacks required capability " + std::to_string(cap)};
  }
  vm->runSize_ = ioctl(vm->kvmFd_, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (vm->runSize_ < int(sizeof(kvm_run))) return Err(errno, "KVM_GET_VCPU_MMAP_SIZE");
  // Interrupt routing per the plan above.
  for (uint32_t g = 0; g < 24; g++) {
    if (g < 16 && g != 2) vm->routes_.push_back({g, KVM_IRQ_ROUTING_IRQCHIP, uint32_t(g < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE), g % 8, 0, 0});
    vm->routes_.push_back({g, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_IOAPIC, g == 0 ? 2u : g, 0, 0});
  }
  for (uint32_t i = 0; i < 16; i++)
    vm->routes_.push_back({kGsiPicOnly + i, KVM_IRQ_ROUTING_IRQCHIP, uint32_t(i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE), i % 8, 0, 0});
  for (uint32_t i = 0; i < 24; i++)
    vm->routes_.push_back({kGsiIoapicOnly + i, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQCHIP_IOAPIC, i, 0, 0});
  Status s = vm->OpenVmFd();
  if (!s.ok()) return s;
  *out = std::move(vm);
  return Status::Ok();
}

// A fresh KVM VM with the platform pieces bhyve's vmm.ko provides: relocated TSS/identity map, in-kernel
// irqchip and PIT, unknown-MSR exits and the GSI routing table.
Status Vm::OpenVmFd() {
  do {
    vmFd_ = ioctl(kvmFd_, KVM_CREATE_VM, 0);
  } while (vmFd_ < 0 && errno == EINTR);
  if (vmFd_ < 0) return Err(errno, "KVM_CREATE_VM");
  uint64_t idmap = kIdentityMapAddr;
  if (ioctl(vmFd_, KVM_SET_IDENTITY_MAP_ADDR, &idmap) != 0) return Err(errno, "KVM_SET_IDENTITY_MAP_ADDR");
  if (ioctl(vmFd_, KVM_SET_TSS_ADDR, kTssAddr) != 0) return Err(errno, "KVM_SET_TSS_ADDR");
  if (ioctl(vmFd_, KVM_CREATE_IRQCHIP, 0) != 0) return Err(errno, "KVM_CREATE_IRQCHIP");
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;  // port 0x61 answered in the kernel, like bhyve's atpit
  if (ioctl(vmFd_, KVM_CREATE_PIT2, &pit) != 0) return Err(errno, "KVM_CREATE_PIT2");
  // Unknown MSRs come to user space so the strictmsr policy decides; without the capability KVM's own
  // policy (#GP for unknown MSRs, or ignore_msrs) applies, and userMsrExits() reports false.
  userMsr_ = false;
  if (ioctl(vmFd_, KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR) > 0) {
    kvm_enable_cap c{};
    c.cap = KVM_CAP_X86_USER_SPACE_MSR;
    c.args[0] = KVM_MSR_EXIT_REASON_UNKNOWN;
    userMsr_ = ioctl(vmFd_, KVM_ENABLE_CAP, &c) == 0;
  }
  return CommitRoutes();
}

Status Vm::SetSlot(uint32_t slot, uint64_t gpa, uint64_t len, uint8_t* host, bool readonly) {
  kvm_userspace_memory_region r{};
  r.slot = slot;
  r.flags = readonly ? KVM_MEM_READONLY : 0;  // guest writes to a read-only slot become MMIO exits
  r.guest_phys_addr = gpa;
  r.memory_size = len;
  r.userspace_addr = reinterpret_cast<uint64_t>(host);
  if (ioctl(vmFd_, KVM_SET_USER_MEMORY_REGION, &r) != 0) return Err(errno, "KVM_SET_USER_MEMORY_REGION");
  return Status::Ok();
}

Status Vm::OpenVcpu(int id, X2apicState x2apic, const bool* caps, std::unique_ptr<Vcpu>* out) {
  auto v = std::make_unique<Vcpu>();
  v->id = id;
  v->apicId = ApicIdOf(topo_, id);
  v->x2apic = x2apic;
  if (caps) std::copy(caps, caps + kCapCount, v->caps);
  v->fd = ioctl(vmFd_, KVM_CREATE_VCPU, v->apicId);
  if (v->fd < 0) return Err(errno, "KVM_CREATE_VCPU " + std::to_string(id));
  void* p = mmap(nullptr, size_t(runSize_), PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    close(v->fd);
    return Err(e, "mmap kvm_run");
  }
  v->run = static_cast<kvm_run*>(p);
  Status s = ApplyCpuid(v.get());
  if (!s.ok()) {
    munmap(v->run, size_t(runSize_));
    close(v->fd);
    return s;
  }
  *out = std::move(v);
  return Status::Ok();
}

Vm::~Vm() {
  if (started_) {
    Suspend(SuspendHow::kError);
    channel_.Shutdown();  // no main thread will answer pending exits any more
    std::string ignored;
    Join(&ignored);
  }
  for (auto& v : vcpus_) {
    if (v->run) munmap(v->run, size_t(runSize_));
    if (v->fd >= 0) close(v->fd);
  }
  if (vmFd_ >= 0) close(vmFd_);
  if (kvmFd_ >= 0) close(kvmFd_);
  // Guest memory may still be referenced by JS views (their finalizers own the reservation); give the
  // pages back to the host but keep the addresses valid by mapping fresh zero pages in their place.
  if (ramReserve_) {
    if (lowmem_) mmap(ramBase_, lowmem_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    if (highmem_) mmap(ramBase_ + kHighmemBase, highmem_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  }
  // Segments are shared memory: MADV_REMOVE frees their pages (reads then see zeros), the mapping stays.
  for (auto& s : segments_)
    if (madvise(s.host, s.len, MADV_REMOVE) != 0) madvise(s.host, s.len, MADV_DONTNEED);
  if (lockFd_ >= 0) {
    unlink(lockPath_.c_str());  // while still holding the lock; see Create
    close(lockFd_);             // releases the flock
  }
}

Status Vm::SetTopology(const Topology& t) {
  if (t.sockets == 0 || t.cores == 0 || t.threads == 0) return Inval("topology values must be at least 1");
  uint32_t n = uint32_t(t.sockets) * t.cores * t.threads;
  if (n > 1024) return Inval("topology has more than 1024 vCPUs");
  if (!vcpus_.empty()) return {EBUSY, "topology must be set before vCPUs are created"};
  topo_ = t;
  topo_.maxcpus = uint16_t(t.maxcpus ? t.maxcpus : n);
  return Status::Ok();
}

Vcpu* Vm::vcpu(int id) {
  if (id < 0 || id >= int(vcpus_.size())) return nullptr;
  return vcpus_[size_t(id)].get();
}

// A vCPU ioctl waits for the vCPU's mutex, which KVM_RUN holds: while the VM runs, only a vCPU parked in
// the exit channel (i.e. from its own exit handler) can be inspected without blocking the caller.
Status Vm::Accessible(int id, Vcpu** out) {
  Vcpu* v = vcpu(id);
  if (!v) return Inval("no such vCPU " + std::to_string(id));
  if (v->inThread.load() && !v->parked.load())
    return {EBUSY, "vCPU " + std::to_string(id) + " is running; its state is accessible from its own exit handlers"};
  *out = v;
  return Status::Ok();
}

Status Vm::CreateVcpus(int n) {
  const int max = int(topo_.sockets) * topo_.cores * topo_.threads;
  if (n < 1 || n > max) return Inval("vCPU count " + std::to_string(n) + " outside 1.." + std::to_string(max) + " of the topology");
  if (!vcpus_.empty()) return {EBUSY, "vCPUs already created"};
  for (int i = 0; i < n; i++) {
    std::unique_ptr<Vcpu> v;
    Status s = OpenVcpu(i, X2apicState::kDisabled, nullptr, &v);
    if (!s.ok()) return s;
    vcpus_.push_back(std::move(v));
  }
  channel_.Init(n);
  return Status::Ok();
}

Status Vm::Reinit() {
  // vm_reinit resets the whole machine state but keeps memory. KVM has no such call, so the KVM VM is
  // created again over the same guest memory: fresh LAPICs, IOAPIC, PIC and PIT, vCPUs at reset, the
  // same slots, MSI routes, irqfds and ioeventfds (their eventfds belong to the devices, which keep them).
  if (started_) return {EBUSY, "cannot reinit a running VM"};
  std::vector<std::pair<X2apicState, std::vector<bool>>> keep;
  for (auto& v : vcpus_) {
    keep.push_back({v->x2apic, std::vector<bool>(v->caps, v->caps + kCapCount)});
    munmap(v->run, size_t(runSize_));
    close(v->fd);
  }
  vcpus_.clear();
  close(vmFd_);
  vmFd_ = -1;
  Status s = OpenVmFd();
  if (!s.ok()) return s;
  if (lowmem_ && !(s = SetSlot(0, 0, lowmem_, ramBase_, false)).ok()) return s;
  if (highmem_ && !(s = SetSlot(1, kHighmemBase, highmem_, ramBase_ + kHighmemBase, false)).ok()) return s;
  for (const Slot& d : deviceSlots_)
    if (!(s = SetSlot(d.slot, d.gpa, d.len, d.host, d.readonly)).ok()) return s;
  const auto irqfds = std::move(irqfds_);
  const auto ioeventfds = std::move(ioeventfds_);
  irqfds_.clear();
  ioeventfds_.clear();
  for (const IrqfdReg& r : irqfds)
    if (!(s = Irqfd(r.fd, r.gsi, false, r.resampleFd)).ok()) return s;
  for (const IoeventfdReg& r : ioeventfds)
    if (!(s = Ioeventfd(r.fd, r.addr, r.len, r.pio, r.matchData, r.data, false)).ok()) return s;
  for (size_t i = 0; i < keep.size(); i++) {
    bool caps[kCapCount];
    for (int k = 0; k < kCapCount; k++) caps[k] = keep[i].second[size_t(k)];
    std::unique_ptr<Vcpu> v;
    if (!(s = OpenVcpu(int(i), keep[i].first, caps, &v)).ok()) return s;
    vcpus_.push_back(std::move(v));
  }
  return Status::Ok();
}

// ---- memory ----

namespace {
// Faults every page of [p, p+len) in for writing.
void Populate(uint8_t* p, uint64_t len) {
#ifdef MADV_POPULATE_WRITE
  if (madvise(p, len, MADV_POPULATE_WRITE) == 0) return;
#endif
  for (uint64_t off = 0; off < len; off += 4096) static_cast<volatile uint8_t*>(p)[off] = 0;  // kernels before 5.14
}
}  // namespace

Status Vm::SetupMemory(uint64_t size, bool wired, bool incore) {
  if (ramReserve_) return {EEXIST, "memory already set up"};
  if (size == 0 || size % kPage != 0) return Inval("memory size must be a non-zero multiple of 4 KiB");
  if (size > (1ull << 46)) return Inval("memory size too large");
  lowmem_ = size < kLowmemLimit ? size : kLowmemLimit;
  highmem_ = size - lowmem_;
  const uint64_t span = highmem_ ? kHighmemBase + highmem_ : lowmem_;
  // Guest physical 2 MiB boundaries fall on host 2 MiB boundaries, so transparent huge pages can back guest RAM
  // (bhyve gets superpages from FreeBSD's VM the same way). Large pages let KVM map the guest with large EPT/NPT
  // entries, and let a device's O_DIRECT transfer into guest RAM reach the disk in a few large segments.
  ramReserveLen_ = span + 2 * kGuard + kHugePage;
  void* res = mmap(nullptr, ramReserveLen_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (res == MAP_FAILED) return Err(errno, "cannot reserve guest address space");
  ramReserve_ = static_cast<uint8_t*>(res);
  ramBase_ = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(ramReserve_) + kGuard + kHugePage - 1) & ~(kHugePage - 1));
  struct Part { uint64_t gpa, len; uint32_t slot; };
  Part parts[2] = {{0, lowmem_, 0}, {kHighmemBase, highmem_, 1}};
  for (const Part& p : parts) {
    if (p.len == 0) continue;
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
    void* m = mmap(ramBase_ + p.gpa, p.len, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (m == MAP_FAILED) return Err(errno, "cannot map guest RAM");
    madvise(m, p.len, MADV_DONTDUMP);
    madvise(m, p.len, MADV_HUGEPAGE);  // a hint: where THP is off the range stays in small pages
    if (incore) Populate(static_cast<uint8_t*>(m), p.len);  // after the hint, so the pages come huge
    if (wired && mlock(m, p.len) != 0) return Err(errno, "cannot wire guest memory (mlock)");
    Status st = SetSlot(p.slot, p.gpa, p.len, static_cast<uint8_t*>(m), false);
    if (!st.ok()) return st;
    mem_->AddRegion({p.gpa, p.len, static_cast<uint8_t*>(m), RegionKind::kRam, true});
  }
  return Status::Ok();
}

Status Vm::CreateDevmem(int segid, const std::string& name, uint64_t len, uint8_t** host) {
  if (len == 0 || len % kPage != 0 || len > (1ull << 36)) return Inval("device segment length must be a non-zero multiple of 4 KiB");
  for (auto& s : segments_)
    if (s.segid == segid) return {EEXIST, "device memory segment " + std::to_string(segid) + " exists"};
  void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return Err(errno, "cannot map device segment");
  segments_.push_back({segid, name, static_cast<uint8_t*>(m), len});
  *host = static_cast<uint8_t*>(m);
  return Status::Ok();
}

Status Vm::MmapMemseg(uint64_t gpa, int segid, uint64_t off, uint64_t len, int prot) {
  Segment* seg = nullptr;
  for (auto& s : segments_)
    if (s.segid == segid) seg = &s;
  if (!seg) return {ENOENT, "no device memory segment " + std::to_string(segid)};
  if (gpa % kPage || off % kPage || len % kPage || len == 0) return Inval("segment mappings must be page aligned");
  if (off > seg->len || len > seg->len - off) return Inval("mapping exceeds the segment");
  if (gpa + len < gpa || gpa + len > (1ull << 52)) return Inval("mapping exceeds the guest physical address space");
  const bool writable = (prot & PROT_WRITE) != 0;
  GuestRegion region{gpa, len, seg->host + off, writable ? RegionKind::kDevice : RegionKind::kRom, writable};
  if (!mem_->AddRegion(region)) return {EEXIST, "mapping overlaps guest memory or another segment"};
  uint32_t slot;
  if (!freeSlots_.empty()) {
    slot = freeSlots_.back();
    freeSlots_.pop_back();
  } else {
    slot = nextSlot_++;
  }
  Status st = SetSlot(slot, gpa, len, seg->host + off, !writable);
  if (!st.ok()) {
    mem_->RemoveRegion(gpa);
    freeSlots_.push_back(slot);
    return st;
  }
  deviceSlots_.push_back({slot, gpa, len, seg->host + off, !writable});
  return Status::Ok();
}

Status Vm::MunmapMemseg(uint64_t gpa, uint64_t len) {
  for (size_t i = 0; i < deviceSlots_.size(); i++) {
    if (deviceSlots_[i].gpa != gpa || deviceSlots_[i].len != len) continue;
    kvm_userspace_memory_region r{};
    r.slot = deviceSlots_[i].slot;
    r.guest_phys_addr = gpa;
    r.memory_size = 0;  // size 0 deletes the slot
    if (ioctl(vmFd_, KVM_SET_USER_MEMORY_REGION, &r) != 0) return Err(errno, "KVM_SET_USER_MEMORY_REGION (delete)");
    mem_->RemoveRegion(gpa);
    freeSlots_.push_back(deviceSlots_[i].slot);
    deviceSlots_.erase(deviceSlots_.begin() + long(i));
    return Status::Ok();
  }
  return {ENOENT, "no segment mapping at that address and length"};
}

// ---- interrupts ----

Status Vm::LapicMsi(uint64_t addr, uint32_t data) {
  kvm_msi m{};
  m.address_lo = uint32_t(addr);
  m.address_hi = uint32_t(addr >> 32);
  m.data = data;
  // Returns >0 when delivered, 0 when the guest blocked it (masked/no destination): both are fine.
  if (ioctl(vmFd_, KVM_SIGNAL_MSI, &m) < 0) return Err(errno, "KVM_SIGNAL_MSI");
  return Status::Ok();
}

static Status Line(int vmFd, uint32_t gsi, int level) {
  kvm_irq_level l{};
  l.irq = gsi;
  l.level = uint32_t(level);
  if (ioctl(vmFd, KVM_IRQ_LINE, &l) != 0) return Err(errno, "KVM_IRQ_LINE");
  return Status::Ok();
}

Status Vm::IoapicLine(int pin, int level) {
  if (pin < 0 || pin >= IoapicPincount()) return Inval("IOAPIC pin " + std::to_string(pin) + " out of range 0..23");
  return Line(vmFd_, kGsiIoapicOnly + uint32_t(pin), level);
}

Status Vm::IsaLine(int atpic, int ioapic, int level) {
  if (atpic >= 16 || ioapic >= IoapicPincount() || atpic < -1 || ioapic < -1) return Inval("ISA irq out of range");
  // The PC wiring (same number on both chips, or IRQ0 -> pin 2) goes through the combined GSI.
  if (atpic >= 0 && (atpic == ioapic || (atpic == 0 && ioapic == 2)) && atpic != 2) return Line(vmFd_, uint32_t(atpic), level);
  if (atpic >= 0) {
    Status s = Line(vmFd_, kGsiPicOnly + uint32_t(atpic), level);
    if (!s.ok()) return s;
  }
  if (ioapic >= 0) return Line(vmFd_, kGsiIoapicOnly + uint32_t(ioapic), level);
  return Status::Ok();
}

Status Vm::IsaSetTrigger(int irq, bool level) {
  // The ELCR belongs to KVM's 8259 model: read the chip, flip the bit, write it back. IRQ 0, 1, 2, 8 and
  // 13 are edge-only on a PC; KVM's elcr_mask enforces that, we refuse them explicitly.
  if (irq < 0 || irq >= 16) return Inval("ISA irq out of range");
  if (level && (irq == 0 || irq == 1 || irq == 2 || irq == 8 || irq == 13)) return Inval("ISA irq " + std::to_string(irq) + " cannot be level triggered");
  kvm_irqchip chip{};
  chip.chip_id = irq < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
  if (ioctl(vmFd_, KVM_GET_IRQCHIP, &chip) != 0) return Err(errno, "KVM_GET_IRQCHIP");
  uint8_t bit = uint8_t(1u << (irq % 8));
  if (level) chip.chip.pic.elcr |= bit;
  else chip.chip.pic.elcr &= uint8_t(~bit);
  if (ioctl(vmFd_, KVM_SET_IRQCHIP, &chip) != 0) return Err(errno, "KVM_SET_IRQCHIP");
  return Status::Ok();
}

Status Vm::CommitRoutes() {
  // Built by hand: the kernel expects the entries right after the 8-byte header (nr, flags).
  const size_t n = routes_.size();
  std::vector<uint64_t> words((8 + n * sizeof(kvm_irq_routing_entry)) / 8, 0);
  uint8_t* buf = reinterpret_cast<uint8_t*>(words.data());
  const uint32_t nr = uint32_t(n);
  std::memcpy(buf, &nr, 4);
  for (size_t i = 0; i < n; i++) {
    kvm_irq_routing_entry e{};
    e.gsi = routes_[i].gsi;
    e.type = routes_[i].type;
    if (e.type == KVM_IRQ_ROUTING_MSI) {
      e.u.msi.address_lo = uint32_t(routes_[i].addr);
      e.u.msi.address_hi = uint32_t(routes_[i].addr >> 32);
      e.u.msi.data = routes_[i].data;
    } else {
      e.u.irqchip.irqchip = routes_[i].chip;
      e.u.irqchip.pin = routes_[i].pin;
    }
    std::memcpy(buf + 8 + i * sizeof e, &e, sizeof e);
  }
  if (ioctl(vmFd_, kSetGsiRouting, buf) != 0) return Err(errno, "KVM_SET_GSI_ROUTING");
  return Status::Ok();
}

Status Vm::SetMsiRoute(uint32_t gsi, uint64_t addr, uint32_t data) {
  if (gsi < kGsiMsiBase || gsi >= 4096) return Inval("MSI routes use GSIs 64..4095");
  bool found = false;
  for (auto& r : routes_) {
    if (r.gsi == gsi) {
      r.addr = addr;
      r.data = data;
      found = true;
    }
  }
  if (!found) routes_.push_back({gsi, KVM_IRQ_ROUTING_MSI, 0, 0, addr, data});
  return CommitRoutes();
}

Status Vm::Irqfd(int fd, uint32_t gsi, bool deassign, int resampleFd) {
  kvm_irqfd f{};
  f.fd = uint32_t(fd);
  f.gsi = gsi;
  f.flags = deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0;
  // A resample fd makes the irqfd level-triggered: KVM holds the line until the guest's EOI, then
  // lowers it and signals resampleFd so the device can re-assert if it is still pending.
  if (resampleFd >= 0 && !deassign) {
    f.flags |= KVM_IRQFD_FLAG_RESAMPLE;
    f.resamplefd = uint32_t(resampleFd);
  }
  if (ioctl(vmFd_, KVM_IRQFD, &f) != 0) return Err(errno, "KVM_IRQFD");
  // Remembered so that Reinit can register it with the new KVM VM.
  irqfds_.erase(std::remove_if(irqfds_.begin(), irqfds_.end(), [&](const IrqfdReg& r) { return r.fd == fd && r.gsi == gsi; }),
                irqfds_.end());
  if (!deassign) irqfds_.push_back({fd, gsi, resampleFd});
  return Status::Ok();
}

Status Vm::Ioeventfd(int fd, uint64_t addr, uint32_t len, bool pio, bool matchData, uint64_t data, bool deassign) {
  if (!(len == 0 || len == 1 || len == 2 || len == 4 || len == 8)) return Inval("ioeventfd length must be 0, 1, 2, 4 or 8");
  kvm_ioeventfd e{};
  e.datamatch = data;
  e.addr = addr;
  e.len = len;
  e.fd = fd;
  e.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (matchData ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
            (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0);
  if (ioctl(vmFd_, KVM_IOEVENTFD, &e) != 0) return Err(errno, "KVM_IOEVENTFD");
  const IoeventfdReg reg{fd, addr, len, pio, matchData, data};
  ioeventfds_.erase(std::remove_if(ioeventfds_.begin(), ioeventfds_.end(), [&](const IoeventfdReg& r) { return r.Same(reg); }),
                    ioeventfds_.end());
  if (!deassign) ioeventfds_.push_back(reg);
  return Status::Ok();
}

// ---- vCPU state ----

Status Vm::GetRegs(int id, uint64_t o[kRegCount]) {
  Vcpu* v = nullptr;
  if (Status st0 = Accessible(id, &v); !st0.ok()) return st0;
  kvm_regs r{};
  if (ioctl(v->fd, KVM_GET_REGS, &r) != 0) return Err(errno, "KVM_GET_REGS");
  const uint64_t vals[kRegCount] = {r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9,
                                    r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip, r.rflags};
  std::memcpy(o, vals, sizeof vals);
  return Status::Ok();
}

Status Vm::SetRegs(int id, const uint64_t i[kRegCount]) {
  Vcpu* v = nullptr;
  if (Status st0 = Accessible(id, &v); !st0.ok()) return st0;
  kvm_regs r{};
  r.rax = i[0]; r.rbx = i[1]; r.rcx = i[2]; r.rdx = i[3]; r.rsi = i[4]; r.rdi = i[5]; r.rsp = i[6]; r.rbp = i[7];
  r.r8 = i[8]; r.r9 = i[9]; r.r10 = i[10]; r.r11 = i[11]; r.r12 = i[12]; r.r13 = i[13]; r.r14 = i[14]; r.r15 = i[15];
  r.rip = i[16]; r.rflags = i[17] | 2;  // bit 1 is always set
  if (ioctl(v->fd, KVM_SET_REGS, &r) != 0) return Err(errno, "KVM_SET_REGS");
  return Status::Ok();
}

static void PackSeg(const kvm_segment& s, uint64_t* o) {
  o[0] = s.base;
  o[1] = s.limit;
  o[2] = s.selector;
  o[3] = uint64_t(s.type & 15) | uint64_t(s.present & 1) << 4 | uint64_t(s.dpl & 3) << 5 | uint64_t(s.db & 1) << 7 |
         uint64_t(s.s & 1) << 8 | uint64_t(s.l & 1) << 9 | uint64_t(s.g & 1) << 10 | uint64_t(s.avl & 1) << 11 |
         uint64_t(s.unusable & 1) << 12;
}
static void UnpackSeg(const uint64_t* i, kvm_segment* s) {
  s->base = i[0];
  s->limit = uint32_t(i[1]);
  s->selector = uint16_t(i[2]);
  s->type = i[3] & 15;
  s->present = (i[3] >> 4) & 1;
  s->dpl = (i[3] >> 5) & 3;
  s->db = (i[3] >> 7) & 1;
  s->s = (i[3] >> 8) & 1;
  s->l = (i[3] >> 9) & 1;
  s->g = (i[3] >> 10) & 1;
  s->avl = (i[3] >> 11) & 1;
  s->unusable = (i[3] >> 12) & 1;
}

Status Vm::GetSregs(int id, uint64_t o[kSregCount]) {
  Vcpu* v = nullptr;
  if (Status st0 = Accessible(id, &v); !st0.ok()) return st0;
  kvm_sregs s{};
  if (ioctl(v->fd, KVM_GET_SREGS, &s) != 0) return Err(errno, "KVM_GET_SREGS");
  const kvm_segment* segs[8] = {&s.cs, &s.ds, &s.es, &s.fs, &s.gs, &s.ss, &s.tr, &s.ldt};
  for (int k = 0; k < 8; k++) PackSeg(*segs[k], o + 4 * k);
  o[32] = s.gdt.base; o[33] = s.gdt.limit; o[34] = s.idt.base; o[35] = s.idt.limit;
  o[36] = s.cr0; o[37] = s.cr2; o[38] = s.cr3; o[39] = s.cr4; o[40] = s.cr8; o[41] = s.efer; o[42] = s.apic_base;
  return Status::Ok();
}

Status Vm::SetSregs(int id, const uint64_t in[kSregCount]) {
  Vcpu* v = nullptr;
  if (Status st0 = Accessible(id, &v); !st0.ok()) return st0;
  kvm_sregs s{};
  // Read first so the pending-interrupt bitmap is preserved.
  if (ioctl(v->fd, KVM_GET_SREGS, &s) != 0) return Err(errno, "KVM_GET_SREGS");
  kvm_segment* segs[8] = {&s.cs, &s.ds, &s.es, &s.fs, &s.gs, &s.ss, &s.tr, &s.ldt};
  for (int k = 0; k < 8; k++) UnpackSeg(in + 4 * k, segs[k]);
  s.gdt.base = in[32]; s.gdt.limit = uint16_t(in[33]); s.idt.base = in[34]; s.idt.limit = uint16_t(in[35]);
  s.cr0 = in[36]; s.cr2 = in[37]; s.cr3 = in[38]; s.cr4 = in[39]; s.cr8 = in[40]; s.efer = in[41]; s.apic_base = in[42];
  if (ioctl(v->fd, KVM_SET_SREGS, &s) != 0) return Err(errno, "KVM_SET_SREGS");
  return Status::Ok();
}

Status Vm::ResetVcpu(int id) {
  // The architectural power-on state (Intel SDM vol. 3 §9.1.1): real mode, CS.base 0xffff0000 with
  // selector 0xf000 and IP 0xfff0, so the first fetch is at 0xfffffff0 in the boot ROM.
  Vcpu* v = nullptr;
  if (Status st0 = Accessible(id, &v); !st0.ok()) return st0;
  uint64_t regs[kRegCount] = {0};
  regs[3] = 0x600;  // EDX: processor signature family 6
  regs[16] = 0xfff0;
  regs[17] = 0x2;
  Status st = SetRegs(id, regs);
  if (!st.ok()) return st;
  uint64_t s[kSregCount];
  st = GetSregs(id, s);
  if (!st.ok()) return st;
  const uint64_t data16 = 3 | 1 << 4 | 1 << 8;  // read/write accessed, present, code/data
  const uint64_t code16 = 11 | 1 << 4 | 1 << 8;  // execute/read accessed
  for (int k = 0; k < 6; k++) {
    s[4 * k + 0] = 0; s[4 * k + 1] = 0xffff; s[4 * k + 2] = 0; s[4 * k + 3] = data16;
  }
  s[0] = 0xffff0000; s[2] = 0xf000; s[3] = code16;  // CS
  s[24] = 0; s[25] = 0xffff; s[26] = 0; s[27] = 11 | 1 << 4;  // TR: busy 32-bit TSS
  s[28] = 0; s[29] = 0xffff; s[30] = 0; s[31] = 2 | 1 << 4;   // LDTR
  s[32] = 0; s[33] = 0xffff; s[34] = 0; s[35] = 0xffff;
  s[36] = 0x60000010;  // CR0: CD, NW, ET
  s[37] = s[38] = s[39] = s[40] = s[41] = 0;
  // The APIC base keeps its MSR value (BSP flag, x2APIC mode); SetSregs writes it back unchanged.
  return SetSregs(id, s);
}

Status Vm::SetCapability(int id, Cap cap, int value) {
  Vcpu* v = vcpu(id);
  if (!v) return Inval("no such vCPU");
  switch (cap) {
    case Cap::kHaltExit:  // HLT is handled by KVM's in-kernel LAPIC; halt detection (status 2) is always on
    case Cap::kPauseExit:  // KVM handles PAUSE (pause-loop exiting) in the kernel
    case Cap::kUnrestrictedGuest:  // KVM runs real mode on every host (unrestricted guest or emulation)
    case Cap::kEnableInvpcid:  // exposed through CPUID when the host has it
    case Cap::kIpiExit:  // INIT/SIPI are handled by the in-kernel LAPIC
      v->caps[int(cap)] = value != 0;
      return Status::Ok();
  }
  return {ENOENT, "unknown capability"};
}

Status Vm::GetCapability(int id, Cap cap, int* value) {
  Vcpu* v = vcpu(id);
  if (!v) return Inval("no such vCPU");
  if (int(cap) < 0 || int(cap) >= kCapCount) return {ENOENT, "unknown capability"};
  *value = v->caps[int(cap)] ? 1 : 0;
  return Status::Ok();
}

Status Vm::SetX2apicState(int id, X2apicState s) {
  Vcpu* v = nullptr;
  if (Status st0 = Accessible(id, &v); !st0.ok()) return st0;
  v->x2apic = s;
  // CPUID first: KVM accepts the x2APIC bit in IA32_APIC_BASE only when CPUID offers x2APIC.
  if (Status st = ApplyCpuid(v); !st.ok()) return st;
  // As bhyve's vlapic does, the state is the LAPIC's mode from now on (and across vcpu_reset): enabled
  // means x2APIC mode (IA32_APIC_BASE EXTD and EN), disabled means xAPIC mode.
  kvm_sregs sr{};
  if (ioctl(v->fd, KVM_GET_SREGS, &sr) != 0) return Err(errno, "KVM_GET_SREGS");
  constexpr uint64_t kApicEnable = 1u << 11, kApicExtd = 1u << 10;
  if (s == X2apicState::kEnabled) sr.apic_base |= kApicEnable | kApicExtd;
  else sr.apic_base &= ~kApicExtd;
  if (ioctl(v->fd, KVM_SET_SREGS, &sr) != 0) return Err(errno, "KVM_SET_SREGS (APIC base)");
  return Status::Ok();
}

Status Vm::InjectException(int id, int vector, bool errorCodeValid, uint32_t errorCode) {
  // bhyve's rules: vectors 0-31 only; NMIs go through vm_inject_nmi; #DF only arises from nested faults.
  if (vector < 0 || vector >= 32) return Inval("exception vector must be 0..31");
  if (vector == 2) return Inval("vector 2 is the NMI; use vm_inject_nmi");
  if (vector == 8) return Inval("a double fault cannot be injected directly");
  Vcpu* v = nullptr;
  if (Status st0 = Accessible(id, &v); !st0.ok()) return st0;
  kvm_vcpu_events ev{};
  if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) != 0) return Err(errno, "KVM_GET_VCPU_EVENTS");
  if (ev.exception.injected || ev.exception.pending) return {EBUSY, "vCPU " + std::to_string(id) + " already has an exception pending"};
  kvm_sregs sr{};
  if (ioctl(v->fd, KVM_GET_SREGS, &sr) != 0) return Err(errno, "KVM_GET_SREGS");
  // Real mode pushes no error code.
  if ((sr.cr0 & 1) == 0) errorCodeValid = false;
  // Without KVM_CAP_EXCEPTION_PAYLOAD, "injected" is the pending exception KVM delivers on the next entry.
  ev.exception.injected = 1;
  ev.exception.nr = uint8_t(vector);
  ev.exception.has_error_code = errorCodeValid ? 1 : 0;
  ev.exception.error_code = errorCode;
  // Only the exception changes: the flags that would also overwrite the NMI, SIPI and SMM state are cleared.
  ev.flags &= KVM_VCPUEVENT_VALID_SHADOW;
  if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) != 0) return Err(errno, "KVM_SET_VCPU_EVENTS");
  return Status::Ok();
}

Status Vm::GetStats(int id, uint64_t out[6]) {
  Vcpu* v = vcpu(id);
  if (!v) return Inval("no such vCPU");
  out[0] = v->exits.load();
  out[1] = v->ioExits.load();
  out[2] = v->mmioExits.load();
  out[3] = v->msrExits.load();
  out[4] = v->nativeHandled.load();
  out[5] = v->jsHandled.load();
  return Status::Ok();
}

Status Vm::GetCpuid(int id, uint32_t leaf, uint32_t sub, uint32_t out[4]) {
  Vcpu* v = vcpu(id);
  if (!v) return Inval("no such vCPU");
  for (const auto& e : v->cpuid) {
    if (e.function == leaf && (!(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e.index == sub)) {
      out[0] = e.eax; out[1] = e.ebx; out[2] = e.ecx; out[3] = e.edx;
      return Status::Ok();
    }
  }
  out[0] = out[1] = out[2] = out[3] = 0;
  return {ENOENT, "no such CPUID leaf"};
}

Status Vm::ApplyCpuid(Vcpu* v) {
  std::vector<kvm_cpuid_entry2> base;
  Status s = SupportedCpuid(kvmFd_, &base);
  if (!s.ok()) return s;
  v->cpuid = TopologyCpuid(base, topo_, v->id, v->x2apic == X2apicState::kEnabled);
  std::vector<uint64_t> words((sizeof(KvmFlexHeader) + v->cpuid.size() * sizeof(kvm_cpuid_entry2) + 7) / 8, 0);
  auto* h = reinterpret_cast<KvmFlexHeader*>(words.data());
  h->count = uint32_t(v->cpuid.size());
  std::memcpy(h + 1, v->cpuid.data(), v->cpuid.size() * sizeof(kvm_cpuid_entry2));
  if (ioctl(v->fd, kSetCpuid2, h) != 0) return Err(errno, "KVM_SET_CPUID2");
  return Status::Ok();
}

}  // namespace tsbhyve::vmm
