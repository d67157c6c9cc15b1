#pragma once
// What the N-API wrappers of the native data paths (nvme, ahci) share: a worker's events (kind, arg) delivered to
// a JavaScript callback on the main thread, and 64-bit integer arguments.
#include <napi.h>

#include <cstdint>
#include <functional>

namespace tsbhyve {

// A reporter the worker threads may call at any time: it queues (kind, arg) for `fn` without blocking and drops
// it once the function is released. *tsfn receives the thread-safe function, which does not keep the process
// alive; the caller releases it after its worker has stopped.
std::function<void(int, uint32_t)> MakeEventReporter(Napi::Env env, Napi::Function fn, const char* name,
                                                     Napi::ThreadSafeFunction* tsfn);

// Argument `i` as a non-negative integer given as a BigInt or a safe integer Number; throws a TypeError (and
// returns false) otherwise.
bool U64Arg(const Napi::CallbackInfo& info, size_t i, uint64_t* out);

}  // namespace tsbhyve
