#include "net/slirp.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <mutex>

namespace tsbhyve {
namespace net {

namespace {

// libslirp's public ABI (libslirp.h, SlirpConfig version 1 and the callbacks it uses), declared here so that the
// addon needs no development package: the library is found at run time.
struct SlirpConfigAbi {
  uint32_t version;
  int restricted;
  bool in_enabled;
  in_addr vnetwork;
  in_addr vnetmask;
  in_addr vhost;
  bool in6_enabled;
  in6_addr vprefix_addr6;
  uint8_t vprefix_len;
  in6_addr vhost6;
  const char* vhostname;
  const char* tftp_server_name;
  const char* tftp_path;
  const char* bootfile;
  in_addr vdhcp_start;
  in_addr vnameserver;
  in6_addr vnameserver6;
  const char** vdnssearch;
  const char* vdomainname;
  size_t if_mtu;
  size_t if_mru;
  bool disable_host_loopback;
  bool enable_emu;
};

using AddPollCb = int (*)(int fd, int events, void* opaque);
using GetReventsCb = int (*)(int idx, void* opaque);

struct SlirpCbAbi {
  long (*send_packet)(const void* buf, size_t len, void* opaque);
  void (*guest_error)(const char* msg, void* opaque);
  int64_t (*clock_get_ns)(void* opaque);
  void* (*timer_new)(void (*cb)(void*), void* cb_opaque, void* opaque);
  void (*timer_free)(void* timer, void* opaque);
  void (*timer_mod)(void* timer, int64_t expire_ms, void* opaque);
  void (*register_poll_fd)(int fd, void* opaque);
  void (*unregister_poll_fd)(int fd, void* opaque);
  void (*notify)(void* opaque);
};

constexpr int kPollIn = 1, kPollOut = 2, kPollPri = 4, kPollErr = 8, kPollHup = 16;  // SLIRP_POLL_*
constexpr int kHostfwdUdp = 1;                                                        // SLIRP_HOSTFWD_UDP
// bhyve's slirp helper: frames up to 2048 bytes each way.
constexpr uint32_t kSlirpMtu = 2048;

struct Api {
  void* (*slirp_new)(const SlirpConfigAbi*, const SlirpCbAbi*, void*);
  void (*slirp_cleanup)(void*);
  void (*slirp_input)(void*, const uint8_t*, int);
  void (*slirp_pollfds_fill)(void*, uint32_t*, AddPollCb, void*);
  void (*slirp_pollfds_poll)(void*, int, GetReventsCb, void*);
  int (*slirp_add_hostxfwd)(void*, const sockaddr*, socklen_t, const sockaddr*, socklen_t, int);
  bool loaded = false;
  std::string error;
};

// The library is loaded once per process and never unloaded (its symbols stay valid for every backend).
const Api& LoadApi() {
  static Api api;
  static std::once_flag once;
  std::call_once(once, [] {
    void* h = dlopen("libslirp.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* why = dlerror();
      api.error = std::string("libslirp.so.0 cannot be loaded (") + (why ? why : "?") + "); install Debian's libslirp0";
      return;
    }
    auto sym = [h](const char* name) { return dlsym(h, name); };
    api.slirp_new = reinterpret_cast<decltype(api.slirp_new)>(sym("slirp_new"));
    api.slirp_cleanup = reinterpret_cast<decltype(api.slirp_cleanup)>(sym("slirp_cleanup"));
    api.slirp_input = reinterpret_cast<decltype(api.slirp_input)>(sym("slirp_input"));
    api.slirp_pollfds_fill = reinterpret_cast<decltype(api.slirp_pollfds_fill)>(sym("slirp_pollfds_fill"));
    api.slirp_pollfds_poll = reinterpret_cast<decltype(api.slirp_pollfds_poll)>(sym("slirp_pollfds_poll"));
    api.slirp_add_hostxfwd = reinterpret_cast<decltype(api.slirp_add_hostxfwd)>(sym("slirp_add_hostxfwd"));
    if (!api.slirp_new || !api.slirp_cleanup || !api.slirp_input || !api.slirp_pollfds_fill || !api.slirp_pollfds_poll ||
        !api.slirp_add_hostxfwd) {
      api.error = "libslirp.so.0 lacks slirp_add_hostxfwd or another function tsbhyve needs (libslirp 4.5 or later)";
      return;
    }
    api.loaded = true;
  });
  return api;
}

SlirpBackend* Self(void* opaque) { return static_cast<SlirpBackend*>(opaque); }

long CbSend(const void* buf, size_t len, void* opaque) { return Self(opaque)->SendToGuest(buf, len); }
void CbGuestError(const char*, void*) {}
int64_t CbClock(void*) {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
void CbRegister(int, void*) {}
void CbUnregister(int, void*) {}
void CbNotify(void* opaque) { Self(opaque)->Notify(); }
int CbAddPoll(int fd, int events, void* opaque) { return Self(opaque)->AddPoll(fd, events); }
int CbRevents(int idx, void* opaque) { return Self(opaque)->Revents(idx); }

// With IPv6 off libslirp makes no timers (its TCP timers run from slirp_pollfds_fill's timeout).
const SlirpCbAbi kCallbacks = {CbSend, CbGuestError, CbClock, nullptr, nullptr, nullptr, CbRegister, CbUnregister, CbNotify};

in_addr Ipv4(uint32_t hostOrder) {
  in_addr a;
  a.s_addr = htonl(hostOrder);
  return a;
}

}  // namespace

bool SlirpBackend::Start(int fd, const SlirpSettings& settings, std::string* err) {
  const Api& api = LoadApi();
  if (!api.loaded) {
    *err = api.error;
    return false;
  }
  SlirpConfigAbi cfg{};
  cfg.version = 1;
  cfg.restricted = settings.restricted ? 1 : 0;
  cfg.in_enabled = true;
  cfg.vnetwork = Ipv4(0x0a000200);     // 10.0.2.0
  cfg.vnetmask = Ipv4(0xffffff00);     // /24
  cfg.vhost = Ipv4(0x0a000202);        // 10.0.2.2
  cfg.vdhcp_start = Ipv4(0x0a00020f);  // 10.0.2.15
  cfg.vnameserver = Ipv4(0x0a000203);  // 10.0.2.3
  cfg.if_mtu = kSlirpMtu;
  cfg.enable_emu = false;
  wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) {
    *err = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  slirp_ = api.slirp_new(&cfg, &kCallbacks, this);
  if (!slirp_) {
    *err = "libslirp could not create its network";
    close(wakeFd_);
    wakeFd_ = -1;
    return false;
  }
  for (const HostForward& f : settings.forwards) {
    if (api.slirp_add_hostxfwd(slirp_, reinterpret_cast<const sockaddr*>(&f.host), sizeof f.host,
                               reinterpret_cast<const sockaddr*>(&f.guest), sizeof f.guest, f.udp ? kHostfwdUdp : 0) != 0) {
      char host[INET_ADDRSTRLEN] = "?";
      inet_ntop(AF_INET, &f.host.sin_addr, host, sizeof host);
      *err = std::string("cannot forward ") + (f.udp ? "udp " : "tcp ") + host + ":" + std::to_string(ntohs(f.host.sin_port)) +
             ": " + std::strerror(errno);
      api.slirp_cleanup(slirp_);
      slirp_ = nullptr;
      close(wakeFd_);
      wakeFd_ = -1;
      return false;
    }
  }
  fd_ = fd;
  int fl = fcntl(fd_, F_GETFL);
  if (fl >= 0) fcntl(fd_, F_SETFL, fl | O_NONBLOCK);
  out_.resize(12 + kSlirpMtu + 64);
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
  return true;
}

void SlirpBackend::Stop() {
  if (thread_.joinable()) {
    stopping_ = true;
    Notify();
    thread_.join();
  }
  if (slirp_) LoadApi().slirp_cleanup(slirp_);
  slirp_ = nullptr;
  if (fd_ >= 0) close(fd_);
  if (wakeFd_ >= 0) close(wakeFd_);
  fd_ = wakeFd_ = -1;
}

void SlirpBackend::Notify() {
  uint64_t one = 1;
  if (wakeFd_ >= 0) (void)!write(wakeFd_, &one, sizeof one);
}

long SlirpBackend::SendToGuest(const void* buf, size_t len) {
  const uint32_t hdr = hdrLen_.load();
  if (len > kSlirpMtu + 64) {
    stats_.dropped.fetch_add(1, std::memory_order_relaxed);
    return long(len);
  }
  std::memset(out_.data(), 0, hdr);
  std::memcpy(out_.data() + hdr, buf, len);
  // A full socket drops the frame, as a busy wire would; TCP inside the guest retransmits.
  if (send(fd_, out_.data(), hdr + len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) stats_.dropped.fetch_add(1, std::memory_order_relaxed);
  else stats_.toGuest.fetch_add(1, std::memory_order_relaxed);
  return long(len);
}

int SlirpBackend::AddPoll(int fd, int events) {
  pollfd p{};
  p.fd = fd;
  if (events & kPollIn) p.events |= POLLIN;
  if (events & kPollOut) p.events |= POLLOUT;
  if (events & kPollPri) p.events |= POLLPRI;
  if (events & kPollErr) p.events |= POLLERR;
  if (events & kPollHup) p.events |= POLLHUP;
  pollfds_.push_back(p);
  return int(pollfds_.size() - 1);
}

int SlirpBackend::Revents(int idx) {
  if (idx < 0 || size_t(idx) >= pollfds_.size()) return 0;
  const pollfd& p = pollfds_[size_t(idx)];
  short r = p.revents;
  if (!(p.events & POLLHUP)) r &= ~POLLHUP;  // reported even when not asked for
  int out = 0;
  if (r & POLLIN) out |= kPollIn;
  if (r & POLLOUT) out |= kPollOut;
  if (r & POLLPRI) out |= kPollPri;
  if (r & POLLERR) out |= kPollErr;
  if (r & POLLHUP) out |= kPollHup;
  return out;
}

void SlirpBackend::Run() {
  const Api& api = LoadApi();
  std::vector<uint8_t> in(12 + 65536);
  while (!stopping_.load()) {
    pollfds_.clear();
    AddPoll(wakeFd_, kPollIn);
    AddPoll(fd_, kPollIn);
    uint32_t timeout = UINT32_MAX;
    api.slirp_pollfds_fill(slirp_, &timeout, CbAddPoll, this);
    int t = timeout == UINT32_MAX ? 1000 : int(std::min<uint32_t>(timeout, 1000));
    int n = poll(pollfds_.data(), pollfds_.size(), t);
    api.slirp_pollfds_poll(slirp_, n < 0 ? 1 : 0, CbRevents, this);
    if (n < 0) continue;
    if (pollfds_[1].revents & (POLLHUP | POLLERR)) return;  // the device side is gone
    if (pollfds_[0].revents & POLLIN) {
      uint64_t v;
      while (read(wakeFd_, &v, sizeof v) == sizeof v) {
      }
    }
    if (pollfds_[1].revents & POLLIN) {
      // Frames from the guest, each behind the device's virtio header.
      for (int i = 0; i < 256; i++) {
        ssize_t got = recv(fd_, in.data(), in.size(), MSG_DONTWAIT);
        if (got < 0) break;
        const uint32_t hdr = hdrLen_.load();
        if (size_t(got) < hdr + 14) continue;
        stats_.fromGuest.fetch_add(1, std::memory_order_relaxed);
        api.slirp_input(slirp_, in.data() + hdr, int(got - hdr));
      }
    }
  }
}

}  // namespace net
}  // namespace tsbhyve
