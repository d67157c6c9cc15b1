#include "virtio/net_worker.h"
#include "virtio/eventfd_ops.h"
#include "virtio/worker_epoll.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tsbhyve {
namespace virtio {

namespace {


// epoll tags: a queue's notification is its number; these are the others.
constexpr uint64_t kTagStop = 100;
constexpr uint64_t kTagPacket = 101;
// Chains handled per queue before looking at the other queues, so one busy direction cannot starve the other.
constexpr int kBatch = 64;

// §5.1.6.5: control classes and commands, and the acknowledgement values.
constexpr uint8_t kCtrlRx = 0;
constexpr uint8_t kCtrlRxPromisc = 0;
constexpr uint8_t kCtrlRxAllmulti = 1;
constexpr uint8_t kCtrlMac = 1;
constexpr uint8_t kCtrlMacTableSet = 0;
constexpr uint8_t kCtrlOk = 0;
constexpr uint8_t kCtrlErr = 1;
// Longest control command read (a MAC table of a few hundred entries); longer ones are refused.
constexpr uint32_t kMaxCtrlBytes = 8192;

uint32_t Capacity(const Chain& c) {
  uint64_t n = 0;
  for (const Segment& s : c.segments) n += s.len;
  return uint32_t(std::min<uint64_t>(n, UINT32_MAX));
}

// Copies [src, src+len) into the chain's segments from their start; returns the bytes written.
uint32_t CopyIn(const Chain& c, const uint8_t* src, uint32_t len) {
  uint32_t done = 0;
  for (const Segment& s : c.segments) {
    if (done == len) break;
    uint32_t n = std::min(s.len, len - done);
    std::memcpy(s.host, src + done, n);
    done += n;
  }
  return done;
}

}  // namespace

bool RxFilter::Accepts(const uint8_t* dst) {
  std::lock_guard<std::mutex> lk(mu);
  if (promisc) return true;
  static const uint8_t kBroadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  if (std::memcmp(dst, kBroadcast, 6) == 0) return true;
  auto in = [dst](const std::vector<std::array<uint8_t, 6>>& t) {
    return std::any_of(t.begin(), t.end(), [dst](const std::array<uint8_t, 6>& m) { return std::memcmp(m.data(), dst, 6) == 0; });
  };
  if (dst[0] & 1) return allmulti || in(multicast);
  return std::memcmp(dst, mac, 6) == 0 || in(unicast);
}

bool NetWorker::Start(std::string* err) {
  if (thread_.joinable()) return true;
  hdrLen_ = cfg_.mergeable ? 12 : 10;
  // The worker never blocks on the packet fd (an inherited fd may come blocking).
  int fl = fcntl(cfg_.packetFd, F_GETFL);
  if (fl < 0 || fcntl(cfg_.packetFd, F_SETFL, fl | O_NONBLOCK) != 0) {
    *err = std::string("packet fd: ") + std::strerror(errno);
    return false;
  }
  for (int q = 0; q < 3; q++) {
    if (!cfg_.queues[q].present) continue;
    if (!q_[q].Attach(*cfg_.memory, cfg_.queues[q].layout, cfg_.eventIdx, cfg_.indirect)) {
      *err = std::string("virtqueue ") + std::to_string(q) + ": " + ChainErrorName(q_[q].error());
      queueError_ = q_[q].error();
      return false;
    }
  }
  if (!ep_.Open(kTagStop, err)) return false;
  bool ok = true;
  for (int q = 0; q < 3; q++)
    if (cfg_.queues[q].present && cfg_.queues[q].notifyFd >= 0) ok = ok && ep_.Add(cfg_.queues[q].notifyFd, uint64_t(q));
  if (!ok) {
    *err = std::string("epoll_ctl: ") + std::strerror(errno);
    ep_.Close();
    return false;
  }
  rxBuf_.resize(hdrLen_ + kNetMaxFrame);
  rxLen_ = 0;
  held_.clear();
  rxStarved_ = false;
  watching_ = false;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
  return true;
}

void NetWorker::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  ep_.Wake();
  thread_.join();
  ep_.Close();
}

