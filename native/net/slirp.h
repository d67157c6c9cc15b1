#pragma once
// User-mode networking for virtio-net's `slirp` backend: libslirp (Debian's libslirp0, loaded with dlopen as
// bhyve's slirp helper does, so the addon builds and runs without it) on a thread of its own, joined to the
// device's NetWorker by a SOCK_SEQPACKET socket pair. Each record on the socket is one frame behind the virtio
// header the worker uses (10 or 12 bytes, all zero from this side: slirp neither makes nor takes offloaded frames).
// The guest sees bhyve's slirp network: 10.0.2.0/24, gateway 10.0.2.2, DNS 10.0.2.3, DHCP from 10.0.2.15.
#include <netinet/in.h>
#include <poll.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace tsbhyve {
namespace net {

struct HostForward {
  bool udp = false;
  sockaddr_in host{};   // where the host listens
  sockaddr_in guest{};  // where it is forwarded (address 0: slirp's first DHCP address)
};

struct SlirpSettings {
  // bhyve's default: the guest reaches nothing but the forwarded ports; `open` lets it out.
  bool restricted = true;
  std::vector<HostForward> forwards;
};

class SlirpBackend {
 public:
  SlirpBackend() = default;
  ~SlirpBackend() { Stop(); }
  SlirpBackend(const SlirpBackend&) = delete;
  SlirpBackend& operator=(const SlirpBackend&) = delete;

  // Loads libslirp, creates the stack with the forwards and starts the thread on `fd` (which it then owns).
  // False with *err (one line) when libslirp is missing or a forward cannot be set up.
  bool Start(int fd, const SlirpSettings& settings, std::string* err);
  void Stop();
  // The virtio header length the device currently uses (10, or 12 with mergeable receive buffers).
  void SetHeaderBytes(uint32_t n) { hdrLen_.store(n); }

  struct Stats {
    std::atomic<uint64_t> toGuest{0}, fromGuest{0}, dropped{0};
  };
  const Stats& stats() const { return stats_; }

  // Callbacks from libslirp (on the backend's thread).
  long SendToGuest(const void* buf, size_t len);
  void Notify();
  int AddPoll(int fd, int events);
  int Revents(int idx);

 private:
  void Run();

  void* slirp_ = nullptr;
  int fd_ = -1;
  int wakeFd_ = -1;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> hdrLen_{10};
  std::vector<::pollfd> pollfds_;
  std::vector<uint8_t> out_;
  Stats stats_;
};

}  // namespace net
}  // namespace tsbhyve
