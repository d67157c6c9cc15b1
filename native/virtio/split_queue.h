#pragma once
// One split virtqueue (virtio 1.2 §2.7) as the device side sees it, in the legacy layout bhyve uses: the
// descriptor table, available ring and used ring laid out contiguously from the queue's page frame with the
// used ring aligned to 4096 bytes (§2.7.2, legacy interfaces §4.1.5.1.4.1). Everything the guest writes is
// read once into local copies and checked; the device never trusts an index, length or address.
#include <cstdint>
#include <vector>

#include "guestmem/guest_memory.h"

namespace tsbhyve {
namespace virtio {

// §2.7.5 descriptor flags
constexpr uint16_t kDescNext = 1;
constexpr uint16_t kDescWrite = 2;
constexpr uint16_t kDescIndirect = 4;
// §2.7.6 / §2.7.8 ring flags
constexpr uint16_t kAvailNoInterrupt = 1;
constexpr uint16_t kUsedNoNotify = 1;
constexpr uint64_t kLegacyQueueAlign = 4096;
constexpr uint16_t kMaxQueueSize = 32768;  // §2.7: queue sizes are powers of two up to 32768

// The three areas of a queue in guest-physical memory.
struct QueueLayout {
  uint16_t size = 0;
  uint64_t desc = 0;
  uint64_t avail = 0;
  uint64_t used = 0;
  // The legacy layout from a page frame number (VIRTIO_PCI_QUEUE_PFN << 12).
  static QueueLayout Legacy(uint64_t pfn, uint16_t size);
};

// One piece of a descriptor chain, translated: a host pointer valid for `len` bytes of guest RAM, or
// host == nullptr when the guest named memory that is not RAM (the request then fails, the chain survives).
struct Segment {
  uint8_t* host = nullptr;
  uint32_t len = 0;
  bool writable = false;
};

// Why a chain could not be walked. These are driver bugs or attacks that leave the queue in an unknown state,
// so the device stops using the queue and asks for a reset (§2.1.2 DEVICE_NEEDS_RESET).
enum class ChainError : int {
  kNone = 0,
  kHeadOutOfRange,      // an avail ring entry >= queue size
  kNextOutOfRange,      // a next field >= table size
  kTooLong,             // more descriptors than the table holds: a loop (§2.7.5.3.1)
  kNestedIndirect,      // an indirect descriptor inside an indirect table (§2.7.5.3.1)
  kIndirectWithNext,    // INDIRECT and NEXT together (§2.7.5.3.1)
  kIndirectBadLength,   // table length 0, not a multiple of 16, or above the queue's limit
  kIndirectNotRam,      // the table itself is not in guest RAM
  kIndirectNotNegotiated,
  kAvailIndexJump,      // avail idx moved by more than the queue size (§2.7.6)
  kRingNotRam,          // the rings are not in guest RAM
};
const char* ChainErrorName(ChainError e);

struct Chain {
  uint16_t head = 0;
  std::vector<Segment> segments;
  // Set when some segment addressed memory outside RAM (or its gpa+len overflowed).
  bool badAddress = false;
  // Set when a readable descriptor follows a writable one (§2.7.4.2: driver MUST NOT).
  bool badOrder = false;
};

class SplitQueue {
 public:
  // Translates the three areas once; false (and error() set) when any of them is not in RAM.
  bool Attach(const GuestMemory& mem, const QueueLayout& layout, bool eventIdx, bool indirect);

  // Takes the next available chain. Returns false when there is none or the queue failed (error() != kNone).
  bool Pop(Chain* out);
  // Returns a chain to the driver with `written` bytes written into its writable part (§2.7.8).
  void Push(uint16_t head, uint32_t written);
  // Whether the driver wants an interrupt for what was pushed since the last call (§2.7.7.2 / §2.7.10).
  bool NeedInterrupt();
  // With EVENT_IDX: asks for a notification at the next avail index, then reports whether more arrived
  // meanwhile (so the caller loops instead of sleeping on a lost kick).
  bool EnableNotifyAndCheck();
  // Asks the driver not to kick while the device will look at the ring anyway (it is polling, or requests are
  // in flight whose completions wake it): VIRTQ_USED_F_NO_NOTIFY without EVENT_IDX; with EVENT_IDX the
  // avail_event left behind already does it (the driver kicks at most once). EnableNotifyAndCheck undoes it.
  void DisableNotify();
  // Whether the driver made more chains available (a cheap look, for polling).
  bool HasAvail() const { return error_ == ChainError::kNone && LoadAvailIdx() != lastAvail_; }

  ChainError error() const { return error_; }
  uint16_t size() const { return layout_.size; }
  uint16_t lastAvail() const { return lastAvail_; }
  uint16_t usedIdx() const { return usedIdx_; }

 private:
  bool Walk(uint16_t head, Chain* out);
  bool Fail(ChainError e) {
    error_ = e;
    return false;
  }
  uint16_t LoadAvailIdx() const;

  const GuestMemory* mem_ = nullptr;
  QueueLayout layout_;
  bool eventIdx_ = false;
  bool indirect_ = false;
  // Host views of the rings; each was checked to lie inside one RAM region (RAM is never unmapped).
  uint8_t* desc_ = nullptr;
  uint8_t* avail_ = nullptr;
  uint8_t* used_ = nullptr;
  uint16_t lastAvail_ = 0;
  uint16_t usedIdx_ = 0;
  uint16_t signalledUsed_ = 0;  // used idx at the last NeedInterrupt() decision
  bool noNotify_ = false;       // VIRTQ_USED_F_NO_NOTIFY is set in the used ring flags
  ChainError error_ = ChainError::kNone;
};

}  // namespace virtio
}  // namespace tsbhyve
