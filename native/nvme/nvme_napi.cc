// N-API surface of the NVMe data path (exported as `nvme`): the I/O queues of one controller, their doorbells
// (callable from JS, and attachable to a VM's MMIO exits so they are served on the vCPU thread), and the
// PRP-checked copies the TypeScript admin path uses. The typed API is devices/nvme/native.ts.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "napi_events.h"
#include "napi_handles.h"
#include "nvme/io_queues.h"
#include "nvme/prp.h"
#include "vmm/ranges.h"
#include "vmm/vmm_napi.h"

namespace tsbhyve {
namespace {

using nvme::IoEvent;
using nvme::IoQueues;

void ThrowErrno(Napi::Env env, int err, const std::string& msg) {
  Napi::Error::New(env, "E" + std::to_string(err) + ": " + msg).ThrowAsJavaScriptException();
}
void ThrowType(Napi::Env env, const std::string& msg) { Napi::TypeError::New(env, msg).ThrowAsJavaScriptException(); }


// The I/O doorbells of one controller as a native MMIO device: 4-byte writes at BAR0 + 0x1000 + 8*qid (+4).
class DoorbellDevice : public vmm::NativeDevice {
 public:
  DoorbellDevice(std::shared_ptr<IoQueues> q, uint64_t barBase) : q_(std::move(q)), barBase_(barBase) {}
  void Access(int, uint64_t addr, unsigned size, bool write, uint64_t* value) override {
    if (!write) {
      *value = 0;  // doorbells read as zero
      return;
    }
    if (size == 4) q_->Doorbell(addr - barBase_, uint32_t(*value));
  }

