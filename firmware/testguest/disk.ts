// Host-side helpers for the block suites: disk image files, the guest's LBA-stamped data pattern
// (src/drivers/blk_pattern.h, recomputed here word for word), and a directory that takes O_DIRECT.
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SECTOR = 512;

/** Word k (0..127) of sector `lba` under `seed`, as blk_pattern_word() computes it in the guest. */
export function patternWord(lba: number, k: number, seed: number): number {
  if (k === 0) return lba >>> 0;
  if (k === 1) return Math.floor(lba / 2 ** 32) >>> 0;
  if (k === 2) return seed >>> 0;
  let x = (Math.imul(lba >>> 0, 0x9e3779b1) ^ Math.imul(k, 0x85ebca77) ^ seed) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x2c1b3c6d) >>> 0;
  x = (x ^ (x >>> 12)) >>> 0;
  return x;
}

/** The sectors in [lba, lba + count) of `image` (a whole disk) that do not hold the pattern. */
export function patternMismatches(image: Buffer, lba: number, count: number, seed: number): number[] {
  const bad: number[] = [];
  for (let s = lba; s < lba + count; s++) {
    const base = s * SECTOR;
    for (let k = 0; k < 128; k++) {
      if (image.readUInt32LE(base + 4 * k) !== patternWord(s, k, seed)) {
        bad.push(s);
        break;
      }
    }
  }
  return bad;
}

/**
 * A directory whose filesystem takes O_DIRECT (QEMU's cache=none and tsbhyve's nocache need it; tmpfs refuses
 * it): the system temporary directory when it works, else /var/tmp.
 */
export function directIoDir(prefix = 'testguest-disk-'): string {
  for (const base of [tmpdir(), '/var/tmp']) {
    const dir = mkdtempSync(join(base, prefix));
    const probe = join(dir, 'probe');
    try {
      closeSync(openSync(probe, 'w'));
      closeSync(openSync(probe, constants.O_RDWR | constants.O_DIRECT));
      rmSync(probe);
      return dir;
    } catch {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  throw new Error('no directory with O_DIRECT support');
}

/** Creates a disk image of `bytes`: sparse (all zeros) or filled with `fill` (allocated). */
export function makeDisk(path: string, bytes: number, fill?: number): void {
  const fd = openSync(path, 'w');
  try {
    if (fill === undefined) {
      if (bytes > 0) writeSync(fd, Buffer.alloc(1), 0, 1, bytes - 1);
      writeSync(fd, Buffer.alloc(1), 0, 1, 0);
    } else {
      const chunk = Buffer.alloc(1 << 20, fill);
      for (let at = 0; at < bytes; at += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - at), at);
    }
  } finally {
    closeSync(fd);
  }
}

/** QEMU arguments for a legacy virtio-blk disk as bhyve presents one (I/O BAR, no modern interface). */
export function qemuVirtioBlkArgs(
  file: string,
  opts: { serial?: string; readonly?: boolean; device?: string; cache?: 'none' | 'writeback' } = {},
): string[] {
  // cache=none pairs with Linux native AIO (O_DIRECT); the page cache with QEMU's thread pool.
  const cache = opts.cache === 'writeback' ? 'cache=writeback,aio=threads' : 'cache=none,aio=native';
  const drive = `file=${file},if=none,id=d0,format=raw,${cache},discard=unmap${opts.readonly ? ',readonly=on' : ''}`;
  const device = `virtio-blk-pci,drive=d0,disable-modern=on${opts.serial ? `,serial=${opts.serial}` : ''}${opts.device ?? ''}`;
  return ['-drive', drive, '-device', device];
}

