// virtio-blk data path without a VM: the guest-driver harness keeps `depth` 4 KiB requests in flight on the
// device's queue (random sectors of one file; each completion is resubmitted at once, as fio does), the native worker serves them, and completions come back
// through the MSI-X callback path. benchmark.js measures requests per second; host fio measures the same
// pattern on the same file (psync: one thread, positioned reads/writes, as the worker does). Prints both and
// the ratio tsbhyve / fio. The file stays in the page cache for both (fio --invalidate=0).
// With device options containing `nocache` (O_DIRECT) fio runs with --direct=1 too, twice: psync (one request at a
// time, as a single synchronous worker does) and io_uring at iodepth=depth (the host's best at that depth); the
// ratio printed is against the io_uring figure.
// Usage: node --import tsx bench/virtio-blk/run.ts [fileMiB=64] [depth=32] [fioSeconds=5] [devopts=iothreads=1] [completion=irq]
//   devopts: extra virtio-blk options, comma-separated (a bare number N means iothreads=N)
//   completion: irq (each MSI-X message reaches the driver through the worker's thread-safe callback) or poll
//               (the driver spins on the used ring with interrupts suppressed, as the test guest's bench does; on
//               2 CPUs the spinning thread takes the CPU the worker and the kernel's completions need)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestAlloc, virtioMachine, type SplitQueueDriver } from '../../test/harness/virtio-driver.js';
import { runFio } from '../fio.js';
import { report } from '../report.js';
import { lcg, measurePump, onMsi, type RequestPump } from '../no-vm.js';

const fileMiB = Number(process.argv[2] ?? 64);
const depth = Number(process.argv[3] ?? 32);
const fioSeconds = Number(process.argv[4] ?? 5);
const devArg = process.argv[5] ?? '';
const devOpts = /^\d+$/.test(devArg) ? `iothreads=${devArg}` : devArg;
const noCache = devOpts.split(',').includes('nocache');
const completion = process.argv[6] ?? 'irq';
if (completion !== 'poll' && completion !== 'irq') throw new Error(`completion must be poll or irq, not ${completion}`);
const BS = 4096;

const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-bench-vblk-'));
const disk = join(dir, 'disk.img');
writeFileSync(disk, randomBytes(fileMiB << 20));

const { m, dev } = virtioMachine(['-s', `3,virtio-blk,${disk}${devOpts ? ',' + devOpts : ''}`], 3, { memorySize: 64 << 20 });
dev.enableMsix(2);
const q: SplitQueueDriver = dev.start(dev.hostFeatures() & ~(1 << 29)); // no EVENT_IDX: an interrupt per batch
dev.setConfigVector(0);
dev.setQueueVector(0, 1);
if (completion === 'poll') q.setAvailFlags(1); // VIRTQ_AVAIL_F_NO_INTERRUPT

// Fixed request slots: header, 4 KiB buffer, status per slot; descriptors 3*i .. 3*i+2.
const alloc = new GuestAlloc(0x100000, m.memory.size);
const slots = Array.from({ length: depth }, (_, i) => {
  const h = alloc.alloc(16);
  const b = alloc.alloc(BS, 4096);
  const s = alloc.alloc(1);
  const d = 3 * i;
  q.writeDesc(d, h, 16, 1, d + 1);
  q.writeDesc(d + 1, b, BS, 0, d + 2); // direction set per run
  q.writeDesc(d + 2, s, 1, 2, 0);
  return { h, b, s, d };
});
const sectors = (fileMiB << 20) / 512;
const rnd = lcg();
let wake: (() => void) | undefined;
const queueIrqs = onMsi(m, 0x41, () => wake?.());

/**
 * Keeps `depth` requests in flight, as fio does at its iodepth: every completion is checked and its slot
 * resubmitted at once (one notify per interrupt). A benchmark operation is `depth` more completions, so the
 * queue never drains between operations.
 */
class Pump implements RequestPump {
  private write = false;
  private running = false;
  private seen = 0;
  private completed = 0;
  private inflight = 0;
  private waiter: { target: number; resolve: () => void } | undefined;

