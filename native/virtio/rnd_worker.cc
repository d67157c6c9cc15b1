#include "virtio/rnd_worker.h"
#include "virtio/eventfd_ops.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tsbhyve {
namespace virtio {

namespace {
uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}
// The most one request is filled with: Linux asks for a page or less; a larger chain gets this much.
constexpr uint32_t kMaxPerRequest = 64 << 10;
}  // namespace

bool RndWorker::Start(std::string* err) {
  if (thread_.joinable()) return true;
  if (!q_.Attach(*cfg_.memory, cfg_.layout, cfg_.eventIdx, cfg_.indirect)) {
    *err = std::string("virtqueue: ") + ChainErrorName(q_.error());
    queueError_ = q_.error();
    return false;
  }
  stopFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stopFd_ < 0) {
    *err = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  tokens_ = double(cfg_.burstBytes);
  lastNs_ = NowNs();
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
  return true;
}

void RndWorker::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  SignalEventfd(stopFd_);
  thread_.join();
  close(stopFd_);
  stopFd_ = -1;
}

bool RndWorker::Throttle(uint64_t want) {
  for (;;) {
    const uint64_t now = NowNs();
    tokens_ = std::min(double(cfg_.burstBytes), tokens_ + double(now - lastNs_) * double(cfg_.bytesPerSecond) / 1e9);
    lastNs_ = now;
    if (tokens_ >= double(want)) {
      tokens_ -= double(want);
      return true;
    }
    const uint64_t waitNs = uint64_t((double(want) - tokens_) * 1e9 / double(cfg_.bytesPerSecond)) + 1;
    stats_->throttledNs.fetch_add(waitNs, std::memory_order_relaxed);
    pollfd p{stopFd_, POLLIN, 0};
    if (poll(&p, 1, int(std::min<uint64_t>(waitNs / 1000000 + 1, 1000))) > 0 || stopping_.load()) return false;
  }
}

void RndWorker::Run() {
  pollfd fds[2] = {{stopFd_, POLLIN, 0}, {cfg_.notifyFd, POLLIN, 0}};
  uint8_t buf[4096];
  for (;;) {
    Chain c;
    bool any = false;
    while (!stopping_.load(std::memory_order_relaxed) && q_.Pop(&c)) {
      uint32_t filled = 0;
      bool ok = !c.badAddress && !c.segments.empty();
      for (const Segment& s : c.segments) ok = ok && s.writable;
      if (!ok) {
        stats_->badChains.fetch_add(1, std::memory_order_relaxed);
      } else {
        uint64_t cap = 0;
        for (const Segment& s : c.segments) cap += s.len;
        const uint32_t want = uint32_t(std::min<uint64_t>(cap, kMaxPerRequest));
        if (want > 0 && !Throttle(want)) return;  // stopping: the chain stays with the device, as after a reset
        for (const Segment& s : c.segments) {
          uint32_t off = 0;
          while (off < s.len && filled < want) {
            size_t n = std::min<size_t>({sizeof buf, size_t(s.len - off), size_t(want - filled)});
            ssize_t got = getrandom(buf, n, 0);
            if (got <= 0) {
              if (got < 0 && errno == EINTR) continue;
              break;
            }
            std::memcpy(s.host + off, buf, size_t(got));
            off += uint32_t(got);
            filled += uint32_t(got);
          }
        }
        stats_->requests.fetch_add(1, std::memory_order_relaxed);
        stats_->bytes.fetch_add(filled, std::memory_order_relaxed);
      }
      q_.Push(c.head, filled);
      any = true;
    }
    if (any && q_.NeedInterrupt()) Interrupt();
    if (q_.error() != ChainError::kNone) {
      ChainError none = ChainError::kNone;
      if (queueError_.compare_exchange_strong(none, q_.error()) && cfg_.report) cfg_.report(2, 0);
      return;
    }
    if (stopping_.load()) return;
    if (q_.EnableNotifyAndCheck()) continue;
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[0].revents) return;
    if (fds[1].revents) DrainEventfd(cfg_.notifyFd);
  }
}

void RndWorker::Interrupt() {
  stats_->interrupts.fetch_add(1, std::memory_order_relaxed);
  if (cfg_.useIsr) isr_.fetch_or(1);
  if (cfg_.interruptFd >= 0) SignalEventfd(cfg_.interruptFd);
  else if (cfg_.report) cfg_.report(1, 0);
}

}  // namespace virtio
}  // namespace tsbhyve
