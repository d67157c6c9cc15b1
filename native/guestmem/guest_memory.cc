#include "guestmem/guest_memory.h"

#include <algorithm>
#include <cstring>

namespace tsbhyve {

const char* MemErrorName(MemError e) {
  switch (e) {
    case MemError::kOk: return "ok";
    case MemError::kOutOfRange: return "out of range";
    case MemError::kOverflow: return "address overflow";
    case MemError::kReadOnly: return "read-only";
  }
  return "unknown";
}

bool GuestMemory::AddRegion(const GuestRegion& r) {
  if (r.size == 0 || r.gpa + r.size < r.gpa) return false;
  auto cur = Snapshot();
  for (const auto& e : cur->regions) {
    // Half-open ranges overlap when each starts before the other ends.
    if (r.gpa < e.gpa + e.size && e.gpa < r.gpa + r.size) return false;
  }
  auto next = std::make_shared<GuestMap>(*cur);
  next->regions.push_back(r);
  std::sort(next->regions.begin(), next->regions.end(),
            [](const GuestRegion& a, const GuestRegion& b) { return a.gpa < b.gpa; });
  std::atomic_store(&map_, std::shared_ptr<const GuestMap>(std::move(next)));
  return true;
}

bool GuestMemory::RemoveRegion(uint64_t gpa) {
  auto cur = Snapshot();
  auto next = std::make_shared<GuestMap>(*cur);
  auto it = std::find_if(next->regions.begin(), next->regions.end(),
                         [gpa](const GuestRegion& r) { return r.gpa == gpa; });
  if (it == next->regions.end()) return false;
  next->regions.erase(it);
  std::atomic_store(&map_, std::shared_ptr<const GuestMap>(std::move(next)));
  return true;
}

MemError GuestMemory::Check(const GuestMap& m, uint64_t gpa, uint64_t len, bool write, bool ramOnly,
                            const GuestRegion** region) const {
  if (len > UINT64_MAX - gpa) return MemError::kOverflow;
  // Find the last region starting at or below gpa.
  auto it = std::upper_bound(m.regions.begin(), m.regions.end(), gpa,
                             [](uint64_t a, const GuestRegion& r) { return a < r.gpa; });
  if (it == m.regions.begin()) return MemError::kOutOfRange;
  const GuestRegion& r = *(it - 1);
  const uint64_t off = gpa - r.gpa;
  // off <= size and len <= size - off, written so that nothing can wrap.
  if (off > r.size || len > r.size - off) return MemError::kOutOfRange;
  if (ramOnly && r.kind != RegionKind::kRam) return MemError::kOutOfRange;
  if (write && !r.writable) return MemError::kReadOnly;
  *region = &r;
  return MemError::kOk;
}

MemError GuestMemory::Translate(uint64_t gpa, uint64_t len, bool write, uint8_t** host) const {
  auto m = Snapshot();
  const GuestRegion* r = nullptr;
  MemError e = Check(*m, gpa, len, write, true, &r);
  if (e == MemError::kOk) *host = r->host + (gpa - r->gpa);
  return e;
}

MemError GuestMemory::TranslateAny(uint64_t gpa, uint64_t len, bool write, uint8_t** host) const {
  auto m = Snapshot();
  const GuestRegion* r = nullptr;
  MemError e = Check(*m, gpa, len, write, false, &r);
  if (e == MemError::kOk) *host = r->host + (gpa - r->gpa);
  return e;
}

// Walks a range over consecutive RAM regions; calls fn(host, offsetInRange, n) only after the whole range
// was validated, so a failed copy leaves the destination untouched.
template <typename Fn>
static MemError Walk(const GuestMap& m, uint64_t gpa, uint64_t len, bool write, Fn fn) {
  if (len > UINT64_MAX - gpa) return MemError::kOverflow;
  for (int pass = 0; pass < 2; pass++) {
    uint64_t at = gpa, left = len, done = 0;
    while (left > 0) {
      auto it = std::upper_bound(m.regions.begin(), m.regions.end(), at,
                                 [](uint64_t a, const GuestRegion& r) { return a < r.gpa; });
      if (it == m.regions.begin()) return MemError::kOutOfRange;
      const GuestRegion& r = *(it - 1);
      const uint64_t off = at - r.gpa;
      if (off >= r.size || r.kind != RegionKind::kRam) return MemError::kOutOfRange;
      if (write && !r.writable) return MemError::kReadOnly;
      const uint64_t n = std::min(left, r.size - off);
      if (pass == 1) fn(r.host + off, done, n);
      at += n;
      left -= n;
      done += n;
    }
  }
  return MemError::kOk;
}

MemError GuestMemory::Read(uint64_t gpa, void* dst, uint64_t len) const {
  auto m = Snapshot();
  return Walk(*m, gpa, len, false, [dst](uint8_t* h, uint64_t at, uint64_t n) {
    std::memmove(static_cast<uint8_t*>(dst) + at, h, n);  // dst may itself be a view of guest RAM
  });
}

MemError GuestMemory::Write(uint64_t gpa, const void* src, uint64_t len) const {
  auto m = Snapshot();
  return Walk(*m, gpa, len, true, [src](uint8_t* h, uint64_t at, uint64_t n) {
    std::memmove(h, static_cast<const uint8_t*>(src) + at, n);
  });
}

}  // namespace tsbhyve
