// Kernel modules for an initramfs: find them by name in an unpacked linux-image package and list them
// with their dependencies first, in the order insmod must load them. Dependencies come from each
// module's own .modinfo ("depends="), so no depmod or modules.dep is needed.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { modinfo } from './elf.js';

export class ModuleError extends Error {
  override name = 'ModuleError';
}

/** Module names use '_' and '-' interchangeably; the kernel's canonical form is '_'. */
export function canonicalModuleName(name: string): string {
  return name.replace(/\.ko$/, '').replaceAll('-', '_');
}

export interface ModuleTree {
  /** lib/modules/<release> inside the unpacked package. */
  dir: string;
  release: string;
  /** canonical name -> path relative to `dir` */
  files: Map<string, string>;
  builtin: Set<string>;
}

export function moduleTree(packageRoot: string): ModuleTree {
  const base = join(packageRoot, 'lib', 'modules');
  const releases = readdirSync(base);
  if (releases.length !== 1) throw new ModuleError(`expected one kernel release in ${base}, found ${releases.join(', ')}`);
  const release = releases[0]!;
  const dir = join(base, release);
  const files = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ko')) files.set(canonicalModuleName(e.name), relative(dir, p));
    }
  };
  walk(join(dir, 'kernel'));
  const builtin = new Set(
    readFileSync(join(dir, 'modules.builtin'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => canonicalModuleName(l.slice(l.lastIndexOf('/') + 1))),
  );
  return { dir, release, files, builtin };
}

export interface ModulePlan {
  /** Paths relative to the tree's dir, dependencies before their users. */
  loadOrder: string[];
  /** Wanted modules that are compiled into this kernel (nothing to load). */
  builtin: string[];
}

/**
 * The load order for `wanted` and everything they depend on. A wanted module that is neither a file
 * nor built in is an error unless listed in `optional` (kernels of different flavours differ).
 */
export function planModules(tree: ModuleTree, wanted: readonly string[], optional: readonly string[] = []): ModulePlan {
  const order: string[] = [];
  const seen = new Set<string>();
  const builtin: string[] = [];
  const visit = (name: string, chain: string[]): void => {
    if (seen.has(name)) return;
    const file = tree.files.get(name);
    if (!file) {
      if (tree.builtin.has(name)) return;
      throw new ModuleError(`module ${name} (needed by ${chain.join(' <- ') || 'the image'}) is not in ${tree.release}`);
    }
    seen.add(name);
    const deps = modinfo(readFileSync(join(tree.dir, file)))
      .filter(([k]) => k === 'depends')
      .flatMap(([, v]) => v.split(','))
      .filter(Boolean)
      .map(canonicalModuleName);
    for (const d of deps) visit(d, [name, ...chain]);
    order.push(file);
  };
  for (const w of [...wanted, ...optional]) {
    const name = canonicalModuleName(w);
    if (!tree.files.has(name)) {
      if (tree.builtin.has(name)) builtin.push(name);
      else if (!optional.includes(w)) throw new ModuleError(`module ${name} is not in ${tree.release}`);
      continue;
    }
    visit(name, []);
  }
  return { loadOrder: order, builtin };
}
