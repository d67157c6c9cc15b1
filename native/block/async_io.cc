#include "block/async_io.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#if __has_include(<linux/io_uring.h>)
#include <linux/io_uring.h>
#define TSBHYVE_HAVE_IO_URING 1
#else
#define TSBHYVE_HAVE_IO_URING 0
#endif

namespace tsbhyve {
namespace block {

#if TSBHYVE_HAVE_IO_URING

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif

// The shared rings of one io_uring instance, mapped from the fd io_uring_setup returns (io_uring_setup(2)):
// the submission ring (head owned by the kernel, tail by us, plus the index array into the SQE table), the
// SQE table, and the completion ring (tail owned by the kernel, head by us).
class Ring {
 public:
  static std::unique_ptr<Ring> Open(unsigned entries, Errno* err) {
    std::unique_ptr<Ring> r(new Ring());
    struct io_uring_params p;
    std::memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CLAMP;
    p.cq_entries = 0;
    int fd = int(syscall(__NR_io_uring_setup, entries, &p));
    if (fd < 0) {
      *err = errno;
      return nullptr;
    }
    r->fd_ = fd;
    r->sqEntries_ = p.sq_entries;
    size_t sqBytes = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
    size_t cqBytes = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    const bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single) sqBytes = cqBytes = std::max(sqBytes, cqBytes);
    void* sq = mmap(nullptr, sqBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED) {
      *err = errno;
      return nullptr;
    }
    r->sqMap_ = sq;
    r->sqMapLen_ = sqBytes;
    void* cq = sq;
    if (!single) {
      cq = mmap(nullptr, cqBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
      if (cq == MAP_FAILED) {
        *err = errno;
        return nullptr;
      }
      r->cqMap_ = cq;
      r->cqMapLen_ = cqBytes;
    }
    const size_t sqeBytes = p.sq_entries * sizeof(struct io_uring_sqe);
    void* sqes = mmap(nullptr, sqeBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) {
      *err = errno;
      return nullptr;
    }
    r->sqes_ = static_cast<struct io_uring_sqe*>(sqes);
    r->sqesLen_ = sqeBytes;
    uint8_t* s = static_cast<uint8_t*>(sq);
    uint8_t* c = static_cast<uint8_t*>(cq);
    r->sqHead_ = reinterpret_cast<unsigned*>(s + p.sq_off.head);
    r->sqTail_ = reinterpret_cast<unsigned*>(s + p.sq_off.tail);
    r->sqMask_ = *reinterpret_cast<unsigned*>(s + p.sq_off.ring_mask);
    r->sqArray_ = reinterpret_cast<unsigned*>(s + p.sq_off.array);
    r->cqHead_ = reinterpret_cast<unsigned*>(c + p.cq_off.head);
    r->cqTail_ = reinterpret_cast<unsigned*>(c + p.cq_off.tail);
    r->cqMask_ = *reinterpret_cast<unsigned*>(c + p.cq_off.ring_mask);
    r->cqes_ = reinterpret_cast<struct io_uring_cqe*>(c + p.cq_off.cqes);
    r->localTail_ = *r->sqTail_;
    return r;
  }

  ~Ring() {
    if (sqes_) munmap(sqes_, sqesLen_);
    if (cqMap_) munmap(cqMap_, cqMapLen_);
    if (sqMap_) munmap(sqMap_, sqMapLen_);
    if (fd_ >= 0) close(fd_);
  }

  // A zeroed SQE, or nullptr when the submission ring is full of entries not yet passed to the kernel.
  struct io_uring_sqe* Get() {
    const unsigned head = __atomic_load_n(sqHead_, __ATOMIC_ACQUIRE);
    if (localTail_ - head >= sqEntries_) return nullptr;
    const unsigned i = localTail_ & sqMask_;
    struct io_uring_sqe* e = &sqes_[i];
    std::memset(e, 0, sizeof *e);
    sqArray_[i] = i;
    localTail_++;
    pending_++;
    return e;
  }

  // Publishes the filled SQEs and enters the kernel when there is something to submit or to wait for.
  Errno Enter(bool wait) {
    if (pending_ == 0 && !wait) return 0;
    // The SQE contents must be visible before the tail that publishes them.
    __atomic_store_n(sqTail_, localTail_, __ATOMIC_RELEASE);
    for (;;) {
      const unsigned flags = wait ? IORING_ENTER_GETEVENTS : 0;
      long n = syscall(__NR_io_uring_enter, fd_, pending_, wait ? 1u : 0u, flags, nullptr, 0);
      if (n >= 0) {
        pending_ -= std::min<unsigned>(pending_, unsigned(n));
        if (pending_ == 0 || wait) return 0;
        continue;  // the kernel took part of the batch (out of memory for a moment): pass on the rest
      }
      if (errno == EINTR) return wait ? 0 : (pending_ ? EINTR : 0);
      // EAGAIN/EBUSY: the completion ring is short of room; the caller reaps and comes back.
      return errno;
    }
  }

