// N-API surface of the virtio-net data path (part of the addon's `virtio` export): the NetWorker, which keeps its
// receive filter and counters across restarts, and the tap helpers. The typed API is devices/net/native.ts.
#include <napi.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "napi_args.h"
#include "napi_events.h"
#include "napi_handles.h"
#include "net/slirp.h"
#include "net/tap.h"
#include "virtio/net_worker.h"

namespace tsbhyve {
namespace {

using virtio::NetWorker;
using virtio::NetWorkerConfig;

using napi_args::ThrowErrno;
using napi_args::ThrowType;
constexpr const char* kWho = "NetWorker";
bool Int(Napi::Object o, const char* key, double def, double max, double* out) { return napi_args::Int(o, kWho, key, def, max, out); }
bool Fd(Napi::Object o, const char* key, int* out) { return napi_args::Fd(o, kWho, key, out); }
using napi_args::Flag;

class NetWorkerWrap : public Napi::ObjectWrap<NetWorkerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NetWorker", {
      InstanceMethod("start", &NetWorkerWrap::Start),
      InstanceMethod("stop", &NetWorkerWrap::Stop),
      InstanceMethod("setMac", &NetWorkerWrap::SetMac),
      InstanceMethod("resetFilter", &NetWorkerWrap::ResetFilter),
      InstanceMethod("takeIsr", &NetWorkerWrap::TakeIsr),
      InstanceMethod("stats", &NetWorkerWrap::Stats),
    });
  }
  // new NetWorker(memory: GuestRam | NativeVm, onEvent(kind, queue))
  explicit NetWorkerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetWorkerWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[1].IsFunction()) { ThrowType(env, "NetWorker(memory, onEvent)"); return; }
    memory_ = UnwrapGuestMemory(env, info[0]);
    if (!memory_) { ThrowType(env, "NetWorker: memory must be a GuestRam or a live NativeVm"); return; }
    memRef_ = Napi::Persistent(info[0].As<Napi::Object>());
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    filter_ = std::make_shared<virtio::RxFilter>();
  }
  ~NetWorkerWrap() { Halt(); }

 private:
  // start({packetFd, queues: [rx, tx, ctrl?] each {size, pfn, notifyFd, interruptFd} or null, mergeable, ctrlRx,
  //        eventIdx, indirect, useIsr})
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (worker_) { ThrowErrno(env, EBUSY, "NetWorker: already running"); return {}; }
    if (info.Length() < 1 || !info[0].IsObject()) { ThrowType(env, "NetWorker.start(config)"); return {}; }
    Napi::Object o = info[0].As<Napi::Object>();
    NetWorkerConfig cfg;
    cfg.memory = memory_;
    if (!Fd(o, "packetFd", &cfg.packetFd)) return {};
    if (cfg.packetFd < 0) { ThrowType(env, "NetWorker: packetFd is required"); return {}; }
    Napi::Value qv = o.Get("queues");
    if (!qv.IsArray()) { ThrowType(env, "NetWorker: queues must be an array"); return {}; }
    Napi::Array qs = qv.As<Napi::Array>();
    for (uint32_t i = 0; i < 3 && i < qs.Length(); i++) {
      Napi::Value e = qs.Get(i);
      if (e.IsUndefined() || e.IsNull()) continue;
      if (!e.IsObject()) { ThrowType(env, "NetWorker: a queue must be an object or null"); return {}; }
      Napi::Object q = e.As<Napi::Object>();
      double size, pfn;
      if (!Int(q, "size", 0, virtio::kMaxQueueSize, &size) || !Int(q, "pfn", 0, double(1ull << 40), &pfn)) return {};
      uint64_t n = uint64_t(size);
      if (n == 0 || (n & (n - 1)) != 0) { ThrowType(env, "NetWorker: queue size must be a power of two up to 32768"); return {}; }
      auto& qc = cfg.queues[i];
      qc.present = true;
      qc.layout = virtio::QueueLayout::Legacy(uint64_t(pfn), uint16_t(n));
      if (!Fd(q, "notifyFd", &qc.notifyFd) || !Fd(q, "interruptFd", &qc.interruptFd)) return {};
    }
    cfg.mergeable = Flag(o, "mergeable");
    cfg.ctrlRx = Flag(o, "ctrlRx");
    cfg.eventIdx = Flag(o, "eventIdx");
    cfg.indirect = Flag(o, "indirect");
    cfg.useIsr = Flag(o, "useIsr");
    cfg.report = MakeEventReporter(env, callback_.Value(), "tsbhyve virtio-net", &tsfn_);
    haveTsfn_ = true;
    worker_ = std::make_unique<NetWorker>(std::move(cfg), filter_, &stats_);
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
  void Halt() {
    if (worker_) {
      worker_->Stop();  // joins: nothing runs or reports after this
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
  // setMac(bytes): the station address the receive filter matches unicast frames against.
  Napi::Value SetMac(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::Uint8Array>().ByteLength() != 6)
      { ThrowType(env, "NetWorker.setMac(Uint8Array(6))"); return {}; }
    std::lock_guard<std::mutex> lk(filter_->mu);
    std::memcpy(filter_->mac, info[0].As<Napi::Uint8Array>().Data(), 6);
    return env.Undefined();
  }
  Napi::Value ResetFilter(const Napi::CallbackInfo& info) {
    filter_->Reset();
    return info.Env().Undefined();
  }
  Napi::Value TakeIsr(const Napi::CallbackInfo& info) {
    uint32_t v = isrCarry_ | (worker_ ? worker_->TakeIsr() : 0);
    isrCarry_ = 0;
    return Napi::Number::New(info.Env(), v);
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    auto set = [&](const char* k, const std::atomic<uint64_t>& v) { o.Set(k, Napi::Number::New(env, double(v.load()))); };
    set("rxFrames", stats_.rxFrames);
    set("rxBytes", stats_.rxBytes);
    set("txFrames", stats_.txFrames);
    set("txBytes", stats_.txBytes);
    set("rxNoBuffer", stats_.rxNoBuffer);
    set("rxFiltered", stats_.rxFiltered);
    set("rxRunt", stats_.rxRunt);
    set("rxBadChain", stats_.rxBadChain);
    set("txBadChain", stats_.txBadChain);
    set("txDropped", stats_.txDropped);
    set("ctrlCommands", stats_.ctrlCommands);
    set("ctrlErrors", stats_.ctrlErrors);
    set("interrupts", stats_.interrupts);
    int qerr = worker_ ? int(worker_->queueError()) : lastError_;
    o.Set("queueError", qerr ? Napi::Value(Napi::String::New(env, virtio::ChainErrorName(virtio::ChainError(qerr)))) : env.Null());
    {
      std::lock_guard<std::mutex> lk(filter_->mu);
      o.Set("promisc", Napi::Boolean::New(env, filter_->promisc));
      o.Set("allmulti", Napi::Boolean::New(env, filter_->allmulti));
      o.Set("unicastFilters", Napi::Number::New(env, double(filter_->unicast.size())));
      o.Set("multicastFilters", Napi::Number::New(env, double(filter_->multicast.size())));
    }
    return o;
  }

  std::shared_ptr<const GuestMemory> memory_;
  std::shared_ptr<virtio::RxFilter> filter_;
  virtio::NetWorkerStats stats_;
  std::unique_ptr<NetWorker> worker_;
  Napi::ObjectReference memRef_;
  Napi::FunctionReference callback_;
  Napi::ThreadSafeFunction tsfn_;
  bool haveTsfn_ = false;
  int lastError_ = 0;
  uint32_t isrCarry_ = 0;
};

