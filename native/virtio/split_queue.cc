#include "virtio/split_queue.h"

#include <atomic>
#include <cstring>

namespace tsbhyve {
namespace virtio {

namespace {

// A descriptor as laid out in guest memory (§2.7.5), copied out in one go.
struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Desc) == 16, "virtq_desc is 16 bytes");

Desc LoadDesc(const uint8_t* table, uint32_t i) {
  Desc d;
  std::memcpy(&d, table + uint64_t(i) * 16, sizeof d);
  return d;
}

uint16_t Load16(const uint8_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_ACQUIRE);
}
void Store16(uint8_t* p, uint16_t v) { __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, __ATOMIC_RELEASE); }

// §2.7.10 vring_need_event: true when `event` lies in (old, new].
bool NeedEvent(uint16_t event, uint16_t newIdx, uint16_t oldIdx) {
  return uint16_t(newIdx - event - 1) < uint16_t(newIdx - oldIdx);
}

}  // namespace

const char* ChainErrorName(ChainError e) {
  switch (e) {
    case ChainError::kNone: return "none";
    case ChainError::kHeadOutOfRange: return "descriptor head out of range";
    case ChainError::kNextOutOfRange: return "descriptor next out of range";
    case ChainError::kTooLong: return "descriptor chain longer than the table (loop)";
    case ChainError::kNestedIndirect: return "nested indirect table";
    case ChainError::kIndirectWithNext: return "indirect descriptor with NEXT";
    case ChainError::kIndirectBadLength: return "bad indirect table length";
    case ChainError::kIndirectNotRam: return "indirect table outside guest RAM";
    case ChainError::kIndirectNotNegotiated: return "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC";
    case ChainError::kAvailIndexJump: return "avail index moved by more than the queue size";
    case ChainError::kRingNotRam: return "rings outside guest RAM";
  }
  return "unknown";
}

QueueLayout QueueLayout::Legacy(uint64_t pfn, uint16_t size) {
  QueueLayout l;
  l.size = size;
  l.desc = pfn << 12;
  l.avail = l.desc + 16ull * size;
  // avail: flags, idx, ring[size], used_event; the used ring starts at the next 4096-byte boundary.
  uint64_t availEnd = l.avail + 4 + 2ull * size + 2;
  l.used = (availEnd + kLegacyQueueAlign - 1) & ~(kLegacyQueueAlign - 1);
  return l;
}

bool SplitQueue::Attach(const GuestMemory& mem, const QueueLayout& layout, bool eventIdx, bool indirect) {
  mem_ = &mem;
  layout_ = layout;
  eventIdx_ = eventIdx;
  indirect_ = indirect;
  lastAvail_ = usedIdx_ = signalledUsed_ = 0;
  error_ = ChainError::kNone;
  const uint64_t n = layout.size;
  if (n == 0 || n > kMaxQueueSize || (n & (n - 1)) != 0) return Fail(ChainError::kRingNotRam);
  // §2.7: desc 16*N, avail 6+2*N, used 6+8*N bytes (the event fields included).
  if (mem.Translate(layout.desc, 16 * n, false, &desc_) != MemError::kOk ||
      mem.Translate(layout.avail, 6 + 2 * n, true, &avail_) != MemError::kOk ||
      mem.Translate(layout.used, 6 + 8 * n, true, &used_) != MemError::kOk) {
    return Fail(ChainError::kRingNotRam);
  }
  // Start from where the driver's used index is (0 after a reset, as the spec requires it to be).
  usedIdx_ = signalledUsed_ = Load16(used_ + 2);
  // A worker before this one may have left kicks suppressed; EnableNotifyAndCheck will clear it.
  noNotify_ = (Load16(used_) & kUsedNoNotify) != 0;
  lastAvail_ = usedIdx_;
  return true;
}

uint16_t SplitQueue::LoadAvailIdx() const { return Load16(avail_ + 2); }

bool SplitQueue::Pop(Chain* out) {
  if (error_ != ChainError::kNone) return false;
  const uint16_t availIdx = LoadAvailIdx();
  const uint16_t pending = uint16_t(availIdx - lastAvail_);
  if (pending == 0) return false;
  // The driver can have at most `size` chains outstanding; a larger step is corruption.
  if (pending > layout_.size) return Fail(ChainError::kAvailIndexJump);
  // Read the ring entry after the index (the acquire load above orders it).
  uint16_t head;
  std::memcpy(&head, avail_ + 4 + 2u * (lastAvail_ % layout_.size), 2);
  lastAvail_++;
  return Walk(head, out);
}

