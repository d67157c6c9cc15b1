#include "nvme/prp.h"

#include <algorithm>
#include <cstring>

namespace tsbhyve {
namespace nvme {

namespace {
// Adds one checked guest range, merged with the previous one when they are adjacent in host memory.
Status AddRange(const GuestMemory& mem, uint64_t gpa, uint64_t n, bool toGuest, std::vector<struct iovec>* iov) {
  uint8_t* host = nullptr;
  if (mem.Translate(gpa, n, toGuest, &host) != MemError::kOk) return kScDataTransferError;
  if (!iov->empty()) {
    struct iovec& last = iov->back();
    if (static_cast<uint8_t*>(last.iov_base) + last.iov_len == host) {
      last.iov_len += size_t(n);
      return kScSuccess;
    }
  }
  iov->push_back({host, size_t(n)});
  return kScSuccess;
}
}  // namespace

Status PrpToIovecs(const GuestMemory& mem, uint64_t prp1, uint64_t prp2, uint64_t len, uint32_t pageSize, bool toGuest,
                   std::vector<struct iovec>* iov) {
  if (len == 0) return kScSuccess;
  const uint64_t mask = uint64_t(pageSize) - 1;
  if ((prp1 & 3) != 0) return kScPrpOffsetInvalid;
  const uint64_t first = std::min<uint64_t>(len, pageSize - (prp1 & mask));
  Status st = AddRange(mem, prp1, first, toGuest, iov);
  if (st != kScSuccess) return st;
  uint64_t left = len - first;
  if (left == 0) return kScSuccess;
  if (left <= pageSize) {
    // PRP2 is the second (and last) page.
    if ((prp2 & mask) != 0) return kScPrpOffsetInvalid;
    return AddRange(mem, prp2, left, toGuest, iov);
  }
  // PRP2 points into a list; the last entry of a list page chains to the next page when more follow.
  if ((prp2 & 7) != 0) return kScPrpOffsetInvalid;
  uint64_t entryAt = prp2;
  while (left > 0) {
    const uint64_t slotsLeftInPage = (pageSize - (entryAt & mask)) / 8;
    const uint64_t pagesLeft = (left + mask) / pageSize;
    uint64_t take = std::min(slotsLeftInPage, pagesLeft);
    const bool chain = pagesLeft > slotsLeftInPage;
    if (chain) take = slotsLeftInPage - 1;  // the page's last slot holds the next list pointer
    uint8_t* list = nullptr;
    const uint64_t listBytes = (take + (chain ? 1 : 0)) * 8;
    if (mem.Translate(entryAt, listBytes, false, &list) != MemError::kOk) return kScDataTransferError;
    for (uint64_t i = 0; i < take; i++) {
      uint64_t e;
      std::memcpy(&e, list + i * 8, 8);
      if ((e & mask) != 0) return kScPrpOffsetInvalid;
      const uint64_t n = std::min<uint64_t>(left, pageSize);
      st = AddRange(mem, e, n, toGuest, iov);
      if (st != kScSuccess) return st;
      left -= n;
    }
    if (chain) {
      uint64_t next;
      std::memcpy(&next, list + take * 8, 8);
      if ((next & 7) != 0) return kScPrpOffsetInvalid;
      // A list that chains to itself would never end; it cannot, since each page consumes data.
      entryAt = next;
    }
  }
  return kScSuccess;
}

Status PrpCopy(const GuestMemory& mem, uint64_t prp1, uint64_t prp2, uint8_t* buf, uint64_t len, uint32_t pageSize,
               bool toGuest) {
  std::vector<struct iovec> iov;
  Status st = PrpToIovecs(mem, prp1, prp2, len, pageSize, toGuest, &iov);
  if (st != kScSuccess) return st;
  for (const struct iovec& v : iov) {
    if (toGuest) std::memcpy(v.iov_base, buf, v.iov_len);
    else std::memcpy(buf, v.iov_base, v.iov_len);
    buf += v.iov_len;
  }
  return kScSuccess;
}

}  // namespace nvme
}  // namespace tsbhyve