// openTap(name) -> fd (non-blocking, close-on-exec, IFF_VNET_HDR); throws "E<errno>: message".
Napi::Value OpenTap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) { ThrowType(env, "openTap(name)"); return {}; }
  std::string err;
  int errnum = 0;
  int fd = net::OpenTap(info[0].As<Napi::String>().Utf8Value(), &err, &errnum);
  if (fd < 0) { ThrowErrno(env, errnum, err); return {}; }
  return Napi::Number::New(env, fd);
}

// tapConfigure(fd, vnetHeaderBytes, tunOffloadFlags)
Napi::Value TapConfigure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber())
    { ThrowType(env, "tapConfigure(fd, headerBytes, offloads)"); return {}; }
  int fd = info[0].As<Napi::Number>().Int32Value();
  int hdr = info[1].As<Napi::Number>().Int32Value();
  unsigned off = info[2].As<Napi::Number>().Uint32Value();
  if (hdr != 10 && hdr != 12) { ThrowType(env, "tapConfigure: the header is 10 or 12 bytes"); return {}; }
  std::string err;
  if (!net::SetVnetHeaderSize(fd, hdr, &err) || !net::SetOffloads(fd, off, &err)) { ThrowErrno(env, errno, err); return {}; }
  return env.Undefined();
}

// isTap(fd): whether fd is attached to a tun/tap device (TUNGETIFF answers).
Napi::Value IsTap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) { ThrowType(env, "isTap(fd)"); return {}; }
  ifreq ifr{};
  return Napi::Boolean::New(env, ioctl(info[0].As<Napi::Number>().Int32Value(), TUNGETIFF, &ifr) == 0);
}

