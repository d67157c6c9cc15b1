#pragma once
// The native objects one addon module hands to another through JavaScript: guest memory (a test GuestRam
// or a NativeVm) and an open block backend. Null when the value is not one (or is closed).
#include <napi.h>

#include <memory>

#include "block/block_file.h"
#include "guestmem/guest_memory.h"

namespace tsbhyve {
std::shared_ptr<const GuestMemory> UnwrapGuestMemory(Napi::Env env, Napi::Value v);
std::shared_ptr<block::BlockFile> UnwrapBlockBackend(Napi::Env env, Napi::Value v);
}  // namespace tsbhyve