bool SplitQueue::Walk(uint16_t head, Chain* out) {
  out->head = head;
  out->segments.clear();
  out->badAddress = false;
  out->badOrder = false;
  if (head >= layout_.size) return Fail(ChainError::kHeadOutOfRange);

  const uint8_t* table = desc_;
  uint32_t tableSize = layout_.size;
  bool inIndirect = false;
  uint32_t index = head;
  uint32_t steps = 0;
  bool sawWritable = false;
  for (;;) {
    // Each table is walked at most once per descriptor it holds: more steps means a cycle.
    if (++steps > tableSize) return Fail(ChainError::kTooLong);
    const Desc d = LoadDesc(table, index);  // the only read of this descriptor
    if (d.flags & kDescIndirect) {
      if (!indirect_) return Fail(ChainError::kIndirectNotNegotiated);
      if (inIndirect) return Fail(ChainError::kNestedIndirect);
      if (d.flags & kDescNext) return Fail(ChainError::kIndirectWithNext);
      // §2.7.5.3.1: the table holds len/16 descriptors; we bound it by the queue size as Linux and QEMU do.
      if (d.len == 0 || d.len % 16 != 0 || d.len / 16 > layout_.size) return Fail(ChainError::kIndirectBadLength);
      uint8_t* t = nullptr;
      if (mem_->Translate(d.addr, d.len, false, &t) != MemError::kOk) return Fail(ChainError::kIndirectNotRam);
      table = t;
      tableSize = d.len / 16;
      inIndirect = true;
      index = 0;
      steps = 0;
      continue;
    }
    Segment s;
    s.len = d.len;
    s.writable = (d.flags & kDescWrite) != 0;
    if (sawWritable && !s.writable) out->badOrder = true;
    sawWritable = sawWritable || s.writable;
    if (d.len != 0 && mem_->Translate(d.addr, d.len, s.writable, &s.host) != MemError::kOk) {
      s.host = nullptr;
      out->badAddress = true;
    }
    out->segments.push_back(s);
    if (!(d.flags & kDescNext)) break;
    if (d.next >= tableSize) return Fail(ChainError::kNextOutOfRange);
    index = d.next;
  }
  return true;
}

void SplitQueue::Push(uint16_t head, uint32_t written) {
  uint8_t* e = used_ + 4 + 8u * (usedIdx_ % layout_.size);
  uint32_t id = head;
  std::memcpy(e, &id, 4);
  std::memcpy(e + 4, &written, 4);
  usedIdx_++;
  // The element must be visible before the index that publishes it (§2.7.8.2).
  Store16(used_ + 2, usedIdx_);
}

bool SplitQueue::NeedInterrupt() {
  const uint16_t oldIdx = signalledUsed_;
  const uint16_t newIdx = usedIdx_;
  if (oldIdx == newIdx) return false;
  signalledUsed_ = newIdx;
  // The used index store must be ordered before reading the driver's suppression fields.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (eventIdx_) {
    // used_event sits after the avail ring (§2.7.10).
    const uint16_t usedEvent = Load16(avail_ + 4 + 2u * layout_.size);
    return NeedEvent(usedEvent, newIdx, oldIdx);
  }
  return (Load16(avail_) & kAvailNoInterrupt) == 0;
}

void SplitQueue::DisableNotify() {
  if (!eventIdx_ && !noNotify_) {
    Store16(used_, kUsedNoNotify);
    noNotify_ = true;
  }
}

bool SplitQueue::EnableNotifyAndCheck() {
  if (error_ != ChainError::kNone) return false;
  if (noNotify_) {
    Store16(used_, 0);
    noNotify_ = false;
  }
  if (eventIdx_) {
    // avail_event sits after the used ring: "kick me when avail idx passes lastAvail_".
    Store16(used_ + 4 + 8u * layout_.size, lastAvail_);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return LoadAvailIdx() != lastAvail_;
}

}  // namespace virtio
}  // namespace tsbhyve
