#pragma once
// The virtio entropy device's data path (virtio 1.2 §5.4): a thread that sleeps on the request queue's notification
// eventfd, fills each device-writable chain from the host's getrandom(2) and returns it, at no more than a set byte
// rate (a token bucket), so a guest that keeps asking cannot keep a host core busy.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "guestmem/guest_memory.h"
#include "virtio/split_queue.h"

namespace tsbhyve {
namespace virtio {

struct RndWorkerConfig {
  std::shared_ptr<const GuestMemory> memory;
  QueueLayout layout;
  bool eventIdx = false;
  bool indirect = false;
  bool useIsr = false;
  int notifyFd = -1;     // not owned
  int interruptFd = -1;  // not owned; -1: report(kind 1)
  uint64_t bytesPerSecond = 1 << 20;  // sustained rate
  uint64_t burstBytes = 64 << 10;     // what may go at once after a quiet spell
  std::function<void(int, uint32_t)> report;  // (1, 0): interrupt; (2, 0): the queue is broken
};

struct RndWorkerStats {
  std::atomic<uint64_t> requests{0}, bytes{0}, badChains{0}, interrupts{0}, throttledNs{0};
};

class RndWorker {
 public:
  RndWorker(RndWorkerConfig cfg, RndWorkerStats* stats) : cfg_(std::move(cfg)), stats_(stats) {}
  ~RndWorker() { Stop(); }
  RndWorker(const RndWorker&) = delete;
  RndWorker& operator=(const RndWorker&) = delete;
  bool Start(std::string* err);
  void Stop();
  uint32_t TakeIsr() { return isr_.exchange(0); }
  ChainError queueError() const { return queueError_.load(); }

 private:
  void Run();
  // Waits until `want` bytes of budget exist (or stop); false when stopping.
  bool Throttle(uint64_t want);
  void Interrupt();

  RndWorkerConfig cfg_;
  RndWorkerStats* stats_;
  SplitQueue q_;
  std::thread thread_;
  int stopFd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> isr_{0};
  std::atomic<ChainError> queueError_{ChainError::kNone};
  double tokens_ = 0;
  uint64_t lastNs_ = 0;
};

}  // namespace virtio
}  // namespace tsbhyve
