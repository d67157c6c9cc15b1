#include "nvme/io_queues.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "nvme/prp.h"

namespace tsbhyve {
namespace nvme {

struct IoQueues::Cq {
  std::atomic<uint32_t> size{0};  // entries; 0 while the queue does not exist
  uint8_t* ring = nullptr;
  std::atomic<uint32_t> head{0};  // from the host's doorbell
  std::atomic<uint32_t> tail{0};  // the next slot the worker fills
  bool phase = true;
  uint16_t vector = 0;
  bool ien = false;
  unsigned sqRefs = 0;
  unsigned reserved = 0;  // commands in flight that will post here (room is kept for them)
};

struct IoQueues::Sq {
  std::atomic<uint32_t> size{0};
  uint8_t* ring = nullptr;
  uint16_t cqid = 0;
  uint32_t head = 0;              // the next entry the worker fetches
  std::atomic<uint32_t> tail{0};  // from the host's doorbell (or the shadow doorbell)
};

namespace {
constexpr unsigned kBurst = 32;  // commands taken from one SQ before the next gets its turn
constexpr uint64_t kWakeTag = ~0ull;
uint32_t Dw(const uint8_t* sqe, unsigned i) {
  uint32_t v;
  std::memcpy(&v, sqe + 4 * i, 4);
  return v;
}
uint64_t Qw(const uint8_t* sqe, unsigned i) { return uint64_t(Dw(sqe, i)) | (uint64_t(Dw(sqe, i + 1)) << 32); }
void Signal(int fd) {
  uint64_t one = 1;
  while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}
}  // namespace

IoQueues::IoQueues(std::shared_ptr<const GuestMemory> mem, std::shared_ptr<block::BlockFile> file, Namespace ns,
                   unsigned maxQueues, unsigned vectors, unsigned ioSlots, bool useUring,
                   std::function<void(IoEvent, uint32_t)> report)
    : mem_(std::move(mem)),
      file_(std::move(file)),
      ns_(ns),
      maxQueues_(std::min(maxQueues, kMaxQueues - 1)),
      vectors_(std::min(std::max(vectors, 1u), kMaxVectors)),
      report_(std::move(report)),
      vectorFds_(new std::atomic<int>[std::min(std::max(vectors, 1u), kMaxVectors)]),
      vectorDue_(vectors_, 0),
      ioSlots_(std::min(std::max(ioSlots, 1u), 1024u)),
      useUring_(useUring) {
  for (unsigned i = 0; i <= maxQueues_; i++) {
    cqs_.push_back(std::make_unique<Cq>());
    sqs_.push_back(std::make_unique<Sq>());
  }
  for (unsigned i = 0; i < vectors_; i++) vectorFds_[i].store(-1);
}

IoQueues::~IoQueues() { Stop(); }

bool IoQueues::Start(std::string* err) {
  if (thread_.joinable()) return true;
  wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) {
    *err = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  stopping_ = false;
  if (useUring_ && !aio_) {
    aio_ = block::AsyncIo::Create(file_, ioSlots_ + 1, &engineNote_);  // + the wake poll
    if (aio_) {
      pend_.assign(ioSlots_, Pending());
      pendFree_.clear();
      for (uint32_t i = ioSlots_; i-- > 0;) pendFree_.push_back(i);
    }
  }
  thread_ = std::thread([this] { aio_ ? RunAsync() : Run(); });
  return true;
}

void IoQueues::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  Signal(wakeFd_);
  thread_.join();
  aio_.reset();  // nothing is in flight: RunAsync waited for every command before returning
  close(wakeFd_);
  wakeFd_ = -1;
}

void IoQueues::Wake() {
  if (wakeFd_ >= 0) Signal(wakeFd_);
}

Status IoQueues::CreateCq(uint16_t qid, uint64_t gpa, uint32_t entries, uint16_t vector, bool ien) {
  std::lock_guard<std::mutex> lk(mu_);
  if (qid == 0 || qid > maxQueues_ || cqs_[qid]->size.load() != 0) return kScInvalidQid;
  if (entries < 2 || entries > 65536) return kScInvalidQsize;
  if (vector >= vectors_) return kScInvalidVector;
  if ((gpa & (pageSize_.load() - 1)) != 0) return kScInvalidField;
  uint8_t* host = nullptr;
  if (mem_->Translate(gpa, uint64_t(entries) * kCqeBytes, true, &host) != MemError::kOk) return kScInvalidField;
  Cq& cq = *cqs_[qid];
  cq.ring = host;
  cq.head = 0;
  cq.tail = 0;
  cq.phase = true;
  cq.vector = vector;
  cq.ien = ien;
  cq.sqRefs = 0;
  if (uint32_t* ei = eventIdx_.load()) ei[2 * qid + 1] = 0;
  cq.size.store(entries);
  return kScSuccess;
}

Status IoQueues::CreateSq(uint16_t qid, uint64_t gpa, uint32_t entries, uint16_t cqid) {
  std::lock_guard<std::mutex> lk(mu_);
  if (qid == 0 || qid > maxQueues_ || sqs_[qid]->size.load() != 0) return kScInvalidQid;
  if (cqid == 0 || cqid > maxQueues_ || cqs_[cqid]->size.load() == 0) return kScCqInvalid;
  if (entries < 2 || entries > 65536) return kScInvalidQsize;
  if ((gpa & (pageSize_.load() - 1)) != 0) return kScInvalidField;
  uint8_t* host = nullptr;
  if (mem_->Translate(gpa, uint64_t(entries) * kSqeBytes, false, &host) != MemError::kOk) return kScInvalidField;
  Sq& sq = *sqs_[qid];
  sq.ring = host;
  sq.cqid = cqid;
  sq.head = 0;
  sq.tail = 0;
  if (uint32_t* ei = eventIdx_.load()) ei[2 * qid] = 0;
  cqs_[cqid]->sqRefs++;
  sq.size.store(entries);
  return kScSuccess;
}

// Holds the worker idle (nothing in flight, nothing fetched) for the rest of a control call.
struct IoQueues::QuiesceGuard {
  QuiesceGuard(IoQueues* q, std::unique_lock<std::mutex>& lk) : q_(q) { q_->Quiesce(lk); }
  ~QuiesceGuard() { q_->Resume(); }
  IoQueues* q_;
};

void IoQueues::Quiesce(std::unique_lock<std::mutex>& lk) {
  quiesce_++;
  Wake();
  idleCv_.wait(lk, [this] { return inflight_ == 0 || !thread_.joinable(); });
}

void IoQueues::Resume() {
  quiesce_--;
  Wake();  // commands the worker left in the SQs meanwhile
}

Status IoQueues::DeleteSq(uint16_t qid) {
  std::unique_lock<std::mutex> lk(mu_);
  QuiesceGuard quiet(this, lk);
  if (qid == 0 || qid > maxQueues_ || sqs_[qid]->size.load() == 0) return kScInvalidQid;
  Sq& sq = *sqs_[qid];
  sq.size.store(0);
  cqs_[sq.cqid]->sqRefs--;
  return kScSuccess;
}

Status IoQueues::DeleteCq(uint16_t qid) {
  std::unique_lock<std::mutex> lk(mu_);
  QuiesceGuard quiet(this, lk);
  if (qid == 0 || qid > maxQueues_ || cqs_[qid]->size.load() == 0) return kScInvalidQid;
  if (cqs_[qid]->sqRefs != 0) return kScInvalidQueueDeletion;
  cqs_[qid]->size.store(0);
  return kScSuccess;
}

bool IoQueues::CqExists(uint16_t qid) const { return qid >= 1 && qid <= maxQueues_ && cqs_[qid]->size.load() != 0; }
bool IoQueues::SqExists(uint16_t qid) const { return qid >= 1 && qid <= maxQueues_ && sqs_[qid]->size.load() != 0; }

void IoQueues::Reset() {
  std::unique_lock<std::mutex> lk(mu_);
  QuiesceGuard quiet(this, lk);
  for (auto& q : sqs_) q->size.store(0);
  for (auto& q : cqs_) {
    q->size.store(0);
    q->sqRefs = 0;
    q->reserved = 0;
  }
  shadow_.store(nullptr);
  eventIdx_.store(nullptr);
  std::fill(vectorDue_.begin(), vectorDue_.end(), 0);
}

Status IoQueues::SetDoorbellBuffer(uint64_t shadow, uint64_t eventIdx) {
  std::unique_lock<std::mutex> lk(mu_);
  QuiesceGuard quiet(this, lk);
  const uint64_t page = pageSize_.load();
  if ((shadow & (page - 1)) != 0 || (eventIdx & (page - 1)) != 0) return kScInvalidField;
  // One dword pair per queue id, admin included, fits in the first page.
  const uint64_t bytes = uint64_t(maxQueues_ + 1) * 8;
  uint8_t *s = nullptr, *e = nullptr;
  if (mem_->Translate(shadow, bytes, true, &s) != MemError::kOk ||
      mem_->Translate(eventIdx, bytes, true, &e) != MemError::kOk)
    return kScInvalidField;
  // Queues that exist keep going from the values the doorbell registers hold.
  uint32_t* sp = reinterpret_cast<uint32_t*>(s);
  uint32_t* ep = reinterpret_cast<uint32_t*>(e);
  for (unsigned q = 1; q <= maxQueues_; q++) {
    if (sqs_[q]->size.load()) {
      __atomic_store_n(&sp[2 * q], sqs_[q]->tail.load(), __ATOMIC_RELAXED);
      __atomic_store_n(&ep[2 * q], sqs_[q]->tail.load(), __ATOMIC_RELAXED);
    }
    if (cqs_[q]->size.load()) {
      __atomic_store_n(&sp[2 * q + 1], cqs_[q]->head.load(), __ATOMIC_RELAXED);
      __atomic_store_n(&ep[2 * q + 1], cqs_[q]->head.load(), __ATOMIC_RELAXED);
    }
  }
  shadow_.store(sp);
  eventIdx_.store(ep);
  return kScSuccess;
}

void IoQueues::SetVectorFd(uint32_t v, int fd) {
  if (v < vectors_) vectorFds_[v].store(fd);
}

void IoQueues::Doorbell(uint64_t offset, uint32_t value) {
  if (offset < 0x1000 || (offset & 3) != 0) return;
  const uint64_t idx = (offset - 0x1000) / 4;
  const uint64_t qid = idx / 2;
  const bool isCq = (idx & 1) != 0;
  stats_.doorbells.fetch_add(1, std::memory_order_relaxed);
  if (qid == 0 || qid > maxQueues_) {
    if (report_) report_(IoEvent::kDoorbellError, uint32_t(qid & 0xffff));
    return;
  }
  const uint32_t size = isCq ? cqs_[qid]->size.load() : sqs_[qid]->size.load();
  if (size == 0 || value >= size) {
    if (report_) report_(IoEvent::kDoorbellError, ((size == 0 ? 0u : 1u) << 16) | uint32_t(qid));
    return;
  }
  if (isCq) {
    Cq& cq = *cqs_[qid];
    cq.head.store(value, std::memory_order_release);
    if (cq.ien && intxLevel_.load(std::memory_order_relaxed) && value == cq.tail.load(std::memory_order_acquire) && report_)
      report_(IoEvent::kCqDrained, uint32_t(qid));
  } else {
    sqs_[qid]->tail.store(value, std::memory_order_release);
  }
  Wake();
}

int IoQueues::Flush() {
  std::unique_lock<std::mutex> lk(mu_);
  QuiesceGuard quiet(this, lk);
  return file_->Flush();
}

int IoQueues::EraseAll() {
  std::unique_lock<std::mutex> lk(mu_);
  QuiesceGuard quiet(this, lk);
  if (file_->readOnly()) return EROFS;
  return file_->WriteZeroes(0, file_->size(), file_->canDelete());
}

bool IoQueues::AnyPending() const {
  for (unsigned q = 1; q <= maxQueues_; q++) {
    const Cq& cq = *cqs_[q];
    if (cq.size.load() && cq.ien && cq.head.load() != cq.tail.load()) return true;
  }
  return false;
}

void IoQueues::Run() {
  struct pollfd pfd = {wakeFd_, POLLIN, 0};
  for (;;) {
    if (stopping_.load()) break;
    int r = poll(&pfd, 1, -1);
    if (r < 0 && errno != EINTR) break;
    uint64_t v;
    while (read(wakeFd_, &v, sizeof v) == sizeof v) {
    }
    if (stopping_.load()) break;
    std::lock_guard<std::mutex> lk(mu_);
    bool progress;
    do {
      progress = false;
      for (unsigned q = 1; q <= maxQueues_ && !stopping_.load(std::memory_order_relaxed); q++) {
        if (sqs_[q]->size.load() && ProcessSq(uint16_t(q))) progress = true;
      }
    } while (progress && !stopping_.load(std::memory_order_relaxed));
    for (uint32_t vec = 0; vec < vectors_; vec++) {
      if (vectorDue_[vec]) {
        vectorDue_[vec] = 0;
        Raise(vec);
      }
    }
  }
}

void IoQueues::RunAsync() {
  block::AsyncIo& io = *aio_;
  block::Errno e = 0;
  bool wakeArmed = false;
  for (;;) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      uint64_t tag;
      while (io.Next(&tag, &e)) {
        if (tag == kWakeTag) {
          wakeArmed = false;
          uint64_t v;
          while (read(wakeFd_, &v, sizeof v) == sizeof v) {
          }
        } else {
          FinishAsync(uint32_t(tag), e);
        }
      }
      const bool stop = stopping_.load();
      if (stop && inflight_ == 0) {
        idleCv_.notify_all();
        break;
      }
      // The wake poll is one-shot: re-armed before anything can make this thread sleep (a doorbell between
      // the read above and this is not lost: the poll sees the counter non-zero).
      if (!wakeArmed && !stop && io.PollIn(wakeFd_, kWakeTag, &e)) wakeArmed = true;
      if (!stop && quiesce_ == 0) {
        bool progress;
        do {
          progress = false;
          for (unsigned q = 1; q <= maxQueues_ && !pendFree_.empty(); q++) {
            if (sqs_[q]->size.load() && ProcessSq(uint16_t(q))) progress = true;
          }
        } while (progress && !pendFree_.empty());
      }
      for (uint32_t vec = 0; vec < vectors_; vec++) {
        if (vectorDue_[vec]) {
          vectorDue_[vec] = 0;
          Raise(vec);
        }
      }
      if (inflight_ == 0) idleCv_.notify_all();
    }
    io.Submit(true);  // passes on what was started and sleeps until a completion or a doorbell
  }
}