void NetWorker::WatchPacketFd(bool on) {
  if (on == watching_ || cfg_.packetFd < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagPacket;
  if (epoll_ctl(ep_.epollFd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, cfg_.packetFd, &ev) == 0) watching_ = on;
}

void NetWorker::Run() {
  // Kicks are wanted only while a queue has nothing to do; the rx queue asks for them when it runs dry.
  for (;;) {
    bool more = false;
    if (cfg_.queues[kNetTxQueue].present) more |= ServiceTx();
    if (cfg_.queues[kNetCtrlQueue].present) more |= ServiceCtrl();
    if (cfg_.queues[kNetRxQueue].present) ServiceRx();
    if (stopping_.load(std::memory_order_relaxed)) return;
    WatchPacketFd(cfg_.queues[kNetRxQueue].present && !rxStarved_ && queueError_.load() == ChainError::kNone);
    if (more) continue;
    epoll_event evs[8];
    int n = epoll_wait(ep_.epollFd, evs, 8, -1);
    if (n < 0 && errno != EINTR) return;
    for (int i = 0; i < n; i++) {
      const uint64_t tag = evs[i].data.u64;
      if (tag == kTagStop) return;
      if (tag < 3) {
        DrainEventfd(cfg_.queues[tag].notifyFd);
        if (tag == kNetRxQueue) rxStarved_ = false;
      }
    }
  }
}

// Transmit: each chain is a virtio_net_hdr and a frame the driver wrote (§5.1.6.2); it goes to the packet fd as
// one record. Returns true when it stopped with chains left (the batch limit).
bool NetWorker::ServiceTx() {
  SplitQueue& q = q_[kNetTxQueue];
  q.DisableNotify();
  Chain c;
  int handled = 0;
  bool more = false;
  for (;;) {
    if (handled == kBatch) {
      more = true;
      break;
    }
    if (!q.Pop(&c)) {
      if (q.error() != ChainError::kNone) {
        Broken(kNetTxQueue, q.error());
        return false;
      }
      if (q.EnableNotifyAndCheck()) continue;
      break;
    }
    handled++;
    uint64_t total = 0;
    bool bad = c.badAddress;
    iov_.clear();
    for (const Segment& s : c.segments) {
      if (s.writable) bad = true;
      total += s.len;
      if (s.len != 0 && s.host) iov_.push_back({s.host, s.len});
    }
    // A record shorter than the header, or longer than any frame can be, is refused (the driver broke §5.1.6.2).
    if (bad || total < hdrLen_ + 14 || total > hdrLen_ + kNetMaxFrame) {
      stats_->txBadChain.fetch_add(1, std::memory_order_relaxed);
    } else {
      ssize_t w;
      do w = writev(cfg_.packetFd, iov_.data(), int(iov_.size()));
      while (w < 0 && errno == EINTR);
      if (w < 0) {
        // The fd is full or the link is gone: the frame is lost, as on a busy wire.
        stats_->txDropped.fetch_add(1, std::memory_order_relaxed);
      } else {
        stats_->txFrames.fetch_add(1, std::memory_order_relaxed);
        stats_->txBytes.fetch_add(total - hdrLen_, std::memory_order_relaxed);
      }
    }
    q.Push(c.head, 0);
  }
  if (q.NeedInterrupt()) Interrupt(kNetTxQueue);
  return more;
}

bool NetWorker::ServiceCtrl() {
  SplitQueue& q = q_[kNetCtrlQueue];
  Chain c;
  uint8_t cmd[kMaxCtrlBytes];
  bool any = false;
  for (;;) {
    if (!q.Pop(&c)) {
      if (q.error() != ChainError::kNone) {
        Broken(kNetCtrlQueue, q.error());
        return false;
      }
      if (q.EnableNotifyAndCheck()) continue;
      break;
    }
    any = true;
    stats_->ctrlCommands.fetch_add(1, std::memory_order_relaxed);
    // §5.1.6.5: class, command and data readable, then one writable ack byte.
    uint32_t len = 0;
    bool tooLong = false;
    uint8_t* ack = nullptr;
    for (const Segment& s : c.segments) {
      if (!s.host) continue;
      if (s.writable) {
        if (!ack && s.len >= 1) ack = s.host;
        continue;
      }
      if (ack) continue;  // readable after writable: ignored (badOrder)
      if (len + uint64_t(s.len) > kMaxCtrlBytes) {
        tooLong = true;
        continue;
      }
      std::memcpy(cmd + len, s.host, s.len);
      len += s.len;
    }
    uint8_t status = kCtrlErr;
    // A command without somewhere to put the answer is not carried out (the driver could not know the outcome).
    if (ack && !c.badAddress && !c.badOrder && !tooLong && len >= 2) status = HandleCtrl(cmd, len);
    if (status != kCtrlOk) stats_->ctrlErrors.fetch_add(1, std::memory_order_relaxed);
    if (ack) *ack = status;
    q.Push(c.head, ack ? 1 : 0);
  }
  if (any && q.NeedInterrupt()) Interrupt(kNetCtrlQueue);
  return false;
}

uint8_t NetWorker::HandleCtrl(const uint8_t* cmd, uint32_t len) {
  const uint8_t cls = cmd[0], op = cmd[1];
  const uint8_t* data = cmd + 2;
  const uint32_t dlen = len - 2;
  if (!cfg_.ctrlRx) return kCtrlErr;
  if (cls == kCtrlRx && (op == kCtrlRxPromisc || op == kCtrlRxAllmulti)) {
    if (dlen != 1) return kCtrlErr;
    std::lock_guard<std::mutex> lk(filter_->mu);
    (op == kCtrlRxPromisc ? filter_->promisc : filter_->allmulti) = data[0] != 0;
    return kCtrlOk;
  }
  if (cls == kCtrlMac && op == kCtrlMacTableSet) {
    // Two tables, unicast then multicast: le32 entries followed by entries * 6 bytes each (§5.1.6.5.2).
    std::vector<std::array<uint8_t, 6>> tables[2];
    uint32_t at = 0;
    for (auto& t : tables) {
      if (dlen - at < 4) return kCtrlErr;
      uint32_t n;
      std::memcpy(&n, data + at, 4);
      at += 4;
      if (n > (dlen - at) / 6) return kCtrlErr;
      t.resize(n);
      for (uint32_t i = 0; i < n; i++, at += 6) std::memcpy(t[i].data(), data + at, 6);
    }
    if (at != dlen) return kCtrlErr;
    std::lock_guard<std::mutex> lk(filter_->mu);
    filter_->unicast = std::move(tables[0]);
    filter_->multicast = std::move(tables[1]);
    return kCtrlOk;
  }
  return kCtrlErr;
}

// A receive chain the device can write into: writable RAM only. Others go back empty (the driver sees a zero
// length and drops it, as Linux does for a length below the header).
bool NetWorker::TakeRxChain(Chain* out) {
  SplitQueue& q = q_[kNetRxQueue];
  for (;;) {
    if (!q.Pop(out)) {
      if (q.error() != ChainError::kNone) Broken(kNetRxQueue, q.error());
      return false;
    }
    bool ok = !out->badAddress && !out->segments.empty();
    for (const Segment& s : out->segments) ok = ok && s.writable;
    if (ok) return true;
    stats_->rxBadChain.fetch_add(1, std::memory_order_relaxed);
    q.Push(out->head, 0);
  }
}

NetWorker::Delivery NetWorker::Deliver() {
  SplitQueue& q = q_[kNetRxQueue];
  if (!cfg_.mergeable) {
    // One chain per frame (§5.1.6.3.1): a frame larger than the buffer is dropped, the buffer kept.
    if (held_.empty()) {
      Chain c;
      if (!TakeRxChain(&c)) return Delivery::kNoRoom;
      held_.push_back(std::move(c));
    }
    Chain& c = held_.front();
    if (Capacity(c) < rxLen_) {
      stats_->rxNoBuffer.fetch_add(1, std::memory_order_relaxed);
      return Delivery::kDropped;
    }
    uint32_t n = CopyIn(c, rxBuf_.data(), rxLen_);
    q.Push(c.head, n);
    held_.pop_front();
    return Delivery::kDone;
  }
  // Mergeable buffers: as many chains as the frame needs, their count in the header's num_buffers.
  uint64_t room = 0;
  size_t k = 0;
  while (room < rxLen_) {
    if (k == held_.size()) {
      Chain c;
      if (!TakeRxChain(&c)) {
        // The whole ring cannot hold it: drop rather than wait forever.
        if (held_.size() >= q.size()) {
          stats_->rxNoBuffer.fetch_add(1, std::memory_order_relaxed);
          return Delivery::kDropped;
        }
        return Delivery::kNoRoom;
      }
      held_.push_back(std::move(c));
    }
    room += Capacity(held_[k]);
    k++;
  }
  const uint16_t buffers = uint16_t(k);
  std::memcpy(rxBuf_.data() + 10, &buffers, 2);  // num_buffers, little-endian on x86
  uint32_t off = 0;
  for (size_t i = 0; i < k; i++) {
    uint32_t n = CopyIn(held_.front(), rxBuf_.data() + off, rxLen_ - off);
    off += n;
    q.Push(held_.front().head, n);
    held_.pop_front();
  }
  return Delivery::kDone;
}

void NetWorker::ServiceRx() {
  SplitQueue& q = q_[kNetRxQueue];
  if (q.error() != ChainError::kNone) return;
  int delivered = 0;
  for (int i = 0; i < kBatch; i++) {
    if (rxLen_ == 0) {
      ssize_t n;
      do n = read(cfg_.packetFd, rxBuf_.data(), rxBuf_.size());
      while (n < 0 && errno == EINTR);
      if (n <= 0) break;  // EAGAIN: nothing waiting (other errors: the fd is gone; we wait for a reset)
      if (uint32_t(n) < hdrLen_ + 14) {
        stats_->rxRunt.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (cfg_.ctrlRx && !filter_->Accepts(rxBuf_.data() + hdrLen_)) {
        stats_->rxFiltered.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      rxLen_ = uint32_t(n);
    }
    const Delivery d = Deliver();
    if (d == Delivery::kNoRoom) {
      if (q.error() != ChainError::kNone) break;
      // Out of buffers: ask for a kick, unless buffers arrived meanwhile. The frame waits in rxBuf_.
      if (q.EnableNotifyAndCheck()) continue;
      rxStarved_ = true;
      break;
    }
    if (d == Delivery::kDone) {
      stats_->rxFrames.fetch_add(1, std::memory_order_relaxed);
      stats_->rxBytes.fetch_add(rxLen_ - hdrLen_, std::memory_order_relaxed);
      delivered++;
    }
    rxLen_ = 0;
  }
  if (!rxStarved_) q.DisableNotify();
  if (delivered && q.NeedInterrupt()) Interrupt(kNetRxQueue);
}

void NetWorker::Interrupt(int q) {
  stats_->interrupts.fetch_add(1, std::memory_order_relaxed);
  if (cfg_.useIsr) isr_.fetch_or(1);
  if (cfg_.queues[q].interruptFd >= 0) SignalEventfd(cfg_.queues[q].interruptFd);
  else if (cfg_.report) cfg_.report(kNetEventInterrupt, uint32_t(q));
}

void NetWorker::Broken(int q, ChainError e) {
  ChainError none = ChainError::kNone;
  if (queueError_.compare_exchange_strong(none, e) && cfg_.report) cfg_.report(kNetEventNeedsReset, uint32_t(q));
}

}  // namespace virtio
}  // namespace tsbhyve
