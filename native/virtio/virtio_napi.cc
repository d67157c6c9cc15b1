// N-API surface of the virtio data paths (exported as `virtio` from the addon): the shared block backend,
// the virtio-blk queue worker (virtio-net's is added by net_napi.cc), and an anonymous-memory guest RAM for driving workers without a VM.
// Thin: argument checks and conversions; the typed API is devices/virtio-blk/native.ts.
#include <napi.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "block/block_file.h"
#include "virtio/blk_worker.h"
#include "vmm/vmm_napi.h"

namespace tsbhyve {
namespace {

using virtio::BlkWorker;
using virtio::BlkWorkerConfig;

const napi_type_tag kRamTag = {0x7473626879766531ull, 0x76697274696f0001ull};
const napi_type_tag kBackendTag = {0x7473626879766531ull, 0x76697274696f0002ull};

void ThrowErrno(Napi::Env env, int err, const std::string& msg) {
  Napi::Error::New(env, "E" + std::to_string(err) + ": " + msg).ThrowAsJavaScriptException();
}
void ThrowType(Napi::Env env, const std::string& msg) { Napi::TypeError::New(env, msg).ThrowAsJavaScriptException(); }

// Reads an optional property as a non-negative safe integer (default when absent).
bool Num(Napi::Object o, const char* key, uint64_t def, uint64_t* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    *out = def;
    return true;
  }
  if (v.IsBigInt()) {
    bool lossless = false;
    *out = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowType(o.Env(), std::string(key) + " out of range");
    return lossless;
  }
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= 9007199254740991.0) || d != double(uint64_t(d))) {
    ThrowType(o.Env(), std::string(key) + ": expected a non-negative safe integer");
    return false;
  }
  *out = uint64_t(d);
  return true;
}
bool IntFd(Napi::Object o, const char* key, int* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    *out = -1;
    return true;
  }
  if (!v.IsNumber()) {
    ThrowType(o.Env(), std::string(key) + ": expected a file descriptor");
    return false;
  }
  *out = v.As<Napi::Number>().Int32Value();
  return true;
}
bool Flag(Napi::Object o, const char* key) { return o.Get(key).ToBoolean().Value(); }

// --- GuestRam: anonymous memory at guest-physical [base, base+size), for tests and benchmarks -------------

struct AnonRam {
  uint8_t* host = nullptr;
  size_t size = 0;
  GuestMemory mem;
  ~AnonRam() {
    if (host) munmap(host, size);
  }
};

class GuestRamWrap : public Napi::ObjectWrap<GuestRamWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "GuestRam", {InstanceMethod("buffer", &GuestRamWrap::Buffer)});
  }
  // new GuestRam(size, base = 0)
  explicit GuestRamWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GuestRamWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) { ThrowType(env, "GuestRam(size, base?)"); return; }
    double size = info[0].As<Napi::Number>().DoubleValue();
    double base = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
    if (!(size > 0 && size <= double(1ull << 32)) || !(base >= 0 && base <= double(1ull << 48)) ||
        size != double(uint64_t(size)) || base != double(uint64_t(base)) || uint64_t(base) % 4096 != 0)
      { ThrowType(env, "GuestRam: size up to 4 GiB, base page aligned"); return; }
    auto ram = std::make_shared<AnonRam>();
    void* p = mmap(nullptr, size_t(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { ThrowErrno(env, errno, std::string("mmap: ") + std::strerror(errno)); return; }
    madvise(p, size_t(size), MADV_HUGEPAGE);  // backed as a VM's RAM is (native/vmm/kvm/kvm_vm.cc)
    ram->host = static_cast<uint8_t*>(p);
    ram->size = size_t(size);
    GuestRegion r;
    r.gpa = uint64_t(base);
    r.size = uint64_t(size);
    r.host = ram->host;
    ram->mem.AddRegion(r);
    ram_ = ram;
    napi_type_tag_object(env, info.This(), &kRamTag);
  }
  std::shared_ptr<const GuestMemory> memory() const { return std::shared_ptr<const GuestMemory>(ram_, &ram_->mem); }

 private:
  // The RAM as an ArrayBuffer (the mapping lives until both this object and every buffer are gone).
  Napi::Value Buffer(const Napi::CallbackInfo& info) {
    auto* keep = new std::shared_ptr<AnonRam>(ram_);
    return Napi::ArrayBuffer::New(info.Env(), ram_->host, ram_->size,
                                  [](Napi::Env, void*, std::shared_ptr<AnonRam>* k) { delete k; }, keep);
  }
  std::shared_ptr<AnonRam> ram_;
};