bool IoQueues::StartAsync(const uint8_t* sqe, uint16_t sqid, uint16_t cqid, Status* st) {
  const uint8_t opcode = sqe[0];
  const uint32_t nsid = Dw(sqe, 1);
  const uint32_t fuse = (Dw(sqe, 0) >> 8) & 3, psdt = (Dw(sqe, 0) >> 14) & 3;
  if (fuse != 0 || psdt != 0) return (*st = kScInvalidField), false;
  const uint32_t slot = pendFree_.back();
  Pending& p = pend_[slot];
  p.sqid = sqid;
  p.cqid = cqid;
  p.cid = uint16_t(Dw(sqe, 0) >> 16);
  p.flushing = false;
  block::Errno e = 0;
  bool queued;
  if (opcode == kOpFlush) {
    if (nsid != 1 && nsid != 0xffffffffu) return (*st = kScInvalidNamespace), false;
    p.write = false;
    p.flushAfter = false;
    p.bytes = 0;
    p.flushing = true;
    queued = aio_->Flush(slot, &e);
    if (!queued) return (*st = e == 0 ? kScSuccess : kScInternalError), false;
  } else {
    if (nsid != 1) return (*st = kScInvalidNamespace), false;
    const bool write = opcode == kOpWrite;
    uint64_t off = 0;
    bool fua = false;
    Status s = PrepareRw(sqe, write, &p.iov, &off, &p.bytes, &fua);
    if (s != kScSuccess) return (*st = s), false;
    p.write = write;
    p.flushAfter = write && (fua || !writeCache_.load(std::memory_order_relaxed));
    if (write) {
      queued = aio_->Writev(p.iov.data(), int(p.iov.size()), off, slot, &e);
    } else {
      // A read the page cache holds is a copy: done here, it completes in this pass. On the ring, a buffered
      // read can go through a kernel worker, which halved 128 KiB sequential reads (bench/testguest/nvme.ts).
      e = file_->ReadvCached(p.iov.data(), int(p.iov.size()), off);
      queued = false;
      if (e == EAGAIN) {
        e = 0;
        queued = aio_->Readv(p.iov.data(), int(p.iov.size()), off, slot, &e);
      }
    }
    if (!queued && e == 0 && p.flushAfter) {
      // Written at once (the page cache); the flush that must follow still goes on the ring.
      p.flushing = true;
      queued = aio_->Flush(slot, &e);
    }
    if (!queued) {
      if (e != 0) return (*st = write ? 0x280 : 0x281), false;
      (write ? stats_.bytesWritten : stats_.bytesRead).fetch_add(p.bytes, std::memory_order_relaxed);
      (write ? stats_.writeCommands : stats_.readCommands).fetch_add(1, std::memory_order_relaxed);
      return (*st = kScSuccess), false;
    }
  }
  pendFree_.pop_back();
  inflight_++;
  cqs_[cqid]->reserved++;
  return true;
}

