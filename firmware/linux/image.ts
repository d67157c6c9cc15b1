// Builds a bootable Linux image (kernel + initramfs) from Debian packages: the kernel and the modules
// the spec names (with their dependencies, in load order), busybox-static with every applet linked in
// /bin, optional dynamically linked programs with the shared libraries they need, and an init script.
// The result is cached under .cache/<spec.cacheDir>/<hash of every input>/ and rebuilt only when an
// input changes (a package version, the init script, a spec field or this builder's own source).
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, readdirSync, realpathSync, renameSync, rmSync, writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unpackBzImage } from './bzimage.js';
import { cpioArchive, type CpioEntry } from './cpio.js';
import { candidateVersions, newestKernelPackage, unpackPackage, type UnpackedPackage } from './debian.js';
import { neededLibraries } from './elf.js';
import { moduleTree, planModules } from './modules.js';
import { cacheRoot, progress } from './paths.js';

export class ImageError extends Error {
  override name = 'ImageError';
}

/** Dynamically linked programs taken from a Debian package, with the packages holding their libraries. */
export interface ProgramSet {
  package: string;
  /** Paths inside the package, e.g. "sbin/mke2fs"; each lands at the same path in the image. */
  paths: string[];
  /** Packages searched for the DT_NEEDED libraries (libc6 included). */
  libraryPackages: string[];
}

export interface ImageSpec {
  /** Folder under .cache/ for this kind of image, e.g. "nested/l1". */
  cacheDir: string;
  /** Debian kernel series and flavour: "6.1.0" + "amd64" or "cloud-amd64". */
  kernelSeries: string;
  kernelFlavour: string;
  /** Modules to load at boot (dependencies are added); optional ones may be absent from a flavour. */
  modules: string[];
  optionalModules?: string[];
  /** insmod parameters by canonical module name, e.g. { kvm_amd: "nested=0" }. */
  moduleParams?: Record<string, string>;
  /** The init script's file; it becomes /init. */
  initScript: string;
  programs?: ProgramSet[];
  /**
   * Also unpack the kernel's ELF (vmlinux) from the bzImage. Under TCG, decompressing the bzImage
   * costs seconds of every boot; QEMU boots the ELF directly through its PVH entry point.
   */
  unpackedKernel?: boolean;
}

export interface LinuxImage {
  dir: string;
  /** bzImage, usable by any direct kernel boot (QEMU -kernel, tsbhyve boot.kernel). */
  kernel: string;
  /** Uncompressed newc initramfs. */
  initrd: string;
  /** The uncompressed kernel ELF, when the spec asked for it. */
  vmlinux?: string;
  release: string;
  /** Name and version of every package used. */
  packages: Record<string, string>;
}

const builderSources = ['image.ts', 'cpio.ts', 'modules.ts', 'elf.ts', 'bzimage.ts'];
const here = dirname(fileURLToPath(import.meta.url));

function hashInputs(spec: ImageSpec, packages: Record<string, string>): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ spec: { ...spec, initScript: undefined }, packages }));
  h.update(readFileSync(spec.initScript));
  for (const f of builderSources) h.update(readFileSync(join(here, f)));
  return h.digest('hex').slice(0, 16);
}

/** Parent directories of `path` (and itself if `self`), outermost first, as cpio dir entries. */
function dirsOf(path: string, have: Set<string>, out: CpioEntry[]): void {
  const parts = path.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const d = parts.slice(0, i).join('/');
    if (!have.has(d)) {
      have.add(d);
      out.push({ kind: 'dir', path: d });
    }
  }
}

function findLibrary(name: string, roots: UnpackedPackage[]): string | undefined {
  for (const r of roots) {
    for (const d of ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib64', 'lib']) {
      const p = join(r.root, d, name);
      if (existsSync(p)) return realpathSync(p);
    }
  }
  return undefined;
}

