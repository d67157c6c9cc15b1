#pragma once
// For other native modules: get the Vm behind a JS NativeVm object (null when it is not one or is
// closed), to reach its GuestMemory, irqfd/ioeventfd plumbing and native range registration.
#include <napi.h>

#include "vmm/vmm.h"

namespace tsbhyve {
vmm::Vm* UnwrapVm(Napi::Value v);
Napi::Object VmmExports(Napi::Env env);
}  // namespace tsbhyve
