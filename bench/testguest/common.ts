// Shared by the test-guest benchmarks: run one bench= line under tsbhyve or QEMU+KVM (q35, qboot) and take the
// TESTGUEST-BENCH line it prints; medians; ratios.
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseBench, runTestguestInQemu, runTestguestInTsbhyve, type BenchResult } from '../../firmware/testguest/index.js';

export interface Contender {
  name: string;
  /** 'tsbhyve' runs bin/tsbhyve.js with `args`; 'qemu' runs qemu-system-x86_64 -accel kvm with `args`. */
  vmm: 'tsbhyve' | 'qemu';
  args: string[];
}

/**
 * Boots the guest with `append` under the contender; returns its first TESTGUEST-BENCH line. A run without one is
 * tried once more (the shared tree's build can be mid-rebuild), then reported with what the VMM said; the whole
 * console and stderr of each such run are kept in bench/results/failed-runs/ (the tail alone rarely says why).
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
    const whole = r.output + ('stderr' in r ? r.stderr : '');
    said = `exit ${r.code}: ${whole.slice(-600)}`;
    const kept = keepFailedRun(c, append, whole);
    process.stderr.write(`${c.name}: no result for ${append} (attempt ${attempt + 1}, all of it in ${kept}): ${said}\n`);
  }
  throw new Error(`${c.name}: no result for ${append}: ${said}`);
}

const failedRunsDir = fileURLToPath(new URL('../results/failed-runs/', import.meta.url));

function keepFailedRun(c: Contender, append: string, text: string): string {
  mkdirSync(failedRunsDir, { recursive: true });
  const path = `${failedRunsDir}${new Date().toISOString().replace(/[:.]/g, '-')}-${c.name}.log`;
  writeFileSync(path, `${c.vmm} ${c.args.join(' ')}\nappend: ${append}\n\n${text}`);
  return path;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function ratio(a: number, b: number): string {
  return b > 0 ? (a / b).toFixed(2) : '-';
}