  // The oldest unread completion, or nullptr.
  const struct io_uring_cqe* Peek() const {
    const unsigned head = *cqHead_;
    if (head == __atomic_load_n(cqTail_, __ATOMIC_ACQUIRE)) return nullptr;
    return &cqes_[head & cqMask_];
  }
  void Pop() { __atomic_store_n(cqHead_, *cqHead_ + 1, __ATOMIC_RELEASE); }

 private:
  Ring() = default;
  int fd_ = -1;
  void* sqMap_ = nullptr;
  size_t sqMapLen_ = 0;
  void* cqMap_ = nullptr;
  size_t cqMapLen_ = 0;
  struct io_uring_sqe* sqes_ = nullptr;
  size_t sqesLen_ = 0;
  unsigned* sqHead_ = nullptr;
  unsigned* sqTail_ = nullptr;
  unsigned* sqArray_ = nullptr;
  unsigned sqMask_ = 0;
  unsigned sqEntries_ = 0;
  unsigned* cqHead_ = nullptr;
  unsigned* cqTail_ = nullptr;
  unsigned cqMask_ = 0;
  struct io_uring_cqe* cqes_ = nullptr;
  unsigned localTail_ = 0;  // tail including SQEs filled but not yet published
  unsigned pending_ = 0;    // SQEs filled and not yet taken by the kernel
};

#else  // no <linux/io_uring.h>: AsyncIo::Create always declines

class Ring {};

#endif

struct AsyncIo::Slot {
  enum Kind : uint8_t { kFree, kRead, kWrite, kFlush, kPoll };
  Kind kind = kFree;
  uint64_t tag = 0;
  // Transfers: what is left to do (advanced over short transfers), and for bounced ones the guest's vector
  // to scatter a read into once it is complete.
  std::vector<struct iovec> iov;
  size_t at = 0;
  uint64_t off = 0;
  std::vector<struct iovec> guest;
  void* bounce = nullptr;
  size_t bounceLen = 0;
  uint64_t seq = 0;  // writes: order of submission; flushes: writes that must finish first are those below it
  int pollFd = -1;
  bool done = false;  // finished; reported by the next Next()
  Errno result = 0;
};

std::unique_ptr<AsyncIo> AsyncIo::Create(std::shared_ptr<BlockFile> file, unsigned slots, std::string* why) {
  const char* off = std::getenv("TSBHYVE_NO_IO_URING");
  if (off != nullptr && *off != '\0' && std::strcmp(off, "0") != 0) {
    *why = "disabled by TSBHYVE_NO_IO_URING";
    return nullptr;
  }
#if TSBHYVE_HAVE_IO_URING
  if (slots == 0) slots = 1;
  Errno e = 0;
  // Each slot has at most one SQE outstanding, so a submission ring as large as the slot count never fills.
  std::unique_ptr<Ring> ring = Ring::Open(slots, &e);
  if (!ring) {
    *why = std::string("io_uring_setup: ") + std::strerror(e);
    return nullptr;
  }
  std::unique_ptr<AsyncIo> a(new AsyncIo());
  a->file_ = std::move(file);
  a->ring_ = std::move(ring);
  a->slots_.resize(slots);
  for (unsigned i = slots; i-- > 0;) a->free_.push_back(i);
  return a;
#else
  (void)file;
  (void)slots;
  *why = "built without <linux/io_uring.h>";
  return nullptr;
#endif
}

unsigned AsyncIo::slots() const { return unsigned(slots_.size()); }

AsyncIo::~AsyncIo() {
#if TSBHYVE_HAVE_IO_URING
  // Wait for every transfer and flush; polls are cancelled by closing the ring.
  uint64_t tag;
  Errno err;
  while (busy_ > 0) {
    while (Next(&tag, &err)) {
    }
    if (busy_ == 0) break;
    Submit(true);
  }
#endif
  for (Slot& s : slots_) free(s.bounce);
}

bool AsyncIo::Readv(const struct iovec* iov, int iovcnt, uint64_t off, uint64_t tag, Errno* err) {
  return Transfer(iov, iovcnt, off, tag, false, err);
}

bool AsyncIo::Writev(const struct iovec* iov, int iovcnt, uint64_t off, uint64_t tag, Errno* err) {
  if (file_->readOnly()) {
    *err = EROFS;
    return false;
  }
  return Transfer(iov, iovcnt, off, tag, true, err);
}

bool AsyncIo::Transfer(const struct iovec* iov, int iovcnt, uint64_t off, uint64_t tag, bool write, Errno* err) {
  uint64_t total = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > UINT64_MAX - total) {
      *err = EINVAL;
      return false;
    }
    total += iov[i].iov_len;
  }
  if (!file_->RangeOk(off, total)) {
    *err = EIO;
    return false;
  }
  const bool bounce = file_->NeedsBounce(iov, iovcnt);
  // A write that ends in the page cache is a copy: done here it costs less than the ring, which on file systems
  // without async buffered writes (ext4) hands each one to a kernel worker thread.
  const bool copyOnly = write && file_->writesToPageCache();
  if (copyOnly || total == 0 || iovcnt > IOV_MAX || (bounce && total > kBounceChunk) || off > uint64_t(INT64_MAX)) {
    // Not worth a ring entry, or beyond what one entry carries: the synchronous path handles it.
    *err = write ? file_->Writev(iov, iovcnt, off) : file_->Readv(iov, iovcnt, off);
    return false;
  }
  unsigned idx;
  if (!Claim(write ? Slot::kWrite : Slot::kRead, tag, &idx, err)) return false;
  Slot& s = slots_[idx];
  s.at = 0;
  s.off = off;
  if (bounce) {
    if (s.bounceLen < total) {
      free(s.bounce);
      s.bounce = nullptr;
      s.bounceLen = 0;
      if (posix_memalign(&s.bounce, kDirectAlign, size_t(total)) != 0) {
        s.bounce = nullptr;
        Release(idx);
        *err = ENOMEM;
        return false;
      }
      s.bounceLen = size_t(total);
    }
    s.guest.assign(iov, iov + iovcnt);
    if (write) {
      uint8_t* b = static_cast<uint8_t*>(s.bounce);
      for (int i = 0; i < iovcnt; i++) {
        std::memcpy(b, iov[i].iov_base, iov[i].iov_len);
        b += iov[i].iov_len;
      }
    }
    s.iov.assign(1, {s.bounce, size_t(total)});
  } else {
    s.iov.assign(iov, iov + iovcnt);
  }
  if (write) s.seq = writeSeq_++;
  Queue(idx);
  return true;
}

