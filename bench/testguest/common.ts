// Shared by the test-guest benchmarks: run one bench= line under tsbhyve or QEMU+KVM (q35, qboot) and take the
// TESTGUEST-BENCH line it prints; medians; ratios; the disk file of random bytes.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { parseBench, runTestguestInQemu, runTestguestInTsbhyve, type BenchResult } from '../../firmware/testguest/index.js';

export interface Contender {
  name: string;
  /** 'tsbhyve' runs bin/tsbhyve.js with `args`; 'qemu' runs qemu-system-x86_64 -accel kvm with `args`. */
  vmm: 'tsbhyve' | 'qemu';
  args: string[];
}

/**
 * Boots the guest with `append` under the contender; returns its first TESTGUEST-BENCH line. A run without one is
 * tried once more (the shared tree's build can be mid-rebuild), then reported with what the VMM said.
 */
export async function benchOnce(c: Contender, append: string, timeoutMs = 120000): Promise<BenchResult> {
  let said = '';
  for (let attempt = 0; attempt < 2; attempt++) {
    const r =
      c.vmm === 'tsbhyve'
        ? await runTestguestInTsbhyve({ append, extraArgs: c.args, timeoutMs })
        : await runTestguestInQemu({ append, extraArgs: c.args, timeoutMs });
    const text = 'stdout' in r ? r.stdout : r.output;
    const [b] = parseBench(text);
    if (b && !b.values.error) return b;
    said = `exit ${r.code}: ${(r.output + ('stderr' in r ? r.stderr : '')).slice(-600)}`;
    process.stderr.write(`${c.name}: no result for ${append} (attempt ${attempt + 1}): ${said}\n`);
  }
  throw new Error(`${c.name}: no result for ${append}: ${said}`);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function ratio(a: number, b: number): string {
  return b > 0 ? (a / b).toFixed(2) : '-';
}

/**
 * Writes `mib` MiB of random bytes to `path` (reads cannot be served from zero pages) and syncs it, so the first
 * contender's O_DIRECT I/O does not wait behind the new file's writeback.
 */
export function writeRandomDisk(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < mib; i++) writeSync(fd, randomBytes(1 << 20));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
