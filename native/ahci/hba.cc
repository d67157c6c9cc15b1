#include "ahci/hba.h"

#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "ahci/ahci_spec.h"
#include "block/async_io.h"

namespace tsbhyve {
namespace ahci {

namespace {
uint32_t Le32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint16_t Le16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
// Largest DATA SET MANAGEMENT payload, in 512-byte blocks (IDENTIFY word 105 says the same).
constexpr uint32_t kDsmMaxBlocks = 8;
constexpr uint8_t kLogDirectory = 0x00, kLogNcqError = 0x10;
// The ring's tag for the port's wake eventfd poll (command slots are 0-31).
constexpr uint64_t kWakeTag = ~0ull;

// The commands that move data between the disk and guest memory, and so can go on the ring.
bool IsDiskTransfer(uint8_t op) {
  switch (op) {
    case kAtaReadDma: case kAtaReadDmaExt: case kAtaReadSectors: case kAtaReadSectorsExt: case kAtaReadMultiple:
    case kAtaReadMultipleExt: case kAtaWriteDma: case kAtaWriteDmaExt: case kAtaWriteDmaFuaExt: case kAtaWriteSectors:
    case kAtaWriteSectorsExt: case kAtaWriteMultiple: case kAtaWriteMultipleExt: case kAtaReadFpdma: case kAtaWriteFpdma:
      return true;
    default:
      return false;
  }
}
}  // namespace

// What a command ended with: the ATA status and error for the D2H (or SDB) FIS, and how it completes.
struct Hba::Done {
  uint8_t status = kStDrdy | kStDsc;
  uint8_t error = 0;
  bool ncq = false;
  unsigned tag = 0;
  bool pioSetup = false;   // a PIO data-in command: a PIO Setup FIS precedes the D2H FIS
  bool signature = false;  // the D2H FIS carries the device signature (device reset, IDENTIFY refused on ATAPI)
  bool silent = false;     // no FIS at all (a control FIS setting SRST)
  bool fatal = false;      // the command list or table is not in guest RAM: host bus fatal error
  uint16_t count = 0;      // the D2H FIS's count field
  uint64_t lba = 0;
  bool failed() const { return fatal || (status & kStErr); }
};

// A disk read or write on the ring: what to move, and the completion it ends with when the I/O succeeds.
struct Hba::Transfer {
  bool pending = false;     // Ata described a transfer instead of doing it
  bool write = false;
  bool flushAfter = false;  // FUA, or the write cache is off: a flush follows before completion
  bool flushing = false;
  std::vector<struct iovec> iov;
  uint64_t offset = 0;
  uint64_t bytes = 0;
  uint32_t run = 0;  // the engine run it was started in
  Done done;
};

struct Hba::Port {
  unsigned index = 0;
  PortSetup setup;
  std::unique_ptr<AtapiDrive> drive;
  std::mutex mu;
  std::condition_variable work, idle;
  std::thread worker;
  bool quit = false;
  // registers
  uint64_t clb = 0, fb = 0;
  uint32_t is = 0, ie = 0, cmd = 0, tfd = 0, sig = 0, ssts = 0, sctl = 0, serr = 0, sact = 0, ci = 0, sntf = 0;
  // command engine
  uint32_t taken = 0;     // CI bits the worker has fetched and not finished
  bool busy = false;      // a command is running outside the lock
  bool stalled = false;   // a task file error stopped the engine until the guest restarts it (PxCMD.ST 0 -> 1)
  uint32_t engineRun = 0; // bumped when the engine stops, so a command finishing afterwards posts nothing
  unsigned nextSlot = 0;
  bool softReset = false; // a control FIS with SRST set arrived; the one clearing it resets the device
  bool writeCache = true;
  std::array<uint8_t, 512> ncqLog{};
  // the ring engine (disks, unless io_uring is refused or aio=threads)
  std::unique_ptr<block::AsyncIo> aio;
  int wakeFd = -1;
  unsigned inflight = 0;  // transfers on the ring
  bool ringAsleep = false;  // the ring worker is in (or about to enter) its wait: a PxCI write must wake it
  std::array<Transfer, kSlots> xfer;
  bool present() const { return setup.file != nullptr; }
};

Hba::Hba(std::shared_ptr<const GuestMemory> mem, std::vector<PortSetup> ports, std::function<void(HbaEvent, uint32_t)> report)
    : mem_(std::move(mem)), report_(std::move(report)) {
  for (unsigned i = 0; i < ports.size() && i < kMaxPorts; i++) {
    auto p = std::make_unique<Port>();
    p->index = i;
    p->setup = std::move(ports[i]);
    if (p->present() && p->setup.atapi) p->drive = std::make_unique<AtapiDrive>(p->setup.file->size(), p->setup.inquiry);
    if (p->setup.identify.size() != 512) p->setup.identify.resize(512, 0);
    ResetPortLocked(*p, true);
    ports_.push_back(std::move(p));
  }
  // PI names the ports with a device; CAP.NP counts every port the ABAR has room for.
  for (auto& p : ports_) if (p->present()) pi_ |= 1u << p->index;
  const uint32_t np = ports_.empty() ? 0 : uint32_t(ports_.size() - 1);
  // 64-bit addressing, NCQ, SNotification, command list override, AHCI only, Gen3, 32 slots.
  cap_ = kCapS64A | kCapSNCQ | kCapSSNTF | kCapSCLO | kCapSAM | kCapISSGen3 | ((kSlots - 1) << 8) | np;
  ghc_ = kGhcAE;
}

Hba::~Hba() { Stop(); }

void Hba::Start() {
  for (auto& up : ports_) {
    Port& p = *up;
    if (!p.present() || p.worker.joinable()) continue;
    p.quit = false;
    if (!p.setup.atapi && p.setup.useUring) {
      std::string why;
      p.wakeFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (p.wakeFd >= 0) p.aio = block::AsyncIo::Create(p.setup.file, kSlots + 1, &why);
      if (!p.aio && p.wakeFd >= 0) {
        close(p.wakeFd);  // io_uring refused: the synchronous engine
        p.wakeFd = -1;
      }
    }
    if (p.aio) p.worker = std::thread([this, &p] { WorkerAsync(p); });
    else p.worker = std::thread([this, &p] { Worker(p); });
  }
}

void Hba::Wake(Port& p) {
  p.work.notify_one();
  // The ring engine looks at PxCI again before it sleeps, so only a worker already asleep needs the eventfd (a
  // write system call on the vCPU thread per PxCI write otherwise).
  if (p.wakeFd >= 0 && (p.ringAsleep || p.quit)) {
    const uint64_t one = 1;
    (void)!write(p.wakeFd, &one, sizeof one);
  }
}

void Hba::Stop() {
  for (auto& up : ports_) {
    Port& p = *up;
    {
      std::lock_guard<std::mutex> g(p.mu);
      p.quit = true;
      Wake(p);
    }
    p.work.notify_all();
    if (p.worker.joinable()) p.worker.join();
    p.aio.reset();  // waits for anything still in flight
    if (p.wakeFd >= 0) close(p.wakeFd);
    p.wakeFd = -1;
  }
}

// --- registers ---------------------------------------------------------------------------------------------

void Hba::ResetPortLocked(Port& p, bool powerOn) {
  if (powerOn) {
    p.clb = p.fb = 0;
    p.ie = 0;
    p.cmd = 0;
    p.sctl = 0;
  }
  p.is = 0;
  p.serr = 0;
  p.sact = p.ci = p.taken = 0;
  p.sntf = 0;
  p.stalled = false;
  p.softReset = false;
  p.cmd &= ~(kCmdST | kCmdCR | (0x1fu << kCmdCcsShift));
  if (p.present()) {
    p.cmd |= kCmdSUD | kCmdPOD | (p.setup.atapi ? kCmdATAPI : 0);
    p.ssts = kSstsOnline;
    p.sig = p.setup.atapi ? kSigAtapi : kSigAta;
    // Diagnostic code 01h (no error); an ATAPI device clears DRDY after a reset.
    p.tfd = (1u << 8) | (p.setup.atapi ? 0 : (kStDrdy | kStDsc));
    if (!powerOn) p.serr |= kSerrDiagX;
    if (p.drive) p.drive->Reset();
  } else {
    p.ssts = 0;
    p.sig = 0xffffffffu;
    p.tfd = 0x7f;
  }
  p.ncqLog.fill(0);
  p.writeCache = true;
}

void Hba::StopEngineLocked(Port& p, std::unique_lock<std::mutex>& l) {
  p.engineRun++;
  p.cmd &= ~kCmdST;
  p.idle.wait(l, [&] { return !p.busy && p.inflight == 0; });
  p.ci = p.sact = p.taken = 0;
  p.stalled = false;
  p.cmd &= ~(kCmdCR | (0x1fu << kCmdCcsShift));
}

uint32_t Hba::Read(uint32_t off) {
  if (off >= kRegs) {
    const uint32_t n = (off - kRegs) / kPortStride;
    if (n >= ports_.size()) return 0;
    Port& p = *ports_[n];
    std::lock_guard<std::mutex> g(p.mu);
    return PortRead(p, (off - kRegs) % kPortStride);
  }
  std::lock_guard<std::mutex> g(mu_);
  switch (off) {
    case kCap: return cap_;
    case kGhc: return ghc_ | (mrsm_ ? kGhcMRSM : 0);
    case kIs: return is_;
    case kPi: return pi_;
    case kVs: return kVersion13;
    default: return 0;  // CCC, enclosure management, CAP2 and BIOS handoff: not implemented
  }
}

uint32_t Hba::PortRead(Port& p, uint32_t reg) {
  switch (reg) {
    case kPxClb: return uint32_t(p.clb);
    case kPxClbu: return uint32_t(p.clb >> 32);
    case kPxFb: return uint32_t(p.fb);
    case kPxFbu: return uint32_t(p.fb >> 32);
    case kPxIs: return p.is;
    case kPxIe: return p.ie;
    case kPxCmd: return p.cmd;
    case kPxTfd: return p.tfd;
    case kPxSig: return p.sig;
    case kPxSsts: return p.ssts;
    case kPxSctl: return p.sctl;
    case kPxSerr: return p.serr;
    case kPxSact: return p.sact;
    case kPxCi: return p.ci;
    case kPxSntf: return p.sntf;
    default: return 0;
  }
}

void Hba::Write(uint32_t off, uint32_t value) {
  if (off >= kRegs) {
    const uint32_t n = (off - kRegs) / kPortStride;
    if (n < ports_.size()) PortWrite(*ports_[n], (off - kRegs) % kPortStride, value);
    return;
  }
  if (off == kGhc && (value & kGhcHR)) {
    // HBA reset: every port back to its power-on state, then GHC (AE stays: AHCI only).
    for (auto& up : ports_) {
      Port& p = *up;
      std::unique_lock<std::mutex> l(p.mu);
      StopEngineLocked(p, l);
      ResetPortLocked(p, true);
      PortPendingChanged(p);
    }
    std::lock_guard<std::mutex> g(mu_);
    ghc_ = kGhcAE;
    is_ = 0;
    UpdateIrq(false);
    return;
  }
  std::lock_guard<std::mutex> g(mu_);
  if (off == kGhc) {
    ghc_ = kGhcAE | (value & kGhcIE);
    UpdateIrq(true);
  } else if (off == kIs) {
    is_ &= ~value;
    UpdateIrq(true);
  }
}

void Hba::PortWrite(Port& p, uint32_t reg, uint32_t value) {
  // A port PI leaves out is not available to software (AHCI 1.3.1 §3.1.4): its registers keep their reset values.
  if (!p.present()) return;
  std::unique_lock<std::mutex> l(p.mu);
  switch (reg) {
    case kPxClb: p.clb = (p.clb & ~0xffffffffull) | (value & ~0x3ffu); break;
    case kPxClbu: p.clb = (p.clb & 0xffffffffull) | (uint64_t(value) << 32); break;
    case kPxFb: p.fb = (p.fb & ~0xffffffffull) | (value & ~0xffu); break;
    case kPxFbu: p.fb = (p.fb & 0xffffffffull) | (uint64_t(value) << 32); break;
    case kPxIs:
      p.is &= ~(value & kIsWritable);
      PortPendingChanged(p);
      break;
    case kPxIe:
      p.ie = value & kIeWritable;
      PortPendingChanged(p);
      break;
    case kPxCmd: {
      const uint32_t old = p.cmd;
      // Writable: ST, SUD, POD, CLO, FRE, ATAPI, DLAE, ALPE, ASP; ICC reads back as 0 (the change is immediate).
      const uint32_t rw = kCmdST | kCmdSUD | kCmdPOD | kCmdFRE | kCmdATAPI | (7u << 25);
      p.cmd = (old & ~rw) | (value & rw);
      if (value & kCmdCLO) p.tfd &= ~uint32_t(kStBsy | kStDrq);  // command list override
      if (p.cmd & kCmdFRE) p.cmd |= kCmdFR; else p.cmd &= ~kCmdFR;
      if ((old & kCmdST) && !(value & kCmdST)) {
        p.cmd |= kCmdST;  // restored so StopEngineLocked sees a running engine
        StopEngineLocked(p, l);
      } else if (!(old & kCmdST) && (value & kCmdST)) {
        p.cmd |= kCmdCR;
        p.cmd &= ~(0x1fu << kCmdCcsShift);
        p.nextSlot = 0;
        p.stalled = false;
        Wake(p);
      }
      break;
    }
    case kPxSctl: {
      const uint32_t oldDet = p.sctl & 0xf;
      p.sctl = value & 0xfff;
      const uint32_t det = value & 0xf;
      if (det == 1 && oldDet != 1) {
        // COMRESET asserted: the link goes down while it is held.
        StopEngineLocked(p, l);
        p.ssts = 0;
      } else if (det == 0 && oldDet == 1) {
        // COMRESET released: the device comes back and sends its signature.
        ResetPortLocked(p, false);
        if (p.present()) {
          Done d;
          d.signature = true;
          d.status = uint8_t(p.tfd);
          d.error = 1;
          CompleteLocked(p, kSlots, d);
          SetIsLocked(p, kIsPCS);
        }
      }
      break;
    }
    case kPxSerr:
      p.serr &= ~value;
      if (!(p.serr & kSerrDiagX)) p.is &= ~kIsPCS;  // PCS mirrors SERR.DIAG.X
      PortPendingChanged(p);
      break;
    case kPxSact:
      if (p.cmd & kCmdST) p.sact |= value;
      break;
    case kPxCi:
      if (p.cmd & kCmdST) {
        p.ci |= value;
        Wake(p);
      }
      break;
    case kPxSntf: p.sntf &= ~value; break;
    default: break;  // TFD, SIG, SSTS are read-only
  }
}

// --- interrupts --------------------------------------------------------------------------------------------

void Hba::SetIsLocked(Port& p, uint32_t bits) {
  p.is |= bits;
  PortPendingChanged(p);
}

void Hba::PortPendingChanged(Port& p) {
  const uint32_t bit = 1u << p.index;
  const bool pending = (p.is & p.ie) != 0;
  const uint32_t before = pending ? portPending_.fetch_or(bit) : portPending_.fetch_and(~bit);
  if (!pending || (before & bit)) {
    if (!pending) {
      std::lock_guard<std::mutex> g(mu_);
      UpdateIrq(false);
    }
    return;
  }
  std::lock_guard<std::mutex> g(mu_);
  UpdateIrq(true);
}

// IS gains the ports with enabled events pending; a port stays in IS while it has them, even across a write that
// clears it, so an event that arrives while the guest is in its handler is not lost. MSI is sent whenever IS
// gains a bit (with `rearm`); INTx follows IS as a level.
void Hba::UpdateIrq(bool rearm) {
  const uint32_t before = is_;
  is_ |= portPending_.load();
  const bool enabled = (ghc_ & kGhcIE) != 0;
  if (mode_ == IrqMode::kMsi) {
    const uint32_t gained = is_ & ~before;
    if (enabled && rearm && gained != 0) {
      if (!perPort_) {
        Signal(0);
      } else {
        // Port N on message N; ports past the messages share the last one, signalled once.
        const unsigned last = msiFds_.empty() ? 0 : unsigned(msiFds_.size() - 1);
        bool lastDue = false;
        for (unsigned p = 0; p < kMaxPorts; p++) {
          if (!(gained & (1u << p))) continue;
          if (p < last) Signal(p);
          else lastDue = true;
        }
        if (lastDue) Signal(last);
      }
    }
    if (intxLevel_) {
      intxLevel_ = false;
      report_(HbaEvent::kIntx, 0);
    }
    return;
  }
  const bool level = enabled && is_ != 0;
  if (level != intxLevel_) {
    intxLevel_ = level;
    report_(HbaEvent::kIntx, level ? 1 : 0);
  }
}

void Hba::Signal(unsigned message) {
  stats_.interrupts.fetch_add(1, std::memory_order_relaxed);
  const int fd = message < msiFds_.size() ? msiFds_[message] : -1;
  if (fd >= 0) {
    const uint64_t one = 1;
    if (write(fd, &one, sizeof one) == sizeof one) return;
  }
  report_(HbaEvent::kMsi, message);
}

void Hba::SetIrqMode(IrqMode mode, std::vector<int> msiFds, bool perPort, bool reverted) {
  std::lock_guard<std::mutex> g(mu_);
  mode_ = mode;
  msiFds_ = std::move(msiFds);
  perPort_ = mode == IrqMode::kMsi && perPort;
  mrsm_ = mode == IrqMode::kMsi && reverted;
  // An event pending when the mode changes is delivered in the new mode.
  const uint32_t held = is_;
  is_ = 0;
  UpdateIrq(held != 0);
  is_ |= held;
}

// --- the command engine ------------------------------------------------------------------------------------

void Hba::Worker(Port& p) {
  std::unique_lock<std::mutex> l(p.mu);
  for (;;) {
    p.work.wait(l, [&] { return p.quit || ((p.cmd & kCmdST) && !p.stalled && (p.ci & ~p.taken) != 0); });
    if (p.quit) return;
    const uint32_t ready = p.ci & ~p.taken;
    unsigned slot = p.nextSlot;
    while (!(ready & (1u << slot))) slot = (slot + 1) % kSlots;  // ready is non-zero
    p.nextSlot = (slot + 1) % kSlots;
    p.taken |= 1u << slot;
    p.busy = true;
    p.cmd = (p.cmd & ~(0x1fu << kCmdCcsShift)) | (slot << kCmdCcsShift);
    const uint64_t clb = p.clb;
    const uint32_t run = p.engineRun;
    l.unlock();
    Done d = Execute(p, slot, clb, nullptr);
    l.lock();
    p.busy = false;
    p.taken &= ~(1u << slot);
    if (run == p.engineRun && (p.cmd & kCmdST)) CompleteLocked(p, slot, d);
    p.idle.notify_all();
  }
}

// The ring engine: the disk's reads and writes (the NCQ tags above all) go on io_uring as the guest issues them,
// up to the 32 slots, and complete as the disk finishes them. Any other command waits until the ring is empty and
// then runs here with the lock released, as on the synchronous engine.
void Hba::WorkerAsync(Port& p) {
  block::AsyncIo& io = *p.aio;
  bool armed = false;
  std::unique_lock<std::mutex> l(p.mu);
  for (;;) {
    uint64_t tag;
    block::Errno e = 0;
    while (io.Next(&tag, &e)) {
      if (tag == kWakeTag) {
        armed = false;
        uint64_t v;
        while (read(p.wakeFd, &v, sizeof v) == sizeof v) {
        }
      } else if (tag < kSlots && FinishTransfer(p, unsigned(tag), e)) {
        p.inflight--;
      }
    }
    if (p.quit && p.inflight == 0) break;
    // The wake poll is one-shot: armed again before this thread can sleep (a PxCI write between the read above
    // and here is not lost: the poll sees the counter non-zero).
    if (!armed && !p.quit) armed = io.PollIn(p.wakeFd, kWakeTag, &e);
    while (!p.quit && (p.cmd & kCmdST) && !p.stalled && (p.ci & ~p.taken) != 0 && io.freeSlots() > 0) {
      const uint32_t ready = p.ci & ~p.taken;
      unsigned slot = p.nextSlot;
      while (!(ready & (1u << slot))) slot = (slot + 1) % kSlots;
      const uint64_t clb = p.clb;
      // Peek at the command: only disk transfers share the ring with others in flight.
      uint8_t hdr[kHeaderBytes], cfis[4] = {};
      bool transfer = false;
      if (mem_->Read(clb + uint64_t(slot) * kHeaderBytes, hdr, sizeof hdr) == MemError::kOk) {
        const uint64_t ctba = (uint64_t(Le32(hdr + 12)) << 32 | Le32(hdr + 8)) & ~0x7full;
        if (mem_->Read(ctba, cfis, sizeof cfis) == MemError::kOk)
          transfer = cfis[0] == kFisH2D && (cfis[1] & 0x80) && !(Le32(hdr) & kHdrAtapi) && IsDiskTransfer(cfis[2]);
      }
      if (!transfer && (p.inflight > 0 || p.busy)) break;  // waits for the ring to drain
      p.nextSlot = (slot + 1) % kSlots;
      p.taken |= 1u << slot;
      p.cmd = (p.cmd & ~(0x1fu << kCmdCcsShift)) | (slot << kCmdCcsShift);
      const uint32_t run = p.engineRun;
      if (transfer) {
        // Outside the lock, as on the synchronous engine: the guest's register accesses (its interrupt handler
        // reaping earlier completions) go on while this command is read and started.
        p.busy = true;
        l.unlock();
        Transfer& x = p.xfer[slot];
        x.pending = false;
        x.done = Execute(p, slot, clb, &x);
        x.run = run;
        block::Errno err = 0;
        const bool queued = x.pending && StartTransfer(p, slot, x, &err);
        l.lock();
        p.busy = false;
        if (queued) {
          p.inflight++;
        } else if (x.pending) {
          // Done at once (a cached read, a page-cache write, or refused); a flush may still follow on the ring.
          if (!FinishTransfer(p, slot, err)) p.inflight++;
        } else {
          p.taken &= ~(1u << slot);
          if (run == p.engineRun && (p.cmd & kCmdST)) CompleteLocked(p, slot, x.done);
        }
        continue;
      }
      p.busy = true;
      l.unlock();
      Done d = Execute(p, slot, clb, nullptr);
      l.lock();
      p.busy = false;
      p.taken &= ~(1u << slot);
      if (run == p.engineRun && (p.cmd & kCmdST)) CompleteLocked(p, slot, d);
    }
    if (p.inflight == 0 && !p.busy) p.idle.notify_all();
    p.ringAsleep = true;
    l.unlock();
    io.Submit(true);  // passes on what was started and sleeps until a completion or a wake
    l.lock();
    p.ringAsleep = false;
  }
  p.idle.notify_all();
}

// Starts a described transfer: true when it is on the ring; false when it finished at once (a read the page cache
// held, a write into the page cache, or refused), with its result in *err. Runs on the worker without the lock.
bool Hba::StartTransfer(Port& p, unsigned slot, Transfer& x, int* err) {
  block::AsyncIo& io = *p.aio;
  block::Errno e = 0;
  if (!x.write) {
    // A read the page cache holds is a copy: done here, it completes at once and the guest sees completions
    // stream in, instead of whole batches after a trip through the ring.
    e = p.setup.file->ReadvCached(x.iov.data(), int(x.iov.size()), x.offset);
    if (e != EAGAIN) {
      *err = e;
      return false;
    }
    e = 0;
  }
  bool queued = x.write ? io.Writev(x.iov.data(), int(x.iov.size()), x.offset, slot, &e)
                        : io.Readv(x.iov.data(), int(x.iov.size()), x.offset, slot, &e);
  if (!queued && e == 0 && x.flushAfter) {
    // Written at once (the page cache); the flush that must follow still goes on the ring.
    x.flushing = true;
    queued = io.Flush(slot, &e);
  }
  *err = e;
  return queued;
}

// A transfer's I/O ended with `err`: a FUA write (or any write with the cache off) goes on to its flush; otherwise
// the command completes, unless the engine was stopped meanwhile. True when the command is finished.
bool Hba::FinishTransfer(Port& p, unsigned slot, int err) {
  Transfer& x = p.xfer[slot];
  if (err == 0 && x.flushAfter && !x.flushing) {
    x.flushing = true;
    block::Errno fe = 0;
    if (p.aio->Flush(slot, &fe)) return false;
    err = fe;
  }
  Done d = x.done;
  if (err != 0) {
    d.status = kStDrdy | kStErr;
    d.error = x.write ? kErAbrt : (kErUnc | kErAbrt);
    stats_.errors.fetch_add(1, std::memory_order_relaxed);
  } else {
    (x.write ? stats_.bytesWritten : stats_.bytesRead).fetch_add(x.bytes, std::memory_order_relaxed);
  }
  x.pending = false;
  p.taken &= ~(1u << slot);
  if (x.run == p.engineRun && (p.cmd & kCmdST)) CompleteLocked(p, slot, d);
  return true;
}

Hba::Done Hba::Execute(Port& p, unsigned slot, uint64_t clb, Transfer* defer) {
  stats_.commands.fetch_add(1, std::memory_order_relaxed);
  Done fatal;
  fatal.fatal = true;
  fatal.status = kStDrdy | kStErr;
  fatal.error = kErAbrt;
  uint8_t hdr[kHeaderBytes];
  if (mem_->Read(clb + uint64_t(slot) * kHeaderBytes, hdr, sizeof hdr) != MemError::kOk) return fatal;
  const uint32_t dw0 = Le32(hdr);
  const uint64_t ctba = (uint64_t(Le32(hdr + 12)) << 32 | Le32(hdr + 8)) & ~0x7full;
  const uint16_t prdtl = uint16_t(dw0 >> 16);
  const unsigned cfl = dw0 & 0x1f;
  uint8_t table[kTablePrdt];
  if (mem_->Read(ctba, table, sizeof table) != MemError::kOk) return fatal;
  const uint8_t* cfis = table + kTableCfis;
  Done d;
  uint32_t moved = 0;
  if (cfl < 5 || cfl > 16 || cfis[0] != kFisH2D) {
    // Not a register FIS the device can take: the device aborts it.
    d.status = kStDrdy | kStErr;
    d.error = kErAbrt;
  } else if (!(cfis[1] & 0x80)) {
    // A control FIS: SRST set starts a software reset, SRST cleared ends it with the signature.
    if (cfis[15] & 0x04) {
      p.softReset = true;
      d.silent = true;
    } else {
      const bool was = p.softReset;
      p.softReset = false;
      if (was && p.drive) p.drive->Reset();
      d.signature = was;
      d.silent = !was;
      d.status = p.setup.atapi ? 0 : (kStDrdy | kStDsc);
      d.error = 1;
    }
  } else if (cfis[2] == kAtaPacket) {
    d = Packet(p, ctba, prdtl, cfis, table + kTableAcmd, &moved);
  } else {
    d = Ata(p, ctba, prdtl, cfis, &moved, defer);
  }
  // PRDBC: the bytes moved.
  uint8_t count[4];
  std::memcpy(count, &moved, 4);
  if (mem_->Write(clb + uint64_t(slot) * kHeaderBytes + 4, count, 4) != MemError::kOk) return fatal;
  if (d.failed() && !(defer && defer->pending)) stats_.errors.fetch_add(1, std::memory_order_relaxed);
  return d;
}

// The guest buffers of a command's PRDT, `bytes` of them, as host iovecs. False when the table is not in RAM, a
// buffer is not, or the entries hold fewer bytes than the transfer.
static bool PrdtIov(const GuestMemory& mem, uint64_t ctba, uint16_t prdtl, uint64_t bytes, bool toGuest,
                    std::vector<struct iovec>* iov) {
  iov->clear();
  uint64_t left = bytes;
  for (unsigned i = 0; i < prdtl && left > 0; i++) {
    uint8_t e[kPrdBytes];
    if (mem.Read(ctba + kTablePrdt + uint64_t(i) * kPrdBytes, e, sizeof e) != MemError::kOk) return false;
    const uint64_t dba = (uint64_t(Le32(e + 4)) << 32 | Le32(e)) & ~1ull;
    const uint64_t len = std::min<uint64_t>((Le32(e + 12) & 0x3fffff) + 1, left);
    uint8_t* host = nullptr;
    if (mem.Translate(dba, len, toGuest, &host) != MemError::kOk) return false;
    if (!iov->empty() && static_cast<uint8_t*>(iov->back().iov_base) + iov->back().iov_len == host) {
      iov->back().iov_len += len;  // adjacent in host memory: one segment
    } else {
      if (iov->size() >= IOV_MAX) return false;
      iov->push_back({host, size_t(len)});
    }
    left -= len;
  }
  return left == 0;
}

// Copies `data` to (toGuest) or from the PRDT's buffers, as far as both go; returns the bytes moved.
static uint32_t PrdtCopy(const GuestMemory& mem, uint64_t ctba, uint16_t prdtl, uint8_t* data, uint32_t len, bool toGuest) {
  uint32_t done = 0;
  for (unsigned i = 0; i < prdtl && done < len; i++) {
    uint8_t e[kPrdBytes];
    if (mem.Read(ctba + kTablePrdt + uint64_t(i) * kPrdBytes, e, sizeof e) != MemError::kOk) break;
    const uint64_t dba = (uint64_t(Le32(e + 4)) << 32 | Le32(e)) & ~1ull;
    const uint32_t n = std::min<uint32_t>((Le32(e + 12) & 0x3fffff) + 1, len - done);
    const MemError r = toGuest ? mem.Write(dba, data + done, n) : mem.Read(dba, data + done, n);
    if (r != MemError::kOk) break;
    done += n;
  }
  return done;
}

static uint64_t PrdtBytes(const GuestMemory& mem, uint64_t ctba, uint16_t prdtl) {
  uint64_t total = 0;
  for (unsigned i = 0; i < prdtl; i++) {
    uint8_t e[kPrdBytes];
    if (mem.Read(ctba + kTablePrdt + uint64_t(i) * kPrdBytes, e, sizeof e) != MemError::kOk) break;
    total += (Le32(e + 12) & 0x3fffff) + 1;
  }
  return total;
}

std::vector<uint8_t> Hba::Identify(Port& p) {
  std::vector<uint8_t> id = p.setup.identify;
  if (!p.setup.atapi) {
    // The words that follow the disk's state: capacity (it may have been resized) and the write cache.
    auto setWord = [&](unsigned w, uint16_t v) { id[w * 2] = uint8_t(v); id[w * 2 + 1] = uint8_t(v >> 8); };
    const uint64_t sectors = p.setup.file->size() >> p.setup.lbaShift;
    const uint32_t lba28 = uint32_t(std::min<uint64_t>(sectors, 0x0fffffff));
    setWord(60, uint16_t(lba28));
    setWord(61, uint16_t(lba28 >> 16));
    for (unsigned i = 0; i < 4; i++) setWord(100 + i, uint16_t(sectors >> (16 * i)));
    uint16_t w85 = Le16(&id[170]);
    setWord(85, p.writeCache ? (w85 | 0x20) : (w85 & ~0x20));
  }
  // Word 255: signature A5h and a checksum that makes all 512 bytes sum to zero.
  id[510] = 0xa5;
  uint8_t sum = 0;
  for (unsigned i = 0; i < 511; i++) sum = uint8_t(sum + id[i]);
  id[511] = uint8_t(-sum);
  return id;
}

Hba::Done Hba::Ata(Port& p, uint64_t ctba, uint16_t prdtl, const uint8_t* f, uint32_t* moved, Transfer* defer) {
  Done d;
  const uint8_t op = f[2];
  auto abort = [&](uint8_t error = kErAbrt) {
    d.status = kStDrdy | kStErr;
    d.error = error;
    return d;
  };
  if (p.setup.atapi) {
    // A packet device takes ATAPI's few ATA commands; IDENTIFY DEVICE is aborted with the signature, which is
    // how a host learns it is a packet device.
    if (op == kAtaIdentifyPacket) {
      std::vector<uint8_t> id = Identify(p);
      *moved = PrdtCopy(*mem_, ctba, prdtl, id.data(), 512, true);
      d.pioSetup = true;
      return d;
    }
    if (op == kAtaDeviceReset) {
      p.drive->Reset();
      d.signature = true;
      d.status = 0;
      d.error = 1;
      return d;
    }
    if (op == kAtaSetFeatures || op == kAtaCheckPower || op == kAtaIdleImmediate || op == kAtaStandbyImmediate ||
        op == kAtaSleep || op == kAtaFlushCache) {
      if (op == kAtaCheckPower) d.count = 0xff;
      return d;
    }
    d = abort();
    if (op == kAtaIdentify) d.signature = true;
    return d;
  }

  block::BlockFile& file = *p.setup.file;
  const unsigned shift = p.setup.lbaShift;
  const uint64_t sectors = file.size() >> shift;
  const uint64_t lba48 = uint64_t(f[4]) | uint64_t(f[5]) << 8 | uint64_t(f[6]) << 16 | uint64_t(f[8]) << 24 |
                         uint64_t(f[9]) << 32 | uint64_t(f[10]) << 40;
  const uint64_t lba28 = uint64_t(f[4]) | uint64_t(f[5]) << 8 | uint64_t(f[6]) << 16 | uint64_t(f[7] & 0xf) << 24;
  const uint32_t count48 = Le16(f + 12) ? Le16(f + 12) : 65536;
  const uint32_t count28 = f[12] ? f[12] : 256;

  // Reads and writes, in all their forms.
  bool rw = true, write = false, ext = true, fua = false, ncq = false, pio = false;
  switch (op) {
    case kAtaReadDma: ext = false; break;
    case kAtaReadDmaExt: break;
    case kAtaReadSectors: case kAtaReadMultiple: ext = false; pio = true; break;
    case kAtaReadSectorsExt: case kAtaReadMultipleExt: pio = true; break;
    case kAtaWriteDma: ext = false; write = true; break;
    case kAtaWriteDmaExt: write = true; break;
    case kAtaWriteDmaFuaExt: write = true; fua = true; break;
    case kAtaWriteSectors: case kAtaWriteMultiple: ext = false; write = true; pio = true; break;
    case kAtaWriteSectorsExt: case kAtaWriteMultipleExt: write = true; pio = true; break;
    case kAtaReadFpdma: ncq = true; break;
    case kAtaWriteFpdma: ncq = true; write = true; break;
    default: rw = false; break;
  }
  if (rw) {
    uint64_t lba = ext ? lba48 : lba28;
    uint32_t count = ext ? count48 : count28;
    if (ncq) {
      d.ncq = true;
      d.tag = f[12] >> 3;
      count = (uint32_t(f[11]) << 8 | f[3]) ? (uint32_t(f[11]) << 8 | f[3]) : 65536;
      fua = (f[7] & 0x80) != 0;
      stats_.ncqCommands.fetch_add(1, std::memory_order_relaxed);
    }
    d.lba = lba;
    if (lba > sectors || count > sectors - lba) return abort(kErIdnf | kErAbrt);
    if (write && file.readOnly()) return abort();
    const uint64_t bytes = uint64_t(count) << shift;
    std::vector<struct iovec> iov;
    if (!PrdtIov(*mem_, ctba, prdtl, bytes, !write, &iov)) return abort();
    d.pioSetup = pio && !write;
    *moved = uint32_t(std::min<uint64_t>(bytes, 0xffffffffu));
    if (defer) {
      // The worker puts it on the ring; `d` is its completion when the I/O succeeds.
      defer->pending = true;
      defer->write = write;
      defer->flushAfter = write && (fua || !p.writeCache);
      defer->flushing = false;
      defer->iov = std::move(iov);
      defer->offset = lba << shift;
      defer->bytes = bytes;
      return d;
    }
    block::Errno e = write ? file.Writev(iov.data(), int(iov.size()), lba << shift) : file.Readv(iov.data(), int(iov.size()), lba << shift);
    if (e == 0 && write && (fua || !p.writeCache)) e = file.Flush();
    if (e != 0) return abort(write ? kErAbrt : (kErUnc | kErAbrt));
    (write ? stats_.bytesWritten : stats_.bytesRead).fetch_add(bytes, std::memory_order_relaxed);
    return d;
  }

  switch (op) {
    case kAtaIdentify: {
      std::vector<uint8_t> id = Identify(p);
      *moved = PrdtCopy(*mem_, ctba, prdtl, id.data(), 512, true);
      d.pioSetup = true;
      return d;
    }
    case kAtaFlushCache:
    case kAtaFlushCacheExt:
      if (file.Flush() != 0) return abort();
      return d;
    case kAtaDsm: {
      // TRIM (feature bit 0): 8-byte entries of a 48-bit LBA and a 16-bit count, in 512-byte blocks.
      const uint32_t blocks = Le16(f + 12);
      if (!(f[3] & 1) || !file.canDelete() || blocks == 0 || blocks > kDsmMaxBlocks) return abort();
      std::vector<uint8_t> ranges(blocks * 512);
      if (PrdtCopy(*mem_, ctba, prdtl, ranges.data(), uint32_t(ranges.size()), false) != ranges.size()) return abort();
      for (size_t at = 0; at < ranges.size(); at += 8) {
        uint64_t entry;
        std::memcpy(&entry, &ranges[at], 8);
        const uint64_t lba = entry & 0xffffffffffffull, n = entry >> 48;
        if (n == 0) continue;
        if (lba > sectors || n > sectors - lba) return abort(kErIdnf | kErAbrt);
        if (file.Discard(lba << shift, n << shift) != 0) return abort();
      }
      *moved = uint32_t(ranges.size());
      return d;
    }
    case kAtaSetFeatures:
      switch (f[3]) {
        case kSfEnableWriteCache: p.writeCache = true; return d;
        case kSfDisableWriteCache:
          // What the cache held becomes stable before writes turn write-through.
          if (file.Flush() != 0) return abort();
          p.writeCache = false;
          return d;
        case 0x03:  // set transfer mode
        case 0x10: case 0x90:  // enable / disable a SATA feature
        case 0x55: case 0xaa:  // read look-ahead off / on
        case 0x66: case 0xcc:  // power-on defaults kept / reverted
          return d;
        default:
          return abort();
      }
    case kAtaReadLogExt: {
      const uint8_t log = f[4];
      const uint16_t page = uint16_t(f[5] | f[9] << 8);
      const uint32_t pages = Le16(f + 12);
      std::vector<uint8_t> data(size_t(pages) * 512, 0);
      if (pages == 0) return abort();
      if (log == kLogDirectory && page == 0) {
        data[0] = 1;                 // general purpose logging version 1
        data[kLogNcqError * 2] = 1;  // the NCQ command error log: one page
      } else if (log == kLogNcqError && page == 0 && pages == 1) {
        std::memcpy(data.data(), p.ncqLog.data(), 512);
        uint8_t sum = 0;
        for (unsigned i = 0; i < 511; i++) sum = uint8_t(sum + data[i]);
        data[511] = uint8_t(-sum);
        p.ncqLog.fill(0);
      } else {
        return abort();
      }
      *moved = PrdtCopy(*mem_, ctba, prdtl, data.data(), uint32_t(data.size()), true);
      d.pioSetup = true;
      return d;
    }
    case kAtaReadVerify:
    case kAtaReadVerifyExt: {
      const bool ext2 = op == kAtaReadVerifyExt;
      const uint64_t lba = ext2 ? lba48 : lba28;
      const uint32_t count = ext2 ? count48 : count28;
      if (lba > sectors || count > sectors - lba) return abort(kErIdnf | kErAbrt);
      return d;
    }
    case kAtaCheckPower:
      d.count = 0xff;  // active or idle
      return d;
    case kAtaSetMultiple: {
      const uint8_t n = f[12];
      if (n == 0 || n > 16 || (n & (n - 1))) return abort();
      return d;
    }
    case kAtaSeek:
    case kAtaRecalibrate:
    case kAtaInitParams:
    case kAtaIdleImmediate:
    case kAtaIdle:
    case kAtaStandbyImmediate:
    case kAtaStandby:
    case kAtaSleep:
      return d;
    default:
      // NOP, SMART, security, IDENTIFY PACKET DEVICE, DEVICE RESET and the rest: not offered by this disk.
      return abort();
  }
}

Hba::Done Hba::Packet(Port& p, uint64_t ctba, uint16_t prdtl, const uint8_t* f, const uint8_t* acmd, uint32_t* moved) {
  Done d;
  if (!p.setup.atapi) {
    d.status = kStDrdy | kStErr;
    d.error = kErAbrt;
    return d;
  }
  (void)f;  // the features field's DMA bit changes nothing here: the PRDT is used either way
  AtapiDrive& drive = *p.drive;
  drive.SetDiscBytes(p.setup.file->size());
  AtapiOutcome o = drive.Execute(acmd);
  if (o.good && o.readBlocks) {
    const uint64_t bytes = uint64_t(o.readBlocks) * kCdBlock;
    std::vector<struct iovec> iov;
    if (bytes > PrdtBytes(*mem_, ctba, prdtl) || !PrdtIov(*mem_, ctba, prdtl, bytes, true, &iov)) {
      // The host gave less room than the blocks it asked for (or a buffer outside RAM).
      drive.SetSense(kSenseIllegalRequest, kAscInvalidField);
      d.status = kStDrdy | kStErr;
      d.error = uint8_t(kSenseIllegalRequest << 4) | kErAbrt;
      d.count = 3;
      return d;
    }
    if (p.setup.file->Readv(iov.data(), int(iov.size()), o.readLba * kCdBlock) != 0) {
      drive.SetSense(0x03, 0x11);  // MEDIUM ERROR, unrecovered read error
      d.status = kStDrdy | kStErr;
      d.error = uint8_t(0x03 << 4) | kErAbrt;  // MEDIUM ERROR
      d.count = 3;
      return d;
    }
    stats_.bytesRead.fetch_add(bytes, std::memory_order_relaxed);
    *moved = uint32_t(bytes);
  } else if (o.good && !o.data.empty()) {
    *moved = PrdtCopy(*mem_, ctba, prdtl, o.data.data(), uint32_t(o.data.size()), true);
  }
  d.count = 3;  // interrupt reason: I/O and C/D set, the command is complete
  if (!o.good) {
    // CHECK CONDITION: the sense key in the error register's high nibble.
    d.status = kStDrdy | kStErr;
    d.error = uint8_t(drive.senseKey() << 4) | kErAbrt;
  }
  return d;
}

void Hba::WriteFisLocked(Port& p, uint32_t at, const uint8_t* fis, unsigned len) {
  if (!(p.cmd & kCmdFRE)) return;
  mem_->Write(p.fb + at, fis, len);  // outside guest RAM: the FIS is lost, as on a real bus error
}

void Hba::CompleteLocked(Port& p, unsigned slot, const Done& d) {
  const uint32_t bit = slot < kSlots ? 1u << slot : 0;
  if (d.fatal) {
    p.tfd = uint32_t(d.error) << 8 | d.status;
    p.stalled = true;
    SetIsLocked(p, kIsHBFS);
    return;
  }
  if (d.silent) {
    p.ci &= ~bit;
    return;
  }
  p.tfd = uint32_t(d.error) << 8 | d.status;
  uint32_t events = 0;
  if (d.ncq && !d.failed()) {
    uint8_t sdb[8] = {kFisSdb, 0x40, uint8_t(d.status & 0x77), d.error, 0, 0, 0, 0};
    const uint32_t done = 1u << d.tag;
    std::memcpy(sdb + 4, &done, 4);
    WriteFisLocked(p, kRxSdbfis, sdb, sizeof sdb);
    p.sact &= ~done;
    p.ci &= ~bit;
    events |= kIsSDBS;
  } else {
    uint8_t fis[20] = {};
    fis[0] = kFisD2H;
    fis[1] = 0x40;  // interrupt
    fis[2] = d.status;
    fis[3] = d.error;
    uint64_t lba = d.lba;
    uint16_t count = d.count;
    if (d.signature) {
      // The device signature: count 1 and LBA 1 for both; an ATAPI device puts EB14h in LBA mid/high.
      count = 1;
      lba = p.setup.atapi ? 0xeb1401 : 0x000001;
      p.sig = p.setup.atapi ? kSigAtapi : kSigAta;
    }
    fis[4] = uint8_t(lba);
    fis[5] = uint8_t(lba >> 8);
    fis[6] = uint8_t(lba >> 16);
    fis[7] = 0x40;
    fis[8] = uint8_t(lba >> 24);
    fis[9] = uint8_t(lba >> 32);
    fis[10] = uint8_t(lba >> 40);
    fis[12] = uint8_t(count);
    fis[13] = uint8_t(count >> 8);
    if (d.pioSetup) {
      uint8_t ps[20] = {};
      ps[0] = kFisPioSetup;
      ps[1] = 0x20 | 0x40;  // device to host, interrupt
      ps[2] = kStDrdy | kStDsc | kStDrq;
      ps[15] = d.status;  // ending status
      ps[16] = 0x00;
      ps[17] = 0x02;      // 512 bytes
      WriteFisLocked(p, kRxPsfis, ps, sizeof ps);
      events |= kIsPSS;
    }
    WriteFisLocked(p, kRxRfis, fis, sizeof fis);
    events |= kIsDHRS;
    if (d.ncq) {
      // A failed queued command: its tag goes to the NCQ command error log (ACS-3 §9.13).
      p.ncqLog.fill(0);
      p.ncqLog[0] = uint8_t(d.tag & 0x1f);
      p.ncqLog[2] = d.status;
      p.ncqLog[3] = d.error;
      p.ncqLog[4] = uint8_t(d.lba);
      p.ncqLog[5] = uint8_t(d.lba >> 8);
      p.ncqLog[6] = uint8_t(d.lba >> 16);
      p.ncqLog[7] = 0x40;
      p.ncqLog[8] = uint8_t(d.lba >> 24);
      p.ncqLog[9] = uint8_t(d.lba >> 32);
      p.ncqLog[10] = uint8_t(d.lba >> 40);
    }
    if (!d.failed()) p.ci &= ~bit;
  }
  if (d.failed()) {
    // Task file error: the engine stops taking commands until the guest restarts it; the failed command's CI
    // bit stays set (AHCI 1.3.1 §6.1.2).
    p.stalled = true;
    events |= kIsTFES;
  }
  SetIsLocked(p, events);
}

}  // namespace ahci
}  // namespace tsbhyve
