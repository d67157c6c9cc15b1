#include "virtio/blk_request.h"

#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace tsbhyve {
namespace virtio {

const char* BlkErrorName(BlkError e) {
  switch (e) {
    case BlkError::kNone: return "none";
    case BlkError::kBadAddress: return "descriptor address outside guest RAM";
    case BlkError::kBadOrder: return "readable descriptor after a writable one";
    case BlkError::kNoStatus: return "no writable status byte";
    case BlkError::kShortHeader: return "request header shorter than 16 bytes";
    case BlkError::kBadLength: return "data length not a multiple of 512";
    case BlkError::kSectorOutOfRange: return "sector out of range";
    case BlkError::kWrongDirection: return "data descriptors in the wrong direction";
    case BlkError::kTooManySegments: return "more data segments than seg_max";
    case BlkError::kReadOnly: return "write to a read-only disk";
    case BlkError::kUnsupported: return "unsupported request type";
    case BlkError::kBadDiscardSegment: return "bad discard/write-zeroes segment";
    case BlkError::kIo: return "backend I/O error";
    case BlkError::kCount: break;
  }
  return "unknown";
}

namespace {

// The readable or writable part of a chain as one byte sequence. It walks the chain's own segment list (no copy,
// no allocation: this runs for every request).
class Part {
 public:
  Part(const std::vector<Segment>& segs, bool writable) : segs_(segs), writable_(writable) {
    // At most 2^15 * 2 descriptors of < 2^32 bytes: no overflow in 64 bits.
    for (const Segment& s : segs_)
      if (s.writable == writable_) total_ += s.len;
  }
  uint64_t total() const { return total_; }

  // Calls fn(host, n) for each piece of [off, off+len), in order; false when the range is outside the part or
  // touches a segment outside guest RAM (fn may have seen the pieces before that one).
  template <typename Fn>
  bool ForEach(uint64_t off, uint64_t len, Fn fn) const {
    if (off > total_ || len > total_ - off) return false;
    uint64_t at = 0;
    for (const Segment& s : segs_) {
      if (len == 0) break;
      if (s.writable != writable_ || s.len == 0) continue;
      const uint64_t end = at + s.len;
      if (off < end) {
        const uint64_t in = off - at;
        const uint64_t n = std::min<uint64_t>(s.len - in, len);
        if (s.host == nullptr) return false;
        fn(s.host + in, n);
        off += n;
        len -= n;
      }
      at = end;
    }
    return len == 0;
  }

  // iovecs covering [off, off+len) (out is cleared first).
  bool Slice(uint64_t off, uint64_t len, std::vector<struct iovec>* out) const {
    out->clear();
    return ForEach(off, len, [out](uint8_t* h, uint64_t n) { out->push_back({h, size_t(n)}); });
  }

  bool Copy(uint64_t off, void* dst, uint64_t len) const {
    uint8_t* d = static_cast<uint8_t*>(dst);
    return ForEach(off, len, [&d](uint8_t* h, uint64_t n) {
      std::memcpy(d, h, n);
      d += n;
    });
  }

  // The host address of byte `off`, or nullptr.
  uint8_t* At(uint64_t off) const {
    uint8_t* p = nullptr;
    return ForEach(off, 1, [&p](uint8_t* h, uint64_t) { p = h; }) ? p : nullptr;
  }

