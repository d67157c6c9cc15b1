#pragma once
// The one checked path from a guest-physical range to host memory. Every native data path (virtio, NVMe,
// AHCI, framebuffer) and the TypeScript views go through GuestMemory: a (gpa, len) pair is accepted only
// when it lies entirely inside one mapped region, computed without overflow. A failure is a value the
// caller turns into the device's error status; nothing here can fault on guest-supplied input.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tsbhyve {

enum class MemError : int {
  kOk = 0,
  kOutOfRange = 1,  // some byte of the range is not guest RAM (hole, MMIO, past the end)
  kOverflow = 2,    // gpa + len wraps around 2^64
  kReadOnly = 3,    // a write to a region the guest cannot write (boot ROM)
};

const char* MemErrorName(MemError e);

enum class RegionKind : int { kRam = 0, kRom = 1, kDevice = 2 };

struct GuestRegion {
  uint64_t gpa = 0;
  uint64_t size = 0;
  uint8_t* host = nullptr;
  RegionKind kind = RegionKind::kRam;
  bool writable = true;
};

// An immutable snapshot of the map; replaced as a whole when a segment is mapped or unmapped, so readers
// on other threads never see a half-updated table.
struct GuestMap {
  std::vector<GuestRegion> regions;  // sorted by gpa, non-overlapping
};

class GuestMemory {
 public:
  // Installs a region; fails (returns false) when it overlaps an existing one or wraps.
  bool AddRegion(const GuestRegion& r);
  // Removes the region starting exactly at gpa; returns false when there is none.
  bool RemoveRegion(uint64_t gpa);

  // Host pointer for [gpa, gpa + len) when that range is inside one RAM region (and writable when
  // `write`). len == 0 is accepted for any gpa inside or at the end of a region.
  MemError Translate(uint64_t gpa, uint64_t len, bool write, uint8_t** host) const;
  // Same, but also accepts ROM and device regions (used by views of segments and by the loader).
  MemError TranslateAny(uint64_t gpa, uint64_t len, bool write, uint8_t** host) const;

  // Copies that may span adjacent RAM regions; they touch nothing unless the whole range is valid.
  MemError Read(uint64_t gpa, void* dst, uint64_t len) const;
  MemError Write(uint64_t gpa, const void* src, uint64_t len) const;

  std::shared_ptr<const GuestMap> Snapshot() const { return std::atomic_load(&map_); }

 private:
  MemError Check(const GuestMap& m, uint64_t gpa, uint64_t len, bool write, bool ramOnly,
                 const GuestRegion** region) const;
  std::shared_ptr<const GuestMap> map_ = std::make_shared<GuestMap>();
};

}  // namespace tsbhyve
