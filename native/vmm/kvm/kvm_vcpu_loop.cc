// The vCPU threads: KVM_RUN, exit decoding and dispatch (native handler, TypeScript handler through the
// exit channel, or bhyve's default), suspension, and detection of the "all vCPUs halted with
// interrupts disabled" state that bhyve turns into exit status 2.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <linux/futex.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "vmm/kvm/kvm_vcpu.h"
#include "vmm/vmm.h"

namespace tsbhyve::vmm {

namespace {

// A real-time signal kicks a thread out of KVM_RUN (installed without SA_RESTART so the ioctl returns
// EINTR). Node and libuv do not use the real-time range.
int KickSignal() { return SIGRTMIN + 6; }
void OnKick(int) {}
std::once_flag installOnce;
void InstallKickHandler() {
  std::call_once(installOnce, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = OnKick;
    sigemptyset(&sa.sa_mask);
    sigaction(KickSignal(), &sa, nullptr);
  });
}

constexpr auto kWatchdogPeriod = std::chrono::milliseconds(20);

}  // namespace

Status Vm::Start(const std::vector<std::vector<int>>& cpusets) {
  if (started_) return {EBUSY, "VM already started"};
  if (vcpus_.empty()) return {EINVAL, "no vCPUs"};
  if (!ramReserve_) return {EINVAL, "guest memory is not set up"};
  InstallKickHandler();
  started_ = true;
  suspendHow_.store(-1);
  errorSet_.store(false);
  error_.clear();
  channel_.Reset();
  runningThreads_.store(int(vcpus_.size()));
  for (auto& v : vcpus_) {
    v->cpuset = size_t(v->id) < cpusets.size() ? cpusets[size_t(v->id)] : std::vector<int>{};
    v->run->immediate_exit = 0;
    Vcpu* raw = v.get();
    v->thread = std::thread([this, raw] { VcpuLoop(raw); });
  }
  stopWatchdog_.store(0);
  if (const char* d = getenv("TSBHYVE_VCPU_DUMP")) dumpEveryMs_ = int(atof(d) * 1000);
  watchdog_ = new std::thread([this] { WatchdogLoop(); });
  return Status::Ok();
}

void Vm::Suspend(SuspendHow how) {
  int expected = -1;
  suspendHow_.compare_exchange_strong(expected, int(how));
  // immediate_exit covers a thread about to enter KVM_RUN; the signal covers one already inside.
  for (auto& v : vcpus_) {
    if (v->run) __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (v->inThread.load()) pthread_kill(v->tid.load(), KickSignal());
  }
}

void Vm::Fail(const std::string& msg) {
  if (!errorSet_.exchange(true)) error_ = msg;
  Suspend(SuspendHow::kError);
}

int Vm::Join(std::string* error) {
  for (auto& v : vcpus_)
    if (v->thread.joinable()) v->thread.join();
  if (watchdog_) {
    stopWatchdog_.store(1);
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&stopWatchdog_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    auto* t = static_cast<std::thread*>(watchdog_);
    t->join();
    delete t;
    watchdog_ = nullptr;
  }
  started_ = false;
  int how = suspendHow_.load();
  if (how < 0) how = int(SuspendHow::kError);
  if (errorSet_.load()) *error = error_;
  return how;
}

