#pragma once
// The request/response channel between vCPU threads and the JavaScript main thread, for exits that a
// TypeScript device handles. Measured design (bench/exits, docs/vmm.md):
//  - each vCPU owns one slot in a buffer that JS also sees as an ArrayBuffer (no objects per exit);
//  - a vCPU posts a request by setting state = kRequest and ringing a doorbell futex; a main thread inside
//    Pump() (optionally spinning, then sleeping on the doorbell for a bounded time) takes it at once;
//    otherwise the vCPU asks for attention once (a thread-safe function that wakes the event loop), so
//    the loop stays free for sockets and timers while the guest runs;
//  - the vCPU waits for the answer with a short spin, then a futex.
// The byte layout below is mirrored by src/vm/exit-channel.ts.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace tsbhyve::vmm {

constexpr uint32_t kSlotIdle = 0, kSlotRequest = 1, kSlotResponse = 2;
constexpr uint32_t kExitPio = 1, kExitMmio = 2;
// What the TS handler reports back.
constexpr uint32_t kResultHandled = 0, kResultUnhandled = 1, kResultAbort = 2;
constexpr uint32_t kSlotDataSize = 4096;  // a string PIO moves at most one page per exit

struct alignas(64) ExitSlot {
  std::atomic<uint32_t> state;  // 0
  std::atomic<uint32_t> waiting;  // 4: the vCPU sleeps in FUTEX_WAIT on `state`
  uint32_t kind;    // 8
  uint32_t handler; // 12: TS handler number from the range table
  uint32_t size;    // 16: access width in bytes
  uint32_t write;   // 20
  uint32_t count;   // 24: elements (string PIO), 1 otherwise
  uint32_t result;  // 28
  uint32_t vcpu;    // 32
  uint32_t pad;     // 36
  double addr;      // 40: port or gpa (gpa < 2^52, exact in a double)
  uint8_t pad2[16]; // 48
  uint8_t data[kSlotDataSize];  // 64: little-endian values, count * size bytes
};
static_assert(sizeof(std::atomic<uint32_t>) == 4, "slot layout");
static_assert(offsetof(ExitSlot, addr) == 40, "slot layout");
static_assert(offsetof(ExitSlot, data) == 64, "slot layout");

// Spinning for the other side only pays when both threads have a CPU. When they share one (a busy host),
// a spinner holds the CPU the other side needs and every spin runs to its limit. So a spin that ends
// without an answer makes the next 1, 2, 4, ... up to 1024 waits sleep at once; one answered spin resets
// it. Measured (bench/exits, 2 CPUs, two CPU hogs): a fixed spin cost 1.4-5x native per exit, yielding
// in the spin (sched_yield) up to 230x when the yield handed the CPU to a hog for a whole time slice.
class SpinBackoff {
 public:
  bool SpinNow() {
    if (skip_ == 0) return true;
    skip_--;
    return false;
  }
  void Hit() { backoff_ = 0; }
  void Miss() {
    backoff_ = backoff_ == 0 ? 1 : (backoff_ < kMax ? backoff_ * 2 : kMax);
    skip_ = backoff_;
  }

 private:
  static constexpr uint32_t kMax = 1024;
  uint32_t backoff_ = 0;
  uint32_t skip_ = 0;
};

class ExitChannel {
 public:
  ~ExitChannel();
  // Allocates n slots; the buffer lives until the channel is destroyed.
  void Init(int n);
  ExitSlot* slot(int i) { return &slots_[i]; }
  uint8_t* buffer() { return reinterpret_cast<uint8_t*>(slots_); }
  size_t bufferSize() const { return sizeof(ExitSlot) * count_; }
  int count() const { return count_; }
  void SetNotify(std::function<void()> fn) { notify_ = std::move(fn); }
  // How long a vCPU spins for the main thread's answer before sleeping on its futex.
  void SetCallSpin(int64_t ns) { callSpinNs_.store(ns); }

  // vCPU side: publish the request in `s` and block until the main thread answered it. `stopping`
  // lets the wait end when the VM is torn down without a main thread.
  void Call(ExitSlot* s);
  // Back to the initial state before a new run.
  void Reset() {
    pumping_.store(false);
    attention_.store(false);
  }
  // Teardown without a main thread: every waiting and future Call returns at once with kResultAbort.
  void Shutdown();
  // Wakes the main thread unconditionally (the last vCPU stopped).
  void NotifyAlways() {
    Ring();
    if (notify_) notify_();
  }

  // Main-thread side. Completes slot `done` (if >= 0), then returns the index of a pending request,
  // -1 when none arrived within spinNs of spinning plus waitNs of sleeping on the doorbell (the main
  // thread then returns to the event loop), or -2 when no vCPU thread is running any more.
  int Pump(int done, int64_t spinNs, int64_t waitNs, const std::atomic<int>& running);
  // Completes `done` and leaves pumping mode (used to yield to the event loop between bursts).
  void Release(int done);
  void Complete(int i);

 private:
  int Scan();
  void Ring();
  ExitSlot* slots_ = nullptr;
  int count_ = 0;
  int next_ = 0;
  std::atomic<bool> pumping_{false};
  std::atomic<bool> attention_{false};
  std::atomic<bool> shutdown_{false};
  std::atomic<int64_t> callSpinNs_{20 * 1000};
  std::atomic<uint32_t> doorbell_{0};     // bumped on every posted request
  std::atomic<uint32_t> mainWaiting_{0};  // the main thread sleeps on doorbell_
  std::function<void()> notify_;
  SpinBackoff mainBackoff_;               // main thread only
  std::vector<SpinBackoff> vcpuBackoff_;  // one per vCPU, used by that vCPU's thread only
};

}  // namespace tsbhyve::vmm
