#pragma once
// Asynchronous I/O on a BlockFile through Linux io_uring, driven by raw system calls (no liburing): one ring
// per caller thread, a fixed number of slots, and completions handed back by tag. A caller (the virtio-blk
// queue worker; NVMe and AHCI later) prepares requests, submits them in one io_uring_enter, sleeps in the
// kernel until something completes, and reaps.
//
// What the layer takes care of, so callers see the same contract as BlockFile's synchronous calls:
//  - range and read-only checks (the same answers as Readv/Writev);
//  - O_DIRECT with unaligned buffers: an aligned bounce buffer owned by the slot until the completion
//    (gathered before a write is submitted, scattered after a read completes);
//  - short transfers and EINTR/EAGAIN: the remainder is resubmitted, and only a whole transfer completes;
//  - flush ordering: a flush starts only after every write submitted before it has completed, then
//    fdatasyncs (IORING_FSYNC_DATASYNC). IOSQE_IO_DRAIN is not used, because it would also wait for the
//    long-lived eventfd polls that share the ring.
// Requests the ring cannot take (more than IOV_MAX segments, bounce buffers above 1 MiB, empty transfers,
// refused ranges), and writes that only copy into the page cache (BlockFile::writesToPageCache), run
// synchronously on the caller's thread and return their result at once.
//
// Not thread-safe: one thread owns an AsyncIo. The destructor waits for every request in flight, so memory
// handed to a request is never touched after the AsyncIo is gone.
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "block/block_file.h"

namespace tsbhyve {
namespace block {

class Ring;

class AsyncIo {
 public:
  // A ring with `slots` slots (each request or poll takes one until it completes). Returns nullptr with *why
  // when io_uring cannot be used: the kernel lacks it (ENOSYS), it is disabled (EPERM,
  // /proc/sys/kernel/io_uring_disabled) or TSBHYVE_NO_IO_URING is set in the environment.
  static std::unique_ptr<AsyncIo> Create(std::shared_ptr<BlockFile> file, unsigned slots, std::string* why);
  ~AsyncIo();
  AsyncIo(const AsyncIo&) = delete;
  AsyncIo& operator=(const AsyncIo&) = delete;

  unsigned slots() const;
  unsigned freeSlots() const { return unsigned(free_.size()); }

  // Start a request. True: queued, its completion comes from Next() with `tag`. False: it ran (or was refused)
  // at once and *err holds the result. The iovecs are copied; the memory they name must stay valid until the
  // completion. Callers must check freeSlots() first (a full AsyncIo refuses with EAGAIN).
  bool Readv(const struct iovec* iov, int iovcnt, uint64_t off, uint64_t tag, Errno* err);
  bool Writev(const struct iovec* iov, int iovcnt, uint64_t off, uint64_t tag, Errno* err);
  bool Flush(uint64_t tag, Errno* err);
  // One-shot readiness poll of `fd` for input; completes with err 0 when readable, or EPIPE when the fd
  // reported an error or hang-up without input.
  bool PollIn(int fd, uint64_t tag, Errno* err);

  // Passes queued requests to the kernel; with `wait`, also sleeps until at least one completion is ready
  // (returning early on a signal). Returns 0 or an errno.
  Errno Submit(bool wait);
  // Takes one finished request. Short transfers are resubmitted here (passed on by the next Submit) and never
  // reported. False when nothing has finished.
  bool Next(uint64_t* tag, Errno* err);
  // Requests (not polls) in flight.
  unsigned busy() const { return busy_; }

 private:
  struct Slot;
  AsyncIo() = default;
  bool Transfer(const struct iovec* iov, int iovcnt, uint64_t off, uint64_t tag, bool write, Errno* err);
  void Queue(unsigned idx);        // fills an SQE for the slot's current state
  void StartDeferredFlushes();
  // Takes a free slot for a new request or poll (EAGAIN when none is left) and counts it as busy.
  bool Claim(uint8_t kind, uint64_t tag, unsigned* idx, Errno* err);
  void Release(unsigned idx);

  std::shared_ptr<BlockFile> file_;
  std::unique_ptr<Ring> ring_;
  std::vector<Slot> slots_;
  std::vector<unsigned> free_;
  std::vector<unsigned> deferredFlushes_;  // slots of flushes waiting for earlier writes, oldest first
  uint64_t writeSeq_ = 0;                  // sequence given to the next write
  unsigned busy_ = 0;
  unsigned orphaned_ = 0;  // slots failed without a completion entry, reported by Next()
};

}  // namespace block
}  // namespace tsbhyve