// --- BlockBackend: an open disk (native/block) ------------------------------------------------------------

class BackendWrap : public Napi::ObjectWrap<BackendWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BlockBackend", {
      InstanceMethod("info", &BackendWrap::Info),
      InstanceMethod("refresh", &BackendWrap::Refresh),
      InstanceMethod("close", &BackendWrap::Close),
    });
  }
  // new BlockBackend({path, readOnly, noCache, sync, noDelete, logicalSector, physicalSector})
  explicit BackendWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BackendWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) { ThrowType(env, "BlockBackend(options)"); return; }
    Napi::Object o = info[0].As<Napi::Object>();
    if (!o.Get("path").IsString()) { ThrowType(env, "BlockBackend: path must be a string"); return; }
    block::OpenOptions opts;
    opts.path = o.Get("path").As<Napi::String>();
    opts.readOnly = Flag(o, "readOnly");
    opts.noCache = Flag(o, "noCache");
    opts.sync = Flag(o, "sync");
    opts.noDelete = Flag(o, "noDelete");
    uint64_t l, p, mem;
    if (!Num(o, "logicalSector", 0, &l) || !Num(o, "physicalSector", 0, &p) || !Num(o, "memoryBytes", 0, &mem)) return;
    opts.memoryBytes = mem;
    opts.logicalSector = uint32_t(l);
    opts.physicalSector = uint32_t(p);
    std::unique_ptr<block::BlockFile> f;
    std::string err;
    int e = block::BlockFile::Open(opts, &f, &err);
    if (e != 0) { ThrowErrno(env, e, err); return; }
    file_ = std::shared_ptr<block::BlockFile>(std::move(f));
    napi_type_tag_object(env, info.This(), &kBackendTag);
  }
  std::shared_ptr<block::BlockFile> file() const { return file_; }

 private:
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!file_) { ThrowErrno(env, EBADF, "block backend closed"); return env.Undefined(); }
    Napi::Object o = Napi::Object::New(env);
    o.Set("size", Napi::Number::New(env, double(file_->size())));
    o.Set("logicalSector", Napi::Number::New(env, file_->logicalSector()));
    o.Set("physicalSector", Napi::Number::New(env, file_->physicalSector()));
    o.Set("readOnly", Napi::Boolean::New(env, file_->readOnly()));
    o.Set("canDelete", Napi::Boolean::New(env, file_->canDelete()));
    return o;
  }
  // Re-reads the size (after the file or device was resized); returns it in bytes.
  Napi::Value Refresh(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!file_) { ThrowErrno(env, EBADF, "block backend closed"); return env.Undefined(); }
    block::Errno e = 0;
    uint64_t size = file_->Refresh(&e);
    if (e != 0) { ThrowErrno(env, e, std::string("cannot read the disk size: ") + std::strerror(e)); return env.Undefined(); }
    return Napi::Number::New(env, double(size));
  }
  // Drops this handle; workers that still use the file keep it open until they stop.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    file_.reset();
    return info.Env().Undefined();
  }
  std::shared_ptr<block::BlockFile> file_;
};

// --- BlkWorker ----------------------------------------------------------------------------------------------

