#pragma once
// Register offsets, bits and FIS layouts from the AHCI 1.3.1 specification, and the ATA (ACS-3) and SCSI/MMC
// codes the HBA's command engine uses. Only what native/ahci needs; names follow the specifications.
#include <cstdint>

namespace tsbhyve {
namespace ahci {

// HBA (generic host control) registers, §3.1
constexpr uint32_t kCap = 0x00, kGhc = 0x04, kIs = 0x08, kPi = 0x0c, kVs = 0x10, kCccCtl = 0x14, kCccPorts = 0x18,
                   kEmLoc = 0x1c, kEmCtl = 0x20, kCap2 = 0x24, kBohc = 0x28;
constexpr uint32_t kPortBase = 0x100, kPortStride = 0x80;
constexpr unsigned kMaxPorts = 32;
constexpr unsigned kSlots = 32;

constexpr uint32_t kCapS64A = 1u << 31, kCapSNCQ = 1u << 30, kCapSSNTF = 1u << 29, kCapSCLO = 1u << 24,
                   kCapSAM = 1u << 18, kCapISSGen3 = 3u << 20;
constexpr uint32_t kGhcAE = 1u << 31, kGhcMRSM = 1u << 2, kGhcIE = 1u << 1, kGhcHR = 1u << 0;
constexpr uint32_t kVersion13 = 0x00010300;

// Port registers, §3.3 (offsets within a port's 0x80 bytes)
constexpr uint32_t kPxClb = 0x00, kPxClbu = 0x04, kPxFb = 0x08, kPxFbu = 0x0c, kPxIs = 0x10, kPxIe = 0x14,
                   kPxCmd = 0x18, kPxTfd = 0x20, kPxSig = 0x24, kPxSsts = 0x28, kPxSctl = 0x2c, kPxSerr = 0x30,
                   kPxSact = 0x34, kPxCi = 0x38, kPxSntf = 0x3c, kPxFbs = 0x40;

// PxIS / PxIE bits
constexpr uint32_t kIsDHRS = 1u << 0, kIsPSS = 1u << 1, kIsDSS = 1u << 2, kIsSDBS = 1u << 3, kIsUFS = 1u << 4,
                   kIsDPS = 1u << 5, kIsPCS = 1u << 6, kIsOFS = 1u << 24, kIsINFS = 1u << 26, kIsIFS = 1u << 27,
                   kIsHBDS = 1u << 28, kIsHBFS = 1u << 29, kIsTFES = 1u << 30, kIsCPDS = 1u << 31;
constexpr uint32_t kIsWritable = 0xfdc000ffu;  // RW1C bits (PRCS and PCS are cleared through SERR)
constexpr uint32_t kIeWritable = 0xfdc000ffu;

// PxCMD bits
constexpr uint32_t kCmdST = 1u << 0, kCmdSUD = 1u << 1, kCmdPOD = 1u << 2, kCmdCLO = 1u << 3, kCmdFRE = 1u << 4,
                   kCmdFR = 1u << 14, kCmdCR = 1u << 15, kCmdATAPI = 1u << 24, kCmdICCShift = 28;
constexpr uint32_t kCmdCcsShift = 8;

// PxSSTS: device present, communication established, Gen3, active
constexpr uint32_t kSstsOnline = 0x133;
constexpr uint32_t kSerrDiagX = 1u << 26;  // exchanged: the device presence changed

constexpr uint32_t kSigAta = 0x00000101, kSigAtapi = 0xeb140101;

// Command header (§4.2.2) and command table (§4.2.3)
constexpr uint32_t kHeaderBytes = 32, kTableCfis = 0x00, kTableAcmd = 0x40, kTablePrdt = 0x80, kPrdBytes = 16;
constexpr uint32_t kHdrAtapi = 1u << 5, kHdrWrite = 1u << 6, kHdrReset = 1u << 8, kHdrClearBusy = 1u << 10;

// FIS receive area offsets (§4.2.1) and FIS types
constexpr uint32_t kRxPsfis = 0x20, kRxRfis = 0x40, kRxSdbfis = 0x58;
constexpr uint8_t kFisH2D = 0x27, kFisD2H = 0x34, kFisPioSetup = 0x5f, kFisSdb = 0xa1;

// ATA status and error bits
constexpr uint8_t kStErr = 0x01, kStDrq = 0x08, kStDsc = 0x10, kStDf = 0x20, kStDrdy = 0x40, kStBsy = 0x80;
constexpr uint8_t kErAbrt = 0x04, kErIdnf = 0x10, kErUnc = 0x40;

// ATA commands (ACS-3)
constexpr uint8_t kAtaNop = 0x00, kAtaDsm = 0x06, kAtaDeviceReset = 0x08, kAtaRecalibrate = 0x10,
                  kAtaReadSectors = 0x20, kAtaReadSectorsExt = 0x24, kAtaReadDmaExt = 0x25,
                  kAtaReadMultipleExt = 0x29, kAtaReadLogExt = 0x2f, kAtaWriteSectors = 0x30,
                  kAtaWriteSectorsExt = 0x34, kAtaWriteDmaExt = 0x35, kAtaWriteMultipleExt = 0x39,
                  kAtaWriteDmaFuaExt = 0x3d, kAtaReadVerify = 0x40, kAtaReadVerifyExt = 0x42,
                  kAtaSeek = 0x70, kAtaReadFpdma = 0x60, kAtaWriteFpdma = 0x61, kAtaInitParams = 0x91,
                  kAtaPacket = 0xa0, kAtaIdentifyPacket = 0xa1, kAtaSmart = 0xb0, kAtaReadMultiple = 0xc4,
                  kAtaWriteMultiple = 0xc5, kAtaSetMultiple = 0xc6, kAtaReadDma = 0xc8, kAtaWriteDma = 0xca,
                  kAtaStandbyImmediate = 0xe0, kAtaIdleImmediate = 0xe1, kAtaStandby = 0xe2, kAtaIdle = 0xe3,
                  kAtaCheckPower = 0xe5, kAtaSleep = 0xe6, kAtaFlushCache = 0xe7, kAtaFlushCacheExt = 0xea,
                  kAtaIdentify = 0xec, kAtaSetFeatures = 0xef, kAtaSecurityFreeze = 0xf5, kAtaReadNativeMax = 0xf8;

// SET FEATURES subcommands
constexpr uint8_t kSfEnableWriteCache = 0x02, kSfDisableWriteCache = 0x82;

}  // namespace ahci
}  // namespace tsbhyve
