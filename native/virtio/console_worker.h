#pragma once
// The virtio-console data path (virtio 1.2 §5.3, legacy layout): up to 16 ports, each a unix-domain stream socket
// the device listens on (one client at a time, as bhyve's pci_virtio_console does), and with MULTIPORT the control
// queues that announce the ports, their names and whether a host client is there. One thread per running device
// sleeps in epoll on the queues' notification eventfds, the sockets and a stop eventfd, and moves bytes between
// the sockets and the rings without JavaScript.
//
// The sockets and the guest-visible port state live in ConsolePorts, which outlives workers: a worker is replaced
// when the interrupt routing changes, and a client connected before the guest's driver started stays connected.
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "guestmem/guest_memory.h"
#include "virtio/split_queue.h"
#include "virtio/worker_epoll.h"

namespace tsbhyve {
namespace virtio {

constexpr int kConsoleMaxPorts = 16;                          // bhyve's VTCON_MAXPORTS
constexpr int kConsoleQueues = 2 * (kConsoleMaxPorts + 1);   // §5.3.2: a pair per port plus the control pair
constexpr int kConsoleCtrlRx = 2;                             // control receiveq (device -> driver)
constexpr int kConsoleCtrlTx = 3;                             // control transmitq (driver -> device)
constexpr uint32_t kConsoleMaxName = 255;                     // longest port name announced

// §5.3.2: port 0 owns queues 0 (receiveq) and 1 (transmitq); port p >= 1 owns 2p+2 and 2p+3.
constexpr int ConsoleRxQueue(int port) { return port == 0 ? 0 : 2 * port + 2; }
constexpr int ConsoleTxQueue(int port) { return port == 0 ? 1 : 2 * port + 3; }

// §5.3.6.2 control events.
enum ConsoleEvent : uint16_t {
  kDeviceReady = 0,
  kDeviceAdd = 1,
  kDeviceRemove = 2,
  kPortReady = 3,
  kConsolePort = 4,
  kConsoleResize = 5,
  kPortOpen = 6,
  kPortName = 7,
};

struct ConsoleStats {
  std::atomic<uint64_t> rxBytes{0};        // host client -> guest
  std::atomic<uint64_t> txBytes{0};        // guest -> host client
  std::atomic<uint64_t> txDiscarded{0};    // guest bytes written while no client was connected
  std::atomic<uint64_t> badChains{0};      // chains with the wrong direction or memory outside RAM
  std::atomic<uint64_t> ctrlIn{0}, ctrlOut{0};
  std::atomic<uint64_t> ctrlErrors{0};     // malformed or unknown control messages from the driver
  std::atomic<uint64_t> ctrlDropped{0};    // announcements dropped (no room in the control receiveq)
  std::atomic<uint64_t> connects{0}, refused{0};
  std::atomic<uint64_t> interrupts{0};
};

struct ConsolePort {
  std::string name;
  std::string path;
  bool console = false;     // announced with CONSOLE_PORT (Linux makes it an hvc)
  int listenFd = -1;
  ino_t inode = 0;          // of the socket file we made, so close() only removes our own
  int connFd = -1;
  bool readClosed = false;  // the client shut down its sending side; output still goes to it
  // Guest-side state, cleared by a device reset.
  bool ready = false;       // the driver sent PORT_READY for it
  bool guestOpen = false;   // the driver's last PORT_OPEN said a guest program has it open
  uint32_t txResume = 0;    // bytes of the oldest unfinished transmit chain already written to the client
};

class ConsolePorts {
 public:
  ~ConsolePorts() { Close(); }
  // Creates and listens on the port's socket. A stale socket file (nobody listening) is replaced; anything else
  // at the path is an error. Returns false with *err and *errnum set.
  bool Add(const std::string& name, const std::string& path, bool console, std::string* err, int* errnum);
  // Closes every socket and removes the socket files this object made.
  void Close();
  // A device reset: the driver will announce itself again; connections stay.
  void ResetGuest();

  std::vector<ConsolePort> ports;
  // Control messages waiting for room in the control receiveq, each a 8-byte header and its payload.
  std::deque<std::vector<uint8_t>> pendingCtrl;
  bool driverReady = false;
  ConsoleStats stats;
};

struct ConsoleQueueConfig {
  bool present = false;
  QueueLayout layout;
  int notifyFd = -1;     // not owned
  int interruptFd = -1;  // not owned; -1: report interrupts through the callback
};

struct ConsoleWorkerConfig {
  std::shared_ptr<const GuestMemory> memory;
  std::shared_ptr<ConsolePorts> ports;
  ConsoleQueueConfig queues[kConsoleQueues];
  bool multiport = false;  // VIRTIO_CONSOLE_F_MULTIPORT negotiated: control queues and ports 1..15 exist
  bool eventIdx = false;
  bool indirect = false;
  bool useIsr = false;
  std::function<void(int, uint32_t)> report;
};

constexpr int kConsoleEventInterrupt = 1;   // queue `arg` needs an interrupt and has no interrupt fd
constexpr int kConsoleEventNeedsReset = 2;  // queue `arg` is broken: DEVICE_NEEDS_RESET
constexpr int kConsoleEventConnect = 3;     // port `arg` got a client
constexpr int kConsoleEventDisconnect = 4;  // port `arg` lost its client

class ConsoleWorker {
 public:
  explicit ConsoleWorker(ConsoleWorkerConfig cfg) : cfg_(std::move(cfg)) {}
  ~ConsoleWorker() { Stop(); }
  ConsoleWorker(const ConsoleWorker&) = delete;
  ConsoleWorker& operator=(const ConsoleWorker&) = delete;

  bool Start(std::string* err);
  void Stop();
  uint32_t TakeIsr() { return isr_.exchange(0); }
  ChainError queueError() const { return queueError_.load(); }

 private:
  struct PortRun {
    Chain rxHeld;            // a receive chain taken and not yet filled
    bool haveRx = false;
    bool rxStarved = false;  // the receiveq is empty: the socket is not read until the driver adds buffers
    Chain txHeld;            // a transmit chain not yet fully written to the client
    bool haveTx = false;
    bool txBlocked = false;  // the client's socket is full: wait for EPOLLOUT
    uint32_t watched = 0;    // the epoll events registered for connFd
  };

  void Run();
  bool Active(int port) const;
  bool GuestReading(int port) const;
  void Accept(int port);
  void Disconnect(int port);
  void ServicePortRx(int port);
  void ServicePortTx(int port);
  void ServiceCtrlTx();
  void FlushCtrl();
  void HandleCtrl(uint32_t id, uint16_t event, uint16_t value);
  void Announce(uint32_t id, uint16_t event, uint16_t value, const std::string& payload = {});
  void UpdateWatch(int port);
  bool Pop(int q, Chain* out);
  void Interrupt(int q);
  void Broken(int q, ChainError e);

  ConsoleWorkerConfig cfg_;
  ConsolePorts& P() { return *cfg_.ports; }
  SplitQueue q_[kConsoleQueues];
  bool pushed_[kConsoleQueues] = {};
  PortRun run_[kConsoleMaxPorts];
  std::thread thread_;
  WorkerEpoll ep_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> isr_{0};
  std::atomic<ChainError> queueError_{ChainError::kNone};
  std::vector<iovec> iov_;
};

}  // namespace virtio
}  // namespace tsbhyve