// The io_uring worker's idle watch (BlkWorkerConfig::pollMicros): 32 us unless TSBHYVE_BLK_POLL_US says
// otherwise (a tuning knob for hosts without a spare CPU; 0 turns the watch off).
uint64_t DefaultPollMicros() { return virtio::WatchMicrosFromEnv("TSBHYVE_BLK_POLL_US"); }

class BlkWorkerWrap : public Napi::ObjectWrap<BlkWorkerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BlkWorker", {
      InstanceMethod("start", &BlkWorkerWrap::Start),
      InstanceMethod("stop", &BlkWorkerWrap::Stop),
      InstanceMethod("takeIsr", &BlkWorkerWrap::TakeIsr),
      InstanceMethod("stats", &BlkWorkerWrap::Stats),
    });
  }
  // new BlkWorker(memory: GuestRam | NativeVm, backend, config, onEvent(kind))
  explicit BlkWorkerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BlkWorkerWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[2].IsObject() || !info[3].IsFunction())
      { ThrowType(env, "BlkWorker(memory, backend, config, onEvent)"); return; }
    BlkWorkerConfig cfg;
    // Guest memory: a test GuestRam or a VM's, both shared with the worker, so a worker that outlived its
    // VM's close() would still translate against a live map (the VM never unmaps guest RAM; the device
    // stops its worker before the VM closes anyway).
    bool tagged = false;
    if (info[0].IsObject() && napi_check_object_type_tag(env, info[0], &kRamTag, &tagged) == napi_ok && tagged) {
      cfg.memory = GuestRamWrap::Unwrap(info[0].As<Napi::Object>())->memory();
    } else if (vmm::Vm* vm = UnwrapVm(info[0])) {
      cfg.memory = vm->sharedMemory();
    } else {
      { ThrowType(env, "BlkWorker: memory must be a GuestRam or a live NativeVm"); return; }
    }
    memRef_ = Napi::Persistent(info[0].As<Napi::Object>());
    tagged = false;
    if (!info[1].IsObject() || napi_check_object_type_tag(env, info[1], &kBackendTag, &tagged) != napi_ok || !tagged)
      { ThrowType(env, "BlkWorker: backend must be a BlockBackend"); return; }
    cfg.file = BackendWrap::Unwrap(info[1].As<Napi::Object>())->file();
    if (!cfg.file) { ThrowErrno(env, EBADF, "block backend closed"); return; }

    Napi::Object o = info[2].As<Napi::Object>();
    uint64_t size, pfn, desc, avail, used, mds, mdseg, mwz, mwzseg, segmax, iothreads, pollus;
    if (!Num(o, "size", 0, &size) || !Num(o, "pfn", 0, &pfn) || !Num(o, "desc", 0, &desc) ||
        !Num(o, "avail", 0, &avail) || !Num(o, "used", 0, &used) || !Num(o, "maxDiscardSectors", 0, &mds) ||
        !Num(o, "maxDiscardSegments", 1, &mdseg) || !Num(o, "maxWriteZeroesSectors", 0, &mwz) ||
        !Num(o, "maxWriteZeroesSegments", 1, &mwzseg) || !Num(o, "maxSegments", 0, &segmax) ||
        !Num(o, "ioThreads", 1, &iothreads) || !Num(o, "pollMicros", DefaultPollMicros(), &pollus))
      return;
    if (size == 0 || size > virtio::kMaxQueueSize || (size & (size - 1)) != 0)
      { ThrowType(env, "BlkWorker: queue size must be a power of two up to 32768"); return; }
    if (o.Get("pfn").IsUndefined()) {
      cfg.layout.size = uint16_t(size);
      cfg.layout.desc = desc;
      cfg.layout.avail = avail;
      cfg.layout.used = used;
    } else {
      if (pfn > (UINT64_MAX >> 12)) { ThrowType(env, "BlkWorker: pfn out of range"); return; }
      cfg.layout = virtio::QueueLayout::Legacy(pfn, uint16_t(size));
    }
    cfg.eventIdx = Flag(o, "eventIdx");
    cfg.indirect = Flag(o, "indirect");
    cfg.useIsr = Flag(o, "useIsr");
    if (iothreads < 1 || iothreads > 64) { ThrowType(env, "BlkWorker: ioThreads must be 1..64"); return; }
    cfg.ioThreads = unsigned(iothreads);
    if (pollus > 1000) { ThrowType(env, "BlkWorker: pollMicros must be 0..1000"); return; }
    cfg.pollMicros = unsigned(pollus);
    {
      Napi::Value eng = o.Get("engine");
      if (!eng.IsUndefined()) {
        std::string v = eng.IsString() ? eng.As<Napi::String>().Utf8Value() : "";
        if (v == "auto") cfg.engine = virtio::BlkEngine::kAuto;
        else if (v == "threads") cfg.engine = virtio::BlkEngine::kThreads;
        else { ThrowType(env, "BlkWorker: engine must be \"auto\" or \"threads\""); return; }
      }
    }
    cfg.params.discard = Flag(o, "discard");
    cfg.params.writeZeroes = Flag(o, "writeZeroes");
    cfg.params.maxDiscardSectors = uint32_t(std::min<uint64_t>(mds, UINT32_MAX));
    cfg.params.maxDiscardSegments = uint32_t(std::min<uint64_t>(mdseg, UINT32_MAX));
    cfg.params.maxWriteZeroesSectors = uint32_t(std::min<uint64_t>(mwz, UINT32_MAX));
    cfg.params.maxWriteZeroesSegments = uint32_t(std::min<uint64_t>(mwzseg, UINT32_MAX));
    cfg.params.maxSegments = uint32_t(std::min<uint64_t>(segmax, UINT32_MAX));
    if (o.Get("id").IsString()) cfg.params.id = o.Get("id").As<Napi::String>().Utf8Value();
    if (!IntFd(o, "notifyFd", &cfg.notifyFd) || !IntFd(o, "interruptFd", &cfg.interruptFd)) return;
    if (cfg.notifyFd < 0) { ThrowType(env, "BlkWorker: notifyFd is required"); return; }
    callback_ = Napi::Persistent(info[3].As<Napi::Function>());
    cfg_ = std::move(cfg);
  }
  ~BlkWorkerWrap() { Halt(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (worker_) return env.Undefined();
    tsfn_ = Napi::ThreadSafeFunction::New(env, callback_.Value(), "tsbhyve virtio-blk", 0, 1);
    tsfn_.Unref(env);  // a running worker must not keep the process alive by itself
    haveTsfn_ = true;
    BlkWorkerConfig cfg = cfg_;
    Napi::ThreadSafeFunction tsfn = tsfn_;
    cfg.report = [tsfn](virtio::WorkerEvent ev) mutable {
      int* kind = new int(int(ev));
      if (tsfn.NonBlockingCall(kind, [](Napi::Env env, Napi::Function fn, int* k) {
            int v = *k;
            delete k;
            // env is null while the environment tears down; a JS exception from the callback is reported
            // and cleared here, never rethrown into native code.
            if (env == nullptr || fn.IsEmpty()) return;
            napi_value arg, recv, result;
            if (napi_create_int32(env, v, &arg) != napi_ok || napi_get_undefined(env, &recv) != napi_ok) return;
            if (napi_call_function(env, recv, fn, 1, &arg, &result) != napi_ok) {
              napi_value exc;
              napi_get_and_clear_last_exception(env, &exc);
            }
          }) != napi_ok)
        delete kind;
    };
    worker_ = std::make_unique<BlkWorker>(std::move(cfg));
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
      lastError_ = int(worker_->queueError());
      isrCarry_ |= worker_->TakeIsr();
      for (int i = 0; i < int(virtio::BlkError::kCount); i++) errCarry_[i] += worker_->stats().errors[i].load();
      reqCarry_ += worker_->stats().requests.load();
      irqCarry_ += worker_->stats().interrupts.load();
      engineCarry_ = worker_->engineName();
      noteCarry_ = worker_->engineNote();
      worker_->Stop();  // joins: no report can run after this
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
    uint64_t req = reqCarry_, irq = irqCarry_;
    uint64_t errs[int(virtio::BlkError::kCount)];
    for (int i = 0; i < int(virtio::BlkError::kCount); i++) errs[i] = errCarry_[i];
    int qerr = lastError_;
    if (worker_) {
      req += worker_->stats().requests.load();
      irq += worker_->stats().interrupts.load();
      for (int i = 0; i < int(virtio::BlkError::kCount); i++) errs[i] += worker_->stats().errors[i].load();
      qerr = int(worker_->queueError());
    }
    o.Set("requests", Napi::Number::New(env, double(req)));
    const std::string engine = worker_ ? worker_->engineName() : engineCarry_;
    const std::string note = worker_ ? worker_->engineNote() : noteCarry_;
    if (!engine.empty()) o.Set("engine", Napi::String::New(env, engine));
    if (!note.empty()) o.Set("engineNote", Napi::String::New(env, note));
    o.Set("interrupts", Napi::Number::New(env, double(irq)));
    Napi::Object e = Napi::Object::New(env);
    for (int i = 1; i < int(virtio::BlkError::kCount); i++)
      if (errs[i]) e.Set(virtio::BlkErrorName(virtio::BlkError(i)), Napi::Number::New(env, double(errs[i])));
    o.Set("errors", e);
    o.Set("queueError", qerr ? Napi::Value(Napi::String::New(env, virtio::ChainErrorName(virtio::ChainError(qerr))))
                             : env.Null());
    return o;
  }

  BlkWorkerConfig cfg_;
  std::unique_ptr<BlkWorker> worker_;
  Napi::ObjectReference memRef_;
  Napi::FunctionReference callback_;
  Napi::ThreadSafeFunction tsfn_;
  bool haveTsfn_ = false;
  int lastError_ = 0;
  uint32_t isrCarry_ = 0;
  uint64_t reqCarry_ = 0, irqCarry_ = 0;
  std::string engineCarry_, noteCarry_;
  uint64_t errCarry_[int(virtio::BlkError::kCount)] = {};
};

}  // namespace

