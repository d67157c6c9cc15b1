#include "vmm/ranges.h"

#include <algorithm>
#include <mutex>

namespace tsbhyve::vmm {

bool RangeTable::Add(uint64_t base, uint64_t len, RangeOwner owner) {
  if (len == 0 || base + len < base) return false;
  std::unique_lock<std::shared_mutex> lock(mu_);
  for (const auto& e : entries_) {
    if (base < e.base + e.len && e.base < base + len) return false;
  }
  entries_.push_back({base, len, std::move(owner)});
  std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) { return a.base < b.base; });
  return true;
}

bool RangeTable::Remove(uint64_t base) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  auto it = std::find_if(entries_.begin(), entries_.end(), [base](const Entry& e) { return e.base == base; });
  if (it == entries_.end()) return false;
  entries_.erase(it);
  return true;
}

bool RangeTable::Find(uint64_t addr, unsigned size, RangeOwner* out) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = std::upper_bound(entries_.begin(), entries_.end(), addr,
                             [](uint64_t a, const Entry& e) { return a < e.base; });
  if (it == entries_.begin()) return false;
  const Entry& e = *(it - 1);
  // Dispatch by the first byte, as bhyve's inout and mem tables do: a dword OUT to 0xCF8 belongs to the
  // 1-port config-address register even though it spans 0xCF9 (the reset register, another device).
  // Handlers check that the rest of the access fits their own registers.
  (void)size;
  const uint64_t off = addr - e.base;
  if (off >= e.len) return false;
  *out = e.owner;
  return true;
}

}  // namespace tsbhyve::vmm
