#pragma once
// Linux tap devices through /dev/net/tun, in the mode virtio-net wants: Ethernet frames without the packet
// information prefix, each preceded by a virtio_net_hdr (IFF_VNET_HDR) so checksum and segmentation offloads pass
// through unchanged in both directions.
#include <cstdint>
#include <string>

namespace tsbhyve {
namespace net {

// TUN_F_* offload bits the reader (the guest's receive side) can take.
constexpr unsigned kOffloadCsum = 0x01;
constexpr unsigned kOffloadTso4 = 0x02;
constexpr unsigned kOffloadTso6 = 0x04;
constexpr unsigned kOffloadTsoEcn = 0x08;

// Opens (or, with CAP_NET_ADMIN, creates) the tap `name`: a non-blocking, close-on-exec fd, or -1 with *err in
// words a user can act on and *errnum set.
int OpenTap(const std::string& name, std::string* err, int* errnum);
// The virtio header the kernel reads and writes before each frame: 10 bytes, or 12 with MRG_RXBUF.
bool SetVnetHeaderSize(int fd, int bytes, std::string* err);
// Which offloads the kernel may leave to us on frames it hands to the guest (TUNSETOFFLOAD).
bool SetOffloads(int fd, unsigned tunFlags, std::string* err);

}  // namespace net
}  // namespace tsbhyve
