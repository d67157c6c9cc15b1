#pragma once
// The block backend every disk emulation shares (virtio-blk now; NVMe and AHCI later): one open file or
// block device with bhyve's block_if.c options, and synchronous positioned I/O on it. Callers run these
// calls on their own worker threads; a BlockFile has no threads and no locks of its own, and every method
// is safe to call from several threads at once (pread/pwrite family on one fd).
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace tsbhyve {
namespace block {

struct OpenOptions {
  std::string path;
  bool readOnly = false;  // `ro`
  bool noCache = false;   // `nocache`: O_DIRECT
  bool sync = false;      // `direct` / `sync`: O_SYNC (bhyve's meaning of "direct")
  bool noDelete = false;  // `nodelete`: never punch holes
  // `sectorsize=L[/P]`; 0 means "from the file" (512 for regular files, the device's own for block devices).
  uint32_t logicalSector = 0;
  uint32_t physicalSector = 0;
  // Non-zero: no file at `path` but an anonymous in-memory disk of this many bytes (a memfd, so every
  // caller, io_uring included, sees the same kind of fd; NVMe's `ram=`). `path` then only names it.
  uint64_t memoryBytes = 0;
};

// O_DIRECT alignment for buffers; a page covers every logical block size up to 4 KiB.
constexpr uintptr_t kDirectAlign = 4096;
// Largest bounce buffer for O_DIRECT requests with unaligned guest buffers.
constexpr uint64_t kBounceChunk = 1 << 20;

// Result of an operation: 0 or a positive errno.
using Errno = int;

class BlockFile {
 public:
  // Opens the backend as bhyve's blockif_open does: read-write unless `ro`, falling back to read-only when the
  // file cannot be opened for writing (EACCES/EROFS), which `readOnly()` then reports. Returns 0 or an errno
  // with `*err` set to bhyve's wording.
  static Errno Open(const OpenOptions& opts, std::unique_ptr<BlockFile>* out, std::string* err);
  ~BlockFile();
  BlockFile(const BlockFile&) = delete;
  BlockFile& operator=(const BlockFile&) = delete;

  uint64_t size() const { return size_.load(std::memory_order_relaxed); }
  // Re-reads the size of the file or device (it may have been resized under the VM); returns the new size,
  // or 0 with *err set when it cannot be read. Requests check ranges against the latest size.
  uint64_t Refresh(Errno* err);
  uint32_t logicalSector() const { return logical_; }
  uint32_t physicalSector() const { return physical_; }
  bool readOnly() const { return readOnly_; }
  // True when discard (and unmapping write-zeroes) can reach the storage: not `nodelete`, not read-only, and
  // the file system accepted a hole punch probe (or the device is a block device).
  bool canDelete() const { return canDelete_; }
  // True when a write ends in the page cache (no O_DIRECT, no O_SYNC, not a block device): it does not wait for
  // the storage, so a queue worker may run it inline rather than hand it to io_uring, which on file systems
  // without async buffered writes (ext4 among them) passes each one to a kernel worker thread.
  bool writesToPageCache() const { return !direct_ && !sync_ && !isBlockDevice_; }

  // A read that only copies from the page cache: 0 when all of it was cached and copied, EAGAIN when some of it
  // would have to wait for the disk (or the file is O_DIRECT), which the caller then reads through its engine.
  // Lets a queue worker finish cached reads at once instead of a round trip through io_uring.
  Errno ReadvCached(const struct iovec* iov, int iovcnt, uint64_t off);

  // Whole transfers at byte offset `off`; a short transfer or an access past the end is an error (EIO).
  Errno Readv(const struct iovec* iov, int iovcnt, uint64_t off);
  Errno Writev(const struct iovec* iov, int iovcnt, uint64_t off);
  // fdatasync: everything written before is on stable storage when this returns 0.
  Errno Flush();
  // Deallocates [off, off+len) (reads return zeros afterwards).
  Errno Discard(uint64_t off, uint64_t len);
  // Zeroes [off, off+len); with `unmap` it may deallocate instead of writing.
  Errno WriteZeroes(uint64_t off, uint64_t len, bool unmap);

 private:
  friend class AsyncIo;  // submits the same transfers through io_uring (block/async_io.h)
  BlockFile() = default;
  // O_DIRECT needs aligned memory, offsets and lengths; unaligned guest buffers go through a bounce buffer.
  bool NeedsBounce(const struct iovec* iov, int iovcnt) const;
  Errno Transfer(const struct iovec* iov, int iovcnt, uint64_t off, bool write);
  bool RangeOk(uint64_t off, uint64_t len) const {
    const uint64_t size = size_.load(std::memory_order_relaxed);
    return off <= size && len <= size - off;
  }

  int fd_ = -1;
  bool isBlockDevice_ = false;
  bool readOnly_ = false;
  bool direct_ = false;
  bool sync_ = false;
  bool canDelete_ = false;
  std::atomic<uint64_t> size_{0};
  uint32_t logical_ = 512;
  uint32_t physical_ = 512;
};

}  // namespace block
}  // namespace tsbhyve