void IoQueues::FinishAsync(uint32_t slot, block::Errno err) {
  if (slot >= pend_.size()) return;
  Pending& p = pend_[slot];
  if (err == 0 && p.flushAfter && !p.flushing) {
    // The data is written; it completes once it is on stable storage.
    p.flushing = true;
    block::Errno fe = 0;
    if (aio_->Flush(slot, &fe)) return;
    err = fe;
  }
  Status st = kScSuccess;
  if (err != 0) st = p.bytes == 0 ? kScInternalError : p.write ? 0x280 /* Write Fault */ : 0x281 /* Unrecovered Read Error */;
  else if (p.bytes) {
    (p.write ? stats_.bytesWritten : stats_.bytesRead).fetch_add(p.bytes, std::memory_order_relaxed);
    (p.write ? stats_.writeCommands : stats_.readCommands).fetch_add(1, std::memory_order_relaxed);
  }
  stats_.commands.fetch_add(1, std::memory_order_relaxed);
  if (st != kScSuccess) stats_.errors.fetch_add(1, std::memory_order_relaxed);
  Cq& cq = *cqs_[p.cqid];
  if (cq.reserved) cq.reserved--;
  // Queues are deleted only when nothing is in flight (Quiesce), so both still exist here.
  if (cq.size.load()) Post(cq, p.sqid, uint16_t(sqs_[p.sqid]->head), p.cid, st, 0);
  pendFree_.push_back(slot);
  inflight_--;
}

