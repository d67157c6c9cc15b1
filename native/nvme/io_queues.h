#pragma once
// The NVMe I/O data path: the controller's I/O submission and completion queues, their doorbells, and a
// worker thread that fetches commands, runs them on the block backend and posts completions with the phase
// tag, raising each completion queue's interrupt vector (an eventfd, irqfd on KVM, or a report to the
// owner). The admin queue and everything else about the controller is TypeScript's (devices/nvme); it
// creates and deletes queues here after checking the admin command, and reaches guest memory through
// PrpCopy for its own data transfers.
//
// Threads: control calls come from the JS thread; Doorbell() from vCPU threads (KVM MMIO exits) or the JS
// thread; the worker runs commands. Doorbell() takes no lock: it stores the value and wakes the worker.
//
// Reads, writes and flushes go through io_uring (block/async_io.h) with up to `ioSlots` commands in flight;
// where the kernel refuses io_uring, and for Compare, Write Zeroes and Dataset Management, commands run
// synchronously on the worker. Control calls that change queues first wait until nothing is in flight.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "block/async_io.h"
#include "block/block_file.h"
#include "guestmem/guest_memory.h"
#include "nvme/nvme_spec.h"

namespace tsbhyve {
namespace nvme {

// The namespace as the guest sees it (one namespace, NSID 1).
struct Namespace {
  uint32_t lbaShift = 9;       // log2 of the LBA data size
  uint64_t mdtsBytes = 2 << 20;  // largest transfer (MDTS)
  bool dsm = false;            // Dataset Management advertised (ONCS bit 2)
};

enum class IoEvent : int {
  kInterrupt = 1,      // arg: vector, when that vector has no eventfd
  kDoorbellError = 2,  // arg: (kind << 16) | qid; kind 0 = no such queue, 1 = value out of range (an AER's info)
  kCqDrained = 3,      // arg: qid; a CQ head reached its tail (the owner re-evaluates INTx; only in INTx mode)
};

struct IoQueuesStats {
  std::atomic<uint64_t> commands{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> interrupts{0};
  std::atomic<uint64_t> doorbells{0};
  std::atomic<uint64_t> shadowReads{0};
  // SMART / Health counters (NVMe 1.4 Figure 194): data moved and commands run, by direction
  std::atomic<uint64_t> bytesRead{0};
  std::atomic<uint64_t> bytesWritten{0};
  std::atomic<uint64_t> readCommands{0};
  std::atomic<uint64_t> writeCommands{0};
};

class IoQueues {
 public:
  static constexpr unsigned kMaxQueues = 64;  // I/O queue ids 1..kMaxQueues-1 at most
  static constexpr unsigned kMaxVectors = 2048;

  IoQueues(std::shared_ptr<const GuestMemory> mem, std::shared_ptr<block::BlockFile> file, Namespace ns,
           unsigned maxQueues, unsigned vectors, unsigned ioSlots, bool useUring,
           std::function<void(IoEvent, uint32_t)> report);
  // "io_uring" or "sync" once started; why io_uring is not used, if it was wanted.
  const char* engine() const { return aio_ ? "io_uring" : "sync"; }
  const std::string& engineNote() const { return engineNote_; }
  ~IoQueues();

  bool Start(std::string* err);
  void Stop();

  // Admin operations, already checked by the caller against the admin command's rules except where they
  // need this side's state; they return the completion status. Queue memory must be guest RAM.
  Status CreateCq(uint16_t qid, uint64_t gpa, uint32_t entries, uint16_t vector, bool ien);
  Status CreateSq(uint16_t qid, uint64_t gpa, uint32_t entries, uint16_t cqid);
  // Waits for the SQ's commands in progress; commands not yet fetched are dropped (spec: aborted).
  Status DeleteSq(uint16_t qid);
  Status DeleteCq(uint16_t qid);
  bool CqExists(uint16_t qid) const;
  bool SqExists(uint16_t qid) const;
  // Drops every I/O queue and the doorbell buffer (controller reset).
  void Reset();
  void SetPageSize(uint32_t bytes) { pageSize_.store(bytes); }
  uint32_t pageSize() const { return pageSize_.load(); }
  // Doorbell Buffer Config: page-aligned shadow doorbell and EventIdx pages (0, 0 turns them off).
  Status SetDoorbellBuffer(uint64_t shadow, uint64_t eventIdx);
  // Where vector `v` goes: an eventfd to signal, or -1 to report kInterrupt.
  void SetVectorFd(uint32_t v, int fd);
  // Whether interrupts are INTx, a level the owner recomputes when a CQ drains (kCqDrained). With MSI or MSI-X
  // nothing depends on a drain, and reporting one per CQ head doorbell cost a JavaScript wake per command.
  void SetIntxLevel(bool on) { intxLevel_.store(on, std::memory_order_relaxed); }
  // A doorbell write at BAR0 offset `offset` (0x1000 + 8*qid for the SQ tail, +4 for the CQ head), for I/O
  // queues only (qid >= 1).
  void Doorbell(uint64_t offset, uint32_t value);
  // Volatile Write Cache feature: with the cache off every write reaches stable storage before it completes.
  void SetWriteCache(bool enabled) { writeCache_.store(enabled); }
  // Flushes the disk after the command in hand (shutdown, admin-side durability).
  int Flush();
  // Format NVM with Secure Erase: every LBA reads as zeroes afterwards.
  int EraseAll();
  // Whether any I/O CQ with interrupts enabled holds entries the host has not consumed (INTx level).
  bool AnyPending() const;

