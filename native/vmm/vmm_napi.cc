// N-API surface of the VMM (exported as `vmm` from the addon). Thin: argument checks, conversions and
// error codes; the typed API is src/vm/*.ts. Every failure comes back as a thrown Error whose message
// starts with "E<errno>:" so the TS side can map it to a typed VmmError.
#include <napi.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>

#include "vmm/sink_device.h"
#include "vmm/vmm.h"
#include "vmm/vmm_napi.h"

namespace tsbhyve {

namespace {

using vmm::Status;
using vmm::Vm;

// Marks NativeVm objects so UnwrapVm never reinterprets another class's wrapped pointer.
const napi_type_tag kVmTag = {0x7473626879766531ull, 0x766d6d2d766d0001ull};

constexpr uint64_t kChunkStride = 1ull << 30;  // views are served from 2 GiB chunks every 1 GiB
constexpr uint64_t kChunkSpan = 2ull << 30;

bool Throw(Napi::Env env, const Status& s) {
  if (s.ok()) return false;
  Napi::Error::New(env, "E" + std::to_string(s.err) + ": " + s.msg).ThrowAsJavaScriptException();
  return true;
}

bool TypeFail(Napi::Env env, const char* what) {
  Napi::TypeError::New(env, what).ThrowAsJavaScriptException();
  return true;
}

// A non-negative integer argument that fits in 64 bits; numbers must be safe integers.
bool U64Arg(const Napi::CallbackInfo& info, size_t i, uint64_t* out) {
  Napi::Env env = info.Env();
  if (info.Length() <= i) return !TypeFail(env, "missing argument");
  Napi::Value v = info[i];
  if (v.IsBigInt()) {
    bool lossless = false;
    *out = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) return !TypeFail(env, "bigint argument out of range");
    return true;
  }
  if (!v.IsNumber()) return !TypeFail(env, "expected a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d)))
    return !TypeFail(env, "expected a non-negative safe integer");
  *out = static_cast<uint64_t>(d);
  return true;
}

bool IntArg(const Napi::CallbackInfo& info, size_t i, int* out) {
  if (info.Length() <= i || !info[i].IsNumber()) return !TypeFail(info.Env(), "expected an integer");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= -2147483648.0 && d <= 2147483647.0) || d != static_cast<double>(static_cast<int>(d)))
    return !TypeFail(info.Env(), "expected an integer");
  *out = static_cast<int>(d);
  return true;
}

