#pragma once
// The table of port and MMIO ranges with their owners, consulted by vCPU threads on every exit.
// A native owner (NativeDevice) is called in place on the vCPU thread; a TypeScript owner is identified
// by the number the TS side registered and is reached through the exit channel.
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <vector>

namespace tsbhyve::vmm {

// A device model implemented in C++ (virtqueue notify, doorbells, test sinks). Called concurrently from
// vCPU threads; `value` holds the written value or receives the read value (size 1, 2, 4 or 8 bytes).
class NativeDevice {
 public:
  virtual ~NativeDevice() = default;
  virtual void Access(int vcpu, uint64_t addr, unsigned size, bool write, uint64_t* value) = 0;
};

struct RangeOwner {
  std::shared_ptr<NativeDevice> native;  // set for native owners
  uint32_t jsId = 0;                     // otherwise the TS handler number
};

class RangeTable {
 public:
  // Fails when [base, base + len) is empty, wraps, or overlaps an existing range.
  bool Add(uint64_t base, uint64_t len, RangeOwner owner);
  bool Remove(uint64_t base);
  // The owner of a range containing all of [addr, addr + size), if any.
  bool Find(uint64_t addr, unsigned size, RangeOwner* out) const;

 private:
  struct Entry { uint64_t base, len; RangeOwner owner; };
  mutable std::shared_mutex mu_;
  std::vector<Entry> entries_;  // sorted by base
};

}  // namespace tsbhyve::vmm