  start(write: boolean): void {
    this.write = write;
    this.running = true;
    this.seen = q.usedIdx();
    for (const s of slots) this.submit(s);
    dev.notify(0);
    wake = () => this.reap();
  }

  /** Resolves once `depth` more requests completed. */
  next(): Promise<void> {
    if (completion === 'poll') {
      // A polling driver: spin on the used ring (the worker's writes are seen as they land), no interrupt.
      const target = this.completed + depth;
      while (this.completed < target) this.reap();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiter = { target: this.completed + depth, resolve };
      this.reap();
    });
  }

  /** Lets the requests in flight finish without resubmitting them. */
  async stop(): Promise<void> {
    this.running = false;
    while (this.inflight > 0) {
      this.reap();
      if (this.inflight > 0) await new Promise((r) => setTimeout(r, 1));
    }
    wake = undefined;
  }

  private submit(s: (typeof slots)[number]): void {
    m.memory.view.setUint32(s.h, this.write ? 1 : 0, true);
    m.memory.bytes[s.s] = 0xff;
    m.memory.view.setBigUint64(s.h + 8, BigInt((rnd() % (sectors / 8)) * 8), true);
    q.writeDesc(s.d + 1, s.b, BS, this.write ? 1 : 3, s.d + 2);
    q.publish(s.d);
    this.inflight++;
  }

  private reap(): void {
    const used = q.usedIdx();
    let resubmitted = false;
    while (this.seen !== used) {
      const e = q.usedElem(this.seen);
      this.seen = (this.seen + 1) & 0xffff;
      const s = slots[e.id / 3]!;
      if (m.memory.bytes[s.s] !== 0) throw new Error(`request failed with status ${m.memory.bytes[s.s]}`);
      this.inflight--;
      this.completed++;
      if (this.running) {
        this.submit(s);
        resubmitted = true;
      }
    }
    if (resubmitted && q.kickWanted()) dev.notify(0);
    if (this.waiter && this.completed >= this.waiter.target) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve();
    }
  }
}

function fio(rw: 'randread' | 'randwrite', engine: 'psync' | 'io_uring' = 'psync'): number | undefined {
  return runFio({
    file: disk, rw, bs: BS, engine, iodepth: engine === 'psync' ? 1 : depth, direct: noCache, seconds: fioSeconds, hugeBuffers: true,
  })?.iops;
}

// Completions arrive through the worker's thread-safe callback, which does not hold the event loop open.
const keepAlive = setInterval(() => {}, 1000);
const results: Record<string, Record<string, number>> = {};
for (const write of [false, true]) {
  const rw = write ? 'randwrite' : 'randread';
  const ours = await measurePump('virtio-blk', () => new Pump(), write, depth);
  const psync = fio(rw);
  const uring = noCache ? fio(rw, 'io_uring') : undefined;
  const host = uring ?? psync;
  const hostName = uring !== undefined ? `fio io_uring qd${depth}` : 'fio psync';
  results[rw] = {
    'tsbhyve (no VM)': ours,
    ...(psync !== undefined ? { [noCache ? 'fio psync direct' : 'fio psync']: psync } : {}),
    ...(uring !== undefined ? { [hostName]: uring } : {}),
  };
  console.log(
    `${rw} 4k: tsbhyve ${ours.toFixed(0)} req/s` +
      (psync !== undefined ? `, fio psync ${psync.toFixed(0)} IOPS` : '') +
      (uring !== undefined ? `, ${hostName} ${uring.toFixed(0)} IOPS` : '') +
      (host !== undefined ? `, ratio vs ${hostName} ${(ours / host).toFixed(2)}` : ''),
  );
}
console.log(`completions: ${completion}; queue interrupts: ${queueIrqs()}; depth ${depth}; options "${devOpts}"; file ${fileMiB} MiB (${noCache ? 'O_DIRECT' : 'page cache warm'})`);
report(
  'virtio-blk',
  `virtio-blk 4 KiB random I/O, depth ${depth}, options "${devOpts}", no VM vs host fio`,
  Object.entries(results).map(([metric, values]) => ({ metric: `${metric} 4k`, unit: 'req/s', values })),
);
clearInterval(keepAlive);
m.close();
rmSync(dir, { recursive: true, force: true });