class VmWrap : public Napi::ObjectWrap<VmWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeVm", {
      InstanceMethod("setTopology", &VmWrap::SetTopology),
      InstanceMethod("createVcpus", &VmWrap::CreateVcpus),
      InstanceMethod("reinit", &VmWrap::Reinit),
      InstanceMethod("setupMemory", &VmWrap::SetupMemory),
      InstanceMethod("createDevmem", &VmWrap::CreateDevmem),
      InstanceMethod("mmapMemseg", &VmWrap::MmapMemseg),
      InstanceMethod("munmapMemseg", &VmWrap::MunmapMemseg),
      InstanceMethod("memCheck", &VmWrap::MemCheck),
      InstanceMethod("memRead", &VmWrap::MemRead),
      InstanceMethod("memWrite", &VmWrap::MemWrite),
      InstanceMethod("memView", &VmWrap::MemView),
      InstanceMethod("regions", &VmWrap::Regions),
      InstanceMethod("getRegs", &VmWrap::GetRegs),
      InstanceMethod("setRegs", &VmWrap::SetRegs),
      InstanceMethod("getSregs", &VmWrap::GetSregs),
      InstanceMethod("setSregs", &VmWrap::SetSregs),
      InstanceMethod("resetVcpu", &VmWrap::ResetVcpu),
      InstanceMethod("setCapability", &VmWrap::SetCapability),
      InstanceMethod("getCapability", &VmWrap::GetCapability),
      InstanceMethod("setX2apicState", &VmWrap::SetX2apicState),
      InstanceMethod("injectException", &VmWrap::InjectException),
      InstanceMethod("getCpuid", &VmWrap::GetCpuid),
      InstanceMethod("setStrict", &VmWrap::SetStrict),
      InstanceMethod("setPciConf1", &VmWrap::SetPciConf1),
      InstanceMethod("stats", &VmWrap::Stats),
      InstanceMethod("userMsrExits", &VmWrap::UserMsrExits),
      InstanceMethod("lapicMsi", &VmWrap::LapicMsi),
      InstanceMethod("ioapicLine", &VmWrap::IoapicLine),
      InstanceMethod("isaLine", &VmWrap::IsaLine),
      InstanceMethod("isaSetTrigger", &VmWrap::IsaSetTrigger),
      InstanceMethod("setMsiRoute", &VmWrap::SetMsiRoute),
      InstanceMethod("irqfd", &VmWrap::Irqfd),
      InstanceMethod("ioeventfd", &VmWrap::Ioeventfd),
      InstanceMethod("registerRange", &VmWrap::RegisterRange),
      InstanceMethod("unregisterRange", &VmWrap::UnregisterRange),
      InstanceMethod("addSink", &VmWrap::AddSink),
      InstanceMethod("sinkStats", &VmWrap::SinkStats),
      InstanceMethod("start", &VmWrap::Start),
      InstanceMethod("pump", &VmWrap::Pump),
      InstanceMethod("release", &VmWrap::Release),
      InstanceMethod("suspend", &VmWrap::Suspend),
      InstanceMethod("fail", &VmWrap::Fail),
      InstanceMethod("join", &VmWrap::Join),
      InstanceMethod("close", &VmWrap::Close),
    });
  }

  // new NativeVm(name, lockDir)
  explicit VmWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VmWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
      TypeFail(env, "NativeVm(name, lockDir)");
      return;
    }
    if (Throw(env, Vm::Create(info[0].As<Napi::String>(), info[1].As<Napi::String>(), &vm_))) return;
    napi_type_tag_object(env, info.This(), &kVmTag);
  }

  ~VmWrap() override { CloseNow(); }

  Vm* vm() { return vm_.get(); }

 private:
  bool Live(Napi::Env env) {
    if (vm_) return true;
    Throw(env, {EBADF, "VM is closed"});
    return false;
  }

  Napi::Value SetTopology(const Napi::CallbackInfo& info) {
    int s, c, t, m;
    if (!Live(info.Env()) || !IntArg(info, 0, &s) || !IntArg(info, 1, &c) || !IntArg(info, 2, &t) || !IntArg(info, 3, &m)) return {};
    if (s < 0 || c < 0 || t < 0 || m < 0 || s > 0xffff || c > 0xffff || t > 0xffff || m > 0xffff) {
      Throw(info.Env(), {EINVAL, "topology values must be 0..65535"});
      return {};
    }
    Throw(info.Env(), vm_->SetTopology({uint16_t(s), uint16_t(c), uint16_t(t), uint16_t(m)}));
    return {};
  }
  Napi::Value CreateVcpus(const Napi::CallbackInfo& info) {
    int n;
    if (!Live(info.Env()) || !IntArg(info, 0, &n)) return {};
    Throw(info.Env(), vm_->CreateVcpus(n));
    return {};
  }
  Napi::Value Reinit(const Napi::CallbackInfo& info) {
    if (Live(info.Env())) Throw(info.Env(), vm_->Reinit());
    return {};
  }
  Napi::Value SetupMemory(const Napi::CallbackInfo& info) {
    uint64_t size;
    if (!Live(info.Env()) || !U64Arg(info, 0, &size)) return {};
    bool wired = info.Length() > 1 && info[1].ToBoolean();
    bool incore = info.Length() > 2 && info[2].ToBoolean();
    Throw(info.Env(), vm_->SetupMemory(size, wired, incore));
    return {};
  }
  Napi::Value CreateDevmem(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int segid;
    uint64_t len;
    if (!Live(env) || !IntArg(info, 0, &segid) || info.Length() < 2 || !info[1].IsString() || !U64Arg(info, 2, &len)) return {};
    uint8_t* host = nullptr;
    if (Throw(env, vm_->CreateDevmem(segid, info[1].As<Napi::String>(), len, &host))) return {};
    // The segment stays mapped for the life of the process (the VM only drops its pages on close), so
    // this view can never dangle.
    return Napi::ArrayBuffer::New(env, host, len);
  }
  Napi::Value MmapMemseg(const Napi::CallbackInfo& info) {
    uint64_t gpa, off, len;
    int segid, prot;
    if (!Live(info.Env()) || !U64Arg(info, 0, &gpa) || !IntArg(info, 1, &segid) || !U64Arg(info, 2, &off) ||
        !U64Arg(info, 3, &len) || !IntArg(info, 4, &prot)) return {};
    Throw(info.Env(), vm_->MmapMemseg(gpa, segid, off, len, prot));
    return {};
  }
  Napi::Value MunmapMemseg(const Napi::CallbackInfo& info) {
    uint64_t gpa, len;
    if (!Live(info.Env()) || !U64Arg(info, 0, &gpa) || !U64Arg(info, 1, &len)) return {};
    Throw(info.Env(), vm_->MunmapMemseg(gpa, len));
    return {};
  }
  // memCheck(gpa, len, write, anyKind) -> MemError code
  Napi::Value MemCheck(const Napi::CallbackInfo& info) {
    uint64_t gpa, len;
    if (!Live(info.Env()) || !U64Arg(info, 0, &gpa) || !U64Arg(info, 1, &len)) return {};
    bool write = info.Length() > 2 && info[2].ToBoolean();
    bool any = info.Length() > 3 && info[3].ToBoolean();
    uint8_t* h;
    MemError e = any ? vm_->memory().TranslateAny(gpa, len, write, &h) : vm_->memory().Translate(gpa, len, write, &h);
    return Napi::Number::New(info.Env(), int(e));
  }
  Napi::Value MemRead(const Napi::CallbackInfo& info) {
    uint64_t gpa;
    if (!Live(info.Env()) || !U64Arg(info, 0, &gpa)) return {};
    if (info.Length() < 2 || !info[1].IsTypedArray()) { TypeFail(info.Env(), "memRead(gpa, Uint8Array)"); return {}; }
    Napi::TypedArray a = info[1].As<Napi::TypedArray>();
    uint8_t* dst = static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
    return Napi::Number::New(info.Env(), int(vm_->memory().Read(gpa, dst, a.ByteLength())));
  }
  Napi::Value MemWrite(const Napi::CallbackInfo& info) {
    uint64_t gpa;
    if (!Live(info.Env()) || !U64Arg(info, 0, &gpa)) return {};
    if (info.Length() < 2 || !info[1].IsTypedArray()) { TypeFail(info.Env(), "memWrite(gpa, Uint8Array)"); return {}; }
    Napi::TypedArray a = info[1].As<Napi::TypedArray>();
    const uint8_t* src = static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
    return Napi::Number::New(info.Env(), int(vm_->memory().Write(gpa, src, a.ByteLength())));
  }
  // memView(gpa, len, anyKind) -> MemError code, or [ArrayBuffer, byteOffset] after the same check.
  Napi::Value MemView(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t gpa, len;
    if (!Live(env) || !U64Arg(info, 0, &gpa) || !U64Arg(info, 1, &len)) return {};
    bool any = info.Length() > 2 && info[2].ToBoolean();
    auto map = vm_->memory().Snapshot();
    uint8_t* h = nullptr;
    MemError e = any ? vm_->memory().TranslateAny(gpa, len, false, &h) : vm_->memory().Translate(gpa, len, false, &h);
    if (e != MemError::kOk) return Napi::Number::New(env, int(e));
    const GuestRegion* region = nullptr;
    for (const auto& r : map->regions)
      if (gpa >= r.gpa && gpa - r.gpa <= r.size) region = &r;
    if (!region) return Napi::Number::New(env, int(MemError::kOutOfRange));
    const uint64_t off = gpa - region->gpa;
    const uint64_t chunk = off / kChunkStride;
    const uint64_t chunkStart = chunk * kChunkStride;
    const uint64_t chunkLen = std::min(kChunkSpan, region->size - chunkStart);
    if (len > chunkStart + chunkLen - off) return Napi::Number::New(env, int(MemError::kOutOfRange));  // > 1 GiB views
    uint8_t* base = region->host + chunkStart;
    auto it = chunks_.find(base);
    Napi::ArrayBuffer ab;
    if (it != chunks_.end() && !it->second.IsEmpty() && it->second.Value().ByteLength() == chunkLen) {
      ab = it->second.Value();
    } else {
      // Guest RAM and segments are never unmapped while the process lives (see Vm::~Vm), so the
      // external buffer needs no finalizer.
      ab = Napi::ArrayBuffer::New(env, base, size_t(chunkLen));
      chunks_[base] = Napi::Persistent(ab);
    }
    Napi::Array out = Napi::Array::New(env, 2);
    out.Set(uint32_t(0), ab);
    out.Set(uint32_t(1), Napi::Number::New(env, double(off - chunkStart)));
    return out;
  }
  Napi::Value Regions(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return {};
    auto map = vm_->memory().Snapshot();
    Napi::Array out = Napi::Array::New(env, map->regions.size());
    for (size_t i = 0; i < map->regions.size(); i++) {
      const auto& r = map->regions[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("gpa", Napi::Number::New(env, double(r.gpa)));
      o.Set("size", Napi::Number::New(env, double(r.size)));
      o.Set("kind", Napi::String::New(env, r.kind == RegionKind::kRam ? "ram" : r.kind == RegionKind::kRom ? "rom" : "device"));
      o.Set("writable", Napi::Boolean::New(env, r.writable));
      out.Set(uint32_t(i), o);
    }
    return out;
  }
  // Arguments (vcpu, BigUint64Array of exactly n elements): the array's storage, or null after throwing.
  uint64_t* RegisterArrayArgs(const Napi::CallbackInfo& info, size_t n, int* id) {
    if (!Live(info.Env()) || !IntArg(info, 0, id)) return nullptr;
    if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array ||
        info[1].As<Napi::TypedArray>().ElementLength() != n) {
      TypeFail(info.Env(), "expected a BigUint64Array of the register layout's length");
      return nullptr;
    }
    return info[1].As<Napi::TypedArrayOf<uint64_t>>().Data();
  }
  template <int N, Status (Vm::*Fn)(int, uint64_t*)>
  Napi::Value GetArray(const Napi::CallbackInfo& info) {
    int id;
    if (uint64_t* a = RegisterArrayArgs(info, N, &id)) Throw(info.Env(), (vm_.get()->*Fn)(id, a));
    return {};
  }
  template <int N, Status (Vm::*Fn)(int, const uint64_t*)>
  Napi::Value SetArray(const Napi::CallbackInfo& info) {
    int id;
    if (uint64_t* a = RegisterArrayArgs(info, N, &id)) Throw(info.Env(), (vm_.get()->*Fn)(id, a));
    return {};
  }
  Napi::Value GetRegs(const Napi::CallbackInfo& info) { return GetArray<vmm::kRegCount, &Vm::GetRegs>(info); }
  Napi::Value SetRegs(const Napi::CallbackInfo& info) { return SetArray<vmm::kRegCount, &Vm::SetRegs>(info); }
  Napi::Value GetSregs(const Napi::CallbackInfo& info) { return GetArray<vmm::kSregCount, &Vm::GetSregs>(info); }
  Napi::Value SetSregs(const Napi::CallbackInfo& info) { return SetArray<vmm::kSregCount, &Vm::SetSregs>(info); }
  Napi::Value ResetVcpu(const Napi::CallbackInfo& info) {
    int id;
    if (Live(info.Env()) && IntArg(info, 0, &id)) Throw(info.Env(), vm_->ResetVcpu(id));
    return {};
  }
  Napi::Value SetCapability(const Napi::CallbackInfo& info) {
    int id, cap, val;
    if (!Live(info.Env()) || !IntArg(info, 0, &id) || !IntArg(info, 1, &cap) || !IntArg(info, 2, &val)) return {};
    if (cap < 0 || cap > 4) { Throw(info.Env(), {ENOENT, "unknown capability"}); return {}; }
    Throw(info.Env(), vm_->SetCapability(id, vmm::Cap(cap), val));
    return {};
  }
  Napi::Value GetCapability(const Napi::CallbackInfo& info) {
    int id, cap, val = 0;
    if (!Live(info.Env()) || !IntArg(info, 0, &id) || !IntArg(info, 1, &cap)) return {};
    if (Throw(info.Env(), vm_->GetCapability(id, vmm::Cap(cap), &val))) return {};
    return Napi::Number::New(info.Env(), val);
  }
  Napi::Value SetX2apicState(const Napi::CallbackInfo& info) {
    int id, st;
    if (!Live(info.Env()) || !IntArg(info, 0, &id) || !IntArg(info, 1, &st)) return {};
    Throw(info.Env(), vm_->SetX2apicState(id, st ? vmm::X2apicState::kEnabled : vmm::X2apicState::kDisabled));
    return {};
  }
  // injectException(vcpu, vector, errorCodeValid, errorCode)
  Napi::Value InjectException(const Napi::CallbackInfo& info) {
    int id, vector, valid;
    uint64_t code;
    if (!Live(info.Env()) || !IntArg(info, 0, &id) || !IntArg(info, 1, &vector) || !IntArg(info, 2, &valid) ||
        !U64Arg(info, 3, &code))
      return {};
    if (code > 0xffffffffu) {
      TypeFail(info.Env(), "error code must fit in 32 bits");
      return {};
    }
    Throw(info.Env(), vm_->InjectException(id, vector, valid != 0, uint32_t(code)));
    return {};
  }
  Napi::Value GetCpuid(const Napi::CallbackInfo& info) {
    int id;
    uint64_t leaf, sub;
    if (!Live(info.Env()) || !IntArg(info, 0, &id) || !U64Arg(info, 1, &leaf) || !U64Arg(info, 2, &sub)) return {};
    uint32_t r[4];
    if (Throw(info.Env(), vm_->GetCpuid(id, uint32_t(leaf), uint32_t(sub), r))) return {};
    Napi::Array out = Napi::Array::New(info.Env(), 4);
    for (uint32_t i = 0; i < 4; i++) out.Set(i, Napi::Number::New(info.Env(), r[i]));
    return out;
  }
  // stats(vcpu) -> [runs, io, mmio, msr, native, js]
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    int id;
    if (!Live(info.Env()) || !IntArg(info, 0, &id)) return {};
    uint64_t st[6];
    if (Throw(info.Env(), vm_->GetStats(id, st))) return {};
    Napi::Array out = Napi::Array::New(info.Env(), 6);
    for (uint32_t i = 0; i < 6; i++) out.Set(i, Napi::Number::New(info.Env(), double(st[i])));
    return out;
  }
  Napi::Value SetStrict(const Napi::CallbackInfo& info) {
    if (Live(info.Env())) vm_->SetStrict(info[0].ToBoolean(), info[1].ToBoolean());
    return {};
  }
  // setPciConf1(ecamBase, present: Uint8Array of 8192 bytes, one bit per bus/slot/function)
  Napi::Value SetPciConf1(const Napi::CallbackInfo& info) {
    uint64_t ecam;
    if (!Live(info.Env()) || !U64Arg(info, 0, &ecam)) return {};
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      Napi::TypeError::New(info.Env(), "setPciConf1: present must be a Uint8Array").ThrowAsJavaScriptException();
      return {};
    }
    Napi::Uint8Array present = info[1].As<Napi::Uint8Array>();
    if (present.ElementLength() != 8192) {
      Napi::RangeError::New(info.Env(), "setPciConf1: present must hold 8192 bytes").ThrowAsJavaScriptException();
      return {};
    }
    vm_->SetPciConf1(ecam, std::vector<uint8_t>(present.Data(), present.Data() + present.ElementLength()));
    return {};
  }
  Napi::Value UserMsrExits(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return {};
    return Napi::Boolean::New(info.Env(), vm_->userMsrExits());
  }
  Napi::Value LapicMsi(const Napi::CallbackInfo& info) {
    uint64_t addr, data;
    if (!Live(info.Env()) || !U64Arg(info, 0, &addr) || !U64Arg(info, 1, &data)) return {};
    Throw(info.Env(), vm_->LapicMsi(addr, uint32_t(data)));
    return {};
  }
  Napi::Value IoapicLine(const Napi::CallbackInfo& info) {
    int pin, level;
    if (!Live(info.Env()) || !IntArg(info, 0, &pin) || !IntArg(info, 1, &level)) return {};
    Throw(info.Env(), vm_->IoapicLine(pin, level ? 1 : 0));
    return {};
  }
  Napi::Value IsaLine(const Napi::CallbackInfo& info) {
    int a, i, level;
    if (!Live(info.Env()) || !IntArg(info, 0, &a) || !IntArg(info, 1, &i) || !IntArg(info, 2, &level)) return {};
    Throw(info.Env(), vm_->IsaLine(a, i, level ? 1 : 0));
    return {};
  }
  Napi::Value IsaSetTrigger(const Napi::CallbackInfo& info) {
    int irq;
    if (!Live(info.Env()) || !IntArg(info, 0, &irq)) return {};
    Throw(info.Env(), vm_->IsaSetTrigger(irq, info[1].ToBoolean()));
    return {};
  }
  Napi::Value SetMsiRoute(const Napi::CallbackInfo& info) {
    uint64_t gsi, addr, data;
    if (!Live(info.Env()) || !U64Arg(info, 0, &gsi) || !U64Arg(info, 1, &addr) || !U64Arg(info, 2, &data)) return {};
    Throw(info.Env(), vm_->SetMsiRoute(uint32_t(gsi), addr, uint32_t(data)));
    return {};
  }
  // irqfd(fd, gsi, deassign, resampleFd = -1)
  Napi::Value Irqfd(const Napi::CallbackInfo& info) {
    int fd, resample = -1;
    uint64_t gsi;
    if (!Live(info.Env()) || !IntArg(info, 0, &fd) || !U64Arg(info, 1, &gsi)) return {};
    if (info.Length() > 3 && !info[3].IsUndefined() && !IntArg(info, 3, &resample)) return {};
    if (gsi >= 4096) { Throw(info.Env(), {EINVAL, "GSI out of range"}); return {}; }
    Throw(info.Env(), vm_->Irqfd(fd, uint32_t(gsi), info[2].ToBoolean(), resample));
    return {};
  }
  // ioeventfd(fd, addr, len, pio, matchData, data, deassign)
  Napi::Value Ioeventfd(const Napi::CallbackInfo& info) {
    int fd;
    uint64_t addr, len, data;
    if (!Live(info.Env()) || !IntArg(info, 0, &fd) || !U64Arg(info, 1, &addr) || !U64Arg(info, 2, &len) || !U64Arg(info, 5, &data)) return {};
    Throw(info.Env(), vm_->Ioeventfd(fd, addr, uint32_t(len), info[3].ToBoolean(), info[4].ToBoolean(), data, info[6].ToBoolean()));
    return {};
  }
  vmm::RangeTable* Space(const Napi::CallbackInfo& info, int space) {
    if (space == 0) return &vm_->pio();
    if (space == 1) return &vm_->mmio();
    TypeFail(info.Env(), "space must be 0 (port I/O) or 1 (MMIO)");
    return nullptr;
  }
  // registerRange(space, base, len, jsId)
  Napi::Value RegisterRange(const Napi::CallbackInfo& info) {
    int space;
    uint64_t base, len, id;
    if (!Live(info.Env()) || !IntArg(info, 0, &space) || !U64Arg(info, 1, &base) || !U64Arg(info, 2, &len) || !U64Arg(info, 3, &id)) return {};
    vmm::RangeTable* t = Space(info, space);
    if (!t) return {};
    if (space == 0 && (base > 0xffff || len > 0x10000 - base)) { Throw(info.Env(), {EINVAL, "port range beyond 0xffff"}); return {}; }
    vmm::RangeOwner o;
    o.jsId = uint32_t(id);
    if (!t->Add(base, len, o)) Throw(info.Env(), {EEXIST, "range is empty or overlaps a registered range"});
    return {};
  }
  Napi::Value UnregisterRange(const Napi::CallbackInfo& info) {
    int space;
    uint64_t base;
    if (!Live(info.Env()) || !IntArg(info, 0, &space) || !U64Arg(info, 1, &base)) return {};
    vmm::RangeTable* t = Space(info, space);
    if (t && !t->Remove(base)) Throw(info.Env(), {ENOENT, "no range registered at that base"});
    return {};
  }
  // addSink(space, base, len) -> sink number
  Napi::Value AddSink(const Napi::CallbackInfo& info) {
    int space;
    uint64_t base, len;
    if (!Live(info.Env()) || !IntArg(info, 0, &space) || !U64Arg(info, 1, &base) || !U64Arg(info, 2, &len)) return {};
    vmm::RangeTable* t = Space(info, space);
    if (!t) return {};
    auto sink = std::make_shared<vmm::SinkDevice>();
    vmm::RangeOwner o;
    o.native = sink;
    if (!t->Add(base, len, o)) { Throw(info.Env(), {EEXIST, "range is empty or overlaps a registered range"}); return {}; }
    sinks_.push_back(sink);
    return Napi::Number::New(info.Env(), double(sinks_.size() - 1));
  }
  Napi::Value SinkStats(const Napi::CallbackInfo& info) {
    int i;
    if (!IntArg(info, 0, &i)) return {};
    if (i < 0 || size_t(i) >= sinks_.size()) { Throw(info.Env(), {ENOENT, "no such sink"}); return {}; }
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("writes", Napi::Number::New(info.Env(), double(sinks_[size_t(i)]->writes())));
    o.Set("reads", Napi::Number::New(info.Env(), double(sinks_[size_t(i)]->reads())));
    o.Set("last", Napi::Number::New(info.Env(), double(sinks_[size_t(i)]->last())));
    return o;
  }
  // start(cpusets: number[][], onAttention: () => void, vcpuSpinNs?) -> ArrayBuffer over the exit slots
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return {};
    if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsFunction()) { TypeFail(env, "start(cpusets, onAttention)"); return {}; }
    std::vector<std::vector<int>> sets;
    Napi::Array a = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      std::vector<int> s;
      Napi::Value e = a.Get(i);
      if (e.IsArray()) {
        Napi::Array ea = e.As<Napi::Array>();
        for (uint32_t j = 0; j < ea.Length(); j++) s.push_back(ea.Get(j).ToNumber().Int32Value());
      }
      sets.push_back(std::move(s));
    }
    if (info.Length() > 2 && info[2].IsNumber()) {
      double ns = info[2].As<Napi::Number>().DoubleValue();
      vm_->channel().SetCallSpin(int64_t(ns >= 0 && ns <= 1e9 ? ns : 0));
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "tsbhyve-vcpu-exit", 0, 1);
    Napi::ThreadSafeFunction* fn = &tsfn_;
    vm_->channel().SetNotify([fn] { fn->NonBlockingCall(); });
    haveTsfn_ = true;
    if (Throw(env, vm_->Start(sets))) {
      tsfn_.Release();
      haveTsfn_ = false;
      return {};
    }
    if (slots_.IsEmpty()) {
      // The channel's buffer lives as long as the Vm; the wrapper keeps the Vm until close(), and after
      // close() the ArrayBuffer is detached before the Vm goes away.
      slots_ = Napi::Persistent(Napi::ArrayBuffer::New(env, vm_->channel().buffer(), vm_->channel().bufferSize()));
    }
    return slots_.Value();
  }
  Napi::Value Pump(const Napi::CallbackInfo& info) {
    // pump(done, spinNs, waitNs); both budgets are clamped to [0, 1 s].
    int done;
    auto budget = [&](size_t i) {
      double d = info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : 0;
      return int64_t(d >= 0 && d <= 1e9 ? d : 0);
    };
    if (!Live(info.Env()) || !IntArg(info, 0, &done)) return {};
    return Napi::Number::New(info.Env(), vm_->channel().Pump(done, budget(1), budget(2), vm_->runningThreads()));
  }
  Napi::Value Release(const Napi::CallbackInfo& info) {
    int done;
    if (Live(info.Env()) && IntArg(info, 0, &done)) vm_->channel().Release(done);
    return {};
  }
  Napi::Value Suspend(const Napi::CallbackInfo& info) {
    int how;
    if (!Live(info.Env()) || !IntArg(info, 0, &how)) return {};
    if (how < 0 || how > 3) { Throw(info.Env(), {EINVAL, "suspend reason must be 0..3"}); return {}; }
    vm_->Suspend(vmm::SuspendHow(how));
    return {};
  }
  Napi::Value Fail(const Napi::CallbackInfo& info) {
    if (Live(info.Env())) vm_->Fail(info[0].ToString());
    return {};
  }
  // join() after pump() returned -2: { status, error }
  Napi::Value Join(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Live(env)) return {};
    if (vm_->running()) { Throw(env, {EBUSY, "vCPUs are still running"}); return {}; }
    std::string err;
    int status = vm_->Join(&err);
    if (haveTsfn_) {
      tsfn_.Release();
      haveTsfn_ = false;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("status", Napi::Number::New(env, status));
    o.Set("error", Napi::String::New(env, err));
    return o;
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseNow();
    return {};
  }
  void CloseNow() {
    if (!slots_.IsEmpty()) {
      if (!slots_.Value().IsDetached()) slots_.Value().Detach();
      slots_.Reset();
    }
    // Stops and joins the vCPU threads first (they may still call the notify hook, which stays valid
    // until the thread-safe function is released below).
    vm_.reset();
    if (haveTsfn_) {
      tsfn_.Release();
      haveTsfn_ = false;
    }
    chunks_.clear();
  }

  std::unique_ptr<Vm> vm_;
  Napi::ThreadSafeFunction tsfn_;
  bool haveTsfn_ = false;
  Napi::Reference<Napi::ArrayBuffer> slots_;
  std::map<uint8_t*, Napi::Reference<Napi::ArrayBuffer>> chunks_;
  std::vector<std::shared_ptr<vmm::SinkDevice>> sinks_;
};

