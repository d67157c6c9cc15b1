#pragma once
// The virtio-net data path (virtio 1.2 §5.1, legacy layout): one thread per running device that moves frames
// between the guest's receive/transmit queues and a packet fd (a tap opened with IFF_VNET_HDR, or any datagram
// fd that carries the same virtio_net_hdr + frame records, as the device harness uses), and answers the
// control queue's receive-filter commands. It sleeps in epoll on the queues' notification eventfds (ioeventfd
// on KVM), the packet fd and a stop eventfd, and raises queue interrupts through irqfds or a callback. No
// JavaScript runs per frame.
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "guestmem/guest_memory.h"
#include "virtio/split_queue.h"
#include "virtio/worker_epoll.h"

namespace tsbhyve {
namespace virtio {

// The largest frame either direction carries after the header: a 64 KiB GSO packet plus Ethernet and VLAN
// headers (what Linux's tap accepts and produces).
constexpr uint32_t kNetMaxFrame = 65535 + 14 + 4;

// Queue numbers of a single-pair device (§5.1.2).
constexpr int kNetRxQueue = 0;
constexpr int kNetTxQueue = 1;
constexpr int kNetCtrlQueue = 2;

struct NetQueueConfig {
  bool present = false;
  QueueLayout layout;
  int notifyFd = -1;     // eventfd the driver's kicks arrive on (not owned)
  int interruptFd = -1;  // eventfd to write for an interrupt, or -1 to report it (not owned)
};

struct NetWorkerConfig {
  std::shared_ptr<const GuestMemory> memory;  // kept alive while the worker runs
  int packetFd = -1;                          // non-blocking; not owned
  NetQueueConfig queues[3];                   // rx, tx, ctrl
  bool eventIdx = false;
  bool indirect = false;
  bool useIsr = false;     // set ISR bit 0 before each interrupt (INTx and MSI, §4.1.4.5)
  bool mergeable = false;  // VIRTIO_NET_F_MRG_RXBUF: 12-byte header, a frame may span several chains
  bool ctrlRx = false;     // VIRTIO_NET_F_CTRL_RX was negotiated: the filter commands apply
  // Events the worker reports to its owner (kind, queue), on the worker thread.
  std::function<void(int, uint32_t)> report;
};

// Event kinds for NetWorkerConfig::report.
constexpr int kNetEventInterrupt = 1;   // queue `arg` needs an interrupt and has no interrupt fd
constexpr int kNetEventNeedsReset = 2;  // queue `arg` is broken (ChainError): DEVICE_NEEDS_RESET

// What the control queue's receive-filter commands set (§5.1.6.5.1, §5.1.6.5.2). Shared by the workers of one
// device so a restart (new interrupt route) keeps it; the device's reset restores the defaults.
struct RxFilter {
  std::mutex mu;
  uint8_t mac[6] = {};
  bool promisc = true;  // until the driver says otherwise, as QEMU's device starts
  bool allmulti = false;
  std::vector<std::array<uint8_t, 6>> unicast;
  std::vector<std::array<uint8_t, 6>> multicast;
  void Reset() {
    std::lock_guard<std::mutex> lk(mu);
    promisc = true;
    allmulti = false;
    unicast.clear();
    multicast.clear();
  }
  bool Accepts(const uint8_t* dst);
};

struct NetWorkerStats {
  std::atomic<uint64_t> rxFrames{0}, rxBytes{0}, txFrames{0}, txBytes{0};
  std::atomic<uint64_t> rxNoBuffer{0};   // frames dropped: no guest buffer could hold them
  std::atomic<uint64_t> rxFiltered{0};   // frames the receive filter dropped
  std::atomic<uint64_t> rxRunt{0};       // records from the packet fd shorter than a header and an Ethernet header
  std::atomic<uint64_t> rxBadChain{0};   // receive chains with a readable or non-RAM segment (returned empty)
  std::atomic<uint64_t> txBadChain{0};   // transmit chains with a writable or non-RAM segment, or a bad length
  std::atomic<uint64_t> txDropped{0};    // frames the packet fd refused
  std::atomic<uint64_t> ctrlCommands{0}, ctrlErrors{0};
  std::atomic<uint64_t> interrupts{0};
};

class NetWorker {
 public:
  NetWorker(NetWorkerConfig cfg, std::shared_ptr<RxFilter> filter, NetWorkerStats* stats)
      : cfg_(std::move(cfg)), filter_(std::move(filter)), stats_(stats) {}
  ~NetWorker() { Stop(); }
  NetWorker(const NetWorker&) = delete;
  NetWorker& operator=(const NetWorker&) = delete;

  // Attaches the rings and starts the thread; false with *err when a ring is not in guest RAM.
  bool Start(std::string* err);
  // Wakes and joins the thread. Idempotent; nothing touches guest memory afterwards.
  void Stop();
  uint32_t TakeIsr() { return isr_.exchange(0); }
  ChainError queueError() const { return queueError_.load(); }

 private:
  void Run();
  bool ServiceTx();
  bool ServiceCtrl();
  void ServiceRx();
  enum class Delivery { kDone, kDropped, kNoRoom };
  // Puts the frame in rxBuf_ into guest buffers; kNoRoom when the ring has too few buffers right now.
  Delivery Deliver();
  bool TakeRxChain(Chain* out);
  void Interrupt(int q);
  void Broken(int q, ChainError e);
  uint8_t HandleCtrl(const uint8_t* cmd, uint32_t len);
  void WatchPacketFd(bool on);

  NetWorkerConfig cfg_;
  std::shared_ptr<RxFilter> filter_;
  NetWorkerStats* stats_;
  SplitQueue q_[3];
  std::thread thread_;
  WorkerEpoll ep_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> isr_{0};
  std::atomic<ChainError> queueError_{ChainError::kNone};
  uint32_t hdrLen_ = 10;
  // The frame read from the packet fd and not yet delivered (0: none), with its header.
  std::vector<uint8_t> rxBuf_;
  uint32_t rxLen_ = 0;
  // Receive chains taken from the ring and not yet used (a frame that did not fit waits for more).
  std::deque<Chain> held_;
  bool rxStarved_ = false;  // waiting for the driver to add receive buffers
  bool watching_ = false;   // the packet fd is in the epoll set
  std::vector<iovec> iov_;
};

}  // namespace virtio
}  // namespace tsbhyve