bool IoQueues::ProcessSq(uint16_t qid) {
  Sq& sq = *sqs_[qid];
  Cq& cq = *cqs_[sq.cqid];
  const uint32_t size = sq.size.load();
  uint32_t* sh = shadow_.load(std::memory_order_acquire);
  uint32_t* ei = eventIdx_.load(std::memory_order_acquire);
  bool did = false;
  for (unsigned n = 0; n < kBurst; n++) {
    uint32_t tail = sq.tail.load(std::memory_order_acquire);
    if (sh) {
      // With shadow doorbells the host writes the tail to memory and rings only when our EventIdx asks.
      const uint32_t t = __atomic_load_n(&sh[2 * qid], __ATOMIC_ACQUIRE);
      stats_.shadowReads.fetch_add(1, std::memory_order_relaxed);
      if (t < size) tail = t;
    }
    if (sq.head == tail) {
      if (!sh || !ei) break;
      // Ask for a doorbell once the tail moves past what we have seen, then look again (the host may have
      // written the shadow between our read and this store).
      __atomic_store_n(&ei[2 * qid], tail, __ATOMIC_SEQ_CST);
      __atomic_thread_fence(__ATOMIC_SEQ_CST);
      if (__atomic_load_n(&sh[2 * qid], __ATOMIC_ACQUIRE) == tail) break;
      continue;
    }
    // Room in the CQ for this command's completion; with shadow doorbells the head lives in memory too.
    const uint32_t csize = cq.size.load();
    if (sh) {
      const uint32_t h = __atomic_load_n(&sh[2 * sq.cqid + 1], __ATOMIC_ACQUIRE);
      if (h < csize) cq.head.store(h, std::memory_order_release);
    }
    if ((cq.tail.load() + csize - cq.head.load(std::memory_order_acquire)) % csize + cq.reserved >= csize - 1) {
      // Full: a CQ head doorbell wakes us (with shadow doorbells, ask for one at the head we know).
      if (ei) __atomic_store_n(&ei[2 * sq.cqid + 1], cq.head.load(), __ATOMIC_SEQ_CST);
      break;
    }
    if (aio_ && pendFree_.empty()) break;  // every io_uring slot is busy: a completion resumes us
    uint8_t sqe[kSqeBytes];
    std::memcpy(sqe, sq.ring + size_t(sq.head) * kSqeBytes, kSqeBytes);
    sq.head = (sq.head + 1) % size;
    uint32_t dw0 = 0;
    Status st;
    const uint8_t op = sqe[0];
    if (aio_ && (op == kOpRead || op == kOpWrite || op == kOpFlush)) {
      if (StartAsync(sqe, qid, sq.cqid, &st)) {
        did = true;
        continue;
      }
    } else {
      st = Execute(sqe, &dw0);
    }
    stats_.commands.fetch_add(1, std::memory_order_relaxed);
    if (st != kScSuccess) stats_.errors.fetch_add(1, std::memory_order_relaxed);
    Post(cq, qid, uint16_t(sq.head), uint16_t(Dw(sqe, 0) >> 16), st, dw0);
    did = true;
  }
  return did;
}