void Vm::WatchdogLoop() {
  // A vCPU sitting in KVM_RUN without exits for a whole period may be halted: kick it so it can look.
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(kWatchdogPeriod).count();
  int sinceDump = 0;
  while (!stopWatchdog_.load()) {
    // Sleeps one period unless Join sets the word first (a plain sleep made every Join wait up to 20 ms
    // with the main thread blocked).
    timespec period{time_t(ns / 1000000000), long(ns % 1000000000)};
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&stopWatchdog_), FUTEX_WAIT_PRIVATE, 0, &period, nullptr, 0);
    if (stopWatchdog_.load()) break;
    if (suspendHow_.load() >= 0) continue;
    if (dumpEveryMs_ > 0 && (sinceDump += int(kWatchdogPeriod.count())) >= dumpEveryMs_) {
      sinceDump = 0;
      for (auto& v : vcpus_) {
        if (v->parked.load()) {
          ExitSlot* s = channel_.slot(v->id);
          std::fprintf(stderr, "[vcpu-dump] vcpu %d parked in the exit channel: kind %u addr 0x%llx state %u waiting %u exits %llu\n", v->id,
                       s->kind, (unsigned long long)s->addr, s->state.load(), s->waiting.load(), (unsigned long long)v->exits.load());
        } else {
          v->dumpRequested.store(true);
          if (v->inThread.load()) pthread_kill(v->tid.load(), KickSignal());
        }
      }
    }
    for (auto& v : vcpus_) {
      uint64_t n = v->exits.load(std::memory_order_relaxed);
      if (n == v->watchdogSeen && v->inThread.load()) pthread_kill(v->tid.load(), KickSignal());
      v->watchdogSeen = n;
    }
  }
}

void Vm::CheckHalted(Vcpu* v) {
  kvm_mp_state mp{};
  if (ioctl(v->fd, KVM_GET_MP_STATE, &mp) != 0) return;
  bool stuck = false;
  if (mp.mp_state == KVM_MP_STATE_HALTED) {
    kvm_regs r{};
    if (ioctl(v->fd, KVM_GET_REGS, &r) == 0) stuck = (r.rflags & 0x200) == 0;
  } else if (mp.mp_state == KVM_MP_STATE_UNINITIALIZED || mp.mp_state == KVM_MP_STATE_INIT_RECEIVED) {
    stuck = v->id != 0;  // an AP still waiting for INIT/SIPI counts as halted, as in bhyve
  }
  v->haltedIf0.store(stuck);
  if (!stuck) return;
  for (auto& o : vcpus_)
    if (!o->haltedIf0.load()) return;
  Suspend(SuspendHow::kHalt);
}

