#pragma once
// Bumped whenever the addon's exported interface changes; src/native.ts checks it.
namespace tsbhyve {
constexpr const char* kAddonVersion = "0.1.0";
}
