#pragma once
// The packet commands of an ATAPI CD/DVD drive holding a read-only disc image (MMC-6 and SPC-4 where MMC refers
// to it): what a guest issues to find, identify and read a disc. Pure logic over the disc size and the current
// sense data; the HBA moves the data and reads the blocks a READ asks for from the block backend.
#include <cstdint>
#include <string>
#include <vector>

namespace tsbhyve {
namespace ahci {

constexpr uint32_t kCdBlock = 2048;

// SCSI sense keys and the additional sense codes used here
constexpr uint8_t kSenseNone = 0x00, kSenseNotReady = 0x02, kSenseIllegalRequest = 0x05, kSenseUnitAttention = 0x06,
                  kSenseDataProtect = 0x07;
constexpr uint8_t kAscInvalidOpcode = 0x20, kAscLbaOutOfRange = 0x21, kAscInvalidField = 0x24,
                  kAscWriteProtected = 0x27, kAscMediumChanged = 0x28;

struct AtapiIdentity {
  std::string vendor = "BHYVE";      // INQUIRY vendor (8 characters)
  std::string product;               // INQUIRY product (16 characters), from the port's model
  std::string revision;              // INQUIRY revision (4 characters)
};

struct AtapiOutcome {
  bool good = true;               // false: CHECK CONDITION, the sense is set
  std::vector<uint8_t> data;      // data for the host, already cut to the command's allocation length
  uint64_t readLba = 0;           // READ(10)/READ(12): 2048-byte blocks to read from the disc
  uint32_t readBlocks = 0;
};

class AtapiDrive {
 public:
  AtapiDrive(uint64_t discBytes, AtapiIdentity id) : blocks_(discBytes / kCdBlock), id_(std::move(id)) {}
  // Runs the 12-byte command block `cdb`.
  AtapiOutcome Execute(const uint8_t* cdb);
  uint8_t senseKey() const { return key_; }
  uint64_t blocks() const { return blocks_; }
  void SetDiscBytes(uint64_t bytes) { blocks_ = bytes / kCdBlock; }
  // Sense for an error the HBA found (a PRDT too small for the blocks, a read error).
  void SetSense(uint8_t key, uint8_t asc, uint8_t ascq = 0) { key_ = key; asc_ = asc; ascq_ = ascq; }
  // Device reset: sense cleared.
  void Reset() { key_ = asc_ = ascq_ = 0; }

 private:
  AtapiOutcome Check(uint8_t key, uint8_t asc, uint8_t ascq = 0);
  AtapiOutcome Good(std::vector<uint8_t> data, uint32_t allocation);
  std::vector<uint8_t> Inquiry() const;
  std::vector<uint8_t> Toc(uint8_t format, bool msf, uint8_t track, bool* ok) const;
  std::vector<uint8_t> ModePage(uint8_t page, bool* ok) const;
  std::vector<uint8_t> Configuration(uint8_t rt, uint16_t start) const;
  std::vector<uint8_t> EventStatus(uint8_t classes) const;
  std::vector<uint8_t> DiscInformation() const;
  uint16_t Profile() const;

  uint64_t blocks_;
  AtapiIdentity id_;
  uint8_t key_ = 0, asc_ = 0, ascq_ = 0;
};

}  // namespace ahci
}  // namespace tsbhyve