// TSBHYVE_VCPU_DUMP=<seconds> (diagnostics): every that many seconds the watchdog kicks each vCPU, which prints
// its MP state, registers, pending events, LAPIC (timer, IRR/ISR, ICR) and the kernel-text addresses found on its
// stack to stderr; a vCPU parked in the exit channel is reported by the watchdog instead. Runs on the vCPU's own
// thread (vCPU ioctls need it), between KVM_RUN calls.
void Vm::DumpVcpu(Vcpu* v) {
  kvm_mp_state mp{};
  ioctl(v->fd, KVM_GET_MP_STATE, &mp);
  kvm_regs r{};
  ioctl(v->fd, KVM_GET_REGS, &r);
  kvm_sregs sr{};
  ioctl(v->fd, KVM_GET_SREGS, &sr);
  kvm_vcpu_events ev{};
  ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev);
  kvm_lapic_state la{};
  ioctl(v->fd, KVM_GET_LAPIC, &la);
  auto L = [&](int off) { uint32_t x; std::memcpy(&x, la.regs + off, 4); return x; };
  char irr[80] = {0}, isr[80] = {0};
  for (int k = 7; k >= 0; k--) {
    std::snprintf(irr + (7 - k) * 9, 10, "%08x ", L(0x200 + k * 16));
    std::snprintf(isr + (7 - k) * 9, 10, "%08x ", L(0x100 + k * 16));
  }
  std::fprintf(stderr,
               "[vcpu-dump] vcpu %d mp %u rip 0x%llx rsp 0x%llx rflags 0x%llx rax 0x%llx rcx 0x%llx rdx 0x%llx rdi 0x%llx cr0 0x%llx cr3 0x%llx cr4 0x%llx efer 0x%llx cs 0x%x exits %llu io %llu mmio %llu js %llu\n"
               "[vcpu-dump]   events: exc %u/%u irq inj %u nr %u shadow %u nmi inj %u pend %u masked %u sipi 0x%x | apic id %08x tpr %x ppr %x svr %x lvtt %08x tmict %u tmcct %u tdcr %x icr %08x:%08x lint0 %08x lint1 %08x\n"
               "[vcpu-dump]   irr %s\n[vcpu-dump]   isr %s\n",
               v->id, mp.mp_state, (unsigned long long)r.rip, (unsigned long long)r.rsp, (unsigned long long)r.rflags,
               (unsigned long long)r.rax, (unsigned long long)r.rcx, (unsigned long long)r.rdx, (unsigned long long)r.rdi,
               (unsigned long long)sr.cr0, (unsigned long long)sr.cr3, (unsigned long long)sr.cr4, (unsigned long long)sr.efer, sr.cs.selector,
               (unsigned long long)v->exits.load(), (unsigned long long)v->ioExits.load(), (unsigned long long)v->mmioExits.load(),
               (unsigned long long)v->jsHandled.load(), ev.exception.injected, ev.exception.pending, ev.interrupt.injected, ev.interrupt.nr,
               ev.interrupt.shadow, ev.nmi.injected, ev.nmi.pending, ev.nmi.masked, ev.sipi_vector, L(0x20), L(0x80), L(0xa0), L(0xf0),
               L(0x320), L(0x380), L(0x390), L(0x3e0), L(0x310), L(0x300), L(0x350), L(0x360), irr, isr);
  // Kernel text addresses on the stack, for a rough backtrace (translate through the guest's page tables).
  std::string words;
  for (int k = 0; k < 48; k++) {
    kvm_translation t{};
    t.linear_address = r.rsp + uint64_t(k) * 8;
    if (ioctl(v->fd, KVM_TRANSLATE, &t) != 0 || !t.valid) break;
    uint64_t w = 0;
    if (mem_->Read(t.physical_address, &w, 8) != MemError::kOk) break;
    if (w >= 0xffffffff80000000ull && w < 0xffffffffc0000000ull) {
      char b[24];
      std::snprintf(b, sizeof b, " %llx", (unsigned long long)w);
      words += b;
    }
  }
  std::fprintf(stderr, "[vcpu-dump]   stack:%s\n", words.c_str());
  if (v->id == 0) DumpIrqchips();
}

// The in-kernel 8259s' and IOAPIC's state (for TSBHYVE_VCPU_DUMP): a lost or stuck interrupt shows up here as a
// request bit that never reached a LAPIC.
void Vm::DumpIrqchips() {
  for (uint32_t id : {uint32_t(KVM_IRQCHIP_PIC_MASTER), uint32_t(KVM_IRQCHIP_PIC_SLAVE)}) {
    kvm_irqchip chip{};
    chip.chip_id = id;
    if (ioctl(vmFd_, KVM_GET_IRQCHIP, &chip) != 0) return;
    const auto& p = chip.chip.pic;
    std::fprintf(stderr, "[vcpu-dump]   pic %u: irr %02x imr %02x isr %02x base %02x last_irr %02x elcr %02x init %u\n", id,
                 p.irr, p.imr, p.isr, p.irq_base, p.last_irr, p.elcr, p.init_state);
  }
  kvm_irqchip chip{};
  chip.chip_id = KVM_IRQCHIP_IOAPIC;
  if (ioctl(vmFd_, KVM_GET_IRQCHIP, &chip) != 0) return;
  const auto& io = chip.chip.ioapic;
  std::string pins;
  for (int k = 0; k < KVM_IOAPIC_NUM_PINS; k++) {
    uint64_t e = io.redirtbl[k].bits;
    if (e & (1ull << 16)) continue;  // masked
    char b[48];
    std::snprintf(b, sizeof b, " %d:%016llx", k, (unsigned long long)e);
    pins += b;
  }
  std::fprintf(stderr, "[vcpu-dump]   ioapic irr %08x unmasked%s\n", io.irr, pins.c_str());
}

