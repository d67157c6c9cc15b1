#include "block/block_file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace tsbhyve {
namespace block {

namespace {

// Zeroes written per pwrite when the file system cannot zero a range itself.
constexpr size_t kZeroChunk = 1 << 20;

// Whether the block device `rdev` can discard: its queue's discard_max_bytes is not 0. A partition has no
// queue directory of its own; its disk's is one level up.
bool DeviceCanDiscard(dev_t rdev) {
  const std::string base = "/sys/dev/block/" + std::to_string(major(rdev)) + ":" + std::to_string(minor(rdev));
  for (const char* rel : {"/queue/discard_max_bytes", "/../queue/discard_max_bytes"}) {
    int fd = open((base + rel).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[32] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0) return std::strtoull(buf, nullptr, 10) > 0;
  }
  return false;
}

Errno RetryingIo(int fd, const struct iovec* iov, int iovcnt, uint64_t off, bool write) {
  // Copy the vector so that a partial transfer can advance it without touching the caller's array.
  std::vector<struct iovec> v(iov, iov + iovcnt);
  size_t at = 0;
  while (at < v.size()) {
    if (v[at].iov_len == 0) {
      at++;
      continue;
    }
    int n = int(std::min<size_t>(v.size() - at, IOV_MAX));
    ssize_t r = write ? pwritev(fd, &v[at], n, off_t(off)) : preadv(fd, &v[at], n, off_t(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) return EIO;  // end of file inside the device's size: the file shrank under us
    off += uint64_t(r);
    size_t left = size_t(r);
    while (left > 0 && at < v.size()) {
      size_t take = std::min(left, v[at].iov_len);
      v[at].iov_base = static_cast<uint8_t*>(v[at].iov_base) + take;
      v[at].iov_len -= take;
      left -= take;
      if (v[at].iov_len == 0) at++;
    }
  }
  return 0;
}

}  // namespace

Errno BlockFile::Open(const OpenOptions& o, std::unique_ptr<BlockFile>* out, std::string* err) {
  std::unique_ptr<BlockFile> f(new BlockFile());
  int extra = O_CLOEXEC | (o.noCache ? O_DIRECT : 0) | (o.sync ? O_SYNC : 0);
  bool ro = o.readOnly;
  int fd;
  if (o.memoryBytes != 0) {
    fd = memfd_create(o.path.c_str(), MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, off_t(o.memoryBytes)) != 0) {
      int e = errno;
      if (fd >= 0) close(fd);
      *err = "Could not create the in-memory disk " + o.path + ": " + std::strerror(e);
      return e;
    }
    extra = 0;
    ro = false;
  } else {
    fd = open(o.path.c_str(), (ro ? O_RDONLY : O_RDWR) | extra);
  }
  if (fd < 0 && !ro) {
    // blockif_open: a disk that cannot be opened read-write is attached read-only.
    fd = open(o.path.c_str(), O_RDONLY | extra);
    ro = true;
  }
  if (fd < 0) {
    int e = errno;
    *err = "Could not open backing file: " + o.path + ": " + std::strerror(e);
    return e;
  }
  f->fd_ = fd;
  f->readOnly_ = ro;
  f->direct_ = o.noCache && o.memoryBytes == 0;
  f->sync_ = o.sync;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    *err = "Could not stat backing file " + o.path + ": " + std::strerror(e);
    return e;
  }
  uint32_t devSector = 512;
  f->physical_ = 512;
  if (S_ISBLK(st.st_mode)) {
    f->isBlockDevice_ = true;
    uint64_t bytes = 0;
    int lss = 0;
    unsigned int pss = 0;
    if (ioctl(fd, BLKGETSIZE64, &bytes) != 0 || ioctl(fd, BLKSSZGET, &lss) != 0 || lss <= 0) {
      int e = errno ? errno : EINVAL;
      *err = "Could not fetch device size/sector size of " + o.path + ": " + std::strerror(e);
      return e;
    }
    f->size_ = bytes;
    devSector = uint32_t(lss);
    f->physical_ = (ioctl(fd, BLKPBSZGET, &pss) == 0 && pss >= devSector) ? pss : devSector;
  } else if (S_ISREG(st.st_mode)) {
    f->size_ = uint64_t(st.st_size);
    // block_if.c reports the file system's preferred I/O size as the physical sector of a file.
    if (st.st_blksize >= 512 && (st.st_blksize & (st.st_blksize - 1)) == 0) f->physical_ = uint32_t(st.st_blksize);
  } else {
    *err = "Backing file " + o.path + " is neither a regular file nor a block device";
    return EINVAL;
  }
  f->logical_ = devSector;
  if (o.logicalSector != 0) {
    // The emulated sector must be a whole number of the device's sectors (block_if.c says the same).
    if (f->isBlockDevice_ && (o.logicalSector < devSector || o.logicalSector % devSector != 0)) {
      *err = "Sector size " + std::to_string(o.logicalSector) + " incompatible with underlying device sector size " +
             std::to_string(devSector);
      return EINVAL;
    }
    f->logical_ = o.logicalSector;
    f->physical_ = o.physicalSector != 0 ? o.physicalSector : o.logicalSector;
  }
  if (!f->readOnly_ && !o.noDelete) {
    if (f->isBlockDevice_) {
      // Discards go to the device with BLKDISCARD, when its queue takes them.
      f->canDelete_ = DeviceCanDiscard(st.st_rdev);
    } else {
      // Probe: punching one byte past the end with KEEP_SIZE changes nothing and fails only when the file
      // system has no hole support.
      f->canDelete_ =
          fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(f->size_), 1) == 0;
    }
  }
  *out = std::move(f);
  return 0;
}

