#pragma once
// Argument checks shared by the addon's wrapper classes: each reads one property of a configuration object,
// throws a TypeError naming the class and the property when it is wrong, and returns false after throwing.
#include <napi.h>

#include <cstdint>
#include <string>

namespace tsbhyve {
namespace napi_args {

inline void ThrowType(Napi::Env env, const std::string& msg) { Napi::TypeError::New(env, msg).ThrowAsJavaScriptException(); }

// "E<errno>: message", the form devices/*/native.ts parse back into an errno and a message.
inline void ThrowErrno(Napi::Env env, int err, const std::string& msg) {
  Napi::Error::New(env, "E" + std::to_string(err) + ": " + msg).ThrowAsJavaScriptException();
}

// An optional integer property in 0..max (def when absent).
inline bool Int(Napi::Object o, const char* who, const char* key, double def, double max, double* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    *out = def;
    return true;
  }
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= max) || d != double(uint64_t(d))) {
    ThrowType(o.Env(), std::string(who) + ": " + key + " must be an integer in 0.." + std::to_string(uint64_t(max)));
    return false;
  }
  *out = d;
  return true;
}

// An optional file descriptor property (-1 when absent or null).
inline bool Fd(Napi::Object o, const char* who, const char* key, int* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) {
    *out = -1;
    return true;
  }
  if (!v.IsNumber() || v.As<Napi::Number>().Int32Value() < 0) {
    ThrowType(o.Env(), std::string(who) + ": " + key + " must be a file descriptor");
    return false;
  }
  *out = v.As<Napi::Number>().Int32Value();
  return true;
}

inline bool Flag(Napi::Object o, const char* key) { return o.Get(key).ToBoolean().Value(); }

}  // namespace napi_args
}  // namespace tsbhyve