bool AsyncIo::Flush(uint64_t tag, Errno* err) {
  if (file_->readOnly()) {
    *err = 0;  // nothing can be dirty
    return false;
  }
  unsigned idx;
  if (!Claim(Slot::kFlush, tag, &idx, err)) return false;
  slots_[idx].seq = writeSeq_;  // every write numbered below this must complete first
  deferredFlushes_.push_back(idx);
  StartDeferredFlushes();
  return true;
}

bool AsyncIo::PollIn(int fd, uint64_t tag, Errno* err) {
  unsigned idx;
  if (!Claim(Slot::kPoll, tag, &idx, err)) return false;
  slots_[idx].pollFd = fd;
  Queue(idx);
  return true;
}

void AsyncIo::StartDeferredFlushes() {
  while (!deferredFlushes_.empty()) {
    const unsigned f = deferredFlushes_.front();
    bool blocked = false;
    for (const Slot& s : slots_) {
      if (s.kind == Slot::kWrite && !s.done && s.seq < slots_[f].seq) {
        blocked = true;
        break;
      }
    }
    if (blocked) return;
    deferredFlushes_.erase(deferredFlushes_.begin());
    Queue(f);
  }
}

void AsyncIo::Queue(unsigned idx) {
#if TSBHYVE_HAVE_IO_URING
  Slot& s = slots_[idx];
  struct io_uring_sqe* e = ring_->Get();
  if (e == nullptr) {
    // Cannot happen: the ring has an entry per slot and a slot has at most one outstanding. Fail the request
    // rather than lose it.
    s.done = true;
    s.result = EBUSY;
    orphaned_++;
    return;
  }
  e->user_data = idx;
  switch (s.kind) {
    case Slot::kRead:
    case Slot::kWrite:
      e->opcode = s.kind == Slot::kRead ? IORING_OP_READV : IORING_OP_WRITEV;
      e->fd = file_->fd_;
      e->off = s.off;
      e->addr = reinterpret_cast<uint64_t>(s.iov.data() + s.at);
      e->len = unsigned(s.iov.size() - s.at);
      break;
    case Slot::kFlush:
      e->opcode = IORING_OP_FSYNC;
      e->fd = file_->fd_;
      e->fsync_flags = IORING_FSYNC_DATASYNC;
      break;
    case Slot::kPoll:
      e->opcode = IORING_OP_POLL_ADD;
      e->fd = s.pollFd;
      e->poll32_events = POLLIN;
      break;
    case Slot::kFree:
      break;
  }
#else
  (void)idx;
#endif
}

