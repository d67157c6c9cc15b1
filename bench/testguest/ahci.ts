// The test guest's AHCI workloads (bench=ahci,<workload>) on tsbhyve's AHCI and on QEMU q35's built-in ICH9 AHCI
// with an ide-hd, same ELF, same disk file, same run, rounds interleaved. Contenders:
//   tsbhyve          -s 4,ahci,hd:FILE            (bhyve's default: the host page cache)
//   tsbhyve-nocache  -s 4,ahci,hd:FILE,nocache    (O_DIRECT, as QEMU below)
//   qemu             ide-hd on ide.0 (port 0 of 00:1f.2), cache=none, aio=native
//   qemu-writeback   the same with cache=writeback, aio=threads (the page cache, like tsbhyve's default)
// Workloads: randread4k and randwrite4k (NCQ, QD32), seqread128k (NCQ, QD4), qd1read4k (one READ DMA EXT at a time:
// the command round trip). Completions are polled by the guest (PxSACT / PxCI reads, an exit each on both VMMs).
// Prints medians and the ratios tsbhyve / QEMU of the pairs that cache alike (> 1: tsbhyve is faster; target >= 1.0).
// Usage: node --import tsx bench/testguest/ahci.ts [rounds=3] [ms=1000] [fileMiB=64]
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { directIoDir } from '../../firmware/testguest/disk.js';
import { report, type Series } from '../report.js';
import { settleDisk, writeRandomDisk } from '../disk.js';
import { benchOnce, median, ratio, type Contender } from './common.js';

const rounds = Number(process.argv[2] ?? 3);
const ms = Number(process.argv[3] ?? 1000);
const fileMiB = Number(process.argv[4] ?? 64);
const WORKLOADS = ['randread4k', 'randwrite4k', 'seqread128k', 'qd1read4k'];

const dir = directIoDir('testguest-bench-ahci-');
const disk = join(dir, 'disk.img');
writeRandomDisk(disk, fileMiB);

const qemuAhci = (cache: 'none' | 'writeback'): string[] => [
  '-drive', `file=${disk},if=none,id=d0,format=raw,${cache === 'none' ? 'cache=none,aio=native' : 'cache=writeback,aio=threads'}`,
  '-device', 'ide-hd,drive=d0,bus=ide.0',
];
const contenders: Contender[] = [
  { name: 'tsbhyve', vmm: 'tsbhyve', args: ['-s', `4,ahci,hd:${disk}`] },
  { name: 'tsbhyve-nocache', vmm: 'tsbhyve', args: ['-s', `4,ahci,hd:${disk},nocache`] },
  { name: 'qemu', vmm: 'qemu', args: qemuAhci('none') },
  { name: 'qemu-writeback', vmm: 'qemu', args: qemuAhci('writeback') },
];

type Sample = { iops: number; mbps: number; ns: number };
const samples = new Map<string, Sample[]>();
try {
  for (let round = 0; round < rounds; round++) {
    for (const w of WORKLOADS) {
      const order = round % 2 ? [...contenders].reverse() : contenders;
      for (const c of order) {
        settleDisk(disk);
        const b = await benchOnce(c, `bench=ahci,${w},ms=${ms}`);
        const key = `${w}/${c.name}`;
        if (!samples.has(key)) samples.set(key, []);
        samples.get(key)!.push({ iops: b.numbers.iops!, mbps: b.numbers.mbps!, ns: b.numbers.ns_per_op! });
        process.stderr.write(`round ${round} ${w} ${c.name}: ${b.numbers.iops} IOPS, ${b.numbers.mbps} MB/s, ${b.numbers.ns_per_op} ns/op\n`);
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const med = (w: string, c: string, f: (s: Sample) => number): number => median(samples.get(`${w}/${c}`)!.map(f));
const PAIRS: Array<[string, string]> = [
  ['tsbhyve', 'qemu-writeback'],
  ['tsbhyve-nocache', 'qemu'],
];
const series: Series[] = [];
console.log(`\nahci from the test guest: medians of ${rounds} rounds of ${ms} ms, ${fileMiB} MiB file`);
console.log(`${'workload'.padEnd(14)}${contenders.map((c) => `${c.name} IOPS`.padStart(21)).join('')}${PAIRS.map(([a, b]) => `${a}/${b}`.padStart(28)).join('')}`);
for (const w of WORKLOADS) {
  const iops = contenders.map((c) => med(w, c.name, (s) => s.iops));
  const cells = PAIRS.map(([a, b]) => ratio(med(w, a, (s) => s.iops), med(w, b, (s) => s.iops)).padStart(28));
  console.log(`${w.padEnd(14)}${iops.map((v) => v.toFixed(0).padStart(21)).join('')}${cells.join('')}`);
  series.push({ metric: `${w} IOPS`, unit: 'IOPS', values: Object.fromEntries(contenders.map((c, i) => [c.name, iops[i]!])) });
  series.push({ metric: `${w} ns/op`, unit: 'ns', values: Object.fromEntries(contenders.map((c) => [c.name, med(w, c.name, (s) => s.ns)])) });
}
series.push({
  metric: 'seqread128k MB/s',
  unit: 'MB/s',
  values: Object.fromEntries(contenders.map((c) => [c.name, med('seqread128k', c.name, (s) => s.mbps)])),
});
report('testguest-ahci', 'ahci under the test guest: tsbhyve vs QEMU+KVM (ICH9 AHCI, ide-hd)', series);
