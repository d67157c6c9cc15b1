// Loads the tsbhyve N-API addon built by `npm install` (cmake-js or node-gyp both write build/Release).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface AddonVersion {
  addon: string;
  napi: number;
  backend: 'kvm' | 'vmm' | 'none';
}

/** The addon's raw exports; typed wrappers live next to the code that uses each part. */
export interface Addon {
  version(): AddonVersion;
  [name: string]: unknown;
}

export const EXPECTED_ADDON_VERSION = '0.1.0';

function findProjectRoot(): string {
  // Works from src/ (tsx) and from dist/src/ (compiled).
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('tsbhyve: cannot find the package root to load the native addon from');
}

let cached: Addon | undefined;

export function loadAddon(): Addon {
  if (cached) return cached;
  const root = findProjectRoot();
  const path = join(root, 'build', 'Release', 'tsbhyve.node');
  if (!existsSync(path)) {
    throw new Error(`tsbhyve: native addon not built (${path} is missing); run npm install`);
  }
  const addon = createRequire(import.meta.url)(path) as Addon;
  const v = addon.version();
  if (v.addon !== EXPECTED_ADDON_VERSION) {
    throw new Error(`tsbhyve: native addon is version ${v.addon}, expected ${EXPECTED_ADDON_VERSION}; rebuild with npm run build`);
  }
  cached = addon;
  return addon;
}
