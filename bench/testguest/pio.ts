// Exit round trips from the test guest's ring 3 on tsbhyve and on QEMU+KVM (q35, qboot), same ELF, same run, rounds
// interleaved: bench=pio (OUT and IN on port 0x80, nobody's port) and bench=mmio (the HPET counter, a device model
// in the VMM; the LAPIC version register, KVM's in-kernel LAPIC; ECAM dword 0 of 00:00.0, the VMM's PCI config path).
// Prints the median ns per exit and the ratio QEMU / tsbhyve (> 1: tsbhyve's round trip is shorter).
// Usage: node --import tsx bench/testguest/pio.ts [rounds=3] [n=5000]
import { report, type Series } from '../report.js';
import { benchOnce, median, ratio, type Contender } from './common.js';

const rounds = Number(process.argv[2] ?? 3);
const n = Number(process.argv[3] ?? 5000);
const CASES = ['pio,out', 'pio,in', 'mmio,hpet', 'mmio,lapic', 'mmio,ecam'];
const contenders: Contender[] = [
  { name: 'tsbhyve', vmm: 'tsbhyve', args: [] },
  { name: 'qemu', vmm: 'qemu', args: [] },
];

const samples = new Map<string, number[]>();
for (let round = 0; round < rounds; round++) {
  for (const k of CASES) {
    for (const c of round % 2 ? [...contenders].reverse() : contenders) {
      const b = await benchOnce(c, `bench=${k},n=${n}`);
      const key = `${k}/${c.name}`;
      if (!samples.has(key)) samples.set(key, []);
      samples.get(key)!.push(b.numbers.ns_per_exit!);
      process.stderr.write(`round ${round} ${k} ${c.name}: ${b.numbers.ns_per_exit} ns per exit\n`);
    }
  }
}

console.log(`\nexit round trips from ring 3: medians of ${rounds} rounds of ${n} exits`);
console.log(`${'case'.padEnd(12)}${'tsbhyve ns'.padStart(14)}${'qemu ns'.padStart(14)}${'qemu/tsbhyve'.padStart(15)}`);
const series: Series[] = [];
for (const k of CASES) {
  const ts = median(samples.get(`${k}/tsbhyve`)!);
  const q = median(samples.get(`${k}/qemu`)!);
  console.log(`${k.padEnd(12)}${ts.toFixed(0).padStart(14)}${q.toFixed(0).padStart(14)}${ratio(q, ts).padStart(15)}`);
  series.push({ metric: k, unit: 'ns', values: { tsbhyve: ts, qemu: q } });
}
report('testguest-exits', 'exit round trips from the test guest: tsbhyve vs QEMU+KVM', series);
