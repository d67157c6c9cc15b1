// A real Linux bzImage for the loader tests: Debian 12's cloud kernel (linux-image-6.1.0-*-cloud-amd64),
// fetched once with `apt-get download` into .cache/kernels/ and unpacked with dpkg-deb. Later runs use
// the cached vmlinuz. When the package cannot be had, the result says why, and the caller skips.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KERNEL_CACHE = resolve(dirname(fileURLToPath(import.meta.url)), '../../.cache/kernels');
const VMLINUZ = /^vmlinuz-6\.1\.0-\d+-cloud-amd64$/;
const DEB = /^linux-image-6\.1\.0-\d+-cloud-amd64(-unsigned)?_.*_amd64\.deb$/;
const PACKAGE = /^linux-image-6\.1\.0-(\d+)-cloud-amd64(-unsigned)?$/;

export type Fixture = { path: string } | { skip: string };

function abi(name: string): number {
  const m = /6\.1\.0-(\d+)-/.exec(name);
  return m ? Number(m[1]) : -1;
}

function newest(names: string[]): string | undefined {
  return [...names].sort((a, b) => abi(b) - abi(a))[0];
}

function tool(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
}

function findPackageName(): string | undefined {
  const out = tool('apt-cache', ['search', '--names-only', '^linux-image-6\\.1\\.0-[0-9]+-cloud-amd64(-unsigned)?$']);
  const names = out.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => PACKAGE.test(n));
  return newest(names);
}

/** Path of a cached or freshly extracted Debian cloud-kernel bzImage, or why there is none. */
export function debianBzImage(): Fixture {
  mkdirSync(KERNEL_CACHE, { recursive: true });
  const cached = newest(readdirSync(KERNEL_CACHE).filter((f) => VMLINUZ.test(f)));
  if (cached) return { path: join(KERNEL_CACHE, cached) };

  let deb = newest(readdirSync(KERNEL_CACHE).filter((f) => DEB.test(f)));
  if (!deb) {
    try {
      tool('apt-get', ['--version']);
    } catch {
      return { skip: 'apt-get is not available to fetch linux-image-6.1.0-*-cloud-amd64' };
    }
    let pkg: string | undefined;
    try {
      pkg = findPackageName();
    } catch (e) {
      return { skip: `apt-cache search failed: ${(e as Error).message.split('\n')[0]}` };
    }
    if (!pkg) return { skip: 'no linux-image-6.1.0-*-cloud-amd64 package in the apt lists (run apt-get update?)' };
    try {
      tool('apt-get', ['download', pkg], KERNEL_CACHE);
    } catch (e) {
      return { skip: `apt-get download ${pkg} failed: ${(e as Error).message.split('\n')[0]}` };
    }
    deb = newest(readdirSync(KERNEL_CACHE).filter((f) => DEB.test(f)));
    if (!deb) return { skip: `apt-get download ${pkg} produced no .deb in ${KERNEL_CACHE}` };
  }

  const tmp = mkdtempSync(join(tmpdir(), 'tsbhyve-deb-'));
  try {
    tool('dpkg-deb', ['-x', join(KERNEL_CACHE, deb), tmp]);
    const boot = join(tmp, 'boot');
    const vmlinuz = existsSync(boot) ? readdirSync(boot).find((f) => VMLINUZ.test(f)) : undefined;
    if (!vmlinuz) return { skip: `${deb} contains no /boot/vmlinuz-6.1.0-*-cloud-amd64` };
    copyFileSync(join(boot, vmlinuz), join(KERNEL_CACHE, vmlinuz));
    return { path: join(KERNEL_CACHE, vmlinuz) };
  } catch (e) {
    return { skip: `could not unpack ${deb}: ${(e as Error).message.split('\n')[0]}` };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
