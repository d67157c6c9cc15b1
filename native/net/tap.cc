#include "net/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tsbhyve {
namespace net {

int OpenTap(const std::string& name, std::string* err, int* errnum) {
  *errnum = 0;
  if (name.empty() || name.size() >= IFNAMSIZ) {
    *errnum = EINVAL;
    *err = "tap name \"" + name + "\" must have 1 to " + std::to_string(IFNAMSIZ - 1) + " characters";
    return -1;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *errnum = errno;
    *err = std::string("cannot open /dev/net/tun: ") + std::strerror(errno);
    return -1;
  }
  unsigned features = 0;
  if (ioctl(fd, TUNGETFEATURES, &features) != 0 || !(features & IFF_VNET_HDR)) {
    *errnum = ENOTSUP;
    *err = "this kernel's tun driver has no IFF_VNET_HDR";
    close(fd);
    return -1;
  }
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    *errnum = errno;
    if (errno == EPERM)
      *err = "tap device " + name + ": permission denied (it does not exist, or belongs to another user; creating one needs CAP_NET_ADMIN)";
    else if (errno == EBUSY)
      *err = "tap device " + name + " is in use (another VM has it open) or is not a tap with a virtio header";
    else if (errno == EINVAL)
      *err = "tap device " + name + ": " + name + " exists and is not a tap device";
    else
      *err = "tap device " + name + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

bool SetVnetHeaderSize(int fd, int bytes, std::string* err) {
  if (ioctl(fd, TUNSETVNETHDRSZ, &bytes) == 0) return true;
  *err = std::string("TUNSETVNETHDRSZ: ") + std::strerror(errno);
  return false;
}

bool SetOffloads(int fd, unsigned tunFlags, std::string* err) {
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)tunFlags) == 0) return true;
  *err = std::string("TUNSETOFFLOAD: ") + std::strerror(errno);
  return false;
}

}  // namespace net
}  // namespace tsbhyve
