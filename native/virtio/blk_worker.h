#pragma once
// The virtio-blk data path: one thread per live queue that sleeps on the queue's notification eventfd
// (ioeventfd on KVM, or any eventfd a test signals), drains the available ring through the block backend,
// fills the used ring and raises the queue interrupt by writing the interrupt eventfd (irqfd on KVM) or by
// calling back into the owner. No JavaScript runs per request.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "block/async_io.h"
#include "block/block_file.h"
#include "guestmem/guest_memory.h"
#include "virtio/blk_request.h"
#include "virtio/avail_watch.h"
#include "virtio/split_queue.h"

namespace tsbhyve {
namespace virtio {

// Events the worker reports to its owner (on the worker thread; the owner marshals them).
enum class WorkerEvent : int {
  kInterrupt = 1,   // a queue interrupt is due and no interrupt eventfd was given
  kNeedsReset = 2,  // the queue is broken (ChainError); the device must set DEVICE_NEEDS_RESET
};

// How the worker reaches the backend.
enum class BlkEngine : int {
  kAuto = 0,     // io_uring when the kernel allows it, else threads
  kThreads = 1,  // synchronous calls on the queue thread (ioThreads 1) or on a pool
};

struct BlkWorkerConfig {
  std::shared_ptr<const GuestMemory> memory;  // kept alive while the worker runs
  std::shared_ptr<block::BlockFile> file;
  QueueLayout layout;
  bool eventIdx = false;
  bool indirect = false;
  BlkParams params;
  int notifyFd = -1;     // eventfd the driver's notifications arrive on (not owned)
  int interruptFd = -1;  // eventfd to write for an interrupt, or -1 to report kInterrupt (not owned)
  // Sets ISR bit 0 before each interrupt (legacy INTx and MSI, §4.1.4.5); off for MSI-X.
  bool useIsr = false;
  // Threads doing the I/O. 1: the queue thread runs each request itself, in ring order. More: the queue
  // thread only walks chains and hands them to a pool, and requests complete out of order (§2.7.8 allows
  // it), as bhyve's blockif threads do.
  unsigned ioThreads = 1;
  BlkEngine engine = BlkEngine::kAuto;
  // io_uring engine: how long an idle queue thread keeps watching the avail ring (kicks suppressed) after its
  // last request before sleeping (virtio/avail_watch.h). 0 turns it off.
  unsigned pollMicros = 32;
  std::function<void(WorkerEvent)> report;
};

struct BlkWorkerStats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> interrupts{0};
  std::atomic<uint64_t> notifications{0};
  std::atomic<uint64_t> errors[int(BlkError::kCount)] = {};
};

class BlkWorker {
 public:
  explicit BlkWorker(BlkWorkerConfig cfg) : cfg_(std::move(cfg)) {}
  ~BlkWorker() { Stop(); }
  BlkWorker(const BlkWorker&) = delete;
  BlkWorker& operator=(const BlkWorker&) = delete;

  // Attaches the rings and starts the thread. False (with *err) when the rings are not in guest RAM or the
  // stop eventfd cannot be made.
  bool Start(std::string* err);
  // Wakes the thread, waits for it to finish the request in hand and joins it. Idempotent.
  void Stop();

  // ISR bits set by the worker since the last call (read-to-clear, §4.1.4.5).
  uint32_t TakeIsr() { return isr_.exchange(0); }
  const BlkWorkerStats& stats() const { return stats_; }
  // "io_uring", "threads" (a pool) or "inline" (the queue thread), fixed by Start().
  const char* engineName() const { return engineName_; }
  // Why io_uring is not in use ("" when it is, or when threads were asked for).
  const std::string& engineNote() const { return engineNote_; }
  ChainError queueError() const { return queueError_.load(); }

 private:
  void Run();
  void Drain();
  void Interrupt();
  void Execute(const Chain& chain);
  // Returns a chain to the used ring (any thread) and raises the interrupt the driver asked for.
  void Complete(uint16_t head, uint32_t written);
  void PoolThread();
  // io_uring engine: the queue thread submits every request it finds (four per io_uring_enter) and reaps completions.
  void RunUring();
  void StartAsync(const Chain& chain);
  void FinishAsync(uint64_t tag, block::Errno err);
  // Idle io_uring worker: watches the avail ring (kicks suppressed) before sleeping.
  AvailWatch watch_;

  BlkWorkerConfig cfg_;
  SplitQueue queue_;
  std::thread thread_;
  int stopFd_ = -1;
  std::atomic<uint32_t> isr_{0};
  // Set by Stop(): Drain() returns between requests, so a driver that keeps the ring full cannot hold the
  // thread (and a reset waiting to join it) forever.
  std::atomic<bool> stopping_{false};
  std::atomic<ChainError> queueError_{ChainError::kNone};
  BlkWorkerStats stats_;

  // mu_ guards the used-ring side of queue_ (Push, NeedInterrupt) and the pool's job list; the queue
  // thread alone pops from the available ring.
  std::mutex mu_;
  std::condition_variable jobCv_;
  std::condition_variable idleCv_;
  std::deque<Chain> jobs_;
  uint32_t inflight_ = 0;  // chains popped and not yet returned
  bool poolExit_ = false;
  std::vector<std::thread> pool_;

  const char* engineName_ = "inline";
  std::string engineNote_;
  std::unique_ptr<block::AsyncIo> aio_;
  // Requests in the ring, by tag (index); free_ lists the unused entries.
  std::vector<BlkIo> pend_;
  std::vector<uint16_t> pendHead_;
  std::vector<uint32_t> pendFree_;
};

}  // namespace virtio
}  // namespace tsbhyve
