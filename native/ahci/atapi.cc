#include "ahci/atapi.h"

#include <algorithm>
#include <cstring>

namespace tsbhyve {
namespace ahci {
namespace {

// SCSI commands (SPC-4, MMC-6)
constexpr uint8_t kTestUnitReady = 0x00, kRequestSense = 0x03, kInquiry = 0x12, kModeSelect6 = 0x15,
                  kModeSense6 = 0x1a, kStartStopUnit = 0x1b, kPreventAllow = 0x1e, kReadCapacity = 0x25,
                  kRead10 = 0x28, kWrite10 = 0x2a, kSeek10 = 0x2b, kWriteVerify10 = 0x2e, kVerify10 = 0x2f,
                  kSynchronizeCache = 0x35, kReadToc = 0x43, kGetConfiguration = 0x46, kGetEventStatus = 0x4a,
                  kReadDiscInformation = 0x51, kModeSelect10 = 0x55, kModeSense10 = 0x5a, kRead12 = 0xa8,
                  kWrite12 = 0xaa, kSetCdSpeed = 0xbb, kMechanismStatus = 0xbd;

uint16_t Be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t Be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
void Put16(std::vector<uint8_t>& v, uint16_t x) { v.push_back(uint8_t(x >> 8)); v.push_back(uint8_t(x)); }
void Put32(std::vector<uint8_t>& v, uint32_t x) { Put16(v, uint16_t(x >> 16)); Put16(v, uint16_t(x)); }
void Set16(std::vector<uint8_t>& v, size_t at, uint16_t x) { v[at] = uint8_t(x >> 8); v[at + 1] = uint8_t(x); }
void Set32(std::vector<uint8_t>& v, size_t at, uint32_t x) { Set16(v, at, uint16_t(x >> 16)); Set16(v, at + 2, uint16_t(x)); }
void PutPadded(std::vector<uint8_t>& v, const std::string& s, size_t n) {
  for (size_t i = 0; i < n; i++) v.push_back(i < s.size() ? uint8_t(s[i]) : uint8_t(' '));
}

// Logical block address as minutes/seconds/frames (MMC: 75 frames a second, 150 frames of lead-in).
void PutAddress(std::vector<uint8_t>& v, uint32_t lba, bool msf) {
  if (!msf) return Put32(v, lba);
  const uint32_t f = lba + 150;
  v.push_back(0);
  v.push_back(uint8_t(std::min<uint32_t>(f / (60 * 75), 255)));
  v.push_back(uint8_t((f / 75) % 60));
  v.push_back(uint8_t(f % 75));
}

}  // namespace

AtapiOutcome AtapiDrive::Check(uint8_t key, uint8_t asc, uint8_t ascq) {
  key_ = key;
  asc_ = asc;
  ascq_ = ascq;
  AtapiOutcome o;
  o.good = false;
  return o;
}

AtapiOutcome AtapiDrive::Good(std::vector<uint8_t> data, uint32_t allocation) {
  key_ = asc_ = ascq_ = 0;
  if (data.size() > allocation) data.resize(allocation);
  AtapiOutcome o;
  o.data = std::move(data);
  return o;
}

uint16_t AtapiDrive::Profile() const {
  // A disc image larger than a CD (about 800 MiB) is presented as a DVD-ROM.
  return blocks_ * kCdBlock > (uint64_t(800) << 20) ? 0x0010 : 0x0008;
}

std::vector<uint8_t> AtapiDrive::Inquiry() const {
  std::vector<uint8_t> v = {
      0x05,  // peripheral device type: CD/DVD
      0x80,  // removable medium
      0x00,  // version: the standard is given by the interface (ATAPI)
      0x21,  // ATAPI transport version 2, response data format 1
      31,    // additional length
      0, 0, 0,
  };
  PutPadded(v, id_.vendor, 8);
  PutPadded(v, id_.product, 16);
  PutPadded(v, id_.revision, 4);
  return v;
}

std::vector<uint8_t> AtapiDrive::Toc(uint8_t format, bool msf, uint8_t track, bool* ok) const {
  std::vector<uint8_t> v = {0, 0, 1, 1};  // length (set below), first and last track / session
  *ok = true;
  const uint32_t leadOut = uint32_t(std::min<uint64_t>(blocks_, 0xffffffffu));
  switch (format) {
    case 0:  // formatted TOC: track 1 (data), then the lead-out
      if (track > 1 && track != 0xaa) { *ok = false; return v; }
      if (track <= 1) {
        v.insert(v.end(), {0, 0x14, 1, 0});  // ADR 1, control: data track, copy permitted
        PutAddress(v, 0, msf);
      }
      v.insert(v.end(), {0, 0x14, 0xaa, 0});
      PutAddress(v, leadOut, msf);
      break;
    case 1:  // session information: one complete session starting with track 1
      v.insert(v.end(), {0, 0x14, 1, 0});
      PutAddress(v, 0, msf);
      break;
    default:
      *ok = false;
      return v;
  }
  Set16(v, 0, uint16_t(v.size() - 2));
  return v;
}

std::vector<uint8_t> AtapiDrive::ModePage(uint8_t page, bool* ok) const {
  std::vector<uint8_t> v(8, 0);  // mode parameter header (10-byte form), no block descriptors
  *ok = true;
  auto errorRecovery = [&] { v.insert(v.end(), {0x01, 0x06, 0x00, 0x05, 0, 0, 0, 0}); };
  auto capabilities = [&] {
    // CD/DVD capabilities and mechanical status: reads CD-R/RW and DVD-ROM media, writes nothing; a tray that
    // locks and ejects.
    const size_t at = v.size();
    v.insert(v.end(), {0x2a, 0x14, 0x3b, 0x00, 0x71, 0x63, 0x29, 0x00});
    v.resize(at + 22, 0);
    Set16(v, at + 8, 1378);  // maximum read speed (obsolete field): 8x in kB/s
    Set16(v, at + 10, 256);  // volume levels
    Set16(v, at + 12, 512);  // buffer size in KiB
    Set16(v, at + 14, 1378);  // current read speed
  };
  switch (page) {
    case 0x01: errorRecovery(); break;
    case 0x2a: capabilities(); break;
    case 0x3f: errorRecovery(); capabilities(); break;
    default: *ok = false; return v;
  }
  v[2] = 0x70;  // medium type: no disc information (door closed)
  Set16(v, 0, uint16_t(v.size() - 2));
  return v;
}

std::vector<uint8_t> AtapiDrive::Configuration(uint8_t rt, uint16_t start) const {
  const uint16_t profile = Profile();
  std::vector<uint8_t> v(8, 0);
  Set16(v, 6, profile);
  struct Feature { uint16_t code; bool current; std::vector<uint8_t> body; };
  std::vector<Feature> features;
  // Profile list: DVD-ROM and CD-ROM, the disc's one current.
  features.push_back({0x0000, true, {0x00, 0x10, uint8_t(profile == 0x0010), 0, 0x00, 0x08, uint8_t(profile == 0x0008), 0}});
  features.push_back({0x0001, true, {0, 0, 0, 2, 0, 0, 0, 0}});           // core: ATAPI interface
  features.push_back({0x0003, true, {0x29, 0, 0, 0}});                     // removable medium: tray, eject, lock
  features.push_back({0x0010, true, {0, 0, 0x08, 0x00, 0x00, 0x01, 0, 0}});  // random readable, 2048-byte blocks
  features.push_back({0x001e, profile == 0x0008, {0, 0, 0, 0}});          // CD read
  features.push_back({0x001f, profile == 0x0010, {0, 0, 0, 0}});          // DVD read
  for (const Feature& f : features) {
    if (f.code < start) continue;
    if (rt == 1 && !f.current) continue;
    if (rt == 2 && f.code != start) continue;
    Put16(v, f.code);
    // version (profile list 0, core 1, others 0), persistent for the always-current ones, current
    const uint8_t version = f.code == 0x0001 ? 1 : 0;
    const bool persistent = f.code <= 0x0003;
    v.push_back(uint8_t(version << 2 | (persistent ? 2 : 0) | (f.current ? 1 : 0)));
    v.push_back(uint8_t(f.body.size()));
    v.insert(v.end(), f.body.begin(), f.body.end());
  }
  Set32(v, 0, uint32_t(v.size() - 4));
  return v;
}

std::vector<uint8_t> AtapiDrive::EventStatus(uint8_t classes) const {
  std::vector<uint8_t> v;
  if (!(classes & 0x10)) {
    // No class the host asked for is supported: only the header, with No Event Available.
    v = {0, 2, 0x80, 0x10};
    return v;
  }
  v = {0, 6, 0x04, 0x10,  // media class; media is the only supported class
       0x00,              // no change
       0x02,              // media present, tray closed
       0, 0};
  return v;
}

std::vector<uint8_t> AtapiDrive::DiscInformation() const {
  std::vector<uint8_t> v(34, 0);
  Set16(v, 0, 32);
  v[2] = 0x0e;  // last session complete, disc complete (finalized, not erasable)
  v[3] = 1;     // first track
  v[4] = 1;     // sessions (LSB)
  v[5] = 1;     // first track in the last session
  v[6] = 1;     // last track in the last session
  v[8] = 0x00;  // disc type: CD-DA or CD-ROM
  return v;
}

AtapiOutcome AtapiDrive::Execute(const uint8_t* c) {
  switch (c[0]) {
    case kTestUnitReady:
    case kPreventAllow:
    case kStartStopUnit:
    case kSetCdSpeed:
    case kSeek10:
    case kVerify10:
      return Good({}, 0);
    case kRequestSense: {
      std::vector<uint8_t> v(18, 0);
      v[0] = 0x70;  // current error, fixed format
      v[2] = key_;
      v[7] = 10;
      v[12] = asc_;
      v[13] = ascq_;
      key_ = asc_ = ascq_ = 0;  // reported once
      AtapiOutcome o;
      if (v.size() > c[4]) v.resize(c[4]);
      o.data = std::move(v);
      return o;
    }
    case kInquiry: {
      const uint16_t allocation = Be16(c + 3);
      if (c[1] & 1) {
        // Vital product data: only the list of supported pages (itself).
        if (c[2] != 0x00) return Check(kSenseIllegalRequest, kAscInvalidField);
        return Good({0x05, 0x00, 0x00, 1, 0x00}, allocation);
      }
      if (c[2] != 0) return Check(kSenseIllegalRequest, kAscInvalidField);
      return Good(Inquiry(), allocation);
    }
    case kReadCapacity: {
      std::vector<uint8_t> v;
      Put32(v, blocks_ ? uint32_t(std::min<uint64_t>(blocks_ - 1, 0xffffffffu)) : 0);
      Put32(v, kCdBlock);
      return Good(std::move(v), 8);
    }
    case kRead10:
    case kRead12: {
      const uint64_t lba = Be32(c + 2);
      const uint32_t count = c[0] == kRead10 ? Be16(c + 7) : Be32(c + 6);
      if (lba > blocks_ || count > blocks_ - lba) return Check(kSenseIllegalRequest, kAscLbaOutOfRange);
      AtapiOutcome o = Good({}, 0);
      o.readLba = lba;
      o.readBlocks = count;
      return o;
    }
    case kReadToc: {
      bool ok;
      const uint8_t format = (c[2] & 0x0f) ? (c[2] & 0x0f) : uint8_t(c[9] >> 6);
      std::vector<uint8_t> v = Toc(format, (c[1] & 2) != 0, c[6], &ok);
      if (!ok) return Check(kSenseIllegalRequest, kAscInvalidField);
      return Good(std::move(v), Be16(c + 7));
    }
    case kModeSense10: {
      const uint8_t pc = c[2] >> 6;
      if (pc == 3) return Check(kSenseIllegalRequest, 0x39);  // saving parameters not supported
      bool ok;
      std::vector<uint8_t> v = ModePage(c[2] & 0x3f, &ok);
      if (!ok) return Check(kSenseIllegalRequest, kAscInvalidField);
      return Good(std::move(v), Be16(c + 7));
    }
    case kGetConfiguration: {
      const uint8_t rt = c[1] & 3;
      if (rt == 3) return Check(kSenseIllegalRequest, kAscInvalidField);
      return Good(Configuration(rt, Be16(c + 2)), Be16(c + 7));
    }
    case kGetEventStatus:
      // Only the polled form; asynchronous notification is not offered.
      if (!(c[1] & 1)) return Check(kSenseIllegalRequest, kAscInvalidField);
      return Good(EventStatus(c[4]), Be16(c + 7));
    case kReadDiscInformation:
      return Good(DiscInformation(), Be16(c + 7));
    case kWrite10:
    case kWrite12:
    case kWriteVerify10:
      return Check(kSenseDataProtect, kAscWriteProtected);
    case kSynchronizeCache:
      return Good({}, 0);
    case kModeSense6:
    case kModeSelect6:
    case kModeSelect10:
    case kMechanismStatus:
    default:
      return Check(kSenseIllegalRequest, kAscInvalidOpcode);
  }
}

}  // namespace ahci
}  // namespace tsbhyve
