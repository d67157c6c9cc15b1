// N-API surface of the framebuffer scanner (the addon's `fbuf` export); the typed API is devices/fbuf/native-scanner.ts.
#include <napi.h>

#include <memory>

#include "fbuf/tile_scanner.h"
#include "napi_args.h"

namespace tsbhyve {
namespace {

using napi_args::ThrowType;

class TileScannerWrap : public Napi::ObjectWrap<TileScannerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TileScanner", {
      InstanceMethod("scan", &TileScannerWrap::Scan),
      InstanceMethod("reset", &TileScannerWrap::Reset),
    });
  }
  // new TileScanner(tileSize)
  explicit TileScannerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TileScannerWrap>(info) {
    uint32_t t = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
    if (t < 8 || t > 256) { ThrowType(info.Env(), "TileScanner(tileSize): 8..256"); return; }
    scanner_ = std::make_unique<fbuf::TileScanner>(t);
  }

 private:
  // scan(pixels: Uint8Array, width, height, stride) -> Uint8Array (one byte per tile)
  Napi::Value Scan(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber()) {
      ThrowType(env, "TileScanner.scan(pixels, width, height, stride)");
      return {};
    }
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_uint8_array) { ThrowType(env, "TileScanner.scan: pixels must be a Uint8Array"); return {}; }
    Napi::Uint8Array px = info[0].As<Napi::Uint8Array>();
    const uint32_t w = info[1].As<Napi::Number>().Uint32Value(), h = info[2].As<Napi::Number>().Uint32Value();
    const uint32_t stride = info[3].As<Napi::Number>().Uint32Value();
    // The extent is checked here, whatever the caller checked: the scanner reads host memory.
    if (w == 0 || h == 0 || w > 0xffff || h > 0xffff || stride < uint64_t(w) * 4 ||
        uint64_t(stride) * (h - 1) + uint64_t(w) * 4 > px.ByteLength()) {
      ThrowType(env, "TileScanner.scan: the framebuffer does not hold width x height at stride");
      return {};
    }
    scanner_->Scan(px.Data(), w, h, stride, &dirty_);
    Napi::Uint8Array out = Napi::Uint8Array::New(env, dirty_.size());
    std::copy(dirty_.begin(), dirty_.end(), out.Data());
    return out;
  }
  Napi::Value Reset(const Napi::CallbackInfo& info) {
    scanner_->Reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<fbuf::TileScanner> scanner_;
  std::vector<uint8_t> dirty_;
};

}  // namespace

Napi::Object FbufExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("TileScanner", TileScannerWrap::Define(env));
  return o;
}

}  // namespace tsbhyve
