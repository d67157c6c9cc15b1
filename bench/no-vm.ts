// What the no-VM benches (bench/virtio-blk, bench/nvme, bench/ahci) share: the guest-driver harness's machine
// delivers MSI messages to JavaScript, and the benches wake their request pumps from them; random offsets come from
// one LCG so that every run and contender sees the same sequence; the pumps are measured the same way, and nvme and
// ahci compare with host fio the same way.
import Benchmark from 'benchmark';
import type { VirtioTestMachine } from '../test/harness/virtio-driver.js';

/** A 32-bit linear congruential generator from `seed`. */
export function lcg(seed = 1): () => number {
  let s = seed >>> 0;
  return () => (s = (s * 1103515245 + 12345) >>> 0);
}

/**
 * Calls `onMessage` for each MSI message with data `data` (after the machine recorded it); returns a function that
 * says how many came.
 */
export function onMsi(m: VirtioTestMachine, data: number, onMessage: () => void): () => number {
  let count = 0;
  const irq = m.irq;
  const deliver = irq.msi.bind(irq);
  irq.msi = (addr, d) => {
    deliver(addr, d);
    if (d === data) {
      count++;
      onMessage();
    }
  };
  return () => count;
}

/** A request pump of a no-VM bench: keeps its depth of requests in flight, resubmitting each completion. */
export interface RequestPump {
  start(write: boolean): void;
  /** Resolves once `depth` more requests completed. */
  next(): Promise<void>;
  /** Stops resubmitting and waits for what is in flight. */
  stop(): Promise<void>;
}

/** Requests per second of a fresh pump, measured by benchmark.js in operations of `depth` completions. */
export function measurePump(name: string, makePump: () => RequestPump, write: boolean, depth: number): Promise<number> {
  const pump = makePump();
  pump.start(write);
  return new Promise((resolve) => {
    const b = new Benchmark(`${name} ${write ? 'randwrite' : 'randread'}`, {
      defer: true,
      minSamples: 20,
      fn: (deferred: Benchmark.Deferred) => void pump.next().then(() => deferred.resolve()),
      onComplete: () => void pump.stop().then(() => resolve(b.hz * depth)),
    });
    b.run({ async: true });
  });
}

export interface FioComparison {
  /** the device's unit, e.g. 'cmd/s' */
  unit: string;
  depth: number;
  /** makes the file's pages clean before each measurement (a write to a page under writeback waits for it) */
  settle: () => void;
  ours: (write: boolean) => Promise<number>;
  fio: (rw: 'randread' | 'randwrite', engine: 'psync' | 'io_uring') => number | undefined;
}

/**
 * Random reads, then writes: ours, host fio io_uring at the same depth and fio psync, each on clean pages; prints
 * a line per direction with the ratios and returns the rows for report().
 */
export async function compareWithFio(c: FioComparison): Promise<Array<{ metric: string; unit: string; values: Record<string, number> }>> {
  const rows = [];
  for (const write of [false, true]) {
    const rw = write ? 'randwrite' : 'randread';
    c.settle();
    const ours = await c.ours(write);
    c.settle();
    const uring = c.fio(rw, 'io_uring');
    c.settle();
    const psync = c.fio(rw, 'psync');
    const values: Record<string, number> = { 'tsbhyve (no VM)': ours };
    if (uring !== undefined) values[`fio io_uring qd${c.depth}`] = uring;
    if (psync !== undefined) values['fio psync'] = psync;
    rows.push({ metric: `${rw} 4k`, unit: c.unit, values });
    console.log(
      `${rw} 4k: tsbhyve ${ours.toFixed(0)} ${c.unit}` +
        (uring !== undefined ? `, fio io_uring qd${c.depth} ${uring.toFixed(0)} IOPS, ratio ${(ours / uring).toFixed(2)}` : '') +
        (psync !== undefined ? `, fio psync ${psync.toFixed(0)} IOPS, ratio ${(ours / psync).toFixed(2)}` : ''),
    );
  }
  return rows;
}
