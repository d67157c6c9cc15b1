// N-API surface of the virtio-console data path (part of the addon's `virtio` export): one object per device that
// owns the port sockets from device start to close and runs a ConsoleWorker while the driver has the queues. The
// typed API is devices/virtio-console/native.ts.
#include <napi.h>

#include <cerrno>
#include <memory>
#include <string>

#include "napi_args.h"
#include "napi_events.h"
#include "napi_handles.h"
#include "virtio/console_worker.h"

namespace tsbhyve {
namespace {

using napi_args::ThrowErrno;
using napi_args::ThrowType;
using virtio::ConsolePorts;
using virtio::ConsoleWorker;
using virtio::ConsoleWorkerConfig;

constexpr const char* kWho = "ConsoleDevice";

class ConsoleDeviceWrap : public Napi::ObjectWrap<ConsoleDeviceWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ConsoleDevice", {
      InstanceMethod("start", &ConsoleDeviceWrap::Start),
      InstanceMethod("stop", &ConsoleDeviceWrap::Stop),
      InstanceMethod("resetGuest", &ConsoleDeviceWrap::ResetGuest),
      InstanceMethod("close", &ConsoleDeviceWrap::Close),
      InstanceMethod("takeIsr", &ConsoleDeviceWrap::TakeIsr),
      InstanceMethod("stats", &ConsoleDeviceWrap::Stats),
    });
  }
  // new ConsoleDevice(ports: {name, path, console?}[], onEvent(kind, arg)): listens on every port's socket now;
  // throws "E<errno>: cannot create port NAME: reason" (and closes what it made) when one cannot be had.
  explicit ConsoleDeviceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ConsoleDeviceWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsFunction()) { ThrowType(env, "ConsoleDevice(ports, onEvent)"); return; }
    Napi::Array list = info[0].As<Napi::Array>();
    if (list.Length() > uint32_t(virtio::kConsoleMaxPorts)) { ThrowType(env, "ConsoleDevice: at most 16 ports"); return; }
    ports_ = std::make_shared<ConsolePorts>();
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Value e = list.Get(i);
      if (!e.IsObject()) { ThrowType(env, "ConsoleDevice: a port must be {name, path, console?}"); return; }
      Napi::Object p = e.As<Napi::Object>();
      if (!p.Get("name").IsString() || !p.Get("path").IsString()) { ThrowType(env, "ConsoleDevice: a port needs a name and a path"); return; }
      std::string err;
      int errnum = 0;
      if (!ports_->Add(p.Get("name").As<Napi::String>().Utf8Value(), p.Get("path").As<Napi::String>().Utf8Value(),
                       napi_args::Flag(p, "console"), &err, &errnum)) {
        ports_->Close();
        ThrowErrno(env, errnum, err);
        return;
      }
    }
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
  }
  ~ConsoleDeviceWrap() {
    Halt();
    if (ports_) ports_->Close();
  }

 private:
  // start(memory, {queues: ({size, pfn, notifyFd, interruptFd} | null)[34], multiport, eventIdx, indirect, useIsr})
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (worker_) { ThrowErrno(env, EBUSY, "ConsoleDevice: already running"); return {}; }
    if (closed_) { ThrowErrno(env, EBADF, "ConsoleDevice: closed"); return {}; }
    if (info.Length() < 2 || !info[1].IsObject()) { ThrowType(env, "ConsoleDevice.start(memory, config)"); return {}; }
    std::shared_ptr<const GuestMemory> memory = UnwrapGuestMemory(env, info[0]);
    if (!memory) { ThrowType(env, "ConsoleDevice: memory must be a GuestRam or a live NativeVm"); return {}; }
    Napi::Object o = info[1].As<Napi::Object>();
    ConsoleWorkerConfig cfg;
    cfg.memory = memory;
    cfg.ports = ports_;
    Napi::Value qv = o.Get("queues");
    if (!qv.IsArray()) { ThrowType(env, "ConsoleDevice: queues must be an array"); return {}; }
    Napi::Array qs = qv.As<Napi::Array>();
    for (uint32_t i = 0; i < uint32_t(virtio::kConsoleQueues) && i < qs.Length(); i++) {
      Napi::Value e = qs.Get(i);
      if (e.IsUndefined() || e.IsNull()) continue;
      if (!e.IsObject()) { ThrowType(env, "ConsoleDevice: a queue must be an object or null"); return {}; }
      Napi::Object q = e.As<Napi::Object>();
      double size, pfn;
      if (!napi_args::Int(q, kWho, "size", 0, virtio::kMaxQueueSize, &size) ||
          !napi_args::Int(q, kWho, "pfn", 0, double(1ull << 40), &pfn))
        return {};
      uint64_t n = uint64_t(size);
      if (n == 0 || (n & (n - 1)) != 0) { ThrowType(env, "ConsoleDevice: queue size must be a power of two up to 32768"); return {}; }
      auto& qc = cfg.queues[i];
      qc.present = true;
      qc.layout = virtio::QueueLayout::Legacy(uint64_t(pfn), uint16_t(n));
      if (!napi_args::Fd(q, kWho, "notifyFd", &qc.notifyFd) || !napi_args::Fd(q, kWho, "interruptFd", &qc.interruptFd)) return {};
    }
    cfg.multiport = napi_args::Flag(o, "multiport");
    cfg.eventIdx = napi_args::Flag(o, "eventIdx");
    cfg.indirect = napi_args::Flag(o, "indirect");
    cfg.useIsr = napi_args::Flag(o, "useIsr");
    cfg.report = MakeEventReporter(env, callback_.Value(), "tsbhyve virtio-console", &tsfn_);
    haveTsfn_ = true;
    memRef_ = Napi::Persistent(info[0].As<Napi::Object>());
    worker_ = std::make_unique<ConsoleWorker>(std::move(cfg));
    std::string err;
    if (!worker_->Start(&err)) {
      lastError_ = int(worker_->queueError());
      worker_.reset();
      ReleaseTsfn();
      ThrowErrno(env, EINVAL, err);
      return {};
    }
    return env.Undefined();
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Halt();
    return info.Env().Undefined();
  }
  // After a device reset (the worker stopped): the driver announces itself again; clients stay connected.
  Napi::Value ResetGuest(const Napi::CallbackInfo& info) {
    Halt();
    ports_->ResetGuest();
    lastError_ = 0;
    return info.Env().Undefined();
  }
  // Stops the worker, closes every socket and removes the socket files.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Halt();
    ports_->Close();
    closed_ = true;
    return info.Env().Undefined();
  }
  void Halt() {
    if (worker_) {
      worker_->Stop();  // joins: nothing runs or reports after this
      lastError_ = int(worker_->queueError());
      isrCarry_ |= worker_->TakeIsr();
      worker_.reset();
    }
    ReleaseTsfn();
    if (!memRef_.IsEmpty()) memRef_.Reset();
  }
  void ReleaseTsfn() {
    if (haveTsfn_) {
      tsfn_.Release();
      haveTsfn_ = false;
    }
  }
  Napi::Value TakeIsr(const Napi::CallbackInfo& info) {
    uint32_t v = isrCarry_ | (worker_ ? worker_->TakeIsr() : 0);
    isrCarry_ = 0;
    return Napi::Number::New(info.Env(), v);
  }
  // Counters, and per port whether a client is connected and the guest has it open. Read while the worker runs:
  // the port flags are single words the worker writes, so a read sees an old or a new value, never a torn one.
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    const virtio::ConsoleStats& s = ports_->stats;
    auto set = [&](const char* k, const std::atomic<uint64_t>& v) { o.Set(k, Napi::Number::New(env, double(v.load()))); };
    set("rxBytes", s.rxBytes);
    set("txBytes", s.txBytes);
    set("txDiscarded", s.txDiscarded);
    set("badChains", s.badChains);
    set("ctrlIn", s.ctrlIn);
    set("ctrlOut", s.ctrlOut);
    set("ctrlErrors", s.ctrlErrors);
    set("ctrlDropped", s.ctrlDropped);
    set("connects", s.connects);
    set("refused", s.refused);
    set("interrupts", s.interrupts);
    int qerr = worker_ ? int(worker_->queueError()) : lastError_;
    o.Set("queueError", qerr ? Napi::Value(Napi::String::New(env, virtio::ChainErrorName(virtio::ChainError(qerr)))) : env.Null());
    Napi::Array ports = Napi::Array::New(env, ports_->ports.size());
    for (size_t i = 0; i < ports_->ports.size(); i++) {
      const virtio::ConsolePort& p = ports_->ports[i];
      Napi::Object po = Napi::Object::New(env);
      po.Set("name", p.name);
      po.Set("connected", Napi::Boolean::New(env, __atomic_load_n(&p.connFd, __ATOMIC_RELAXED) >= 0));
      po.Set("ready", Napi::Boolean::New(env, __atomic_load_n(&p.ready, __ATOMIC_RELAXED)));
      po.Set("guestOpen", Napi::Boolean::New(env, __atomic_load_n(&p.guestOpen, __ATOMIC_RELAXED)));
      ports.Set(uint32_t(i), po);
    }
    o.Set("ports", ports);
    return o;
  }

  std::shared_ptr<ConsolePorts> ports_;
  std::unique_ptr<ConsoleWorker> worker_;
  Napi::ObjectReference memRef_;
  Napi::FunctionReference callback_;
  Napi::ThreadSafeFunction tsfn_;
  bool haveTsfn_ = false;
  bool closed_ = false;
  int lastError_ = 0;
  uint32_t isrCarry_ = 0;
};

}  // namespace

void AddConsoleExports(Napi::Env env, Napi::Object o) { o.Set("ConsoleDevice", ConsoleDeviceWrap::Define(env)); }

}  // namespace tsbhyve
