#include "virtio/blk_worker.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tsbhyve {
namespace virtio {

namespace {
void DrainEventfd(int fd) {
  uint64_t v;
  while (read(fd, &v, sizeof v) == sizeof v) {
  }
}
void SignalEventfd(int fd) {
  uint64_t one = 1;
  while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}
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