// eventfd helpers: the TS side creates the notification handles it passes to irqfd/ioeventfd and to
// native data-path workers (Node has no eventfd API).
Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    Throw(info.Env(), {errno, std::string("eventfd: ") + std::strerror(errno)});
    return {};
  }
  return Napi::Number::New(info.Env(), fd);
}
// Returns the counter and resets it, or 0 when it was 0.
Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  int fd;
  if (!IntArg(info, 0, &fd)) return {};
  uint64_t v = 0;
  if (read(fd, &v, sizeof v) != sizeof v) {
    if (errno == EAGAIN) return Napi::Number::New(info.Env(), 0);
    Throw(info.Env(), {errno, std::string("eventfd read: ") + std::strerror(errno)});
    return {};
  }
  return Napi::Number::New(info.Env(), double(v));
}
Napi::Value EventfdWrite(const Napi::CallbackInfo& info) {
  int fd;
  uint64_t v;
  if (!IntArg(info, 0, &fd) || !U64Arg(info, 1, &v)) return {};
  if (write(fd, &v, sizeof v) != sizeof v) Throw(info.Env(), {errno, std::string("eventfd write: ") + std::strerror(errno)});
  return {};
}
Napi::Value EventfdClose(const Napi::CallbackInfo& info) {
  int fd;
  if (IntArg(info, 0, &fd) && close(fd) != 0) Throw(info.Env(), {errno, std::string("close: ") + std::strerror(errno)});
  return {};
}

}  // namespace

vmm::Vm* UnwrapVm(Napi::Value v) {
  if (!v.IsObject()) return nullptr;
  // ObjectWrap::Unwrap on a foreign object returns null through napi_unwrap's failure.
  bool tagged = false;
  if (napi_check_object_type_tag(v.Env(), v, &kVmTag, &tagged) != napi_ok || !tagged) return nullptr;
  VmWrap* w = nullptr;
  if (napi_unwrap(v.Env(), v, reinterpret_cast<void**>(&w)) != napi_ok || !w) return nullptr;
  return w->vm();
}

Napi::Object VmmExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("NativeVm", VmWrap::Define(env));
  o.Set("eventfd", Napi::Function::New(env, EventfdCreate, "eventfd"));
  o.Set("eventfdRead", Napi::Function::New(env, EventfdRead, "eventfdRead"));
  o.Set("eventfdWrite", Napi::Function::New(env, EventfdWrite, "eventfdWrite"));
  o.Set("eventfdClose", Napi::Function::New(env, EventfdClose, "eventfdClose"));
  return o;
}

}  // namespace tsbhyve
