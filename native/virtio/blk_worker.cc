#include "virtio/blk_worker.h"
#include "virtio/eventfd_ops.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>

namespace tsbhyve {
namespace virtio {

namespace {
// Requests in flight in the ring at most (and slots for the two eventfd polls besides).
constexpr unsigned kRingDepth = 128;
constexpr uint64_t kNotifyTag = UINT64_MAX - 1;
// Requests handed to the kernel per io_uring_enter while popping a batch. Measured on the development host
// (bench/README.md): 1, 2, 4 and 8 all beat one submission per batch by 1.3-1.6x at QD32; 4 keeps the syscalls few.
constexpr unsigned kSubmitEvery = 4;
constexpr uint64_t kStopTag = UINT64_MAX;
}  // namespace

bool BlkWorker::Start(std::string* err) {
  if (thread_.joinable()) return true;
  if (!queue_.Attach(*cfg_.memory, cfg_.layout, cfg_.eventIdx, cfg_.indirect)) {
    *err = std::string("virtqueue: ") + ChainErrorName(queue_.error());
    queueError_ = queue_.error();
    return false;
  }
  stopFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stopFd_ < 0) {
    *err = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  stopping_ = false;
  poolExit_ = false;
  inflight_ = 0;
  engineNote_.clear();
  if (cfg_.engine == BlkEngine::kAuto) {
    const unsigned depth = std::min<unsigned>(kRingDepth, cfg_.layout.size);
    aio_ = block::AsyncIo::Create(cfg_.file, depth + 2, &engineNote_);
    if (aio_) {
      pend_.assign(depth, BlkIo());
      pendHead_.assign(depth, 0);
      pendFree_.clear();
      for (unsigned i = depth; i-- > 0;) pendFree_.push_back(i);
      engineName_ = "io_uring";
      watch_.Configure(cfg_.pollMicros);
      thread_ = std::thread([this] { RunUring(); });
      return true;
    }
  }
  engineName_ = cfg_.ioThreads > 1 ? "threads" : "inline";
  if (cfg_.ioThreads > 1) {
    for (unsigned i = 0; i < cfg_.ioThreads; i++) pool_.emplace_back([this] { PoolThread(); });
  }
  thread_ = std::thread([this] { Run(); });
  return true;
}

void BlkWorker::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  SignalEventfd(stopFd_);
  thread_.join();
  // The queue thread submits nothing more; let the pool finish what it holds, then end it.
  {
    std::unique_lock<std::mutex> lk(mu_);
    idleCv_.wait(lk, [this] { return inflight_ == 0; });
    poolExit_ = true;
  }
  jobCv_.notify_all();
  for (auto& t : pool_) t.join();
  pool_.clear();
  aio_.reset();  // nothing is in flight: RunUring waited for every request before returning
  close(stopFd_);
  stopFd_ = -1;
}

void BlkWorker::Run() {
  // Requests may already be waiting (a driver that kicked before the hand-over, or a restart).
  Drain();
  struct pollfd fds[2] = {{cfg_.notifyFd, POLLIN, 0}, {stopFd_, POLLIN, 0}};
  for (;;) {
    int r = poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents) break;
    if (fds[0].revents & POLLIN) {
      DrainEventfd(cfg_.notifyFd);
      stats_.notifications.fetch_add(1, std::memory_order_relaxed);
      Drain();
    } else if (fds[0].revents) {
      break;  // POLLERR/POLLNVAL: the notification fd is gone
    }
  }
}

void BlkWorker::Drain() {
  Chain chain;
  for (;;) {
    while (!stopping_.load(std::memory_order_relaxed) && queue_.Pop(&chain)) {
      if (pool_.empty()) {
        {
          std::lock_guard<std::mutex> lk(mu_);
          inflight_++;
        }
        Execute(chain);
      } else {
        std::lock_guard<std::mutex> lk(mu_);
        inflight_++;
        jobs_.push_back(std::move(chain));
        jobCv_.notify_one();
      }
    }
    if (pool_.empty()) {
      // Inline: one interrupt decision per batch, as bhyve's vq_endchains makes it.
      bool irq;
      {
        std::lock_guard<std::mutex> lk(mu_);
        irq = queue_.NeedInterrupt();
      }
      if (irq) Interrupt();
    }
    if (queue_.error() != ChainError::kNone) break;
    if (stopping_.load(std::memory_order_relaxed) || !queue_.EnableNotifyAndCheck()) break;
  }
  if (queue_.error() != ChainError::kNone && queueError_.load() == ChainError::kNone) {
    // Chains popped before the broken one still complete (in the pool) and interrupt as usual.
    queueError_ = queue_.error();
    if (cfg_.report) cfg_.report(WorkerEvent::kNeedsReset);
  }
}

void BlkWorker::Execute(const Chain& chain) {
  BlkOutcome o = HandleBlkRequest(chain, *cfg_.file, cfg_.params);
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  if (o.error != BlkError::kNone) stats_.errors[int(o.error)].fetch_add(1, std::memory_order_relaxed);
  Complete(chain.head, o.written);
}

void BlkWorker::Complete(uint16_t head, uint32_t written) {
  bool irq;
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.Push(head, written);
    inflight_--;
    // Inline requests are decided per batch by Drain(). In the pool, a completion decides only when
    // nothing waits behind it: the later completions decide for it, and the last one always decides.
    irq = !pool_.empty() && jobs_.empty() && queue_.NeedInterrupt();
    if (inflight_ == 0) idleCv_.notify_all();
  }
  if (irq) Interrupt();
}

