#include "virtio/console_worker.h"
#include "virtio/eventfd_ops.h"
#include "virtio/worker_epoll.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <climits>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tsbhyve {
namespace virtio {

namespace {

// epoll tags: a queue's notification is its number; sockets and the stop fd are above the queue numbers.
constexpr uint64_t kTagStop = 1000;
constexpr uint64_t kTagListen = 2000;  // + port
constexpr uint64_t kTagConn = 3000;    // + port
// Chains handled per queue per pass, so one busy port cannot starve the others.
constexpr int kBatch = 64;
// Announcements kept while the driver gives no control buffers (a driver repeating DEVICE_READY cannot make
// the device hoard memory).
constexpr size_t kMaxPendingCtrl = 4 * kConsoleMaxPorts + 16;
constexpr uint32_t kCtrlHeader = 8;  // §5.3.6.2 struct virtio_console_control: le32 id, le16 event, le16 value

bool MakeSocketAddress(const std::string& path, sockaddr_un* sa, socklen_t* len) {
  std::memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa->sun_path) return false;
  std::memcpy(sa->sun_path, path.data(), path.size());
  *len = socklen_t(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

// Whether a socket file at `path` has nobody listening on it (left behind by a process that died).
bool IsStaleSocket(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  sockaddr_un sa;
  socklen_t len;
  if (!MakeSocketAddress(path, &sa, &len)) return false;
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  bool stale = connect(s, reinterpret_cast<sockaddr*>(&sa), len) != 0 && errno == ECONNREFUSED;
  close(s);
  return stale;
}

}  // namespace

bool ConsolePorts::Add(const std::string& name, const std::string& path, bool console, std::string* err, int* errnum) {
  auto fail = [&](int e, const std::string& what) {
    *errnum = e;
    *err = "cannot create port " + name + ": " + what;
    return false;
  };
  if (ports.size() >= size_t(kConsoleMaxPorts)) return fail(EBUSY, "too many ports");
  if (name.size() > kConsoleMaxName) return fail(ENAMETOOLONG, "name longer than 255 bytes");
  sockaddr_un sa;
  socklen_t len;
  if (!MakeSocketAddress(path, &sa, &len)) return fail(ENAMETOOLONG, path.empty() ? "no path" : "path too long for a unix socket");
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return fail(errno, std::strerror(errno));
  int rc = bind(s, reinterpret_cast<sockaddr*>(&sa), len);
  if (rc != 0 && errno == EADDRINUSE && IsStaleSocket(path)) {
    unlink(path.c_str());
    rc = bind(s, reinterpret_cast<sockaddr*>(&sa), len);
  }
  if (rc != 0 || listen(s, 1) != 0) {
    int e = errno;
    close(s);
    return fail(e, std::strerror(e));
  }
  ConsolePort p;
  p.name = name;
  p.path = path;
  p.console = console;
  p.listenFd = s;
  struct stat st;
  if (stat(path.c_str(), &st) == 0) p.inode = st.st_ino;
  ports.push_back(std::move(p));
  return true;
}

void ConsolePorts::Close() {
  for (ConsolePort& p : ports) {
    if (p.connFd >= 0) close(p.connFd);
    if (p.listenFd >= 0) {
      close(p.listenFd);
      // Only our own socket file: another process may have replaced it meanwhile.
      struct stat st;
      if (p.inode != 0 && lstat(p.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == p.inode) unlink(p.path.c_str());
    }
    p.connFd = p.listenFd = -1;
  }
}

void ConsolePorts::ResetGuest() {
  driverReady = false;
  pendingCtrl.clear();
  for (ConsolePort& p : ports) {
    p.ready = p.guestOpen = false;
    p.txResume = 0;
  }
}

bool ConsoleWorker::Start(std::string* err) {
  if (thread_.joinable()) return true;
  for (int q = 0; q < kConsoleQueues; q++) {
    if (!cfg_.queues[q].present) continue;
    if (!q_[q].Attach(*cfg_.memory, cfg_.queues[q].layout, cfg_.eventIdx, cfg_.indirect)) {
      *err = std::string("virtqueue ") + std::to_string(q) + ": " + ChainErrorName(q_[q].error());
      queueError_ = q_[q].error();
      return false;
    }
  }
  if (!ep_.Open(kTagStop, err)) return false;
  bool ok = true;
  for (int q = 0; q < kConsoleQueues; q++)
    if (cfg_.queues[q].present && cfg_.queues[q].notifyFd >= 0) ok = ok && ep_.Add(cfg_.queues[q].notifyFd, uint64_t(q));
  for (size_t p = 0; p < P().ports.size(); p++)
    if (Active(int(p))) ok = ok && ep_.Add(P().ports[p].listenFd, kTagListen + p);
  if (!ok) {
    *err = std::string("epoll_ctl: ") + std::strerror(errno);
    ep_.Close();
    return false;
  }
  for (PortRun& r : run_) r = PortRun();
  for (size_t p = 0; p < P().ports.size(); p++) UpdateWatch(int(p));
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
  return true;
}

void ConsoleWorker::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  ep_.Wake();
  thread_.join();
  ep_.Close();
}

// Without MULTIPORT only port 0 exists for the driver (§5.3.6); the other sockets wait, unaccepted.
bool ConsoleWorker::Active(int port) const {
  return size_t(port) < cfg_.ports->ports.size() && (port == 0 || cfg_.multiport);
}

// With MULTIPORT the driver says when a guest program has the port open (PORT_OPEN); Linux throws away what
// arrives before that, so the client's bytes wait in its socket until then. Without MULTIPORT port 0 is a console
// the guest always reads.
bool ConsoleWorker::GuestReading(int port) const {
  return !cfg_.multiport || cfg_.ports->ports[port].guestOpen;
}

void ConsoleWorker::UpdateWatch(int port) {
  ConsolePort& p = P().ports[port];
  PortRun& r = run_[port];
  if (p.connFd < 0) {
    r.watched = 0;
    return;
  }
  const bool rxUp = cfg_.queues[ConsoleRxQueue(port)].present && q_[ConsoleRxQueue(port)].error() == ChainError::kNone;
  uint32_t want = EPOLLRDHUP;  // EPOLLHUP and EPOLLERR are always reported
  if (!p.readClosed && rxUp && !r.rxStarved && GuestReading(port)) want |= EPOLLIN;
  if (r.txBlocked) want |= EPOLLOUT;
  if (want == r.watched) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = kTagConn + uint64_t(port);
  if (epoll_ctl(ep_.epollFd, EPOLL_CTL_MOD, p.connFd, &ev) != 0 && errno == ENOENT) epoll_ctl(ep_.epollFd, EPOLL_CTL_ADD, p.connFd, &ev);
  r.watched = want;
}

void ConsoleWorker::Accept(int port) {
  ConsolePort& p = P().ports[port];
  for (;;) {
    int s = accept4(p.listenFd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (s < 0) return;
    // One client per port, as bhyve: a second one is hung up on at once.
    if (p.connFd >= 0) {
      close(s);
      P().stats.refused.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    p.connFd = s;
    p.readClosed = false;
    run_[port].txBlocked = false;
    run_[port].watched = 0;
    epoll_event ev{};
    ev.events = EPOLLRDHUP;
    ev.data.u64 = kTagConn + uint64_t(port);
    epoll_ctl(ep_.epollFd, EPOLL_CTL_ADD, s, &ev);
    run_[port].watched = EPOLLRDHUP;
    UpdateWatch(port);
    P().stats.connects.fetch_add(1, std::memory_order_relaxed);
    if (cfg_.multiport && P().driverReady && p.ready) Announce(uint32_t(port), kPortOpen, 1);
    if (cfg_.report) cfg_.report(kConsoleEventConnect, uint32_t(port));
  }
}

void ConsoleWorker::Disconnect(int port) {
  ConsolePort& p = P().ports[port];
  if (p.connFd < 0) return;
  epoll_ctl(ep_.epollFd, EPOLL_CTL_DEL, p.connFd, nullptr);
  close(p.connFd);
  p.connFd = -1;
  p.readClosed = false;
  p.txResume = 0;
  run_[port].txBlocked = false;
  run_[port].watched = 0;
  if (cfg_.multiport && P().driverReady && p.ready) Announce(uint32_t(port), kPortOpen, 0);
  if (cfg_.report) cfg_.report(kConsoleEventDisconnect, uint32_t(port));
}

bool ConsoleWorker::Pop(int q, Chain* out) {
  if (!cfg_.queues[q].present) return false;
  if (q_[q].Pop(out)) return true;
  if (q_[q].error() != ChainError::kNone) Broken(q, q_[q].error());
  return false;
}

void ConsoleWorker::Run() {
  for (;;) {
    if (cfg_.multiport && cfg_.queues[kConsoleCtrlTx].present) ServiceCtrlTx();
    for (size_t p = 0; p < P().ports.size(); p++) {
      if (!Active(int(p))) continue;
      ServicePortTx(int(p));
      ServicePortRx(int(p));
    }
    if (cfg_.multiport) FlushCtrl();
    for (int q = 0; q < kConsoleQueues; q++) {
      if (pushed_[q] && q_[q].NeedInterrupt()) Interrupt(q);
      pushed_[q] = false;
    }
    for (size_t p = 0; p < P().ports.size(); p++)
      if (Active(int(p))) UpdateWatch(int(p));
    if (stopping_.load(std::memory_order_relaxed)) return;
    epoll_event evs[16];
    int n = epoll_wait(ep_.epollFd, evs, 16, -1);
    if (n < 0 && errno != EINTR) return;
    for (int i = 0; i < n; i++) {
      const uint64_t tag = evs[i].data.u64;
      if (tag == kTagStop) return;
      if (tag < uint64_t(kConsoleQueues)) {
        DrainEventfd(cfg_.queues[tag].notifyFd);
        // A kick on a port's receiveq means buffers: read its socket again.
        for (size_t p = 0; p < P().ports.size(); p++)
          if (ConsoleRxQueue(int(p)) == int(tag)) run_[p].rxStarved = false;
      } else if (tag >= kTagListen && tag < kTagListen + kConsoleMaxPorts) {
        Accept(int(tag - kTagListen));
      } else if (tag >= kTagConn && tag < kTagConn + kConsoleMaxPorts) {
        const int port = int(tag - kTagConn);
        if (evs[i].events & EPOLLOUT) run_[port].txBlocked = false;
        // A client gone both ways is disconnected; one that only stopped sending still gets output.
        if (evs[i].events & (EPOLLHUP | EPOLLERR)) Disconnect(port);
      }
    }
  }
}

// Host client -> guest: bytes read straight into the port's receive buffers (§5.3.6.1).
void ConsoleWorker::ServicePortRx(int port) {
  ConsolePort& p = P().ports[port];
  PortRun& r = run_[port];
  const int q = ConsoleRxQueue(port);
  if (p.connFd < 0 || p.readClosed || !GuestReading(port) || !cfg_.queues[q].present || q_[q].error() != ChainError::kNone) return;
  for (int i = 0; i < kBatch; i++) {
    if (!r.haveRx) {
      if (!Pop(q, &r.rxHeld)) {
        if (q_[q].error() != ChainError::kNone) return;
        if (q_[q].EnableNotifyAndCheck()) continue;
        r.rxStarved = true;
        return;
      }
      bool ok = !r.rxHeld.badAddress && !r.rxHeld.segments.empty();
      for (const Segment& s : r.rxHeld.segments) ok = ok && s.writable;
      if (!ok) {
        P().stats.badChains.fetch_add(1, std::memory_order_relaxed);
        q_[q].Push(r.rxHeld.head, 0);
        pushed_[q] = true;
        continue;
      }
      r.haveRx = true;
    }
    iov_.clear();
    for (const Segment& s : r.rxHeld.segments)
      if (s.len) iov_.push_back({s.host, s.len});
    if (iov_.empty()) {  // all-zero lengths: nothing fits, give it back
      q_[q].Push(r.rxHeld.head, 0);
      pushed_[q] = true;
      r.haveRx = false;
      continue;
    }
    ssize_t n;
    do n = readv(p.connFd, iov_.data(), int(std::min<size_t>(iov_.size(), IOV_MAX)));
    while (n < 0 && errno == EINTR);
    if (n > 0) {
      q_[q].Push(r.rxHeld.head, uint32_t(n));
      pushed_[q] = true;
      r.haveRx = false;
      P().stats.rxBytes.fetch_add(uint64_t(n), std::memory_order_relaxed);
      continue;
    }
    if (n == 0) p.readClosed = true;  // the client finished sending
    else if (errno != EAGAIN && errno != EWOULDBLOCK) Disconnect(port);
    return;  // the held chain waits for the next bytes
  }
}

// Guest -> host client: each transmit chain's bytes in order; a full socket holds the chain (nothing is dropped
// while a client is connected), with no client the bytes are discarded as bhyve does.
void ConsoleWorker::ServicePortTx(int port) {
  ConsolePort& p = P().ports[port];
  PortRun& r = run_[port];
  const int q = ConsoleTxQueue(port);
  if (!cfg_.queues[q].present || r.txBlocked) return;
  q_[q].DisableNotify();
  for (int i = 0; i < kBatch; i++) {
    if (!r.haveTx) {
      if (!Pop(q, &r.txHeld)) {
        if (q_[q].error() != ChainError::kNone) return;
        if (q_[q].EnableNotifyAndCheck()) continue;
        return;
      }
      r.haveTx = true;
    }
    Chain& c = r.txHeld;
    bool bad = c.badAddress;
    uint64_t total = 0;
    for (const Segment& s : c.segments) {
      bad = bad || s.writable;
      total += s.len;
    }
    if (bad) {
      P().stats.badChains.fetch_add(1, std::memory_order_relaxed);
    } else if (p.connFd < 0) {
      P().stats.txDiscarded.fetch_add(total, std::memory_order_relaxed);
    } else {
      // Skip what an earlier pass (or an earlier worker) already wrote of this chain.
      iov_.clear();
      uint64_t skip = p.txResume;
      for (const Segment& s : c.segments) {
        if (skip >= s.len) {
          skip -= s.len;
          continue;
        }
        iov_.push_back({s.host + skip, size_t(s.len - skip)});
        skip = 0;
      }
      while (!iov_.empty()) {
        msghdr mh{};
        mh.msg_iov = iov_.data();
        mh.msg_iovlen = std::min<size_t>(iov_.size(), IOV_MAX);
        ssize_t w = sendmsg(p.connFd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          r.txBlocked = true;
          return;  // the chain stays held; EPOLLOUT resumes it
        }
        if (w < 0) {
          Disconnect(port);  // the rest of the chain is dropped with the client
          break;
        }
        p.txResume += uint32_t(w);
        P().stats.txBytes.fetch_add(uint64_t(w), std::memory_order_relaxed);
        size_t left = size_t(w);
        while (!iov_.empty() && left >= iov_.front().iov_len) {
          left -= iov_.front().iov_len;
          iov_.erase(iov_.begin());
        }
        if (!iov_.empty()) {
          iov_.front().iov_base = static_cast<uint8_t*>(iov_.front().iov_base) + left;
          iov_.front().iov_len -= left;
        }
      }
    }
    p.txResume = 0;
    q_[q].Push(c.head, 0);
    pushed_[q] = true;
    r.haveTx = false;
  }
}

// Driver -> device control messages (§5.3.6.2), each at least the 8-byte header in readable descriptors.
void ConsoleWorker::ServiceCtrlTx() {
  const int q = kConsoleCtrlTx;
  Chain c;
  for (int i = 0; i < kBatch; i++) {
    if (!Pop(q, &c)) {
      if (q_[q].error() == ChainError::kNone && q_[q].EnableNotifyAndCheck()) continue;
      return;
    }
    uint8_t msg[kCtrlHeader];
    uint32_t got = 0;
    bool bad = c.badAddress;
    for (const Segment& s : c.segments) {
      if (s.writable) {
        bad = true;
        continue;
      }
      uint32_t n = std::min(s.len, kCtrlHeader - got);
      std::memcpy(msg + got, s.host, n);
      got += n;
    }
    q_[q].Push(c.head, 0);
    pushed_[q] = true;
    P().stats.ctrlIn.fetch_add(1, std::memory_order_relaxed);
    if (bad || got < kCtrlHeader) {
      P().stats.ctrlErrors.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    uint32_t id;
    uint16_t event, value;
    std::memcpy(&id, msg, 4);
    std::memcpy(&event, msg + 4, 2);
    std::memcpy(&value, msg + 6, 2);
    HandleCtrl(id, event, value);
  }
}

void ConsoleWorker::HandleCtrl(uint32_t id, uint16_t event, uint16_t value) {
  ConsolePorts& ps = P();
  switch (event) {
    case kDeviceReady:
      // value 0: the driver failed to set up; it will not use the ports.
      if (value != 1) return;
      ps.driverReady = true;
      for (size_t p = 0; p < ps.ports.size(); p++) Announce(uint32_t(p), kDeviceAdd, 1);
      return;
    case kPortReady: {
      if (id >= ps.ports.size() || !ps.driverReady) break;
      ConsolePort& p = ps.ports[id];
      if (value != 1) return;  // the driver could not add it
      p.ready = true;
      // §5.3.6.2: after PORT_READY the device says whether it is a console, its name, and whether it is open.
      if (p.console) Announce(id, kConsolePort, 1);
      Announce(id, kPortName, 0, p.name);
      if (p.connFd >= 0) Announce(id, kPortOpen, 1);
      return;
    }
    case kPortOpen:
      if (id >= ps.ports.size()) break;
      ps.ports[id].guestOpen = value != 0;
      return;
    default:
      break;
  }
  ps.stats.ctrlErrors.fetch_add(1, std::memory_order_relaxed);
}

void ConsoleWorker::Announce(uint32_t id, uint16_t event, uint16_t value, const std::string& payload) {
  ConsolePorts& ps = P();
  if (ps.pendingCtrl.size() >= kMaxPendingCtrl) {
    ps.stats.ctrlDropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::vector<uint8_t> m(kCtrlHeader + payload.size());
  std::memcpy(m.data(), &id, 4);
  std::memcpy(m.data() + 4, &event, 2);
  std::memcpy(m.data() + 6, &value, 2);
  if (!payload.empty()) std::memcpy(m.data() + kCtrlHeader, payload.data(), payload.size());
  ps.pendingCtrl.push_back(std::move(m));
}

// Device -> driver control messages into the control receiveq's buffers, one message per chain.
void ConsoleWorker::FlushCtrl() {
  ConsolePorts& ps = P();
  const int q = kConsoleCtrlRx;
  Chain c;
  while (!ps.pendingCtrl.empty()) {
    if (!Pop(q, &c)) {
      if (q_[q].error() == ChainError::kNone && q_[q].EnableNotifyAndCheck()) continue;
      return;  // the messages wait for buffers; the next kick brings us back
    }
    uint64_t room = 0;
    bool ok = !c.badAddress;
    for (const Segment& s : c.segments) {
      ok = ok && s.writable;
      room += s.len;
    }
    const std::vector<uint8_t>& m = ps.pendingCtrl.front();
    if (!ok || room < m.size()) {
      // A buffer too small for the message (or not writable) is returned empty; the message tries the next one.
      ps.stats.badChains.fetch_add(1, std::memory_order_relaxed);
      q_[q].Push(c.head, 0);
      pushed_[q] = true;
      continue;
    }
    uint32_t done = 0;
    for (const Segment& s : c.segments) {
      if (done == m.size()) break;
      uint32_t n = std::min<uint32_t>(s.len, uint32_t(m.size()) - done);
      std::memcpy(s.host, m.data() + done, n);
      done += n;
    }
    q_[q].Push(c.head, done);
    pushed_[q] = true;
    ps.pendingCtrl.pop_front();
    ps.stats.ctrlOut.fetch_add(1, std::memory_order_relaxed);
  }
}

void ConsoleWorker::Interrupt(int q) {
  P().stats.interrupts.fetch_add(1, std::memory_order_relaxed);
  if (cfg_.useIsr) isr_.fetch_or(1);
  if (cfg_.queues[q].interruptFd >= 0) SignalEventfd(cfg_.queues[q].interruptFd);
  else if (cfg_.report) cfg_.report(kConsoleEventInterrupt, uint32_t(q));
}

void ConsoleWorker::Broken(int q, ChainError e) {
  ChainError none = ChainError::kNone;
  if (queueError_.compare_exchange_strong(none, e) && cfg_.report) cfg_.report(kConsoleEventNeedsReset, uint32_t(q));
}

}  // namespace virtio
}  // namespace tsbhyve
