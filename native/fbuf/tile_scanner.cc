#include "fbuf/tile_scanner.h"

#include <algorithm>
#include <cstring>

namespace tsbhyve {
namespace fbuf {

void TileScanner::Scan(const uint8_t* pixels, uint32_t width, uint32_t height, uint32_t stride, std::vector<uint8_t>* dirty) {
  if (width != width_ || height != height_) {
    width_ = width;
    height_ = height;
    cols_ = (width + tile_ - 1) / tile_;
    rows_ = (height + tile_ - 1) / tile_;
    shadow_.assign(size_t(width) * height * 4, 0);
    valid_ = false;
  }
  dirty->assign(size_t(cols_) * rows_, valid_ ? 0 : 1);
  const size_t rowBytes = size_t(width) * 4;
  for (uint32_t y = 0; y < height; y++) {
    const uint8_t* src = pixels + size_t(y) * stride;
    uint8_t* old = shadow_.data() + size_t(y) * rowBytes;
    uint8_t* mark = dirty->data() + size_t(y / tile_) * cols_;
    if (!valid_) {
      std::memcpy(old, src, rowBytes);
      continue;
    }
    // Most rows are unchanged: one memcmp of the whole row settles them.
    if (std::memcmp(old, src, rowBytes) == 0) continue;
    for (uint32_t c = 0; c < cols_; c++) {
      const size_t off = size_t(c) * tile_ * 4;
      const size_t len = std::min<size_t>(size_t(tile_) * 4, rowBytes - off);
      if (std::memcmp(old + off, src + off, len) != 0) {
        mark[c] = 1;
        std::memcpy(old + off, src + off, len);
      }
    }
  }
  valid_ = true;
}

}  // namespace fbuf
}  // namespace tsbhyve
