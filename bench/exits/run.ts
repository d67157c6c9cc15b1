// Exit round-trip benchmark: a 64-bit guest runs N OUT instructions to a port owned by a native sink
// (handled on the vCPU thread) and N OUTs to a port owned by a TypeScript handler (handled on the main
// thread through the exit channel), in alternating rounds of the same VM and run. Prints the median cost per
// exit over the rounds after the first (the guest loop's own cost is included in both) and the ratio.
// Usage: node --import tsx bench/exits/run.ts [N] [spinMicros] [waitMicros] [vcpuSpinMicros]
import { performance } from 'node:perf_hooks';

import { SuspendHow, Vm } from '../../src/vm/index.js';
import { defaultLockDir } from '../../src/vm/lock-dir.js';
import type { Segment } from '../../src/vm/registers.js';

const N = Number(process.argv[2] ?? 20000);
if (!Number.isInteger(N) || N <= 0 || N > 0xffffffff) throw new Error('N must be a positive 32-bit integer');

const vm = Vm.open(`bench-exits-${process.pid}`, { create: true, lockDir: defaultLockDir() });
vm.createVcpus(1);
vm.setupMemory(16 * 1024 * 1024);
const m = vm.memory;

// Identity map of the first 1 GiB with 2 MiB pages: PML4 0x10000, PDPT 0x11000, PD 0x12000.
m.writeU64(0x10000, 0x11003n);
m.writeU64(0x11000, 0x12003n);
for (let j = 0; j < 512; j++) m.writeU64(0x12000 + j * 8, (BigInt(j) << 21n) | 0x83n);

const n = [N & 0xff, (N >> 8) & 0xff, (N >> 16) & 0xff, (N >>> 24) & 0xff];
// ROUNDS rounds of (native phase, JS phase); the first warms both paths, the median of the rest is reported.
const ROUNDS = 6;
const round = [
  0xb9, ...n,                 // mov ecx, N
  0xe6, 0xe0,                 // l1: out 0xe0, al   (native sink)
  0xe2, 0xfc,                 // loop l1
  0xe6, 0x82,                 // out 0x82, al   mark: native phase ends, JS phase starts
  0xb9, ...n,                 // mov ecx, N
  0xe6, 0xe1,                 // l2: out 0xe1, al   (TypeScript handler)
  0xe2, 0xfc,                 // loop l2
  0xe6, 0x82,                 // out 0x82, al   mark: JS phase ends
];
// prettier-ignore
m.write(0x1000, Uint8Array.from([
  0xe6, 0x82,                 // out 0x82, al   mark: start
  ...Array.from({ length: ROUNDS }, () => round).flat(),
  0xe6, 0x84,                 // out 0x84, al   stop
  0xf4,
]));

const c = vm.vcpus[0]!;
const s = c.getSregs();
const seg = (selector: number, type: number, l: boolean): Segment => ({
  base: 0n, limit: 0xfffff, selector, type, present: true, dpl: 0, db: !l, s: true, l, g: true, avl: false, unusable: false,
});
s.cs = seg(8, 11, true);
for (const k of ['ds', 'es', 'fs', 'gs', 'ss'] as const) s[k] = seg(16, 3, false);
s.cr3 = 0x10000n;
s.cr4 = 0x20n;
s.cr0 = 0x80000011n;
s.efer = 0x500n;
c.setSregs(s);
c.updateRegs({ rip: 0x1000n, rflags: 2n });

const sink = vm.addNativeSink('pio', 0xe0, 1);
let jsExits = 0;
vm.registerPio(0xe1, 1, () => {
  jsExits++;
});
const marks: number[] = [];
vm.registerPio(0x82, 1, () => {
  marks.push(performance.now());
});
vm.registerPio(0x84, 1, () => vm.suspend(SuspendHow.Poweroff));

const spinMicros = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
const waitMicros = process.argv[4] === undefined ? undefined : Number(process.argv[4]);
const vcpuSpinMicros = process.argv[5] === undefined ? undefined : Number(process.argv[5]);
const cpusets = process.env["BENCH_VCPU_CPU"] ? [[Number(process.env["BENCH_VCPU_CPU"])]] : undefined;
const r = await vm.run({ spinMicros, waitMicros, vcpuSpinMicros, cpusets });
vm.close();
if (r.status !== 1 || marks.length !== 1 + 2 * ROUNDS) throw new Error(`benchmark guest failed: ${JSON.stringify(r)}`);
if (sink.stats().writes !== ROUNDS * N || jsExits !== ROUNDS * N) throw new Error('exit counts do not match N');
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const nat: number[] = [];
const js: number[] = [];
for (let k = 1; k < ROUNDS; k++) {
  nat.push(((marks[2 * k + 1]! - marks[2 * k]!) * 1000) / N);
  js.push(((marks[2 * k + 2]! - marks[2 * k + 1]!) * 1000) / N);
}
const nativeUs = median(nat);
const jsUs = median(js);
console.log(`exits per phase: ${N}, rounds: ${ROUNDS} (first one not counted), medians:`);
console.log(`native-handled exit: ${nativeUs.toFixed(2)} us`);
console.log(`JS-handled exit:     ${jsUs.toFixed(2)} us`);
console.log(`ratio JS/native:     ${(jsUs / nativeUs).toFixed(2)} (target <= 1.5)`);