void BlkWorker::PoolThread() {
  for (;;) {
    Chain chain;
    {
      std::unique_lock<std::mutex> lk(mu_);
      jobCv_.wait(lk, [this] { return !jobs_.empty() || poolExit_; });
      if (jobs_.empty()) return;
      chain = std::move(jobs_.front());
      jobs_.pop_front();
    }
    Execute(chain);
  }
}

void BlkWorker::RunUring() {
  block::AsyncIo& io = *aio_;
  block::Errno e = 0;
  bool notifyArmed = false;
  bool stop = false;    // Stop() asked, or the notification fd failed: take no more requests
  bool broken = false;  // the queue failed (NEEDS_RESET reported)
  if (!io.PollIn(stopFd_, kStopTag, &e)) stop = true;
  Chain chain;
  for (;;) {
    // Completions first: they free room for the requests behind them.
    uint64_t tag;
    while (io.Next(&tag, &e)) {
      if (tag == kNotifyTag) {
        notifyArmed = false;
        if (e != 0) {
          stop = true;  // POLLERR/POLLNVAL: the notification fd is gone
          continue;
        }
        DrainEventfd(cfg_.notifyFd);
        stats_.notifications.fetch_add(1, std::memory_order_relaxed);
        watch_.OnKick();
      } else if (tag == kStopTag) {
        stop = true;
      } else {
        FinishAsync(tag, e);
      }
    }
    if (stopping_.load(std::memory_order_relaxed)) stop = true;
    // The kick poll is one-shot: re-arm it before anything can make us sleep. A kick between the eventfd
    // read above and this is not lost: the poll sees the counter already non-zero.
    if (!notifyArmed && !stop) {
      if (io.PollIn(cfg_.notifyFd, kNotifyTag, &e)) notifyArmed = true;
      else stop = true;
    }
    // Every request the driver made available (as long as the ring has room).
    if (!stop && !broken) {
      unsigned started = 0;
      while (!pendFree_.empty() && queue_.Pop(&chain)) {
        StartAsync(chain);
        // Pass every few requests on at once rather than the whole batch at the end: the disk starts on the
        // first ones while the rest are prepared (and, with a driver still adding, before it is done).
        if (++started % kSubmitEvery == 0) io.Submit(false);
      }
      if (queue_.error() != ChainError::kNone) {
        broken = true;
        // Chains popped before the broken one still complete and interrupt as usual.
        queueError_ = queue_.error();
        if (cfg_.report) cfg_.report(WorkerEvent::kNeedsReset);
      }
    }
    // One interrupt decision per pass, however many requests it completed (§2.7.7.2 / EVENT_IDX).
    if (queue_.NeedInterrupt()) Interrupt();
    if (stop) {
      if (io.busy() == 0) break;
      io.Submit(true);
      continue;
    }
    if (broken || pendFree_.empty()) {
      io.Submit(true);  // the ring is full (or the queue dead): only completions matter now
      continue;
    }
    if (io.busy() > 0) {
      // A completion will wake this thread and it will look at the avail ring then: the driver need not kick
      // (each kick is a VM exit) while requests are in flight.
      queue_.DisableNotify();
      if (queue_.HasAvail()) continue;
      io.Submit(true);
      continue;
    }
    // Nothing in flight: watch the ring a little (a driver waiting for each answer comes straight back),
    // then ask for a kick and look once more, so a request that came meanwhile is not left until the next kick.
    if (watch_.Watch(queue_, stopping_)) continue;
    if (queue_.EnableNotifyAndCheck()) continue;
    // Pass on the batch and sleep until a completion, a kick or Stop().
    io.Submit(true);
  }
  // Leave kicks enabled for whoever takes the queue next (a restarted worker clears them too).
  if (!broken) queue_.EnableNotifyAndCheck();
}

void BlkWorker::StartAsync(const Chain& chain) {
  const uint32_t t = pendFree_.back();
  BlkIo& io = pend_[t];
  BlkOutcome o;
  if (!PrepareBlkRequest(chain, *cfg_.file, cfg_.params, &io, &o)) {
    block::Errno e = 0;
    bool queued = false;
    switch (io.op) {
      case BlkIo::Op::kRead: queued = aio_->Readv(io.iov.data(), int(io.iov.size()), io.offset, t, &e); break;
      case BlkIo::Op::kWrite: queued = aio_->Writev(io.iov.data(), int(io.iov.size()), io.offset, t, &e); break;
      case BlkIo::Op::kFlush: queued = aio_->Flush(t, &e); break;
      case BlkIo::Op::kNone: break;
    }
    if (queued) {
      pendFree_.pop_back();
      pendHead_[t] = chain.head;
      return;
    }
    o = FinishBlkRequest(io, e);
  }
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  if (o.error != BlkError::kNone) stats_.errors[int(o.error)].fetch_add(1, std::memory_order_relaxed);
  queue_.Push(chain.head, o.written);
}

void BlkWorker::FinishAsync(uint64_t tag, block::Errno err) {
  if (tag >= pend_.size()) return;
  const uint32_t t = uint32_t(tag);
  BlkOutcome o = FinishBlkRequest(pend_[t], err);
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  if (o.error != BlkError::kNone) stats_.errors[int(o.error)].fetch_add(1, std::memory_order_relaxed);
  queue_.Push(pendHead_[t], o.written);
  pendFree_.push_back(t);
}

void BlkWorker::Interrupt() {
  stats_.interrupts.fetch_add(1, std::memory_order_relaxed);
  if (cfg_.useIsr) isr_.fetch_or(1);
  if (cfg_.interruptFd >= 0) {
    SignalEventfd(cfg_.interruptFd);
  } else if (cfg_.report) {
    cfg_.report(WorkerEvent::kInterrupt);
  }
}

}  // namespace virtio
}  // namespace tsbhyve
