#pragma once
// PRP (Physical Region Page) data pointers (NVMe 1.4 §4.3): turns PRP1/PRP2 of a command into checked host
// buffers. Every entry is checked before any byte moves: offsets (PRP1 dword aligned, later entries page
// aligned, list pointers qword aligned), the entry count the length needs, and every page against the
// guest memory map. The same walker serves the I/O path and the TypeScript admin path.
#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "guestmem/guest_memory.h"
#include "nvme/nvme_spec.h"

namespace tsbhyve {
namespace nvme {

// Appends to *iov the host ranges of `len` bytes described by prp1/prp2 for a transfer in direction
// `toGuest` (the device writes guest memory). pageSize is CC.MPS's (4 KiB up). Returns a status: success,
// PRP Offset Invalid, or Data Transfer Error for memory that is not guest RAM.
Status PrpToIovecs(const GuestMemory& mem, uint64_t prp1, uint64_t prp2, uint64_t len, uint32_t pageSize, bool toGuest,
                   std::vector<struct iovec>* iov);

// Copies between a host buffer and the guest buffer the PRPs describe.
Status PrpCopy(const GuestMemory& mem, uint64_t prp1, uint64_t prp2, uint8_t* buf, uint64_t len, uint32_t pageSize,
               bool toGuest);

}  // namespace nvme
}  // namespace tsbhyve
