#include "napi_events.h"

#include <string>
#include <utility>

namespace tsbhyve {

std::function<void(int, uint32_t)> MakeEventReporter(Napi::Env env, Napi::Function fn, const char* name,
                                                     Napi::ThreadSafeFunction* tsfn) {
  *tsfn = Napi::ThreadSafeFunction::New(env, fn, name, 0, 1);
  tsfn->Unref(env);  // running workers must not keep the process alive by themselves
  Napi::ThreadSafeFunction f = *tsfn;
  return [f](int kind, uint32_t arg) mutable {
    auto* p = new std::pair<int, uint32_t>(kind, arg);
    if (f.NonBlockingCall(p, [](Napi::Env env, Napi::Function js, std::pair<int, uint32_t>* e) {
          const auto v = *e;
          delete e;
          if (env == nullptr || js.IsEmpty()) return;
          napi_value args[2], recv, result;
          if (napi_create_int32(env, v.first, &args[0]) != napi_ok || napi_create_uint32(env, v.second, &args[1]) != napi_ok ||
              napi_get_undefined(env, &recv) != napi_ok)
            return;
          // An exception in the callback must not escape into the worker's queue: it is dropped here.
          if (napi_call_function(env, recv, js, 2, args, &result) != napi_ok) {
            napi_value exc;
            napi_get_and_clear_last_exception(env, &exc);
          }
        }) != napi_ok)
      delete p;
  };
}

bool U64Arg(const Napi::CallbackInfo& info, size_t i, uint64_t* out) {
  Napi::Value v = info.Length() > i ? info[i] : info.Env().Undefined();
  if (v.IsBigInt()) {
    bool lossless = false;
    *out = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (lossless) return true;
  } else if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d >= 0 && d <= 9007199254740991.0 && d == double(uint64_t(d))) {
      *out = uint64_t(d);
      return true;
    }
  }
  Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + ": expected a non-negative integer or BigInt")
      .ThrowAsJavaScriptException();
  return false;
}

}  // namespace tsbhyve
