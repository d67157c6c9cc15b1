// N-API surface of the AHCI HBA (exported as `ahci`): the registers and command engines of one controller,
// reachable from JavaScript and attachable to a VM's MMIO exits so the guest's register accesses are served on
// its vCPU threads. The typed API is devices/ahci/native.ts.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "ahci/ahci_spec.h"
#include "ahci/hba.h"
#include "napi_events.h"
#include "napi_handles.h"
#include "vmm/ranges.h"
#include "vmm/vmm_napi.h"

namespace tsbhyve {
namespace {

using ahci::Hba;
using ahci::HbaEvent;

void ThrowType(Napi::Env env, const std::string& msg) { Napi::TypeError::New(env, msg).ThrowAsJavaScriptException(); }

// The ABAR as a native MMIO device. Registers are dwords; narrower reads take part of one, narrower writes are
// dropped (AHCI 1.3.1 §3: registers are accessed as dwords), 8-byte accesses are two dwords.
class AbarDevice : public vmm::NativeDevice {
 public:
  AbarDevice(std::shared_ptr<Hba> hba, uint64_t base) : hba_(std::move(hba)), base_(base) {}
  void Access(int, uint64_t addr, unsigned size, bool write, uint64_t* value) override {
    const uint64_t off = addr - base_;
    if (off > 0xffffffffull) return;
    const uint32_t dword = uint32_t(off) & ~3u, shift = (uint32_t(off) & 3) * 8;
    if (write) {
      if (size == 4 && shift == 0) hba_->Write(dword, uint32_t(*value));
      else if (size == 8 && shift == 0) {
        hba_->Write(dword, uint32_t(*value));
        hba_->Write(dword + 4, uint32_t(*value >> 32));
      }
      return;
    }
    if (size == 8 && shift == 0) {
      *value = uint64_t(hba_->Read(dword)) | uint64_t(hba_->Read(dword + 4)) << 32;
      return;
    }
    const uint32_t v = hba_->Read(dword) >> shift;
    *value = size == 1 ? (v & 0xff) : size == 2 ? (v & 0xffff) : v;
  }