uint64_t BlockFile::Refresh(Errno* err) {
  *err = 0;
  uint64_t bytes = 0;
  if (isBlockDevice_) {
    if (ioctl(fd_, BLKGETSIZE64, &bytes) != 0) {
      *err = errno;
      return 0;
    }
  } else {
    struct stat st;
    if (fstat(fd_, &st) != 0) {
      *err = errno;
      return 0;
    }
    bytes = uint64_t(st.st_size);
  }
  size_.store(bytes, std::memory_order_relaxed);
  return bytes;
}

BlockFile::~BlockFile() {
  if (fd_ >= 0) close(fd_);
}

bool BlockFile::NeedsBounce(const struct iovec* iov, int iovcnt) const {
  if (!direct_) return false;
  for (int i = 0; i < iovcnt; i++) {
    if ((reinterpret_cast<uintptr_t>(iov[i].iov_base) % kDirectAlign) != 0 || (iov[i].iov_len % logical_) != 0) return true;
  }
  return false;
}

Errno BlockFile::Transfer(const struct iovec* iov, int iovcnt, uint64_t off, bool write) {
  uint64_t total = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > UINT64_MAX - total) return EINVAL;
    total += iov[i].iov_len;
  }
  if (!RangeOk(off, total)) return EIO;
  if (total == 0) return 0;
  if (!NeedsBounce(iov, iovcnt)) return RetryingIo(fd_, iov, iovcnt, off, write);
  // Through one aligned buffer of at most kBounceChunk bytes, so a huge request cannot make the host
  // allocate its size: gather each chunk before writing it, scatter each chunk after reading it. Chunks
  // are multiples of the page, so their file offsets keep the request's alignment.
  const size_t chunk = size_t(std::min<uint64_t>(total, kBounceChunk));
  void* buf = nullptr;
  if (posix_memalign(&buf, kDirectAlign, chunk) != 0) return ENOMEM;
  uint8_t* b = static_cast<uint8_t*>(buf);
  int vi = 0;         // iovec being consumed
  size_t vo = 0;      // offset inside it
  Errno e = 0;
  for (uint64_t done = 0; done < total && e == 0;) {
    const size_t n = size_t(std::min<uint64_t>(total - done, chunk));
    // Walks n bytes of the guest's vector, copying in the direction of the transfer.
    auto copy = [&](bool toBuffer) {
      size_t at = 0;
      while (at < n) {
        const size_t take = std::min(n - at, iov[vi].iov_len - vo);
        uint8_t* g = static_cast<uint8_t*>(iov[vi].iov_base) + vo;
        if (toBuffer) std::memcpy(b + at, g, take);
        else std::memcpy(g, b + at, take);
        at += take;
        vo += take;
        if (vo == iov[vi].iov_len) {
          vi++;
          vo = 0;
        }
      }
    };
    const int saveVi = vi;
    const size_t saveVo = vo;
    if (write) copy(true);
    struct iovec one = {b, n};
    e = RetryingIo(fd_, &one, 1, off + done, write);
    if (e == 0 && !write) {
      vi = saveVi;
      vo = saveVo;
      copy(false);
    }
    done += n;
  }
  free(buf);
  return e;
}