void IoQueues::Post(Cq& cq, uint16_t sqid, uint16_t sqHead, uint16_t cid, Status st, uint32_t dw0) {
  const uint32_t tail = cq.tail.load();
  uint8_t* e = cq.ring + size_t(tail) * kCqeBytes;
  const uint32_t dw[3] = {dw0, 0, uint32_t(sqHead) | (uint32_t(sqid) << 16)};
  std::memcpy(e, dw, sizeof dw);
  // The phase tag makes the entry valid: it must be the last store the host can see.
  __atomic_store_n(reinterpret_cast<uint32_t*>(e + 12), CqeDw3(cid, cq.phase, st), __ATOMIC_RELEASE);
  uint32_t next = tail + 1;
  if (next == cq.size.load()) {
    next = 0;
    cq.phase = !cq.phase;
  }
  cq.tail.store(next, std::memory_order_release);
  if (cq.ien && cq.vector < vectors_) vectorDue_[cq.vector] = 1;
}

void IoQueues::Raise(uint32_t vector) {
  stats_.interrupts.fetch_add(1, std::memory_order_relaxed);
  const int fd = vectorFds_[vector].load();
  if (fd >= 0) Signal(fd);
  else if (report_) report_(IoEvent::kInterrupt, vector);
}

Status IoQueues::Execute(const uint8_t* sqe, uint32_t* dw0) {
  const uint8_t opcode = sqe[0];
  const uint32_t fuse = (Dw(sqe, 0) >> 8) & 3, psdt = (Dw(sqe, 0) >> 14) & 3;
  const uint32_t nsid = Dw(sqe, 1);
  if (fuse != 0 || psdt != 0) return kScInvalidField;  // no fused commands, PRPs only (no SGLs)
  switch (opcode) {
    case kOpFlush:
      if (nsid != 1 && nsid != 0xffffffffu) return kScInvalidNamespace;
      return file_->Flush() == 0 ? kScSuccess : kScInternalError;
    case kOpRead:
    case kOpWrite:
    case kOpCompare:
    case kOpWriteZeroes:
    case kOpDsm:
      if (nsid != 1) return kScInvalidNamespace;
      break;
    default:
      return kScInvalidOpcode;
  }
  switch (opcode) {
    case kOpRead: return ReadWrite(sqe, false);
    case kOpWrite: return ReadWrite(sqe, true);
    case kOpCompare: return Compare(sqe);
    case kOpWriteZeroes: return WriteZeroes(sqe);
    default: return Dsm(sqe);
  }
}

