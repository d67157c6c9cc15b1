#pragma once
// virtio-blk request handling (virtio 1.2 §5.2.6): turns one descriptor chain into a typed request, runs it on
// the block backend and reports the status byte. Framing-agnostic (§2.6.4): the header, data and status are
// located by byte offsets in the chain's readable and writable parts, wherever the descriptors split them.
#include <cstdint>
#include <string>
#include <vector>

#include <sys/uio.h>

#include "block/block_file.h"
#include "virtio/split_queue.h"

namespace tsbhyve {
namespace virtio {

// §5.2.6 request types
constexpr uint32_t kBlkTIn = 0;
constexpr uint32_t kBlkTOut = 1;
constexpr uint32_t kBlkTFlush = 4;
constexpr uint32_t kBlkTGetId = 8;
constexpr uint32_t kBlkTDiscard = 11;
constexpr uint32_t kBlkTWriteZeroes = 13;
constexpr uint32_t kBlkTBarrier = 0x80000000u;  // legacy flag (§5.2.6.3), ignored as bhyve does
// §5.2.6 status values
constexpr uint8_t kBlkSOk = 0;
constexpr uint8_t kBlkSIoErr = 1;
constexpr uint8_t kBlkSUnsupp = 2;

constexpr uint32_t kSectorSize = 512;  // virtio-blk sectors are always 512 bytes (§5.2.6)
constexpr uint32_t kBlkIdBytes = 20;   // VIRTIO_BLK_ID_BYTES

// What the driver negotiated and the device offers, fixed while the queue runs.
struct BlkParams {
  bool discard = false;      // VIRTIO_BLK_F_DISCARD negotiated
  bool writeZeroes = false;  // VIRTIO_BLK_F_WRITE_ZEROES negotiated
  uint32_t maxDiscardSectors = 0;
  uint32_t maxDiscardSegments = 1;
  uint32_t maxWriteZeroesSectors = 0;
  uint32_t maxWriteZeroesSegments = 1;
  uint32_t maxSegments = 0;  // seg_max: data descriptors per request, 0 = unbounded (queue size applies)
  std::string id;            // GET_ID answer (at most 20 bytes)
};

// Named failures, each mapped to a status for the guest and counted for the operator.
enum class BlkError : int {
  kNone = 0,
  kBadAddress,          // a descriptor names memory that is not guest RAM
  kBadOrder,            // readable after writable
  kNoStatus,            // no writable byte for the status
  kShortHeader,         // fewer than 16 readable bytes
  kBadLength,           // data not a multiple of 512 bytes
  kSectorOutOfRange,
  kWrongDirection,      // data in the wrong part of the chain for the request type
  kTooManySegments,
  kReadOnly,
  kUnsupported,
  kBadDiscardSegment,   // flags or counts the device refuses
  kIo,                  // the backend failed
  kCount,
};
const char* BlkErrorName(BlkError e);

struct BlkOutcome {
  uint8_t status = kBlkSOk;
  BlkError error = BlkError::kNone;
  // bytes written into the chain (data + status), for the used ring; 0 when not even the status fit
  uint32_t written = 0;
};

// Executes the request in `chain` against `file`, synchronously.
BlkOutcome HandleBlkRequest(const Chain& chain, block::BlockFile& file, const BlkParams& p);

// The backend work a checked request still needs, for callers that run it asynchronously.
struct BlkIo {
  enum class Op : uint8_t { kNone, kRead, kWrite, kFlush };
  Op op = Op::kNone;
  std::vector<struct iovec> iov;  // guest buffers (host views of checked guest RAM)
  uint64_t offset = 0;            // byte offset in the backend
  uint64_t dataWritten = 0;       // bytes of the chain the success status reports as written
  uint8_t* status = nullptr;      // the status byte in guest RAM
};

// Parses and checks the request exactly as HandleBlkRequest does. Returns true when it is already finished
// (refused, GET_ID, discard and write-zeroes run here synchronously): *out holds the outcome and the status byte
// is written. Returns false when *io names a read, write or flush for the caller to run; the caller then passes
// its result to FinishBlkRequest, which writes the status byte.
bool PrepareBlkRequest(const Chain& chain, block::BlockFile& file, const BlkParams& p, BlkIo* io, BlkOutcome* out);
BlkOutcome FinishBlkRequest(const BlkIo& io, block::Errno result);

}  // namespace virtio
}  // namespace tsbhyve
