#pragma once
// An AHCI 1.3 host bus adapter: its registers and the command engine of each port, run natively. The guest's
// register accesses (vCPU MMIO exits, or calls from JavaScript) come to Read/Write; a port's worker thread fetches
// the command headers the guest issued through PxCI, reads the command FIS and PRDT, runs the ATA command (or
// the ATAPI packet command) on the block backend, writes the FISes the guest expects into its FIS receive area
// and raises the HBA's interrupt: an eventfd (irqfd for MSI on KVM), or a report to the owner (INTx, or MSI
// without KVM). What stays in TypeScript (devices/ahci): the PCI function, the options and the IDENTIFY data.
//
// Engines: a disk's reads and writes go through io_uring (block/async_io.h), so the 32 NCQ tags a guest queues are
// all in flight on the disk at once; every other command, and every command where io_uring is refused, runs on the
// worker one at a time, after what is in flight has finished.
//
// Locks: each port has a mutex for its registers; the HBA-wide registers have another. A port never holds its
// lock across blocking I/O; the HBA lock is taken inside a port lock, never the other way round.
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ahci/atapi.h"
#include "block/block_file.h"
#include "guestmem/guest_memory.h"

namespace tsbhyve {
namespace ahci {

struct PortSetup {
  std::shared_ptr<block::BlockFile> file;  // null: no device on the port
  bool atapi = false;
  std::vector<uint8_t> identify;           // 512 bytes: IDENTIFY DEVICE, or IDENTIFY PACKET DEVICE for ATAPI
  AtapiIdentity inquiry;                   // ATAPI INQUIRY strings
  uint32_t lbaShift = 9;                   // disks: log2 of the logical sector
  bool useUring = true;                    // false: every command runs synchronously on the worker (aio=threads)
};

enum class HbaEvent : int {
  kIntx = 1,  // arg: the INTx line level (0 or 1)
  kMsi = 2,   // send MSI message `arg` (it has no eventfd)
};

enum class IrqMode : int { kIntx = 0, kMsi = 1 };

struct HbaStats {
  std::atomic<uint64_t> commands{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> ncqCommands{0};
  std::atomic<uint64_t> bytesRead{0};
  std::atomic<uint64_t> bytesWritten{0};
  std::atomic<uint64_t> interrupts{0};
};

class Hba {
 public:
  // `ports` is indexed by port number (CAP.NP + 1 of them); PI names those with a file.
  Hba(std::shared_ptr<const GuestMemory> mem, std::vector<PortSetup> ports, std::function<void(HbaEvent, uint32_t)> report);
  ~Hba();
  Hba(const Hba&) = delete;
  Hba& operator=(const Hba&) = delete;

  void Start();
  // Stops every port's worker (waiting for the command in hand); nothing touches guest memory afterwards.
  void Stop();

  // A dword access at `offset` in the ABAR; other sizes are the caller's to widen or drop.
  uint32_t Read(uint32_t offset);
  void Write(uint32_t offset, uint32_t value);
  // Bytes of ABAR the registers occupy.
  uint32_t registerBytes() const { return kRegs + unsigned(ports_.size()) * 0x80; }

  // Where the interrupt goes: INTx (reported as a level), or MSI. With MSI, `perPort` gives port N its own message N
  // (the guest enabled as many messages as the HBA asked for, AHCI 1.3.1 §10.6.2.3); otherwise every port uses
  // message 0, and `reverted` sets GHC.MRSM (fewer messages than asked for). msiFds[i] is message i's eventfd (irqfd on
  // KVM; one per message in use, ports past the last share it); a message without one (-1) is reported to the owner.
  void SetIrqMode(IrqMode mode, std::vector<int> msiFds, bool perPort, bool reverted);
  const HbaStats& stats() const { return stats_; }
  uint32_t cap() const { return cap_; }

 private:
  static constexpr uint32_t kRegs = 0x100;
  struct Port;
  struct Done;
  struct Transfer;

  void ResetPortLocked(Port& p, bool powerOn);
  void StopEngineLocked(Port& p, std::unique_lock<std::mutex>& l);
  void PortWrite(Port& p, uint32_t reg, uint32_t value);
  uint32_t PortRead(Port& p, uint32_t reg);
  void Worker(Port& p);
  void WorkerAsync(Port& p);
  void Wake(Port& p);
  // Runs the command in `slot`; with `defer`, a disk read or write is not done but described in *defer (and the
  // returned Done is what it completes with if it succeeds).
  Done Execute(Port& p, unsigned slot, uint64_t clb, Transfer* defer);
  Done Ata(Port& p, uint64_t ctba, uint16_t prdtl, const uint8_t* cfis, uint32_t* moved, Transfer* defer);
  bool StartTransfer(Port& p, unsigned slot, Transfer& x, int* err);
  bool FinishTransfer(Port& p, unsigned slot, int err);
  Done Packet(Port& p, uint64_t ctba, uint16_t prdtl, const uint8_t* cfis, const uint8_t* acmd, uint32_t* moved);
  void CompleteLocked(Port& p, unsigned slot, const Done& d);
  void WriteFisLocked(Port& p, uint32_t at, const uint8_t* fis, unsigned len);
  void SetIsLocked(Port& p, uint32_t bits);
  void PortPendingChanged(Port& p);
  void UpdateIrq(bool rearm);
  void Signal(unsigned message);
  std::vector<uint8_t> Identify(Port& p);

  std::shared_ptr<const GuestMemory> mem_;
  std::function<void(HbaEvent, uint32_t)> report_;
  std::vector<std::unique_ptr<Port>> ports_;
  uint32_t cap_ = 0;
  uint32_t pi_ = 0;

  std::mutex mu_;  // the HBA-wide registers and the interrupt state
  uint32_t ghc_ = 0;
  uint32_t is_ = 0;
  bool intxLevel_ = false;
  IrqMode mode_ = IrqMode::kIntx;
  std::vector<int> msiFds_;
  bool perPort_ = false;
  bool mrsm_ = false;
  std::atomic<uint32_t> portPending_{0};  // ports whose PxIS & PxIE is non-zero
  HbaStats stats_;
};

}  // namespace ahci
}  // namespace tsbhyve
