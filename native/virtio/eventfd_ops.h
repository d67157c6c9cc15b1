#pragma once
// The two eventfd operations every queue worker needs: empty the counter after a wake-up, and signal one.
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace tsbhyve {
namespace virtio {

inline void DrainEventfd(int fd) {
  uint64_t v;
  while (read(fd, &v, sizeof v) == sizeof v) {
  }
}

inline void SignalEventfd(int fd) {
  uint64_t one = 1;
  while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

}  // namespace virtio
}  // namespace tsbhyve
