// Where each test file runs. A file that boots guests says what it needs of KVM in a marker comment near its
// top, `// test-needs: kvm` (a /dev/kvm that tsbhyve can open: small guests) or `// test-needs: linux` (a KVM
// that runs an unmodified Linux kernel). A file whose need the host meets runs on the host; otherwise it runs
// inside the nested-KVM L1 (QEMU TCG with emulated SVM, whose kvm_amd behaves like hardware), batched so the
// whole suite costs a handful of L1 boots; a file skips, with the reason, only where neither can run it.
import { readFileSync } from 'node:fs';
import { kvmHostMeets, type KvmHostStatus, type KvmNeed } from '../../../src/vm/kvm-host.js';

const marker = /^\s*\/\/\s*test-needs:\s*(kvm|linux)\s*$/m;

/** The need a test file declares in its first lines, or undefined for a file that boots no guest. */
export function declaredNeed(source: string): KvmNeed | undefined {
  const head = source.split('\n', 40).join('\n');
  return (marker.exec(head)?.[1] as KvmNeed | undefined) ?? undefined;
}

export function fileNeed(path: string): KvmNeed | undefined {
  return declaredNeed(readFileSync(path, 'utf8'));
}

export interface PlanInput {
  files: string[];
  needOf: (file: string) => KvmNeed | undefined;
  host: KvmHostStatus;
  /** Why the L1 cannot be used (no QEMU), or undefined when it can. */
  l1Unavailable?: string;
  /** How many L1 machines share the nested files. */
  l1Batches: number;
  /** Expected seconds per file in L1, for balancing the batches; files not listed count as `defaultCost`. */
  costs?: Record<string, number>;
  defaultCost?: number;
}

export interface Plan {
  host: string[];
  /** One list of files per L1 boot; empty when nothing needs the L1. */
  l1: string[][];
  skipped: Array<{ file: string; reason: string }>;
}

export function planSuite(input: PlanInput): Plan {
  const plan: Plan = { host: [], l1: [], skipped: [] };
  const nested: string[] = [];
  for (const file of input.files) {
    const need = input.needOf(file);
    if (need === undefined || kvmHostMeets(input.host, need)) plan.host.push(file);
    else if (input.l1Unavailable) plan.skipped.push({ file, reason: `${input.host.reason}; and ${input.l1Unavailable}` });
    else nested.push(file);
  }
  plan.l1 = balance(nested, Math.max(1, input.l1Batches), (f) => input.costs?.[f] ?? input.defaultCost ?? 30);
  return plan;
}

/**
 * Longest first onto the least-loaded batch; each batch keeps the files in their given order, so a run reads
 * like the tree. No empty batches.
 */
export function balance(files: string[], batches: number, cost: (file: string) => number): string[][] {
  const n = Math.min(batches, files.length);
  if (n === 0) return [];
  const load = new Array<number>(n).fill(0);
  const assigned = new Map<string, number>();
  for (const f of [...files].sort((a, b) => cost(b) - cost(a))) {
    const i = load.indexOf(Math.min(...load));
    load[i]! += cost(f);
    assigned.set(f, i);
  }
  return Array.from({ length: n }, (_, i) => files.filter((f) => assigned.get(f) === i));
}
