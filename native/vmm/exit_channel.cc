#include "vmm/exit_channel.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <new>

namespace tsbhyve::vmm {

// PAUSE in spin loops: kinder to an SMT sibling, and measured no slower than a bare loop here.
static inline void CpuRelax() { __builtin_ia32_pause(); }

static int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

static void FutexWait(std::atomic<uint32_t>* addr, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
static void FutexWaitFor(std::atomic<uint32_t>* addr, uint32_t expected, int64_t ns) {
  timespec ts{time_t(ns / 1000000000), long(ns % 1000000000)};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), FUTEX_WAIT_PRIVATE, expected, &ts, nullptr, 0);
}
static void FutexWake(std::atomic<uint32_t>* addr) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

ExitChannel::~ExitChannel() { std::free(slots_); }

void ExitChannel::Init(int n) {
  std::free(slots_);
  slots_ = static_cast<ExitSlot*>(std::aligned_alloc(64, sizeof(ExitSlot) * n));
  for (int i = 0; i < n; i++) {
    new (&slots_[i]) ExitSlot();
    slots_[i].state.store(kSlotIdle);
    slots_[i].waiting.store(0);
    slots_[i].vcpu = static_cast<uint32_t>(i);
  }
  count_ = n;
  vcpuBackoff_.assign(n, SpinBackoff{});
}

void ExitChannel::Ring() {
  doorbell_.fetch_add(1, std::memory_order_seq_cst);
  if (mainWaiting_.load(std::memory_order_seq_cst)) FutexWake(&doorbell_);
}

void ExitChannel::Shutdown() {
  shutdown_.store(true, std::memory_order_seq_cst);
  for (int i = 0; i < count_; i++) FutexWake(&slots_[i].state);
}

void ExitChannel::Call(ExitSlot* s) {
  if (shutdown_.load(std::memory_order_acquire)) {
    s->result = kResultAbort;
    return;
  }
  s->result = kResultUnhandled;
  s->state.store(kSlotRequest, std::memory_order_seq_cst);
  Ring();
  // Pairs with Release(): either the main thread still pumps and will scan this slot, or it left and we
  // see pumping_ == false and ask for attention.
  if (!pumping_.load(std::memory_order_seq_cst) && !attention_.exchange(true)) {
    if (notify_) notify_();
  }
  // The answer usually comes within a few microseconds; spin up to callSpinNs_ before sleeping.
  SpinBackoff& backoff = vcpuBackoff_[s->vcpu];
  if (backoff.SpinNow()) {
    const int64_t until = NowNs() + callSpinNs_.load(std::memory_order_relaxed);
    for (unsigned i = 1;; i++) {
      if (s->state.load(std::memory_order_acquire) == kSlotResponse) {
        s->state.store(kSlotIdle, std::memory_order_relaxed);
        backoff.Hit();
        return;
      }
      if ((i & 63) == 0 && (NowNs() >= until || shutdown_.load(std::memory_order_relaxed))) break;
      CpuRelax();
    }
    backoff.Miss();
  }
  s->waiting.store(1, std::memory_order_seq_cst);
  while (s->state.load(std::memory_order_seq_cst) == kSlotRequest) {
    if (shutdown_.load(std::memory_order_seq_cst)) {
      s->result = kResultAbort;
      break;
    }
    FutexWait(&s->state, kSlotRequest);
  }
  s->waiting.store(0, std::memory_order_relaxed);
  s->state.store(kSlotIdle, std::memory_order_relaxed);
}

void ExitChannel::Complete(int i) {
  if (i < 0 || i >= count_) return;
  ExitSlot* s = &slots_[i];
  if (s->state.load(std::memory_order_relaxed) != kSlotRequest) return;
  s->state.store(kSlotResponse, std::memory_order_seq_cst);
  if (s->waiting.load(std::memory_order_seq_cst)) FutexWake(&s->state);
}

int ExitChannel::Scan() {
  for (int k = 0; k < count_; k++) {
    int i = (next_ + k) % count_;
    if (slots_[i].state.load(std::memory_order_acquire) == kSlotRequest) {
      next_ = (i + 1) % count_;
      return i;
    }
  }
  return -1;
}

int ExitChannel::Pump(int done, int64_t spinNs, int64_t waitNs, const std::atomic<int>& running) {
  Complete(done);
  pumping_.store(true, std::memory_order_seq_cst);
  attention_.store(false, std::memory_order_seq_cst);
  if (!mainBackoff_.SpinNow()) spinNs = 0;
  const int64_t spinUntil = NowNs() + spinNs;
  // Phase 1: spin, for exits that follow each other within microseconds.
  for (unsigned iter = 0;; iter++) {
    int i = Scan();
    if (i >= 0) {
      if (spinNs > 0) mainBackoff_.Hit();
      return i;
    }
    if (running.load(std::memory_order_acquire) == 0) {
      pumping_.store(false);
      return -2;
    }
    if ((iter & 63) == 0 && NowNs() >= spinUntil) break;
    CpuRelax();
  }
  if (spinNs > 0) mainBackoff_.Miss();
  // Phase 2: sleep on the doorbell, so a busy host gives the CPU to the vCPU thread instead of to a
  // spinning main thread; the vCPU rings it after posting.
  const int64_t waitUntil = spinUntil + waitNs;
  for (;;) {
    const int64_t now = NowNs();
    if (now >= waitUntil) break;
    mainWaiting_.store(1, std::memory_order_seq_cst);
    const uint32_t seq = doorbell_.load(std::memory_order_seq_cst);
    int i = Scan();
    if (i < 0 && running.load(std::memory_order_acquire) != 0) FutexWaitFor(&doorbell_, seq, waitUntil - now);
    mainWaiting_.store(0, std::memory_order_relaxed);
    if (i < 0) i = Scan();
    if (i >= 0) return i;
    if (running.load(std::memory_order_acquire) == 0) {
      pumping_.store(false);
      return -2;
    }
  }
  pumping_.store(false, std::memory_order_seq_cst);
  // A request posted while we were still marked as pumping did not ask for attention: catch it here.
  int i = Scan();
  if (i >= 0) {
    pumping_.store(true, std::memory_order_seq_cst);
    return i;
  }
  return -1;
}

void ExitChannel::Release(int done) {
  Complete(done);
  pumping_.store(false, std::memory_order_seq_cst);
}

}  // namespace tsbhyve::vmm