void Vm::VcpuLoop(Vcpu* v) {
  v->tid.store(pthread_self());
  v->inThread.store(true);
  char name[16];
  std::snprintf(name, sizeof name, "vcpu %d", v->id);
  pthread_setname_np(pthread_self(), name);
  if (!v->cpuset.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : v->cpuset)
      if (c >= 0 && c < CPU_SETSIZE) CPU_SET(c, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) Fail("vcpu " + std::to_string(v->id) + ": cannot pin to the given host CPUs");
  }
  // Unblock the kick signal in this thread (Node may start threads with signals blocked).
  sigset_t un;
  sigemptyset(&un);
  sigaddset(&un, KickSignal());
  pthread_sigmask(SIG_UNBLOCK, &un, nullptr);

  while (suspendHow_.load(std::memory_order_acquire) < 0) {
    if (v->dumpRequested.load(std::memory_order_relaxed) && v->dumpRequested.exchange(false)) DumpVcpu(v);
    int r = ioctl(v->fd, KVM_RUN, 0);
    v->exits.fetch_add(1, std::memory_order_relaxed);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        if (suspendHow_.load() >= 0) break;
        CheckHalted(v);
        continue;
      }
      Fail("vcpu " + std::to_string(v->id) + ": KVM_RUN failed: " + std::strerror(errno));
      break;
    }
    v->haltedIf0.store(false, std::memory_order_relaxed);
    kvm_run* run = v->run;
    bool ok = true;
    switch (run->exit_reason) {
      case KVM_EXIT_IO:
        v->ioExits.fetch_add(1, std::memory_order_relaxed);
        ok = HandleIo(v);
        break;
      case KVM_EXIT_MMIO:
        v->mmioExits.fetch_add(1, std::memory_order_relaxed);
        ok = HandleMmio(v);
        break;
      case KVM_EXIT_X86_RDMSR:
      case KVM_EXIT_X86_WRMSR:
        // Only MSRs KVM does not know reach us: #GP under strictmsr, else reads 0 and writes vanish.
        v->msrExits.fetch_add(1, std::memory_order_relaxed);
        run->msr.error = strictMsr_ ? 1 : 0;
        if (run->exit_reason == KVM_EXIT_X86_RDMSR) run->msr.data = 0;
        break;
      case KVM_EXIT_HLT:
      case KVM_EXIT_INTR:
      case KVM_EXIT_IRQ_WINDOW_OPEN:
        break;
      case KVM_EXIT_SHUTDOWN:
        Suspend(SuspendHow::kTripleFault);
        break;
      case KVM_EXIT_SYSTEM_EVENT:
        switch (run->system_event.type) {
          case KVM_SYSTEM_EVENT_SHUTDOWN: Suspend(SuspendHow::kPoweroff); break;
          case KVM_SYSTEM_EVENT_RESET: Suspend(SuspendHow::kReset); break;
          default: Fail("vcpu " + std::to_string(v->id) + ": system event " + std::to_string(run->system_event.type)); break;
        }
        break;
      case KVM_EXIT_FAIL_ENTRY:
        Fail("vcpu " + std::to_string(v->id) + ": VM entry failed, hardware reason 0x" +
             [&] { char b[32]; std::snprintf(b, sizeof b, "%llx", (unsigned long long)run->fail_entry.hardware_entry_failure_reason); return std::string(b); }());
        ok = false;
        break;
      case KVM_EXIT_INTERNAL_ERROR: {
        kvm_regs regs{};
        ioctl(v->fd, KVM_GET_REGS, &regs);
        char b[96];
        std::snprintf(b, sizeof b, "internal error, suberror %u at rip 0x%llx", run->internal.suberror, (unsigned long long)regs.rip);
        Fail("vcpu " + std::to_string(v->id) + ": " + b);
        ok = false;
        break;
      }
      default:
        Fail("vcpu " + std::to_string(v->id) + ": unexpected exit reason " + std::to_string(run->exit_reason));
        ok = false;
        break;
    }
    if (!ok) break;
  }
  v->inThread.store(false);
  // The last thread out wakes the main thread so run() can resolve.
  if (runningThreads_.fetch_sub(1) == 1) channel_.NotifyAlways();
}