Errno AsyncIo::Submit(bool wait) {
#if TSBHYVE_HAVE_IO_URING
  return ring_->Enter(wait);
#else
  (void)wait;
  return ENOSYS;
#endif
}

bool AsyncIo::Claim(uint8_t kind, uint64_t tag, unsigned* idx, Errno* err) {
  if (free_.empty()) {
    *err = EAGAIN;
    return false;
  }
  *idx = free_.back();
  free_.pop_back();
  Slot& s = slots_[*idx];
  s.kind = static_cast<Slot::Kind>(kind);
  s.tag = tag;
  s.done = false;
  s.result = 0;
  s.guest.clear();
  if (kind != Slot::kPoll) busy_++;  // polls are not requests (see busy())
  return true;
}

void AsyncIo::Release(unsigned idx) {
  Slot& s = slots_[idx];
  if (s.kind != Slot::kPoll) busy_--;
  s.kind = Slot::kFree;
  s.done = false;
  s.guest.clear();
  s.iov.clear();
  free_.push_back(idx);
}

bool AsyncIo::Next(uint64_t* tag, Errno* err) {
#if TSBHYVE_HAVE_IO_URING
  // Requests finished without a completion entry (a failed Queue) first.
  for (unsigned i = 0; orphaned_ > 0 && i < slots_.size(); i++) {
    Slot& s = slots_[i];
    if (s.kind != Slot::kFree && s.done) {
      orphaned_--;
      *tag = s.tag;
      *err = s.result;
      const bool wasWrite = s.kind == Slot::kWrite;
      Release(i);
      if (wasWrite) StartDeferredFlushes();
      return true;
    }
  }
  for (;;) {
    const struct io_uring_cqe* c = ring_->Peek();
    if (c == nullptr) return false;
    const uint64_t ud = c->user_data;
    const int res = c->res;
    ring_->Pop();
    if (ud >= slots_.size() || slots_[ud].kind == Slot::kFree) continue;  // not ours (cannot happen)
    const unsigned idx = unsigned(ud);
    Slot& s = slots_[idx];
    Errno e = 0;
    switch (s.kind) {
      case Slot::kPoll:
        e = (res < 0) ? -res : ((res & POLLIN) ? 0 : EPIPE);
        break;
      case Slot::kFlush:
        if (res == -EINTR || res == -EAGAIN) {
          Queue(idx);
          continue;
        }
        e = res < 0 ? -res : 0;
        break;
      case Slot::kRead:
      case Slot::kWrite: {
        if (res == -EINTR || res == -EAGAIN) {
          Queue(idx);
          continue;
        }
        if (res < 0) {
          e = -res;
          break;
        }
        if (res == 0) {
          e = EIO;  // end of file inside the device's size: the file shrank under us
          break;
        }
        // Advance over what was transferred; resubmit the rest.
        size_t left = size_t(res);
        s.off += uint64_t(res);
        while (left > 0 && s.at < s.iov.size()) {
          const size_t take = std::min(left, s.iov[s.at].iov_len);
          s.iov[s.at].iov_base = static_cast<uint8_t*>(s.iov[s.at].iov_base) + take;
          s.iov[s.at].iov_len -= take;
          left -= take;
          if (s.iov[s.at].iov_len == 0) s.at++;
        }
        while (s.at < s.iov.size() && s.iov[s.at].iov_len == 0) s.at++;
        if (s.at < s.iov.size()) {
          Queue(idx);
          continue;
        }
        if (s.kind == Slot::kRead && !s.guest.empty()) {
          const uint8_t* b = static_cast<const uint8_t*>(s.bounce);
          for (const struct iovec& g : s.guest) {
            std::memcpy(g.iov_base, b, g.iov_len);
            b += g.iov_len;
          }
        }
        break;
      }
      case Slot::kFree:
        continue;
    }
    *tag = s.tag;
    *err = e;
    const bool wasWrite = s.kind == Slot::kWrite;
    s.done = true;
    Release(idx);
    if (wasWrite) StartDeferredFlushes();
    return true;
  }
#else
  (void)tag;
  (void)err;
  return false;
#endif
}

}  // namespace block
}  // namespace tsbhyve