// packetPair() -> [a, b]: a connected SOCK_SEQPACKET pair, non-blocking and close-on-exec. Each record is one
// frame with its virtio header, as a tap carries them: the peer side of a `fd:N` backend (tests, benchmarks,
// user-space switches).
Napi::Value PacketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    ThrowErrno(env, errno, std::string("socketpair: ") + std::strerror(errno));
    return {};
  }
  // Room for a few hundred full-size frames each way.
  int buf = 4 << 20;
  for (int fd : sv) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  }
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, sv[0]));
  a.Set(1u, Napi::Number::New(env, sv[1]));
  return a;
}

// new SlirpBackend(fd, {restricted, forwards: [{udp, hostAddr, hostPort, guestAddr, guestPort}]}): libslirp on its
// own thread behind `fd` (one end of a packetPair, which it then owns); throws "E<errno>: message".
class SlirpBackendWrap : public Napi::ObjectWrap<SlirpBackendWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SlirpBackend", {
      InstanceMethod("setHeaderBytes", &SlirpBackendWrap::SetHeaderBytes),
      InstanceMethod("stop", &SlirpBackendWrap::Stop),
      InstanceMethod("stats", &SlirpBackendWrap::Stats),
    });
  }
  explicit SlirpBackendWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SlirpBackendWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsObject()) { ThrowType(env, "SlirpBackend(fd, settings)"); return; }
    int fd = info[0].As<Napi::Number>().Int32Value();
    Napi::Object o = info[1].As<Napi::Object>();
    net::SlirpSettings st;
    st.restricted = o.Get("restricted").ToBoolean().Value();
    Napi::Value fv = o.Get("forwards");
    if (fv.IsArray()) {
      Napi::Array fa = fv.As<Napi::Array>();
      for (uint32_t i = 0; i < fa.Length(); i++) {
        if (!fa.Get(i).IsObject()) { ThrowType(env, "SlirpBackend: a forward must be an object"); return; }
        Napi::Object f = fa.Get(i).As<Napi::Object>();
        net::HostForward hf;
        hf.udp = f.Get("udp").ToBoolean().Value();
        auto addr = [&](const char* a, const char* p, sockaddr_in* out) {
          out->sin_family = AF_INET;
          std::string s = f.Get(a).IsString() ? f.Get(a).As<Napi::String>().Utf8Value() : "";
          if (!s.empty() && inet_pton(AF_INET, s.c_str(), &out->sin_addr) != 1) return false;
          double port = f.Get(p).IsNumber() ? f.Get(p).As<Napi::Number>().DoubleValue() : -1;
          if (!(port >= 0 && port <= 65535)) return false;
          out->sin_port = htons(uint16_t(port));
          return true;
        };
        if (!addr("hostAddr", "hostPort", &hf.host) || !addr("guestAddr", "guestPort", &hf.guest)) {
          ThrowType(env, "SlirpBackend: a forward needs IPv4 addresses and ports 0..65535");
          return;
        }
        st.forwards.push_back(hf);
      }
    }
    std::string err;
    if (!backend_.Start(fd, st, &err)) ThrowErrno(env, ENOENT, err);
  }

 private:
  Napi::Value SetHeaderBytes(const Napi::CallbackInfo& info) {
    uint32_t n = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
    if (n != 10 && n != 12) { ThrowType(info.Env(), "SlirpBackend.setHeaderBytes: 10 or 12"); return {}; }
    backend_.SetHeaderBytes(n);
    return info.Env().Undefined();
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    backend_.Stop();
    return info.Env().Undefined();
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("toGuest", Napi::Number::New(env, double(backend_.stats().toGuest.load())));
    o.Set("fromGuest", Napi::Number::New(env, double(backend_.stats().fromGuest.load())));
    o.Set("dropped", Napi::Number::New(env, double(backend_.stats().dropped.load())));
    return o;
  }
  net::SlirpBackend backend_;
};

}  // namespace

void AddNetExports(Napi::Env env, Napi::Object o) {
  o.Set("SlirpBackend", SlirpBackendWrap::Define(env));
  o.Set("NetWorker", NetWorkerWrap::Define(env));
  o.Set("openTap", Napi::Function::New(env, OpenTap, "openTap"));
  o.Set("tapConfigure", Napi::Function::New(env, TapConfigure, "tapConfigure"));
  o.Set("isTap", Napi::Function::New(env, IsTap, "isTap"));
  o.Set("packetPair", Napi::Function::New(env, PacketPair, "packetPair"));
}

}  // namespace tsbhyve