// Port I/O, including INS/OUTS with or without REP: KVM hands us `count` elements of `size` bytes at
// data_offset in the kvm_run page and completes the instruction itself on the next KVM_RUN.
bool Vm::HandleIo(Vcpu* v) {
  kvm_run* run = v->run;
  const unsigned size = run->io.size;
  const uint32_t count = run->io.count;
  const bool write = run->io.direction == KVM_EXIT_IO_OUT;
  const uint16_t port = run->io.port;
  const uint64_t bytes = uint64_t(size) * count;
  if (!(size == 1 || size == 2 || size == 4) || count == 0 || bytes > kSlotDataSize ||
      run->io.data_offset > uint64_t(runSize_) || bytes > uint64_t(runSize_) - run->io.data_offset) {
    Fail("vcpu " + std::to_string(v->id) + ": malformed I/O exit");
    return false;
  }
  uint8_t* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
  if (conf1Enabled_ && (port == 0xcf8 || (port >= 0xcfc && port <= 0xcff))) {
    for (uint32_t i = 0; i < count; i++) {
      if (!HandlePciConf1(v, port, size, write, data + i * size)) return false;
    }
    return true;
  }
  RangeOwner owner;
  if (pio_.Find(port, size, &owner)) {
    if (owner.native) {
      v->nativeHandled.fetch_add(1, std::memory_order_relaxed);
      for (uint32_t i = 0; i < count; i++) {
        uint64_t val = 0;
        if (write) std::memcpy(&val, data + i * size, size);
        owner.native->Access(v->id, port, size, write, &val);
        if (!write) std::memcpy(data + i * size, &val, size);
      }
      return true;
    }
    ExitSlot* s = channel_.slot(v->id);
    s->kind = kExitPio;
    s->handler = owner.jsId;
    s->size = size;
    s->write = write;
    s->count = count;
    s->addr = port;
    if (write) std::memcpy(s->data, data, bytes);
    else std::memset(s->data, 0xff, bytes);
    v->jsHandled.fetch_add(1, std::memory_order_relaxed);
    v->parked.store(true);
    channel_.Call(s);
    v->parked.store(false);
    if (s->result == kResultAbort) return suspendHow_.load() < 0 ? (Fail("I/O handler aborted"), false) : false;
    if (s->result == kResultHandled) {
      if (!write) std::memcpy(data, s->data, bytes);
      return true;
    }
  }
  // bhyve's default: reads float high, writes vanish; with -e (strictio) the VM stops.
  if (strictIo_) {
    // bhyve's words, without its "at RIP": KVM may already have moved RIP past the instruction.
    char b[96];
    std::snprintf(b, sizeof b, "Unhandled %s%c 0x%04x", write ? "out" : "in", size == 1 ? 'b' : size == 2 ? 'w' : 'l', port);
    Fail(b);
    return false;
  }
  if (!write) std::memset(data, 0xff, bytes);
  return true;
}

// MMIO: KVM decoded the instruction and gives the address, width (1..8) and data.
bool Vm::HandleMmio(Vcpu* v) {
  kvm_run* run = v->run;
  const unsigned len = run->mmio.len;
  if (len == 0 || len > 8) {
    Fail("vcpu " + std::to_string(v->id) + ": malformed MMIO exit");
    return false;
  }
  return DispatchMmio(v, run->mmio.phys_addr, len, run->mmio.is_write != 0, run->mmio.data);
}

