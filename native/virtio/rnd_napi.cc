// N-API surface of the virtio entropy device's worker (part of the addon's `virtio` export); the typed API is
// devices/virtio-rnd/native.ts.
#include <napi.h>

#include <cerrno>
#include <memory>
#include <string>

#include "napi_events.h"
#include "napi_handles.h"
#include "virtio/rnd_worker.h"

namespace tsbhyve {
namespace {

using virtio::RndWorker;

class RndWorkerWrap : public Napi::ObjectWrap<RndWorkerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RndWorker", {
      InstanceMethod("start", &RndWorkerWrap::Start),
      InstanceMethod("stop", &RndWorkerWrap::Stop),
      InstanceMethod("takeIsr", &RndWorkerWrap::TakeIsr),
      InstanceMethod("stats", &RndWorkerWrap::Stats),
    });
  }
  // new RndWorker(memory: GuestRam | NativeVm, onEvent(kind))
  explicit RndWorkerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RndWorkerWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[1].IsFunction()) { Napi::TypeError::New(env, "RndWorker(memory, onEvent)").ThrowAsJavaScriptException(); return; }
    memory_ = UnwrapGuestMemory(env, info[0]);
    if (!memory_) { Napi::TypeError::New(env, "RndWorker: memory must be a GuestRam or a live NativeVm").ThrowAsJavaScriptException(); return; }
    memRef_ = Napi::Persistent(info[0].As<Napi::Object>());
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
  }
  ~RndWorkerWrap() { Halt(); }

 private:
  // start({size, pfn, notifyFd, interruptFd?, eventIdx, indirect, useIsr, bytesPerSecond?, burstBytes?})
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto bad = [&](const std::string& m) {
      Napi::TypeError::New(env, "RndWorker.start: " + m).ThrowAsJavaScriptException();
      return Napi::Value();
    };
    if (worker_) return bad("already running");
    if (info.Length() < 1 || !info[0].IsObject()) return bad("config object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    auto num = [&](const char* k, double def) {
      Napi::Value v = o.Get(k);
      return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : def;
    };
    const double size = num("size", 0), pfn = num("pfn", -1), notify = num("notifyFd", -1), irq = num("interruptFd", -1);
    const double rate = num("bytesPerSecond", double(1 << 20)), burst = num("burstBytes", double(64 << 10));
    const uint64_t n = uint64_t(size);
    if (!(size >= 1 && size <= virtio::kMaxQueueSize) || double(n) != size || (n & (n - 1)) != 0) return bad("size must be a power of two up to 32768");
    if (!(pfn >= 0 && pfn < double(1ull << 40)) || double(uint64_t(pfn)) != pfn) return bad("pfn out of range");
    if (!(notify >= 0)) return bad("notifyFd is required");
    if (!(rate >= 1 && rate <= 1e10) || !(burst >= 1 && burst <= 1e9)) return bad("bytesPerSecond and burstBytes must be positive");
    virtio::RndWorkerConfig cfg;
    cfg.memory = memory_;
    cfg.layout = virtio::QueueLayout::Legacy(uint64_t(pfn), uint16_t(n));
    cfg.notifyFd = int(notify);
    cfg.interruptFd = irq >= 0 ? int(irq) : -1;
    cfg.eventIdx = o.Get("eventIdx").ToBoolean().Value();
    cfg.indirect = o.Get("indirect").ToBoolean().Value();
    cfg.useIsr = o.Get("useIsr").ToBoolean().Value();
    cfg.bytesPerSecond = uint64_t(rate);
    cfg.burstBytes = uint64_t(burst);
    cfg.report = MakeEventReporter(env, callback_.Value(), "tsbhyve virtio-rnd", &tsfn_);
    haveTsfn_ = true;
    worker_ = std::make_unique<RndWorker>(std::move(cfg), &stats_);
    std::string err;
    if (!worker_->Start(&err)) {
      lastError_ = int(worker_->queueError());
      worker_.reset();
      ReleaseTsfn();
      Napi::Error::New(env, "E" + std::to_string(EINVAL) + ": " + err).ThrowAsJavaScriptException();
      return {};
    }
    return env.Undefined();
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Halt();
    return info.Env().Undefined();
  }
  void Halt() {
    if (worker_) {
      worker_->Stop();
      lastError_ = int(worker_->queueError());
      isrCarry_ |= worker_->TakeIsr();
      worker_.reset();
    }
    ReleaseTsfn();
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
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("requests", Napi::Number::New(env, double(stats_.requests.load())));
    o.Set("bytes", Napi::Number::New(env, double(stats_.bytes.load())));
    o.Set("badChains", Napi::Number::New(env, double(stats_.badChains.load())));
    o.Set("interrupts", Napi::Number::New(env, double(stats_.interrupts.load())));
    o.Set("throttledMs", Napi::Number::New(env, double(stats_.throttledNs.load()) / 1e6));
    int qerr = worker_ ? int(worker_->queueError()) : lastError_;
    o.Set("queueError", qerr ? Napi::Value(Napi::String::New(env, virtio::ChainErrorName(virtio::ChainError(qerr)))) : env.Null());
    return o;
  }

  std::shared_ptr<const GuestMemory> memory_;
  virtio::RndWorkerStats stats_;
  std::unique_ptr<RndWorker> worker_;
  Napi::ObjectReference memRef_;
  Napi::FunctionReference callback_;
  Napi::ThreadSafeFunction tsfn_;
  bool haveTsfn_ = false;
  int lastError_ = 0;
  uint32_t isrCarry_ = 0;
};

}  // namespace

void AddRndExports(Napi::Env env, Napi::Object o) { o.Set("RndWorker", RndWorkerWrap::Define(env)); }

}  // namespace tsbhyve