  const IoQueuesStats& stats() const { return stats_; }
  // The eventfd the worker sleeps on (-1 before Start): with shadow doorbells a KVM ioeventfd on the
  // doorbell registers can signal it directly, the values being in the shadow buffer.
  int wakeFd() const { return wakeFd_; }

 private:
  struct Cq;
  struct Sq;
  // A command in flight on io_uring: where its completion goes and what is left to do.
  struct Pending {
    uint16_t sqid = 0, cqid = 0, cid = 0;
    bool write = false;
    bool flushAfter = false;  // FUA, or the write cache is off: a flush follows before completion
    bool flushing = false;
    uint64_t bytes = 0;
    std::vector<struct iovec> iov;
  };
  void Run();
  void RunAsync();
  // Waits (with mu_ held through `lk`) until no command is in flight; the worker starts none meanwhile.
  void Quiesce(std::unique_lock<std::mutex>& lk);
  struct QuiesceGuard;
  void Resume();
  // Read/Write checks and PRP walk; on success fills the transfer.
  Status PrepareRw(const uint8_t* sqe, bool write, std::vector<struct iovec>* iov, uint64_t* off, uint64_t* bytes,
                   bool* fua);
  // Starts an I/O command on io_uring; false when it completed at once (*st holds its status).
  bool StartAsync(const uint8_t* sqe, uint16_t sqid, uint16_t cqid, Status* st);
  void FinishAsync(uint32_t slot, block::Errno err);
  bool ProcessSq(uint16_t qid);
  Status Execute(const uint8_t* sqe, uint32_t* dw0);
  Status ReadWrite(const uint8_t* sqe, bool write);
  Status Compare(const uint8_t* sqe);
  Status WriteZeroes(const uint8_t* sqe);
  Status Dsm(const uint8_t* sqe);
  void Post(Cq& cq, uint16_t sqid, uint16_t sqHead, uint16_t cid, Status st, uint32_t dw0);
  void Raise(uint32_t vector);
  void Wake();

  std::shared_ptr<const GuestMemory> mem_;
  std::shared_ptr<block::BlockFile> file_;
  Namespace ns_;
  const unsigned maxQueues_;
  const unsigned vectors_;
  std::function<void(IoEvent, uint32_t)> report_;

  std::vector<std::unique_ptr<Cq>> cqs_;
  std::vector<std::unique_ptr<Sq>> sqs_;
  std::unique_ptr<std::atomic<int>[]> vectorFds_;
  std::vector<uint8_t> vectorDue_;
  std::atomic<uint32_t> pageSize_{4096};
  std::atomic<bool> writeCache_{true};
  std::atomic<bool> intxLevel_{true};
  // Shadow doorbells (guest RAM, checked when configured): entry 2*qid is the SQ tail, 2*qid+1 the CQ head.
  std::atomic<uint32_t*> shadow_{nullptr};
  std::atomic<uint32_t*> eventIdx_{nullptr};

  // mu_ is held by the worker for a whole pass over the queues and by every control call, so a queue
  // deleted or a reset waits for the command in hand to finish.
  mutable std::mutex mu_;
  std::thread thread_;
  int wakeFd_ = -1;
  std::atomic<bool> stopping_{false};
  IoQueuesStats stats_;
  std::vector<uint8_t> scratch_;  // Compare's and DSM's buffers

  const unsigned ioSlots_;
  const bool useUring_;
  std::unique_ptr<block::AsyncIo> aio_;
  std::string engineNote_;
  std::vector<Pending> pend_;
  std::vector<uint32_t> pendFree_;
  unsigned inflight_ = 0;  // guarded by mu_
  unsigned quiesce_ = 0;   // control calls waiting for inflight_ == 0 (guarded by mu_)
  std::condition_variable idleCv_;
};

}  // namespace nvme
}  // namespace tsbhyve