bool Vm::DispatchMmio(Vcpu* v, uint64_t gpa, unsigned len, bool write, uint8_t* data) {
  RangeOwner owner;
  if (mmioOverlay_.Find(gpa, len, &owner) && owner.native) {
    v->nativeHandled.fetch_add(1, std::memory_order_relaxed);
    uint64_t val = 0;
    if (write) std::memcpy(&val, data, len);
    owner.native->Access(v->id, gpa, len, write, &val);
    if (!write) std::memcpy(data, &val, len);
    return true;
  }
  if (mmio_.Find(gpa, len, &owner)) {
    if (owner.native) {
      v->nativeHandled.fetch_add(1, std::memory_order_relaxed);
      uint64_t val = 0;
      if (write) std::memcpy(&val, data, len);
      owner.native->Access(v->id, gpa, len, write, &val);
      if (!write) std::memcpy(data, &val, len);
      return true;
    }
    ExitSlot* s = channel_.slot(v->id);
    s->kind = kExitMmio;
    s->handler = owner.jsId;
    s->size = len;
    s->write = write;
    s->count = 1;
    s->addr = double(gpa);
    if (write) std::memcpy(s->data, data, len);
    else std::memset(s->data, 0xff, 8);
    v->jsHandled.fetch_add(1, std::memory_order_relaxed);
    v->parked.store(true);
    channel_.Call(s);
    v->parked.store(false);
    if (s->result == kResultAbort) return suspendHow_.load() < 0 ? (Fail("MMIO handler aborted"), false) : false;
    if (s->result == kResultHandled) {
      if (!write) std::memcpy(data, s->data, len);
      return true;
    }
  }
  if (strictIo_) {
    char b[96];
    std::snprintf(b, sizeof b, "unhandled %u-byte MMIO %s at 0x%llx", len, write ? "write" : "read", (unsigned long long)gpa);
    Fail(b);
    return false;
  }
  if (!write) std::memset(data, 0xff, len);
  return true;
}

void Vm::SetPciConf1(uint64_t ecamBase, std::vector<uint8_t> present) {
  conf1Ecam_ = ecamBase;
  conf1Present_ = std::move(present);
  conf1Present_.resize(256 * 32 * 8 / 8, 0);
  conf1Enabled_ = true;
}

// Mechanism #1 (PCI Local Bus 3.0 §3.2.2.3.2): 0xCF8 takes only dword accesses; bit 31 enables the data window,
// bits 23:16 bus, 15:11 slot, 10:8 function, 7:2 register. A data access becomes the ECAM access for the same
// register, so one TypeScript handler (ECAM) serves both mechanisms.
bool Vm::HandlePciConf1(Vcpu* v, uint16_t port, unsigned size, bool write, uint8_t* data) {
  v->nativeHandled.fetch_add(1, std::memory_order_relaxed);
  if (port == 0xcf8) {
    if (size != 4) {
      if (!write) std::memset(data, 0xff, size);
      return true;
    }
    if (write) {
      uint32_t val;
      std::memcpy(&val, data, 4);
      conf1Addr_.store(val & 0x80fffffc, std::memory_order_relaxed);
    } else {
      uint32_t val = conf1Addr_.load(std::memory_order_relaxed);
      std::memcpy(data, &val, 4);
    }
    return true;
  }
  const uint32_t addr = conf1Addr_.load(std::memory_order_relaxed);
  const unsigned bus = (addr >> 16) & 0xff, slot = (addr >> 11) & 0x1f, func = (addr >> 8) & 7;
  const unsigned bit = bus << 8 | slot << 3 | func;
  const bool present = (conf1Present_[bit >> 3] >> (bit & 7)) & 1;
  if (!(addr & 0x80000000u) || !present) {
    if (!write) std::memset(data, 0xff, size);
    return true;
  }
  const uint64_t off = (addr & 0xfc) + (port - 0xcfc);
  const uint64_t gpa = conf1Ecam_ + (uint64_t(bus) << 20 | uint64_t(slot) << 15 | uint64_t(func) << 12 | off);
  v->nativeHandled.fetch_sub(1, std::memory_order_relaxed);  // counted by DispatchMmio instead
  return DispatchMmio(v, gpa, size, write, data);
}

}  // namespace tsbhyve::vmm