namespace {
// The LBA range of a read/write-style command, checked against the namespace's current size.
bool LbaRange(const uint8_t* sqe, uint32_t shift, uint64_t nsze, uint64_t* slba, uint64_t* nlb) {
  *slba = Qw(sqe, 10);
  *nlb = uint64_t(Dw(sqe, 12) & 0xffff) + 1;
  return *slba < nsze && *nlb <= nsze - *slba;
}
}  // namespace

Status IoQueues::PrepareRw(const uint8_t* sqe, bool write, std::vector<struct iovec>* iov, uint64_t* off,
                           uint64_t* bytes, bool* fua) {
  const uint32_t shift = ns_.lbaShift;
  uint64_t slba, nlb;
  if (!LbaRange(sqe, shift, file_->size() >> shift, &slba, &nlb)) return kScLbaOutOfRange;
  *bytes = nlb << shift;
  if (*bytes > ns_.mdtsBytes) return kScInvalidField;
  if (write && file_->readOnly()) return kScNamespaceWriteProtected;
  iov->clear();
  Status st = PrpToIovecs(*mem_, Qw(sqe, 6), Qw(sqe, 8), *bytes, pageSize_.load(), !write, iov);
  if (st != kScSuccess) return st;
  *off = slba << shift;
  *fua = (Dw(sqe, 12) & (1u << 30)) != 0;
  return kScSuccess;
}

