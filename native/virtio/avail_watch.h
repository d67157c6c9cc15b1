#pragma once
// The idle watch a queue worker keeps on a split queue's avail ring before it asks the driver for a kick.
//
// Each kick is a VM exit. A driver that adds its next chain within microseconds of the last completion (a
// polling benchmark, a transmit loop refilling its ring) need not kick at all if the worker looks at the ring a
// little longer, with kicks still suppressed. When the driver's vCPU shares the worker's CPU the watch only delays
// it, so after a watch that finds nothing the worker stops watching for 16 kicks, doubling with each fruitless
// watch in a row up to 1024: one wasted watch in many kicks at most.
#include "virtio/split_queue.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>

namespace tsbhyve {
namespace virtio {

// The watch length a worker uses: 32 us unless the environment variable `name` gives 0..1000 (a tuning knob for
// hosts without a spare CPU; 0 turns watching off).
inline unsigned WatchMicrosFromEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return 32;
  char* end = nullptr;
  unsigned long n = std::strtoul(v, &end, 10);
  return (end != nullptr && *end == '\0' && n <= 1000) ? unsigned(n) : 32;
}

class AvailWatch {
 public:
  // micros: the longest watch; 0 turns watching off.
  void Configure(unsigned micros) {
    budgetNs_ = uint64_t(micros) * 1000;
    ns_ = budgetNs_;
    cooldown_ = 0;
    misses_ = 0;
  }

  // A kick arrived: one step nearer to watching again after a fruitless watch.
  void OnKick() {
    if (ns_ == 0 && cooldown_ > 0 && --cooldown_ == 0) ns_ = budgetNs_;
  }

  // Watches q's avail ring with kicks suppressed; true as soon as the driver made a chain available, false when
  // the watch ran out (or is cooling down, or stop became true). The caller then enables kicks and looks again.
  bool Watch(SplitQueue& q, const std::atomic<bool>& stop) {
    if (ns_ == 0) return false;
    q.DisableNotify();
    const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns_);
    unsigned spins = 0;
    for (;;) {
      if (q.HasAvail()) {
        misses_ = 0;
        return true;
      }
      if (stop.load(std::memory_order_relaxed)) return false;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      if ((++spins & 63) == 0 && std::chrono::steady_clock::now() >= until) break;
    }
    ns_ = 0;
    cooldown_ = 16u << (misses_ < 6 ? misses_ : 6);
    if (misses_ < 6) misses_++;
    return false;
  }

 private:
  uint64_t budgetNs_ = 0;
  uint64_t ns_ = 0;        // current watch length, 0 while cooling down
  unsigned cooldown_ = 0;  // kicks before watching again
  unsigned misses_ = 0;    // fruitless watches in a row
};

}  // namespace virtio
}  // namespace tsbhyve
