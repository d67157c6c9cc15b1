// The test guest's NVMe workloads (bench=nvme,<workload>) on tsbhyve and on QEMU+KVM's nvme device, same ELF, same
// disk file, same run, rounds interleaved. Contenders:
//   tsbhyve          -s 4,nvme,FILE              (bhyve's default: the host page cache)
//   tsbhyve-nocache  -s 4,nvme,FILE,nocache      (O_DIRECT, as QEMU below; tsbhyve's default ioslots=32)
//   qemu             -device nvme, cache=none, aio=native
//   qemu-writeback   the same with cache=writeback, aio=threads (the page cache, like tsbhyve's default)
//   tsbhyve-vblk     -s 3,virtio-blk,FILE with bench=virtio-blk, the same workload (for the doorbell ones: one 4 KiB
//                    read at a time, randread4k,qd=1): nvme must be the fastest disk tsbhyve has
// Workloads: randread4k and randwrite4k (QD32), seqread128k (QD4), doorbell (one 4 KiB read at a time) without and
// with shadow doorbells (dbbuf=1). Completions are polled by the guest, so the figures are the device paths'.
// Prints medians and the ratios tsbhyve / QEMU (> 1: tsbhyve is faster; target >= 1.2).
// Usage: node --import tsx bench/testguest/nvme.ts [rounds=3] [ms=1000] [fileMiB=64] [workload,...]
// TSBHYVE_BENCH_NVME_IOSLOTS=8,64 adds `nocache,ioslots=N` contenders (8 is bhyve's default; compared with QEMU's
// cache=none too);
// TSBHYVE_BENCH_NVME_CONTENDERS=tsbhyve-nocache,qemu runs only those (the ratios whose pair ran are printed).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { directIoDir } from '../../firmware/testguest/disk.js';
import { report, type Series } from '../report.js';
import { settleDisk, writeRandomDisk } from '../disk.js';
import { benchOnce, median, ratio, type Contender } from './common.js';

const rounds = Number(process.argv[2] ?? 3);
const ms = Number(process.argv[3] ?? 1000);
const fileMiB = Number(process.argv[4] ?? 64);
/** name -> the bench= spec after `device,` */
const ALL_WORKLOADS: Array<{ name: string; nvme: string; vblk: string }> = [
  { name: 'randread4k', nvme: 'randread4k', vblk: 'randread4k' },
  { name: 'randwrite4k', nvme: 'randwrite4k', vblk: 'randwrite4k' },
  { name: 'seqread128k', nvme: 'seqread128k', vblk: 'seqread128k' },
  { name: 'doorbell', nvme: 'doorbell,dbbuf=0', vblk: 'randread4k,qd=1' },
  { name: 'doorbell-shadow', nvme: 'doorbell,dbbuf=1', vblk: 'randread4k,qd=1' },
];
const only = process.argv[5]?.split(',');
const WORKLOADS = ALL_WORKLOADS.filter((w) => !only || only.includes(w.name));
const extraSlots = (process.env.TSBHYVE_BENCH_NVME_IOSLOTS ?? '').split(',').filter(Boolean).map(Number);

const dir = directIoDir('testguest-bench-nvme-');
const disk = join(dir, 'disk.img');
writeRandomDisk(disk, fileMiB);

const qemuNvme = (cache: 'none' | 'writeback'): string[] => [
  '-drive', `file=${disk},if=none,id=n0,format=raw,${cache === 'none' ? 'cache=none,aio=native' : 'cache=writeback,aio=threads'},discard=unmap`,
  '-device', 'nvme,drive=n0,serial=BENCH',
];
const allContenders: Array<Contender & { device: 'nvme' | 'virtio-blk' }> = [
  { name: 'tsbhyve', vmm: 'tsbhyve', device: 'nvme', args: ['-s', `4,nvme,${disk}`] },
  { name: 'tsbhyve-nocache', vmm: 'tsbhyve', device: 'nvme', args: ['-s', `4,nvme,${disk},nocache`] },
  { name: 'qemu', vmm: 'qemu', device: 'nvme', args: qemuNvme('none') },
  { name: 'qemu-writeback', vmm: 'qemu', device: 'nvme', args: qemuNvme('writeback') },
  { name: 'tsbhyve-vblk', vmm: 'tsbhyve', device: 'virtio-blk', args: ['-s', `3,virtio-blk,${disk}`] },
  ...extraSlots.map((n) => ({ name: `tsbhyve-nocache-ioslots${n}`, vmm: 'tsbhyve' as const, device: 'nvme' as const, args: ['-s', `4,nvme,${disk},nocache,ioslots=${n}`] })),
];
const onlyContenders = process.env.TSBHYVE_BENCH_NVME_CONTENDERS?.split(',');
const contenders = allContenders.filter((c) => !onlyContenders || onlyContenders.includes(c.name));