 private:
  const std::vector<Segment>& segs_;
  const bool writable_;
  uint64_t total_ = 0;
};

struct Header {
  uint32_t type;
  uint32_t ioprio;
  uint64_t sector;
};
static_assert(sizeof(Header) == 16, "virtio_blk_outhdr is 16 bytes");

// §5.2.6: struct virtio_blk_discard_write_zeroes
struct RangeSegment {
  uint64_t sector;
  uint32_t numSectors;
  uint32_t flags;
};
static_assert(sizeof(RangeSegment) == 16, "virtio_blk_discard_write_zeroes is 16 bytes");
constexpr uint32_t kRangeUnmap = 1;

// sector * 512 + bytes within a disk of `size` bytes, without overflow.
bool InRange(uint64_t sector, uint64_t bytes, uint64_t size) {
  if (sector > size / kSectorSize) return false;
  const uint64_t off = sector * kSectorSize;
  return bytes <= size - off;
}

}  // namespace

BlkOutcome HandleBlkRequest(const Chain& chain, block::BlockFile& file, const BlkParams& p) {
  BlkIo io;
  BlkOutcome out;
  if (PrepareBlkRequest(chain, file, p, &io, &out)) return out;
  block::Errno e = 0;
  switch (io.op) {
    case BlkIo::Op::kRead: e = file.Readv(io.iov.data(), int(io.iov.size()), io.offset); break;
    case BlkIo::Op::kWrite: e = file.Writev(io.iov.data(), int(io.iov.size()), io.offset); break;
    case BlkIo::Op::kFlush: e = file.Flush(); break;
    case BlkIo::Op::kNone: break;
  }
  return FinishBlkRequest(io, e);
}

BlkOutcome FinishBlkRequest(const BlkIo& io, block::Errno result) {
  BlkOutcome out;
  out.status = result == 0 ? kBlkSOk : kBlkSIoErr;
  out.error = result == 0 ? BlkError::kNone : BlkError::kIo;
  *io.status = out.status;
  out.written = uint32_t((result == 0 ? io.dataWritten : 0) + 1);
  return out;
}

bool PrepareBlkRequest(const Chain& chain, block::BlockFile& file, const BlkParams& p, BlkIo* io, BlkOutcome* outp) {
  BlkOutcome& out = *outp;
  out = BlkOutcome();
  io->op = BlkIo::Op::kNone;
  io->status = nullptr;
  const Part rd(chain.segments, false), wr(chain.segments, true);

  // The status byte is the last byte of the writable part (§5.2.6: `u8 status` ends the request).
  uint8_t* status = wr.total() >= 1 ? wr.At(wr.total() - 1) : nullptr;
  auto finish = [&](uint8_t st, BlkError err, uint64_t dataWritten) {
    out.status = st;
    out.error = err;
    if (status == nullptr) {
      out.written = 0;
      if (out.error == BlkError::kNone) out.error = BlkError::kNoStatus;
      return true;
    }
    *status = st;
    out.written = uint32_t(dataWritten + 1);
    return true;
  };
  std::vector<struct iovec> iov;
  iov.swap(io->iov);  // reuse the storage of the caller's vector
  iov.clear();
  // Hands a checked transfer or flush to the caller.
  auto pending = [&](BlkIo::Op op, uint64_t offset, uint64_t dataWritten) {
    io->op = op;
    io->iov.swap(iov);
    io->offset = offset;
    io->dataWritten = dataWritten;
    io->status = status;
    return false;
  };
  if (status == nullptr) return finish(kBlkSIoErr, BlkError::kNoStatus, 0);
  if (chain.badOrder) return finish(kBlkSIoErr, BlkError::kBadOrder, 0);

  Header h;
  if (rd.total() < sizeof h) return finish(kBlkSIoErr, BlkError::kShortHeader, 0);
  if (!rd.Copy(0, &h, sizeof h)) return finish(kBlkSIoErr, BlkError::kBadAddress, 0);
  const uint32_t type = h.type & ~kBlkTBarrier;
  const uint64_t dataIn = rd.total() - sizeof h;  // bytes the driver supplies after the header
  const uint64_t dataOut = wr.total() - 1;       // room the driver left before the status byte

  switch (type) {
    case kBlkTIn: {
      if (dataIn != 0) return finish(kBlkSIoErr, BlkError::kWrongDirection, 0);
      if (dataOut % kSectorSize != 0) return finish(kBlkSIoErr, BlkError::kBadLength, 0);
      if (!InRange(h.sector, dataOut, file.size())) return finish(kBlkSIoErr, BlkError::kSectorOutOfRange, 0);
      if (!wr.Slice(0, dataOut, &iov)) return finish(kBlkSIoErr, BlkError::kBadAddress, 0);
      if (p.maxSegments != 0 && iov.size() > p.maxSegments) return finish(kBlkSIoErr, BlkError::kTooManySegments, 0);
      return pending(BlkIo::Op::kRead, h.sector * kSectorSize, dataOut);
    }
    case kBlkTOut: {
      if (dataOut != 0) return finish(kBlkSIoErr, BlkError::kWrongDirection, 0);
      if (file.readOnly()) return finish(kBlkSIoErr, BlkError::kReadOnly, 0);
      if (dataIn % kSectorSize != 0) return finish(kBlkSIoErr, BlkError::kBadLength, 0);
      if (!InRange(h.sector, dataIn, file.size())) return finish(kBlkSIoErr, BlkError::kSectorOutOfRange, 0);
      if (!rd.Slice(sizeof h, dataIn, &iov)) return finish(kBlkSIoErr, BlkError::kBadAddress, 0);
      if (p.maxSegments != 0 && iov.size() > p.maxSegments) return finish(kBlkSIoErr, BlkError::kTooManySegments, 0);
      return pending(BlkIo::Op::kWrite, h.sector * kSectorSize, 0);
    }
    case kBlkTFlush:
      return pending(BlkIo::Op::kFlush, 0, 0);
    case kBlkTGetId: {
      // The ID fills up to 20 bytes, NUL-padded, of whatever room the driver gave (§5.2.6).
      const uint64_t n = std::min<uint64_t>(dataOut, kBlkIdBytes);
      // Sliced first (into the caller's reused vector), so a bad segment leaves guest memory untouched.
      if (!wr.Slice(0, n, &iov)) return finish(kBlkSIoErr, BlkError::kBadAddress, 0);
      uint8_t idbuf[kBlkIdBytes] = {};
      std::memcpy(idbuf, p.id.data(), std::min<size_t>(p.id.size(), kBlkIdBytes));
      uint64_t at = 0;
      for (const auto& e : iov) {
        std::memcpy(e.iov_base, idbuf + at, e.iov_len);
        at += e.iov_len;
      }
      return finish(kBlkSOk, BlkError::kNone, n);
    }
    case kBlkTDiscard:
    case kBlkTWriteZeroes: {
      const bool discard = type == kBlkTDiscard;
      if (discard ? !p.discard : !p.writeZeroes) return finish(kBlkSUnsupp, BlkError::kUnsupported, 0);
      if (file.readOnly()) return finish(kBlkSIoErr, BlkError::kReadOnly, 0);
      if (dataOut != 0) return finish(kBlkSIoErr, BlkError::kWrongDirection, 0);
      if (dataIn == 0 || dataIn % sizeof(RangeSegment) != 0) return finish(kBlkSIoErr, BlkError::kBadDiscardSegment, 0);
      const uint64_t nseg = dataIn / sizeof(RangeSegment);
      const uint32_t maxSeg = discard ? p.maxDiscardSegments : p.maxWriteZeroesSegments;
      const uint32_t maxSectors = discard ? p.maxDiscardSectors : p.maxWriteZeroesSectors;
      if (nseg > maxSeg) return finish(kBlkSUnsupp, BlkError::kBadDiscardSegment, 0);
      for (uint64_t i = 0; i < nseg; i++) {
        RangeSegment r;
        if (!rd.Copy(sizeof h + i * sizeof r, &r, sizeof r)) return finish(kBlkSIoErr, BlkError::kBadAddress, 0);
        // §5.2.6.2: unmap is meaningless for discard, and unknown flag bits are refused.
        if ((r.flags & ~kRangeUnmap) != 0 || (discard && (r.flags & kRangeUnmap) != 0))
          return finish(kBlkSUnsupp, BlkError::kBadDiscardSegment, 0);
        if (r.numSectors > maxSectors) return finish(kBlkSIoErr, BlkError::kBadDiscardSegment, 0);
        const uint64_t bytes = uint64_t(r.numSectors) * kSectorSize;
        if (!InRange(r.sector, bytes, file.size())) return finish(kBlkSIoErr, BlkError::kSectorOutOfRange, 0);
        const block::Errno e = discard ? file.Discard(r.sector * kSectorSize, bytes)
                                       : file.WriteZeroes(r.sector * kSectorSize, bytes, (r.flags & kRangeUnmap) != 0);
        if (e != 0) return finish(kBlkSIoErr, BlkError::kIo, 0);
      }
      return finish(kBlkSOk, BlkError::kNone, 0);
    }
    default:
      return finish(kBlkSUnsupp, BlkError::kUnsupported, 0);
  }
}

}  // namespace virtio
}  // namespace tsbhyve