void AddNetExports(Napi::Env env, Napi::Object o);  // native/virtio/net_napi.cc
void AddRndExports(Napi::Env env, Napi::Object o);  // native/virtio/rnd_napi.cc
void AddConsoleExports(Napi::Env env, Napi::Object o);  // native/virtio/console_napi.cc

Napi::Object VirtioExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  AddNetExports(env, o);
  AddRndExports(env, o);
  AddConsoleExports(env, o);
  o.Set("GuestRam", GuestRamWrap::Define(env));
  o.Set("BlockBackend", BackendWrap::Define(env));
  o.Set("BlkWorker", BlkWorkerWrap::Define(env));
  return o;
}

}  // namespace tsbhyve

namespace tsbhyve {
// For other data paths (native/napi_handles.h).
std::shared_ptr<const GuestMemory> UnwrapGuestMemory(Napi::Env env, Napi::Value v) {
  bool tagged = false;
  if (v.IsObject() && napi_check_object_type_tag(env, v, &kRamTag, &tagged) == napi_ok && tagged)
    return GuestRamWrap::Unwrap(v.As<Napi::Object>())->memory();
  if (vmm::Vm* vm = UnwrapVm(v)) return vm->sharedMemory();
  return nullptr;
}
std::shared_ptr<block::BlockFile> UnwrapBlockBackend(Napi::Env env, Napi::Value v) {
  bool tagged = false;
  if (!v.IsObject() || napi_check_object_type_tag(env, v, &kBackendTag, &tagged) != napi_ok || !tagged) return nullptr;
  return BackendWrap::Unwrap(v.As<Napi::Object>())->file();
}
}  // namespace tsbhyve