Status IoQueues::ReadWrite(const uint8_t* sqe, bool write) {
  std::vector<struct iovec> iov;
  uint64_t off = 0, bytes = 0;
  bool fua = false;
  Status st = PrepareRw(sqe, write, &iov, &off, &bytes, &fua);
  if (st != kScSuccess) return st;
  block::Errno e = write ? file_->Writev(iov.data(), int(iov.size()), off) : file_->Readv(iov.data(), int(iov.size()), off);
  // FUA, or no volatile cache to leave the data in
  if (e == 0 && write && (fua || !writeCache_.load(std::memory_order_relaxed))) e = file_->Flush();
  if (e != 0) return write ? 0x280 /* Write Fault */ : 0x281 /* Unrecovered Read Error */;
  (write ? stats_.bytesWritten : stats_.bytesRead).fetch_add(bytes, std::memory_order_relaxed);
  (write ? stats_.writeCommands : stats_.readCommands).fetch_add(1, std::memory_order_relaxed);
  return kScSuccess;
}

Status IoQueues::Compare(const uint8_t* sqe) {
  const uint32_t shift = ns_.lbaShift;
  uint64_t slba, nlb;
  if (!LbaRange(sqe, shift, file_->size() >> shift, &slba, &nlb)) return kScLbaOutOfRange;
  const uint64_t bytes = nlb << shift;
  if (bytes > ns_.mdtsBytes) return kScInvalidField;
  scratch_.resize(size_t(bytes) * 2);
  Status st = PrpCopy(*mem_, Qw(sqe, 6), Qw(sqe, 8), scratch_.data(), bytes, pageSize_.load(), false);
  if (st != kScSuccess) return st;
  struct iovec v = {scratch_.data() + bytes, size_t(bytes)};
  if (file_->Readv(&v, 1, slba << shift) != 0) return 0x281;
  return std::memcmp(scratch_.data(), scratch_.data() + bytes, size_t(bytes)) == 0 ? kScSuccess : kScCompareFailure;
}

Status IoQueues::WriteZeroes(const uint8_t* sqe) {
  const uint32_t shift = ns_.lbaShift;
  uint64_t slba, nlb;
  if (!LbaRange(sqe, shift, file_->size() >> shift, &slba, &nlb)) return kScLbaOutOfRange;
  if (file_->readOnly()) return kScNamespaceWriteProtected;
  const bool deallocate = (Dw(sqe, 12) & (1u << 25)) != 0 && file_->canDelete();
  return file_->WriteZeroes(slba << shift, nlb << shift, deallocate) == 0 ? kScSuccess : 0x280;
}

Status IoQueues::Dsm(const uint8_t* sqe) {
  if (!ns_.dsm) return kScInvalidOpcode;
  const uint32_t ranges = (Dw(sqe, 10) & 0xff) + 1;
  const bool deallocate = (Dw(sqe, 11) & (1u << 2)) != 0;
  scratch_.resize(size_t(ranges) * 16);
  Status st = PrpCopy(*mem_, Qw(sqe, 6), Qw(sqe, 8), scratch_.data(), uint64_t(ranges) * 16, pageSize_.load(), false);
  if (st != kScSuccess) return st;
  const uint32_t shift = ns_.lbaShift;
  const uint64_t nsze = file_->size() >> shift;
  // All ranges are checked before any is deallocated.
  for (uint32_t i = 0; i < ranges; i++) {
    uint32_t len;
    uint64_t slba;
    std::memcpy(&len, scratch_.data() + i * 16 + 4, 4);
    std::memcpy(&slba, scratch_.data() + i * 16 + 8, 8);
    if (slba > nsze || len > nsze - slba) return kScLbaOutOfRange;
  }
  if (!deallocate || file_->readOnly()) return kScSuccess;  // attributes are hints; only deallocation acts
  for (uint32_t i = 0; i < ranges; i++) {
    uint32_t len;
    uint64_t slba;
    std::memcpy(&len, scratch_.data() + i * 16 + 4, 4);
    std::memcpy(&slba, scratch_.data() + i * 16 + 8, 8);
    if (len == 0) continue;
    if (file_->canDelete() && file_->Discard(slba << shift, uint64_t(len) << shift) != 0) return kScInternalError;
  }
  return kScSuccess;
}

}  // namespace nvme
}  // namespace tsbhyve
