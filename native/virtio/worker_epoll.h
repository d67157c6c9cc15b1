#pragma once
// What the epoll-driven queue workers (net, console) sleep in: an epoll set that always holds a stop eventfd, so
// Stop() can wake the thread wherever it waits. One owner; Close() after the thread has joined.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "virtio/eventfd_ops.h"

namespace tsbhyve {
namespace virtio {

struct WorkerEpoll {
  int stopFd = -1;
  int epollFd = -1;

  // Creates both and registers the stop eventfd under `stopTag`; false with *err (and nothing left open).
  bool Open(uint64_t stopTag, std::string* err) {
    stopFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epollFd = epoll_create1(EPOLL_CLOEXEC);
    if (stopFd < 0 || epollFd < 0) {
      *err = std::string("eventfd/epoll: ") + std::strerror(errno);
      Close();
      return false;
    }
    if (!Add(stopFd, stopTag)) {
      *err = std::string("epoll_ctl: ") + std::strerror(errno);
      Close();
      return false;
    }
    return true;
  }
  bool Add(int fd, uint64_t tag, uint32_t events = EPOLLIN) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    return epoll_ctl(epollFd, EPOLL_CTL_ADD, fd, &ev) == 0;
  }
  void Wake() { SignalEventfd(stopFd); }
  void Close() {
    if (stopFd >= 0) close(stopFd);
    if (epollFd >= 0) close(epollFd);  // closing the epoll fd drops every registration
    stopFd = epollFd = -1;
  }
};

}  // namespace virtio
}  // namespace tsbhyve