 private:
  std::shared_ptr<IoQueues> q_;
  uint64_t barBase_;
};

class IoQueuesWrap : public Napi::ObjectWrap<IoQueuesWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "IoQueues", {
      InstanceMethod("start", &IoQueuesWrap::Start),
      InstanceMethod("stop", &IoQueuesWrap::Stop),
      InstanceMethod("createCq", &IoQueuesWrap::CreateCq),
      InstanceMethod("createSq", &IoQueuesWrap::CreateSq),
      InstanceMethod("deleteSq", &IoQueuesWrap::DeleteSq),
      InstanceMethod("deleteCq", &IoQueuesWrap::DeleteCq),
      InstanceMethod("cqExists", &IoQueuesWrap::CqExists),
      InstanceMethod("sqExists", &IoQueuesWrap::SqExists),
      InstanceMethod("reset", &IoQueuesWrap::Reset),
      InstanceMethod("setPageSize", &IoQueuesWrap::SetPageSize),
      InstanceMethod("setDoorbellBuffer", &IoQueuesWrap::SetDoorbellBuffer),
      InstanceMethod("setVectorFd", &IoQueuesWrap::SetVectorFd),
      InstanceMethod("setIntxLevel", &IoQueuesWrap::SetIntxLevel),
      InstanceMethod("doorbell", &IoQueuesWrap::Doorbell),
      InstanceMethod("anyPending", &IoQueuesWrap::AnyPending),
      InstanceMethod("dmaRead", &IoQueuesWrap::DmaRead),
      InstanceMethod("dmaWrite", &IoQueuesWrap::DmaWrite),
      InstanceMethod("attachDoorbells", &IoQueuesWrap::AttachDoorbells),
      InstanceMethod("detachDoorbells", &IoQueuesWrap::DetachDoorbells),
      InstanceMethod("stats", &IoQueuesWrap::Stats),
      InstanceMethod("setWriteCache", &IoQueuesWrap::SetWriteCache),
      InstanceMethod("flush", &IoQueuesWrap::Flush),
      InstanceMethod("eraseAll", &IoQueuesWrap::EraseAll),
      InstanceMethod("wakeFd", &IoQueuesWrap::WakeFd),
    });
  }
  // new IoQueues(memory: GuestRam | NativeVm, backend, {lbaShift, mdtsBytes, dsm, maxQueues, vectors, ioSlots, engine}, onEvent(kind, arg))
  explicit IoQueuesWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IoQueuesWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[2].IsObject() || !info[3].IsFunction())
      { ThrowType(env, "IoQueues(memory, backend, config, onEvent)"); return; }
    auto mem = UnwrapGuestMemory(env, info[0]);
    if (!mem) { ThrowType(env, "IoQueues: memory must be a GuestRam or a live NativeVm"); return; }
    auto file = UnwrapBlockBackend(env, info[1]);
    if (!file) { ThrowType(env, "IoQueues: backend must be an open BlockBackend"); return; }
    memRef_ = Napi::Persistent(info[0].As<Napi::Object>());
    Napi::Object o = info[2].As<Napi::Object>();
    auto num = [&](const char* k, double def) {
      Napi::Value v = o.Get(k);
      return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : def;
    };
    nvme::Namespace ns;
    const double shift = num("lbaShift", 9), mdts = num("mdtsBytes", 2 << 20), maxq = num("maxQueues", 16),
                 vectors = num("vectors", 17);
    if (!(shift >= 9 && shift <= 16) || !(mdts >= 4096) || !(maxq >= 1 && maxq < IoQueues::kMaxQueues) ||
        !(vectors >= 1 && vectors <= IoQueues::kMaxVectors))
      { ThrowType(env, "IoQueues: lbaShift 9..16, mdtsBytes >= 4096, maxQueues 1..63, vectors 1..2048"); return; }
    ns.lbaShift = uint32_t(shift);
    ns.mdtsBytes = uint64_t(mdts);
    ns.dsm = o.Get("dsm").ToBoolean().Value();
    auto events = MakeEventReporter(env, info[3].As<Napi::Function>(), "tsbhyve nvme", &tsfn_);
    haveTsfn_ = true;
    auto report = [events](IoEvent ev, uint32_t arg) { events(int(ev), arg); };
    const double ioSlots = num("ioSlots", 32);
    if (!(ioSlots >= 1 && ioSlots <= 1024)) { ThrowType(env, "IoQueues: ioSlots must be 1..1024"); return; }
    Napi::Value eng = o.Get("engine");
    const bool uring = !(eng.IsString() && eng.As<Napi::String>().Utf8Value() == "sync");
    q_ = std::make_shared<IoQueues>(std::move(mem), std::move(file), ns, unsigned(maxq), unsigned(vectors),
                                    unsigned(ioSlots), uring, report);
  }
  ~IoQueuesWrap() { Halt(); }

 private:
  bool Live(Napi::Env env) {
    if (q_) return true;
    ThrowErrno(env, EBADF, "NVMe queues stopped");
    return false;
  }
  static Napi::Value St(Napi::Env env, nvme::Status s) { return Napi::Number::New(env, s); }
  static bool Arg(const Napi::CallbackInfo& info, size_t i, uint32_t max, uint32_t* out) {
    if (info.Length() <= i || !info[i].IsNumber()) { ThrowType(info.Env(), "expected a number"); return false; }
    double d = info[i].As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= max) || d != double(uint32_t(d))) { ThrowType(info.Env(), "argument out of range"); return false; }
    *out = uint32_t(d);
    return true;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return {};
    std::string err;
    if (!q_->Start(&err)) ThrowErrno(info.Env(), EIO, err);
    return info.Env().Undefined();
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Halt();
    return info.Env().Undefined();
  }
  void Halt() {
    if (q_) q_->Stop();  // joins: no report comes after this from the worker
    q_.reset();
    if (haveTsfn_) {
      tsfn_.Release();
      haveTsfn_ = false;
    }
  }
  Napi::Value CreateCq(const Napi::CallbackInfo& info) {
    uint32_t qid, entries, vector;
    uint64_t gpa;
    if (!Live(info.Env()) || !Arg(info, 0, 65535, &qid) || !U64Arg(info, 1, &gpa) || !Arg(info, 2, 65536, &entries) ||
        !Arg(info, 3, 65535, &vector))
      return {};
    return St(info.Env(), q_->CreateCq(uint16_t(qid), gpa, entries, uint16_t(vector), info[4].ToBoolean().Value()));
  }
  Napi::Value CreateSq(const Napi::CallbackInfo& info) {
    uint32_t qid, entries, cqid;
    uint64_t gpa;
    if (!Live(info.Env()) || !Arg(info, 0, 65535, &qid) || !U64Arg(info, 1, &gpa) || !Arg(info, 2, 65536, &entries) ||
        !Arg(info, 3, 65535, &cqid))
      return {};
    return St(info.Env(), q_->CreateSq(uint16_t(qid), gpa, entries, uint16_t(cqid)));
  }
  Napi::Value DeleteSq(const Napi::CallbackInfo& info) {
    uint32_t qid;
    if (!Live(info.Env()) || !Arg(info, 0, 65535, &qid)) return {};
    return St(info.Env(), q_->DeleteSq(uint16_t(qid)));
  }
  Napi::Value DeleteCq(const Napi::CallbackInfo& info) {
    uint32_t qid;
    if (!Live(info.Env()) || !Arg(info, 0, 65535, &qid)) return {};
    return St(info.Env(), q_->DeleteCq(uint16_t(qid)));
  }
  Napi::Value CqExists(const Napi::CallbackInfo& info) {
    uint32_t qid;
    if (!Live(info.Env()) || !Arg(info, 0, 65535, &qid)) return {};
    return Napi::Boolean::New(info.Env(), q_->CqExists(uint16_t(qid)));
  }
  Napi::Value SqExists(const Napi::CallbackInfo& info) {
    uint32_t qid;
    if (!Live(info.Env()) || !Arg(info, 0, 65535, &qid)) return {};
    return Napi::Boolean::New(info.Env(), q_->SqExists(uint16_t(qid)));
  }
  Napi::Value Reset(const Napi::CallbackInfo& info) {
    if (Live(info.Env())) q_->Reset();
    return info.Env().Undefined();
  }
  Napi::Value SetPageSize(const Napi::CallbackInfo& info) {
    uint32_t b;
    if (!Live(info.Env()) || !Arg(info, 0, 1u << 27, &b)) return {};
    if (b < 4096 || (b & (b - 1)) != 0) { ThrowType(info.Env(), "page size must be a power of two >= 4096"); return {}; }
    q_->SetPageSize(b);
    return info.Env().Undefined();
  }
  Napi::Value SetDoorbellBuffer(const Napi::CallbackInfo& info) {
    uint64_t s, e;
    if (!Live(info.Env()) || !U64Arg(info, 0, &s) || !U64Arg(info, 1, &e)) return {};
    return St(info.Env(), q_->SetDoorbellBuffer(s, e));
  }
  Napi::Value SetVectorFd(const Napi::CallbackInfo& info) {
    uint32_t v;
    if (!Live(info.Env()) || !Arg(info, 0, IoQueues::kMaxVectors, &v)) return {};
    int fd = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
    q_->SetVectorFd(v, fd);
    return info.Env().Undefined();
  }
  Napi::Value SetIntxLevel(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return {};
    q_->SetIntxLevel(info.Length() > 0 && info[0].ToBoolean().Value());
    return info.Env().Undefined();
  }
  Napi::Value Doorbell(const Napi::CallbackInfo& info) {
    uint32_t off, val;
    if (!Live(info.Env()) || !Arg(info, 0, 0xffffffffu, &off) || !Arg(info, 1, 0xffffffffu, &val)) return {};
    q_->Doorbell(off, val);
    return info.Env().Undefined();
  }
  Napi::Value AnyPending(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return {};
    return Napi::Boolean::New(info.Env(), q_->AnyPending());
  }
  // dmaRead(prp1, prp2, len) -> Uint8Array, or the status number when the PRPs are refused
  Napi::Value DmaRead(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t p1, p2;
    uint32_t len;
    if (!Live(env) || !U64Arg(info, 0, &p1) || !U64Arg(info, 1, &p2) || !Arg(info, 2, 1u << 24, &len)) return {};
    Napi::Uint8Array out = Napi::Uint8Array::New(env, len);
    nvme::Status st = nvme::PrpCopy(*mem(), p1, p2, out.Data(), len, q_->pageSize(), false);
    if (st != nvme::kScSuccess) return St(env, st);
    return out;
  }
  // dmaWrite(prp1, prp2, bytes) -> status
  Napi::Value DmaWrite(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t p1, p2;
    if (!Live(env) || !U64Arg(info, 0, &p1) || !U64Arg(info, 1, &p2)) return {};
    if (info.Length() < 3 || !info[2].IsTypedArray()) { ThrowType(env, "dmaWrite(prp1, prp2, Uint8Array)"); return {}; }
    Napi::Uint8Array data = info[2].As<Napi::Uint8Array>();
    return St(env, nvme::PrpCopy(*mem(), p1, p2, data.Data(), data.ByteLength(), q_->pageSize(), true));
  }
  // attachDoorbells(vm, gpa, len, barBase): serve I/O doorbell writes in [gpa, gpa+len) on the vCPU threads
  Napi::Value AttachDoorbells(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t gpa, len, bar;
    if (!Live(env) || !U64Arg(info, 1, &gpa) || !U64Arg(info, 2, &len) || !U64Arg(info, 3, &bar)) return {};
    vmm::Vm* vm = UnwrapVm(info[0]);
    if (!vm) { ThrowType(env, "attachDoorbells: not a live NativeVm"); return {}; }
    vmm::RangeOwner o;
    o.native = std::make_shared<DoorbellDevice>(q_, bar);
    if (!vm->mmioOverlay().Add(gpa, len, o)) ThrowErrno(env, EEXIST, "doorbell range is empty or overlaps another");
    return env.Undefined();
  }
  Napi::Value DetachDoorbells(const Napi::CallbackInfo& info) {
    uint64_t gpa;
    if (!U64Arg(info, 1, &gpa)) return {};
    if (vmm::Vm* vm = UnwrapVm(info[0])) vm->mmioOverlay().Remove(gpa);
    return info.Env().Undefined();
  }
  Napi::Value WakeFd(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return {};
    return Napi::Number::New(info.Env(), q_->wakeFd());
  }
  Napi::Value SetWriteCache(const Napi::CallbackInfo& info) {
    if (Live(info.Env())) q_->SetWriteCache(info.Length() > 0 && info[0].ToBoolean().Value());
    return info.Env().Undefined();
  }
  // flush() / eraseAll() -> 0 or an errno
  Napi::Value Flush(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return {};
    return Napi::Number::New(info.Env(), q_->Flush());
  }
  Napi::Value EraseAll(const Napi::CallbackInfo& info) {
    if (!Live(info.Env())) return {};
    return Napi::Number::New(info.Env(), q_->EraseAll());
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    if (!q_) return o;
    const auto& s = q_->stats();
    o.Set("commands", Napi::Number::New(env, double(s.commands.load())));
    o.Set("errors", Napi::Number::New(env, double(s.errors.load())));
    o.Set("interrupts", Napi::Number::New(env, double(s.interrupts.load())));
    o.Set("doorbells", Napi::Number::New(env, double(s.doorbells.load())));
    o.Set("shadowReads", Napi::Number::New(env, double(s.shadowReads.load())));
    o.Set("engine", Napi::String::New(env, q_->engine()));
    if (!q_->engineNote().empty()) o.Set("engineNote", Napi::String::New(env, q_->engineNote()));
    o.Set("bytesRead", Napi::Number::New(env, double(s.bytesRead.load())));
    o.Set("bytesWritten", Napi::Number::New(env, double(s.bytesWritten.load())));
    o.Set("readCommands", Napi::Number::New(env, double(s.readCommands.load())));
    o.Set("writeCommands", Napi::Number::New(env, double(s.writeCommands.load())));
    return o;
  }
  std::shared_ptr<const GuestMemory> mem() { return UnwrapGuestMemory(Env(), memRef_.Value()); }

  std::shared_ptr<IoQueues> q_;
  Napi::ObjectReference memRef_;
  Napi::ThreadSafeFunction tsfn_;
  bool haveTsfn_ = false;
};

}  // namespace

Napi::Object NvmeExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("IoQueues", IoQueuesWrap::Define(env));
  return o;
}

}  // namespace tsbhyve
