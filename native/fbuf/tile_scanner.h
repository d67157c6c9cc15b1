#pragma once
// Which tiles of a framebuffer changed since the last look: the VNC server's dirty scan. Each tile's rows are
// compared with a shadow copy of the previous frame (memcmp, then memcpy of a changed row): exact where a hash could
// miss a change, and about as fast, since both read the frame once. The framebuffer is the guest's: it may change
// while it is read; a tile changed mid-scan is either reported now or on the next scan.
#include <cstdint>
#include <vector>

namespace tsbhyve {
namespace fbuf {

class TileScanner {
 public:
  explicit TileScanner(uint32_t tileSize) : tile_(tileSize) {}
  // Scans width x height pixels of 4 bytes, `stride` bytes apart, at `pixels` (the caller checked the extent).
  // dirty gets one byte per tile, row-major: 1 where the tile changed (all 1 after a size change or Reset()).
  void Scan(const uint8_t* pixels, uint32_t width, uint32_t height, uint32_t stride, std::vector<uint8_t>* dirty);
  void Reset() { valid_ = false; }
  uint32_t cols() const { return cols_; }
  uint32_t rows() const { return rows_; }
  uint32_t tileSize() const { return tile_; }

 private:
  uint32_t tile_;
  uint32_t width_ = 0, height_ = 0, cols_ = 0, rows_ = 0;
  std::vector<uint8_t> shadow_;  // the previous frame, tightly packed (width * 4 bytes per row)
  bool valid_ = false;
};

}  // namespace fbuf
}  // namespace tsbhyve
