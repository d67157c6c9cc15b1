// Entry point of the tsbhyve addon: each native module adds its exports here.
#include <napi.h>

#include "version.h"

namespace tsbhyve {

static Napi::Value Version(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object v = Napi::Object::New(env);
  v.Set("addon", Napi::String::New(env, kAddonVersion));
  v.Set("napi", Napi::Number::New(env, NAPI_VERSION));
#if defined(__linux__)
  v.Set("backend", Napi::String::New(env, "kvm"));
#elif defined(__FreeBSD__)
  v.Set("backend", Napi::String::New(env, "vmm"));
#else
  v.Set("backend", Napi::String::New(env, "none"));
#endif
  return v;
}

Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::Function::New(env, Version, "version"));
  { Napi::Object VmmExports(Napi::Env); exports.Set("vmm", VmmExports(env)); }  // native/vmm/vmm_napi.cc
  { Napi::Object VirtioExports(Napi::Env); exports.Set("virtio", VirtioExports(env)); }  // native/virtio/virtio_napi.cc
  { Napi::Object NvmeExports(Napi::Env); exports.Set("nvme", NvmeExports(env)); }  // native/nvme/nvme_napi.cc
  { Napi::Object AhciExports(Napi::Env); exports.Set("ahci", AhciExports(env)); }  // native/ahci/ahci_napi.cc
  { Napi::Object FbufExports(Napi::Env); exports.Set("fbuf", FbufExports(env)); }  // native/fbuf/fbuf_napi.cc
  return exports;
}

}  // namespace tsbhyve

static Napi::Object Init(Napi::Env env, Napi::Object exports) { return tsbhyve::InitAddon(env, exports); }
NODE_API_MODULE(tsbhyve, Init)
