// The test guest's virtio-blk workloads (bench=virtio-blk,<workload>) on tsbhyve and on QEMU+KVM, same ELF, same disk
// file, same run, rounds interleaved. Contenders:
//   tsbhyve          -s 3,virtio-blk,FILE            (bhyve's default: the host page cache; io_uring engine)
//   tsbhyve-nocache  -s 3,virtio-blk,FILE,nocache    (O_DIRECT: the same caching as QEMU below; io_uring engine)
//   tsbhyve-nc-io8   -s 3,virtio-blk,FILE,nocache,aio=threads,iothreads=8   (O_DIRECT served by 8 I/O threads)
//   qemu             -M q35 (qboot), virtio-blk-pci disable-modern=on, cache=none, aio=native
//   qemu-writeback   the same with cache=writeback, aio=threads (the page cache, like tsbhyve's default)
// Pairs that cache alike: tsbhyve / qemu-writeback, and tsbhyve-nocache or tsbhyve-nc-io8 / qemu.
// Completions are polled by the guest (interrupts suppressed), so the figures are the device paths'.
// Prints medians (IOPS, MB/s, ns per op) and the ratios tsbhyve / QEMU (> 1: tsbhyve is faster), then host fio on
// the same file with the same pattern (O_DIRECT, io_uring, huge-page buffers where hugetlbfs has room; see
// bench/fio.ts): the disk's limit, against which both O_DIRECT contenders are printed too.
// Usage: node --import tsx bench/testguest/virtio-blk.ts [rounds=3] [ms=1000] [fileMiB=64]
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { directIoDir, qemuVirtioBlkArgs } from '../../firmware/testguest/disk.js';
import { runFio, type FioJob } from '../fio.js';
import { report, type Series } from '../report.js';
import { settleDisk, writeRandomDisk } from '../disk.js';
import { benchOnce, median, ratio, type Contender } from './common.js';

const rounds = Number(process.argv[2] ?? 3);
const ms = Number(process.argv[3] ?? 1000);
const fileMiB = Number(process.argv[4] ?? 64);
const WORKLOADS = ['randread4k', 'randwrite4k', 'seqread128k', 'notify'];

const dir = directIoDir('testguest-bench-vblk-');
const disk = join(dir, 'disk.img');
writeRandomDisk(disk, fileMiB);

const contenders: Contender[] = [
  { name: 'tsbhyve', vmm: 'tsbhyve', args: ['-s', `3,virtio-blk,${disk}`] },
  { name: 'tsbhyve-nocache', vmm: 'tsbhyve', args: ['-s', `3,virtio-blk,${disk},nocache`] },
  { name: 'tsbhyve-nc-io8', vmm: 'tsbhyve', args: ['-s', `3,virtio-blk,${disk},nocache,aio=threads,iothreads=8`] },
  { name: 'qemu', vmm: 'qemu', args: qemuVirtioBlkArgs(disk) },
  { name: 'qemu-writeback', vmm: 'qemu', args: qemuVirtioBlkArgs(disk, { cache: 'writeback' }) },
];

