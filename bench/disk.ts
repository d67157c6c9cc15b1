// The disk file the disk benchmarks share between contenders: random bytes (reads cannot be served from zero
// pages), and its pages made clean before each measurement, since a write to a page under writeback waits for it
// and an O_DIRECT write waits for the writeback of the pages it overwrites.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';

/** Writes `mib` MiB of random bytes to `path` and syncs it. */
export function writeRandomDisk(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < mib; i++) writeSync(fd, randomBytes(1 << 20));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes back what the previous measurement left dirty in `path`'s page cache. */
export function settleDisk(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