Errno BlockFile::Readv(const struct iovec* iov, int iovcnt, uint64_t off) { return Transfer(iov, iovcnt, off, false); }

Errno BlockFile::ReadvCached(const struct iovec* iov, int iovcnt, uint64_t off) {
  if (direct_ || iovcnt > IOV_MAX) return EAGAIN;
  uint64_t total = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > UINT64_MAX - total) return EINVAL;
    total += iov[i].iov_len;
  }
  if (!RangeOk(off, total) || off > uint64_t(INT64_MAX)) return EIO;
  if (total == 0) return 0;
  // RWF_NOWAIT: the kernel copies what the page cache holds and refuses (EAGAIN) rather than wait for the disk.
  const ssize_t n = preadv2(fd_, iov, iovcnt, off_t(off), RWF_NOWAIT);
  if (n < 0) return errno == EOPNOTSUPP || errno == EINTR ? EAGAIN : errno;
  return uint64_t(n) == total ? 0 : EAGAIN;  // a partial copy: the rest is not cached; the caller reads it all again
}

Errno BlockFile::Writev(const struct iovec* iov, int iovcnt, uint64_t off) {
  if (readOnly_) return EROFS;
  return Transfer(iov, iovcnt, off, true);
}

Errno BlockFile::Flush() {
  if (readOnly_) return 0;  // nothing can be dirty
  while (fdatasync(fd_) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

Errno BlockFile::Discard(uint64_t off, uint64_t len) {
  if (readOnly_) return EROFS;
  if (!canDelete_) return EOPNOTSUPP;
  if (!RangeOk(off, len)) return EIO;
  if (len == 0) return 0;
  if (off > uint64_t(INT64_MAX) || len > uint64_t(INT64_MAX)) return EINVAL;
  if (isBlockDevice_) {
    // A plain discard (what the guest asked for); on a block device a punched hole would be a zero-out.
    uint64_t range[2] = {off, len};
    return ioctl(fd_, BLKDISCARD, range) == 0 ? 0 : errno;
  }
  if (fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(off), off_t(len)) != 0) return errno;
  return 0;
}

Errno BlockFile::WriteZeroes(uint64_t off, uint64_t len, bool unmap) {
  if (readOnly_) return EROFS;
  if (!RangeOk(off, len)) return EIO;
  if (len == 0) return 0;
  if (off > uint64_t(INT64_MAX) || len > uint64_t(INT64_MAX)) return EINVAL;
  // Prefer deallocation when allowed (a hole reads as zeros), then the file system's zero-range, and write
  // zeros by hand as the last resort.
  if (unmap && canDelete_ && fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(off), off_t(len)) == 0)
    return 0;
  if (fallocate(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off_t(off), off_t(len)) == 0) return 0;
  void* buf = nullptr;
  size_t chunk = size_t(std::min<uint64_t>(len, kZeroChunk));
  if (posix_memalign(&buf, kDirectAlign, chunk) != 0) return ENOMEM;
  std::memset(buf, 0, chunk);
  Errno e = 0;
  while (len > 0 && e == 0) {
    size_t n = size_t(std::min<uint64_t>(len, chunk));
    struct iovec one = {buf, n};
    e = RetryingIo(fd_, &one, 1, off, true);
    off += n;
    len -= n;
  }
  free(buf);
  return e;
}

}  // namespace block
}  // namespace tsbhyve