function busyboxEntries(pkg: UnpackedPackage, dirs: Set<string>, out: CpioEntry[]): void {
  const bin = join(pkg.root, 'bin', 'busybox');
  dirsOf('bin', dirs, out);
  dirsOf('sbin', dirs, out);
  out.push({ kind: 'file', path: 'bin/busybox', data: readFileSync(bin), mode: 0o755 });
  // The static binary runs on the build host too; ask it which applets it has.
  const applets = execFileSync(bin, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) if (a !== 'busybox') out.push({ kind: 'symlink', path: `bin/${a}`, target: 'busybox' });
}

function programEntries(set: ProgramSet, dirs: Set<string>, out: CpioEntry[], packages: Record<string, string>): void {
  const main = unpackPackage(set.package);
  packages[main.name] = main.version;
  const libRoots = set.libraryPackages.map((p) => {
    const u = unpackPackage(p);
    packages[u.name] = u.version;
    return u;
  });
  const roots = [main, ...libRoots];
  const copied = new Set<string>();
  const pending: string[] = [];
  for (const p of set.paths) {
    const source = join(main.root, p);
    dirsOf(dirname(p), dirs, out);
    // Aliases such as mkfs.ext4 -> mke2fs stay links: the program picks its behaviour from argv[0].
    if (lstatSync(source).isSymbolicLink()) {
      out.push({ kind: 'symlink', path: p, target: readlinkSync(source) });
      continue;
    }
    const data = readFileSync(source);
    out.push({ kind: 'file', path: p, data, mode: 0o755 });
    pending.push(...neededLibraries(data));
  }
  // Libraries go to /lib, which the dynamic loader searches without any ld.so.cache.
  dirsOf('lib', dirs, out);
  while (pending.length > 0) {
    const lib = pending.shift()!;
    if (copied.has(lib)) continue;
    copied.add(lib);
    const file = findLibrary(lib, roots);
    if (!file) throw new ImageError(`${lib} (needed by ${set.package}) is in none of ${set.libraryPackages.join(', ')}`);
    const data = readFileSync(file);
    out.push({ kind: 'file', path: `lib/${lib}`, data, mode: 0o755 });
    pending.push(...neededLibraries(data));
  }
  // Programs name their interpreter by its absolute path in /lib64.
  dirsOf('lib64', dirs, out);
  if (!copied.has('ld-linux-x86-64.so.2')) {
    const ld = findLibrary('ld-linux-x86-64.so.2', roots);
    if (!ld) throw new ImageError('no dynamic loader in the library packages');
    out.push({ kind: 'file', path: 'lib/ld-linux-x86-64.so.2', data: readFileSync(ld), mode: 0o755 });
  }
  out.push({ kind: 'symlink', path: 'lib64/ld-linux-x86-64.so.2', target: '/lib/ld-linux-x86-64.so.2' });
}

/**
 * Builds (or finds in the cache) the image `spec` describes, and records it as the current one for its cache folder.
 * Inside the nested-KVM L1 there is no package index to resolve versions against (L1 shares only /usr and the
 * project), so there the image the host built last is used: npm test builds every image before an L1 starts.
 */
export function buildImage(spec: ImageSpec): LinuxImage {
  const current = join(cacheRoot, spec.cacheDir, 'current.json');
  if (process.env.TSBHYVE_IN_L1 === '1') {
    let image: LinuxImage | undefined;
    try {
      image = JSON.parse(readFileSync(current, 'utf8')) as LinuxImage;
    } catch {
      // handled below
    }
    if (image && existsSync(join(image.dir, 'manifest.json'))) return image;
    throw new ImageError(`no ${spec.cacheDir} image was built on the host (${current}); inside the L1 there is no package index`);
  }
  const image = buildFromPackages(spec);
  const text = JSON.stringify(image, null, 2) + '\n';
  if (!existsSync(current) || readFileSync(current, 'utf8') !== text) {
    // Atomically: test files build images in parallel.
    const tmp = `${current}.tmp-${process.pid}`;
    writeFileSync(tmp, text);
    renameSync(tmp, current);
  }
  return image;
}