type Sample = { iops: number; mbps: number; ns: number; doorbell?: number };
const samples = new Map<string, Sample[]>();
const hostFio = new Map<string, number[]>();
let fioBuffers = '';
try {
  for (let round = 0; round < rounds; round++) {
    for (const w of WORKLOADS) {
      const order = round % 2 ? [...contenders].reverse() : contenders;
      for (const c of order) {
        settleDisk(disk);
        const b = await benchOnce(c, `bench=virtio-blk,${w},ms=${ms}`);
        const key = `${w}/${c.name}`;
        if (!samples.has(key)) samples.set(key, []);
        samples.get(key)!.push({ iops: b.numbers.iops!, mbps: b.numbers.mbps!, ns: b.numbers.ns_per_op!, doorbell: b.numbers.doorbell_ns });
        process.stderr.write(`round ${round} ${w} ${c.name}: ${b.numbers.iops} IOPS, ${b.numbers.ns_per_op} ns/op\n`);
      }
    }
  }
  // The disk's limit for each workload, measured on the host right after the VMs (same file, same pattern).
  const fioJobs: Record<string, Omit<FioJob, 'file' | 'seconds' | 'engine' | 'direct' | 'hugeBuffers'>> = {
    randread4k: { rw: 'randread', bs: 4096, iodepth: 32 },
    randwrite4k: { rw: 'randwrite', bs: 4096, iodepth: 32 },
    seqread128k: { rw: 'read', bs: 128 << 10, iodepth: 4 },
  };
  for (const [w, job] of Object.entries(fioJobs)) {
    for (let round = 0; round < rounds; round++) {
      const r = runFio({ ...job, file: disk, seconds: Math.max(1, Math.round(ms / 1000)), engine: 'io_uring', direct: true, hugeBuffers: true });
      if (!r) break;
      hostFio.set(w, [...(hostFio.get(w) ?? []), r.iops]);
      fioBuffers = r.buffers;
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const med = (w: string, c: string, f: (s: Sample) => number): number => median(samples.get(`${w}/${c}`)!.map(f));
const series: Series[] = [];
console.log(`\nvirtio-blk from the test guest: medians of ${rounds} rounds of ${ms} ms, ${fileMiB} MiB file`);
const PAIRS: Array<[string, string]> = [
  ['tsbhyve', 'qemu-writeback'],
  ['tsbhyve-nocache', 'qemu'],
  ['tsbhyve-nc-io8', 'qemu'],
  ['tsbhyve', 'qemu'],
];
console.log(`${'workload'.padEnd(13)}${contenders.map((c) => `${c.name} IOPS`.padStart(21)).join('')}${PAIRS.map(([a, b]) => `${a}/${b}`.padStart(28)).join('')}`);
for (const w of WORKLOADS) {
  const iops = contenders.map((c) => med(w, c.name, (s) => s.iops));
  const cells = PAIRS.map(([a, b]) => ratio(med(w, a, (s) => s.iops), med(w, b, (s) => s.iops)).padStart(28));
  console.log(`${w.padEnd(13)}${iops.map((v) => v.toFixed(0).padStart(21)).join('')}${cells.join('')}`);
  series.push({ metric: `${w} IOPS`, unit: 'IOPS', values: Object.fromEntries(contenders.map((c, i) => [c.name, iops[i]!])) });
  if (w !== 'notify') {
    series.push({ metric: `${w} MB/s`, unit: 'MB/s', values: Object.fromEntries(contenders.map((c) => [c.name, med(w, c.name, (s) => s.mbps)])) });
  }
  series.push({ metric: `${w} ns/op`, unit: 'ns', values: Object.fromEntries(contenders.map((c) => [c.name, med(w, c.name, (s) => s.ns)])) });
}
if (hostFio.size) {
  console.log(`\nhost fio on the same file (O_DIRECT, io_uring, same depth, ${fioBuffers} buffers): the disk's limit`);
  console.log(`${'workload'.padEnd(13)}${'fio IOPS'.padStart(12)}${'tsbhyve-nocache/fio'.padStart(22)}${'qemu/fio'.padStart(12)}`);
  for (const [w, xs] of hostFio) {
    const f = median(xs);
    const cells = [ratio(med(w, 'tsbhyve-nocache', (s) => s.iops), f).padStart(22), ratio(med(w, 'qemu', (s) => s.iops), f).padStart(12)];
    console.log(`${w.padEnd(13)}${f.toFixed(0).padStart(12)}${cells.join('')}`);
  }
}
series.push({
  metric: 'bare doorbell',
  unit: 'ns',
  values: Object.fromEntries(contenders.map((c) => [c.name, med('notify', c.name, (s) => s.doorbell ?? 0)])),
});
report('testguest-virtio-blk', 'virtio-blk under the test guest: tsbhyve vs QEMU+KVM', series);
