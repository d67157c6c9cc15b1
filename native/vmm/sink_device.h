#pragma once
// The simplest native device: counts accesses, reads return zero. Used by tests and bench/exits to
// measure an exit that never leaves the vCPU thread.
#include <atomic>

#include "vmm/ranges.h"

namespace tsbhyve::vmm {

class SinkDevice : public NativeDevice {
 public:
  void Access(int, uint64_t, unsigned, bool write, uint64_t* value) override {
    if (write) {
      writes_.fetch_add(1, std::memory_order_relaxed);
      last_.store(*value, std::memory_order_relaxed);
    } else {
      reads_.fetch_add(1, std::memory_order_relaxed);
      *value = 0;
    }
  }
  uint64_t writes() const { return writes_.load(); }
  uint64_t reads() const { return reads_.load(); }
  uint64_t last() const { return last_.load(); }

 private:
  std::atomic<uint64_t> writes_{0}, reads_{0}, last_{0};
};

}  // namespace tsbhyve::vmm