type Sample = { iops: number; mbps: number; ns: number; doorbell?: number };
const samples = new Map<string, Sample[]>();
try {
  for (let round = 0; round < rounds; round++) {
    for (const w of WORKLOADS) {
      const order = round % 2 ? [...contenders].reverse() : contenders;
      for (const c of order) {
        const spec = c.device === 'nvme' ? `bench=nvme,${w.nvme},ms=${ms}` : `bench=virtio-blk,${w.vblk},ms=${ms}`;
        settleDisk(disk);
        const b = await benchOnce(c, spec);
        const key = `${w.name}/${c.name}`;
        if (!samples.has(key)) samples.set(key, []);
        samples.get(key)!.push({ iops: b.numbers.iops!, mbps: b.numbers.mbps!, ns: b.numbers.ns_per_op!, doorbell: b.numbers.doorbell_ns });
        process.stderr.write(`round ${round} ${w.name} ${c.name}: ${b.numbers.iops} IOPS, ${b.numbers.ns_per_op} ns/op\n`);
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const med = (w: string, c: string, f: (s: Sample) => number): number => median(samples.get(`${w}/${c}`)!.map(f));
const ran = (name: string): boolean => contenders.some((c) => c.name === name);
const PAIRS = (
  [
    ['tsbhyve', 'qemu-writeback'],
    ['tsbhyve-nocache', 'qemu'],
    ['tsbhyve', 'tsbhyve-vblk'],
    ...extraSlots.map((n): [string, string] => [`tsbhyve-nocache-ioslots${n}`, 'qemu']),
  ] as Array<[string, string]>
).filter(([a, b]) => ran(a) && ran(b));
const series: Series[] = [];
console.log(`\nnvme from the test guest: medians of ${rounds} rounds of ${ms} ms, ${fileMiB} MiB file`);
const col = (label: string): number => Math.max(12, label.length + 2);
console.log(`${'workload'.padEnd(16)}${contenders.map((c) => `${c.name} IOPS`.padStart(col(`${c.name} IOPS`))).join('')}${PAIRS.map(([a, b]) => `${a}/${b}`.padStart(col(`${a}/${b}`))).join('')}`);
for (const w of WORKLOADS) {
  const iops = contenders.map((c) => med(w.name, c.name, (s) => s.iops));
  const cells = PAIRS.map(([a, b]) => ratio(med(w.name, a, (s) => s.iops), med(w.name, b, (s) => s.iops)).padStart(col(`${a}/${b}`)));
  console.log(`${w.name.padEnd(16)}${iops.map((v, i) => v.toFixed(0).padStart(col(`${contenders[i]!.name} IOPS`))).join('')}${cells.join('')}`);
  series.push({ metric: `${w.name} IOPS`, unit: 'IOPS', values: Object.fromEntries(contenders.map((c, i) => [c.name, iops[i]!])) });
  series.push({ metric: `${w.name} ns/op`, unit: 'ns', values: Object.fromEntries(contenders.map((c) => [c.name, med(w.name, c.name, (s) => s.ns)])) });
}
// The bare doorbell figure comes with the doorbell workload (the workload filter may have left it out).
if (WORKLOADS.some((w) => w.name === 'doorbell')) series.push({
  metric: 'bare doorbell',
  unit: 'ns',
  values: Object.fromEntries(contenders.map((c) => [c.name, med('doorbell', c.name, (s) => s.doorbell ?? 0)])),
});
report('testguest-nvme', 'nvme under the test guest: tsbhyve vs QEMU+KVM', series);