function buildFromPackages(spec: ImageSpec): LinuxImage {
  const kernelName = newestKernelPackage(spec.kernelSeries, spec.kernelFlavour);
  const programPackages = (spec.programs ?? []).flatMap((set) => [set.package, ...set.libraryPackages]);
  candidateVersions([kernelName, 'busybox-static', ...programPackages]);
  const kernel = unpackPackage(kernelName);
  const busybox = unpackPackage('busybox-static');
  const packages: Record<string, string> = { [kernel.name]: kernel.version, [busybox.name]: busybox.version };
  // Versions of program packages are part of the key too; resolving them is cheap once unpacked.
  for (const set of spec.programs ?? []) {
    for (const p of [set.package, ...set.libraryPackages]) packages[p] = unpackPackage(p).version;
  }
  const key = hashInputs(spec, packages);
  const dir = join(cacheRoot, spec.cacheDir, key);
  const tree = moduleTree(kernel.root);
  const image: LinuxImage = {
    dir,
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.cpio'),
    vmlinux: spec.unpackedKernel ? join(dir, 'vmlinux') : undefined,
    release: tree.release,
    packages,
  };
  if (existsSync(join(dir, 'manifest.json'))) return image;

  progress(`building ${spec.cacheDir} image ${key} (${kernel.name} ${kernel.version})`);
  const entries: CpioEntry[] = [];
  const dirs = new Set<string>();
  for (const d of ['dev', 'proc', 'sys', 'tmp', 'etc', 'mnt', 'root']) dirsOf(d, dirs, entries);
  busyboxEntries(busybox, dirs, entries);

  const plan = planModules(tree, spec.modules, spec.optionalModules ?? []);
  const loadList: string[] = [];
  for (const rel of plan.loadOrder) {
    const target = `lib/modules/${tree.release}/${rel}`;
    dirsOf(dirname(target), dirs, entries);
    entries.push({ kind: 'file', path: target, data: readFileSync(join(tree.dir, rel)) });
    const name = basename(rel, '.ko').replaceAll('-', '_');
    loadList.push(`/${target} ${spec.moduleParams?.[name] ?? ''}`.trimEnd());
  }
  entries.push({ kind: 'file', path: 'etc/modules.load', data: loadList.join('\n') + '\n' });

  for (const set of spec.programs ?? []) programEntries(set, dirs, entries, packages);
  entries.push({ kind: 'file', path: 'init', data: readFileSync(spec.initScript), mode: 0o755 });

  // Build in a sibling folder and rename, so a crash never leaves a half image under the key.
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const bzImage = readFileSync(join(kernel.root, 'boot', `vmlinuz-${tree.release}`));
  writeFileSync(join(tmp, 'vmlinuz'), bzImage);
  if (spec.unpackedKernel) writeFileSync(join(tmp, 'vmlinux'), unpackBzImage(bzImage));
  writeFileSync(join(tmp, 'initrd.cpio'), cpioArchive(entries));
  writeFileSync(
    join(tmp, 'manifest.json'),
    JSON.stringify({ release: tree.release, packages, modules: loadList, builtin: plan.builtin }, null, 2) + '\n',
  );
  if (!publish(tmp, dir)) return image;
  pruneOld(join(cacheRoot, spec.cacheDir), key);
  progress(`image ready in ${dir}`);
  return image;
}

/**
 * Moves a finished build into place. When another process got there first (tests run in parallel),
 * its copy is as good as ours: ours is dropped. Returns whether ours was used.
 */
export function publish(tmp: string, dir: string): boolean {
  try {
    renameSync(tmp, dir);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
    rmSync(tmp, { recursive: true, force: true });
    return false;
  }
}

/** Older images of the same kind are useless once their inputs changed; keep the cache small. */
function pruneOld(parent: string, keep: string): void {
  for (const e of readdirSync(parent)) if (e !== keep && /^[0-9a-f]{16}$/.test(e)) rmSync(join(parent, e), { recursive: true, force: true });
}
