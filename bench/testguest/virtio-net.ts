// The test guest's virtio-net transmit workload (bench=virtio-net,tx) on tsbhyve and on QEMU+KVM, same ELF, same
// tap, same run, rounds interleaved. The receiver is the host kernel: a tap (IFF_VNET_HDR, no address, so frames
// are counted and dropped without answers) in a network namespace this script makes; its rx_packets / rx_bytes
// are the figures, read before and after each guest run, so both VMMs are measured at the same interface.
// Contenders:
//   tsbhyve        -s 3,virtio-net,tap0            (native worker, ring of 1024)
//   qemu           -netdev tap,vhost=off + virtio-net-pci disable-modern=on (QEMU's own device code, ring 256)
//   qemu-vhost     the same with vhost=on, when /dev/vhost-net exists (the in-kernel data path)
// Workloads: 64-byte frames (packets per second) and 1514-byte frames (bytes per second), guest-driven for `ms`.
// Prints medians (packets/s and Mbit/s at the tap) and the ratios tsbhyve / QEMU (> 1: tsbhyve is faster).
// Usage (root): node --import tsx bench/testguest/virtio-net.ts [rounds=3] [ms=1000]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { makeNetNs, netnsSkipReason } from '../../test/harness/netns.js';
import { report, type Series } from '../report.js';
import { benchOnce, median, ratio, type Contender } from './common.js';

const rounds = Number(process.argv[2] ?? 3);
const ms = Number(process.argv[3] ?? 1000);
const SIZES = [64, 1514];
const TAP = 'tap0';

// The VMMs open the tap in their own network namespace, so the whole run happens inside a fresh one.
if (process.env.TSBHYVE_BENCH_NETNS === undefined) {
  const why = netnsSkipReason();
  if (why) {
    console.error(`bench/testguest/virtio-net: ${why}`);
    process.exit(2);
  }
  const ns = makeNetNs('tsbhyve-bench-net');
  try {
    ns.ip('tuntap', 'add', 'dev', TAP, 'mode', 'tap', 'vnet_hdr');
    ns.ip('link', 'set', TAP, 'up');
    const [cmd, ...args] = ns.exec([process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)]);
    const r = spawnSync(cmd!, args, { stdio: 'inherit', env: { ...process.env, TSBHYVE_BENCH_NETNS: ns.name } });
    process.exitCode = r.status ?? 1;
  } finally {
    ns.delete();
  }
} else {
  await main();
}

function tapCounters(): { packets: number; bytes: number } {
  const read = (k: string): number => Number(readFileSync(`/sys/class/net/${TAP}/statistics/${k}`, 'utf8'));
  return { packets: read('rx_packets'), bytes: read('rx_bytes') };
}

async function main(): Promise<void> {
  const qemuNet = (vhost: boolean): string[] => [
    '-netdev', `tap,id=n0,ifname=${TAP},script=no,downscript=no,vhost=${vhost ? 'on' : 'off'}`,
    '-device', 'virtio-net-pci,netdev=n0,disable-modern=on,disable-legacy=off,mac=02:00:00:00:00:02',
  ];
  // `guest`: extra bench options for that contender's guest.
  const contenders: Array<Contender & { guest?: string }> = [
    { name: 'tsbhyve', vmm: 'tsbhyve', args: ['-s', `3,virtio-net,${TAP},mac=02:00:00:00:00:01`] },
    { name: 'qemu', vmm: 'qemu', args: qemuNet(false) },
  ];
  // TSBHYVE_BENCH_NET_INFLIGHT=256: also tsbhyve with the guest keeping at most that many frames in flight (QEMU's
  // ring holds 256, tsbhyve's 1024, as bhyve's), to compare the two devices at the same depth.
  const inflight = Number(process.env.TSBHYVE_BENCH_NET_INFLIGHT ?? 0);
  if (inflight > 0) contenders.push({ name: `tsbhyve-inflight${inflight}`, vmm: 'tsbhyve', args: contenders[0]!.args, guest: `,inflight=${inflight}` });
  if (existsSync('/dev/vhost-net')) contenders.push({ name: 'qemu-vhost', vmm: 'qemu', args: qemuNet(true) });

  type Sample = { pps: number; mbps: number; guestPps: number };
  const samples = new Map<string, Sample[]>();
  for (let round = 0; round < rounds; round++) {
    for (const size of SIZES) {
      const order = round % 2 ? [...contenders].reverse() : contenders;
      for (const c of order) {
        const before = tapCounters();
        const b = await benchOnce(c, `bench=virtio-net,tx,size=${size},ms=${ms}${c.guest ?? ''}`);
        const after = tapCounters();
        const ns = b.numbers.total_ns!;
        const packets = after.packets - before.packets;
        // rx_bytes counts the frame without the virtio header; Mbit/s of Ethernet frames (no FCS or preamble).
        const sample = { pps: (packets * 1e9) / ns, mbps: ((after.bytes - before.bytes) * 8e3) / ns, guestPps: b.numbers.pps! };
        const key = `${size}/${c.name}`;
        if (!samples.has(key)) samples.set(key, []);
        samples.get(key)!.push(sample);
        process.stderr.write(
          `round ${round} size ${size} ${c.name}: ${sample.pps.toFixed(0)} pkt/s at the tap (guest sent ${b.numbers.frames} in ${(ns / 1e6).toFixed(0)} ms, ring ${b.numbers.queue_size}, ${b.numbers.kicks} kicks)\n`,
        );
      }
    }
  }

  const med = (size: number, c: string, f: (s: Sample) => number): number => median(samples.get(`${size}/${c}`)!.map(f));
  const series: Series[] = [];
  console.log(`\nvirtio-net transmit from the test guest to a tap: medians of ${rounds} rounds of ${ms} ms`);
  const others = contenders.filter((c) => c.name !== 'tsbhyve');
  console.log(
    `${'frame'.padEnd(8)}${contenders.map((c) => `${c.name} pkt/s`.padStart(20)).join('')}${contenders.map((c) => `${c.name} Mbit/s`.padStart(20)).join('')}${others.map((c) => `tsbhyve/${c.name}`.padStart(22)).join('')}`,
  );
  for (const size of SIZES) {
    const pps = contenders.map((c) => med(size, c.name, (s) => s.pps));
    const mbps = contenders.map((c) => med(size, c.name, (s) => s.mbps));
    const cells = others.map((c) => ratio(med(size, 'tsbhyve', (s) => s.pps), med(size, c.name, (s) => s.pps)).padStart(22));
    console.log(`${`${size} B`.padEnd(8)}${pps.map((v) => v.toFixed(0).padStart(20)).join('')}${mbps.map((v) => v.toFixed(1).padStart(20)).join('')}${cells.join('')}`);
    series.push({ metric: `tx ${size} B pkt/s`, unit: 'pkt/s', values: Object.fromEntries(contenders.map((c, i) => [c.name, pps[i]!])) });
    series.push({ metric: `tx ${size} B Mbit/s`, unit: 'Mbit/s', values: Object.fromEntries(contenders.map((c, i) => [c.name, mbps[i]!])) });
  }
  report('testguest-virtio-net', 'virtio-net transmit under the test guest: tsbhyve vs QEMU+KVM', series);
}
