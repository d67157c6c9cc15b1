#pragma once
// NVMe 1.4 constants the data path uses: command opcodes, status codes (packed as SCT << 8 | SC), and the
// queue entry layouts.
#include <cstdint>

namespace tsbhyve {
namespace nvme {

constexpr uint32_t kSqeBytes = 64;
constexpr uint32_t kCqeBytes = 16;

// NVM command set opcodes (§6)
constexpr uint8_t kOpFlush = 0x00;
constexpr uint8_t kOpWrite = 0x01;
constexpr uint8_t kOpRead = 0x02;
constexpr uint8_t kOpCompare = 0x05;
constexpr uint8_t kOpWriteZeroes = 0x08;
constexpr uint8_t kOpDsm = 0x09;

// Status = SCT << 8 | SC (Figure 126 ff.)
using Status = uint16_t;
constexpr Status kScSuccess = 0x000;
constexpr Status kScInvalidOpcode = 0x001;
constexpr Status kScInvalidField = 0x002;
constexpr Status kScDataTransferError = 0x004;
constexpr Status kScInternalError = 0x006;
constexpr Status kScAbortSqDeleted = 0x008;
constexpr Status kScInvalidNamespace = 0x00B;
constexpr Status kScPrpOffsetInvalid = 0x013;
constexpr Status kScNamespaceWriteProtected = 0x020;
constexpr Status kScLbaOutOfRange = 0x080;
// command specific (SCT 1)
constexpr Status kScCqInvalid = 0x100;
constexpr Status kScInvalidQid = 0x101;
constexpr Status kScInvalidQsize = 0x102;
constexpr Status kScInvalidVector = 0x108;
constexpr Status kScInvalidQueueDeletion = 0x10C;
// media errors (SCT 2)
constexpr Status kScCompareFailure = 0x285;

// Completion dword 3: command id, phase tag, status field (DNR set for errors a retry cannot fix).
inline uint32_t CqeDw3(uint16_t cid, bool phase, Status st) {
  uint32_t sf = st == kScSuccess ? 0 : (uint32_t(st & 0xff) << 1) | (uint32_t((st >> 8) & 7) << 9) | (1u << 15);
  return uint32_t(cid) | (phase ? 1u << 16 : 0) | (sf << 16);
}

}  // namespace nvme
}  // namespace tsbhyve