 private:
  std::shared_ptr<Hba> hba_;
  uint64_t base_;
};


std::string Str(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

class HbaWrap : public Napi::ObjectWrap<HbaWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Hba", {
      InstanceMethod("start", &HbaWrap::Start),
      InstanceMethod("stop", &HbaWrap::Stop),
      InstanceMethod("read", &HbaWrap::Read),
      InstanceMethod("write", &HbaWrap::Write),
      InstanceMethod("setIrqMode", &HbaWrap::SetIrqMode),
      InstanceMethod("attach", &HbaWrap::Attach),
      InstanceMethod("detach", &HbaWrap::Detach),
      InstanceMethod("stats", &HbaWrap::Stats),
      InstanceMethod("registerBytes", &HbaWrap::RegisterBytes),
    });
  }
  // new Hba(memory: GuestRam | NativeVm, ports: Array<PortSetup | null>, onEvent(kind, arg))
  explicit HbaWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HbaWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[1].IsArray() || !info[2].IsFunction()) { ThrowType(env, "Hba(memory, ports, onEvent)"); return; }
    auto mem = UnwrapGuestMemory(env, info[0]);
    if (!mem) { ThrowType(env, "Hba: memory must be a GuestRam or a live NativeVm"); return; }
    memRef_ = Napi::Persistent(info[0].As<Napi::Object>());
    Napi::Array arr = info[1].As<Napi::Array>();
    if (arr.Length() < 1 || arr.Length() > ahci::kMaxPorts) { ThrowType(env, "Hba: 1 to 32 ports"); return; }
    std::vector<ahci::PortSetup> ports(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value pv = arr.Get(i);
      if (pv.IsNull() || pv.IsUndefined()) continue;
      if (!pv.IsObject()) { ThrowType(env, "Hba: a port is an object or null"); return; }
      Napi::Object po = pv.As<Napi::Object>();
      ahci::PortSetup& s = ports[i];
      s.file = UnwrapBlockBackend(env, po.Get("backend"));
      if (!s.file) { ThrowType(env, "Hba: port " + std::to_string(i) + ": backend must be an open BlockBackend"); return; }
      s.atapi = po.Get("atapi").ToBoolean().Value();
      Napi::Value id = po.Get("identify");
      if (!id.IsTypedArray() || id.As<Napi::Uint8Array>().ByteLength() != 512) { ThrowType(env, "Hba: identify must be 512 bytes"); return; }
      Napi::Uint8Array ida = id.As<Napi::Uint8Array>();
      s.identify.assign(ida.Data(), ida.Data() + 512);
      Napi::Value shift = po.Get("lbaShift");
      const double sh = shift.IsNumber() ? shift.As<Napi::Number>().DoubleValue() : 9;
      if (!(sh == 9 || sh == 12)) { ThrowType(env, "Hba: lbaShift 9 or 12"); return; }
      s.lbaShift = uint32_t(sh);
      s.useUring = Str(po, "engine") != "sync";
      s.inquiry.vendor = Str(po, "vendor").empty() ? "BHYVE" : Str(po, "vendor");
      s.inquiry.product = Str(po, "product");
      s.inquiry.revision = Str(po, "revision");
    }
    auto events = MakeEventReporter(env, info[2].As<Napi::Function>(), "tsbhyve ahci", &tsfn_);
    haveTsfn_ = true;
    auto report = [events](HbaEvent ev, uint32_t arg) { events(int(ev), arg); };
    hba_ = std::make_shared<Hba>(std::move(mem), std::move(ports), report);
  }
  ~HbaWrap() { Halt(); }

 private:
  bool Live(Napi::Env env) {
    if (hba_) return true;
    Napi::Error::New(env, "E" + std::to_string(EBADF) + ": AHCI controller stopped").ThrowAsJavaScriptException();
    return false;
  }
  void Halt() {
    if (hba_) hba_->Stop();
    hba_.reset();
    if (haveTsfn_) {
      tsfn_.Release();
      haveTsfn_ = false;
    }
  }
  bool Offset(const Napi::CallbackInfo& info, uint32_t* off) {
    if (info.Length() < 1 || !info[0].IsNumber()) { ThrowType(info.Env(), "expected an ABAR offset"); return false; }
    const double d = info[0].As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d < 65536) || d != double(uint32_t(d)) || (uint32_t(d) & 3)) { ThrowType(info.Env(), "ABAR offset: a dword offset below 64 KiB"); return false; }
    *off = uint32_t(d);
    return true;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (Live(info.Env())) hba_->Start();
    return info.Env().Undefined();
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Halt();
    return info.Env().Undefined();
  }
  Napi::Value Read(const Napi::CallbackInfo& info) {
    uint32_t off;
    if (!Live(info.Env()) || !Offset(info, &off)) return {};
    return Napi::Number::New(info.Env(), hba_->Read(off));
  }
  Napi::Value Write(const Napi::CallbackInfo& info) {
    uint32_t off;
    if (!Live(info.Env()) || !Offset(info, &off)) return {};
    if (info.Length() < 2 || !info[1].IsNumber()) { ThrowType(info.Env(), "write(offset, value)"); return {}; }
    hba_->Write(off, info[1].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  }
  // setIrqMode(mode: 0 INTx | 1 MSI, msiFds: number[], perPort: boolean, reverted: boolean)
  Napi::Value SetIrqMode(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return {};
    const int mode = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
    std::vector<int> fds;
    if (info.Length() > 1 && info[1].IsArray()) {
      Napi::Array a = info[1].As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length() && i < ahci::kMaxPorts; i++) {
        Napi::Value v = a.Get(i);
        fds.push_back(v.IsNumber() ? v.As<Napi::Number>().Int32Value() : -1);
      }
    }
    const bool perPort = info.Length() > 2 && info[2].ToBoolean().Value();
    const bool reverted = info.Length() > 3 && info[3].ToBoolean().Value();
    hba_->SetIrqMode(mode == 1 ? ahci::IrqMode::kMsi : ahci::IrqMode::kIntx, std::move(fds), perPort, reverted);
    return info.Env().Undefined();
  }
  // attach(vm, gpa, len): serve the ABAR at [gpa, gpa+len) on the vCPU threads
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t gpa, len;
    if (!Live(env) || !U64Arg(info, 1, &gpa) || !U64Arg(info, 2, &len)) return {};
    vmm::Vm* vm = UnwrapVm(info[0]);
    if (!vm) { ThrowType(env, "attach: not a live NativeVm"); return {}; }
    vmm::RangeOwner o;
    o.native = std::make_shared<AbarDevice>(hba_, gpa);
    if (!vm->mmioOverlay().Add(gpa, len, o))
      Napi::Error::New(env, "E" + std::to_string(EEXIST) + ": ABAR range is empty or overlaps another").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Value Detach(const Napi::CallbackInfo& info) {
    uint64_t gpa;
    if (!U64Arg(info, 1, &gpa)) return {};
    if (vmm::Vm* vm = UnwrapVm(info[0])) vm->mmioOverlay().Remove(gpa);
    return info.Env().Undefined();
  }
  Napi::Value RegisterBytes(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return {};
    return Napi::Number::New(info.Env(), hba_->registerBytes());
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    if (!hba_) return o;
    const auto& s = hba_->stats();
    o.Set("commands", Napi::Number::New(env, double(s.commands.load())));
    o.Set("errors", Napi::Number::New(env, double(s.errors.load())));
    o.Set("ncqCommands", Napi::Number::New(env, double(s.ncqCommands.load())));
    o.Set("bytesRead", Napi::Number::New(env, double(s.bytesRead.load())));
    o.Set("bytesWritten", Napi::Number::New(env, double(s.bytesWritten.load())));
    o.Set("interrupts", Napi::Number::New(env, double(s.interrupts.load())));
    return o;
  }

  std::shared_ptr<Hba> hba_;
  Napi::ObjectReference memRef_;
  Napi::ThreadSafeFunction tsfn_;
  bool haveTsfn_ = false;
};

}  // namespace

Napi::Object AhciExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("Hba", HbaWrap::Define(env));
  return o;
}

}  // namespace tsbhyve
