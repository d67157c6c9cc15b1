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
  thread_ = std::thread([this] { Run(); });
  return true;
}

void BlkWorker::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  SignalEventfd(stopFd_);
  thread_.join();
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
      BlkOutcome o = HandleBlkRequest(chain, *cfg_.file, cfg_.params);
      stats_.requests.fetch_add(1, std::memory_order_relaxed);
      if (o.error != BlkError::kNone) stats_.errors[int(o.error)].fetch_add(1, std::memory_order_relaxed);
      queue_.Push(chain.head, o.written);
    }
    if (queue_.error() != ChainError::kNone) break;
    if (queue_.NeedInterrupt()) Interrupt();
    if (stopping_.load(std::memory_order_relaxed) || !queue_.EnableNotifyAndCheck()) break;
  }
  if (queue_.error() != ChainError::kNone && queueError_.load() == ChainError::kNone) {
    // Whatever completed before the broken chain is still reported to the driver.
    if (queue_.NeedInterrupt()) Interrupt();
    queueError_ = queue_.error();
    if (cfg_.report) cfg_.report(WorkerEvent::kNeedsReset);
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
