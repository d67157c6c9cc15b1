// The backend engines of the virtio-blk worker: io_uring (the default where the kernel allows it) and the
// synchronous fallback (`aio=threads`, or TSBHYVE_NO_IO_URING=1 in the environment). Which one runs and why;
// 32 requests in flight of mixed reads and writes, sizes and buffer alignments, verified against a model of the
// disk, on both engines, with and without O_DIRECT (unaligned buffers bounce); flush ordering; a reset with
// requests in flight.
import test from 'tape';
import { readFileSync } from 'node:fs';
import { VIRTIO_RING_F_EVENT_IDX, bit } from '../../../devices/virtio/constants.js';
import { GuestAlloc } from '../../harness/virtio-driver.js';
import { pattern, rig, request, S_IOERR, S_OK, T_FLUSH, T_GET_ID, T_IN, T_OUT, type BlkRig } from './helpers.js';

const SLOT = 64 * 1024; // one request's region of the disk
const SLOTS = 64;
const DISK = SLOT * SLOTS;

/** The engine the default configuration gets here: io_uring, or the fallback with the kernel's reason. */
function defaultEngine(): { engine?: string; note?: string } {
  const r = rig({ size: 64 * 1024 });
  try {
    const st = r.stats();
    return { engine: st?.engine, note: st?.engineNote };
  } finally {
    r.close();
  }
}

test('engine: io_uring by default (or the fallback, saying why); aio=threads and the environment force the fallback', (t) => {
  const d = defaultEngine();
  if (d.engine === 'io_uring') t.pass('default engine: io_uring');
  else t.ok(d.engine === 'inline' && d.note, `io_uring unavailable here, fallback inline: ${d.note}`);
  let r = rig({ size: 64 * 1024, opts: 'aio=threads' });
  t.equal(r.stats()?.engine, 'inline', 'aio=threads: requests run on the queue thread');
  t.equal(r.stats()?.engineNote, undefined, 'no note when threads were asked for');
  r.close();
  r = rig({ size: 64 * 1024, opts: 'aio=threads,iothreads=4' });
  t.equal(r.stats()?.engine, 'threads', 'aio=threads,iothreads=4: a pool');
  r.close();
  process.env.TSBHYVE_NO_IO_URING = '1';
  try {
    r = rig({ size: 64 * 1024 });
    t.equal(r.stats()?.engine, 'inline', 'TSBHYVE_NO_IO_URING=1: the fallback');
    t.match(r.stats()?.engineNote ?? '', /TSBHYVE_NO_IO_URING/, 'and it says why');
    r.close();
  } finally {
    delete process.env.TSBHYVE_NO_IO_URING;
  }
  t.end();
});

for (const opts of ['', 'aio=threads']) {
  test(`requests finished at once (GET_ID, refused ones) between kicks never leave the worker deaf (${opts || 'default'})`, async (t) => {
    const r = rig({ size: 64 * 1024, opts: opts || undefined, msix: true });
    try {
      for (let i = 0; i < 5; i++) {
        t.equal((await request(r, T_GET_ID, 0, 20)).status, S_OK, `GET_ID ${i}`);
        t.equal((await request(r, T_IN, 1 << 20, 512)).status, S_IOERR, `out-of-range read ${i} refused`);
        t.equal((await request(r, T_IN, i, 512)).status, S_OK, `read ${i} after them`);
      }
    } finally {
      r.close();
    }
  });
}

interface Req {
  head: number;
  write: boolean;
  slot: number;
  len: number;
  buf: number;
  st: number;
  fill: number;
}

/** Rounds of 32 requests in flight: every request on its own 64 KiB region, reads checked against the model. */
async function mixedRounds(t: test.Test, r: BlkRig, rounds: number, label: string): Promise<void> {
  const model = Buffer.from(readFileSync(r.disk));
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  let allOk = true;
  let readsOk = true;
  for (let round = 0; round < rounds; round++) {
    r.alloc = new GuestAlloc(0x40000, r.m.memory.size);
    const order = Array.from({ length: SLOTS }, (_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rnd(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const reqs: Req[] = [];
    for (let i = 0; i < 32; i++) {
      const write = rnd(2) === 0;
      const len = (1 + rnd(SLOT / 512)) * 512;
      // Every fifth buffer is misaligned (it bounces under O_DIRECT); the others are page aligned.
      const buf = i % 5 === 0 ? r.alloc.alloc(len + 64, 4096) + 8 : r.alloc.alloc(len, 4096);
      const fill = (round * 32 + i + 1) & 0xff;
      if (write) r.m.memory.bytes.fill(fill, buf, buf + len);
      else r.m.memory.bytes.fill(0xcc, buf, buf + len);
      const h = r.alloc.alloc(16);
      r.m.memory.view.setUint32(h, write ? T_OUT : T_IN, true);
      r.m.memory.view.setUint32(h + 4, 0, true);
      const slot = order[i]!;
      r.m.memory.view.setBigUint64(h + 8, BigInt((slot * SLOT) / 512), true);
      const st = r.alloc.alloc(1);
      r.m.memory.bytes[st] = 0xee;
      const head = r.q.addChain([{ addr: h, len: 16, write: false }, { addr: buf, len, write: !write }, { addr: st, len: 1, write: true }]);
      reqs.push({ head, write, slot, len, buf, st, fill });
    }
    for (const q of reqs) r.q.publish(q.head);
    r.dev.notify(0);
    const used = await r.q.waitUsed(reqs.length);
    const byHead = new Map(used.map((u) => [u.id, u.len]));
    for (const q of reqs) {
      if (r.m.memory.bytes[q.st] !== S_OK || byHead.get(q.head) !== (q.write ? 1 : q.len + 1)) allOk = false;
      if (!q.write) {
        const got = Buffer.from(r.m.memory.bytes.subarray(q.buf, q.buf + q.len));
        if (!got.equals(model.subarray(q.slot * SLOT, q.slot * SLOT + q.len))) readsOk = false;
      }
    }
    for (const q of reqs) if (q.write) model.fill(q.fill, q.slot * SLOT, q.slot * SLOT + q.len);
  }
  t.ok(allOk, `${label}: every request OK with the right used length`);
  t.ok(readsOk, `${label}: every read returned the model's bytes`);
  t.ok(readFileSync(r.disk).equals(model), `${label}: the file equals the model`);
}

for (const opts of ['', 'nocache', 'aio=threads', 'aio=threads,nocache', 'nocache,noevent']) {
  test(`QD32 mixed reads and writes, sizes 512 B..64 KiB, aligned and unaligned buffers (${opts || 'default'})`, async (t) => {
    const noEvent = opts.includes('noevent');
    const r = rig({
      size: DISK,
      opts: opts.replace(/,?noevent/, '') || undefined,
      msix: true,
      accept: noEvent ? (f) => f & ~bit(VIRTIO_RING_F_EVENT_IDX) : undefined,
    });
    try {
      await mixedRounds(t, r, 6, opts || 'default');
      t.equal(r.stats()?.errors && Object.keys(r.stats()!.errors).length, 0, 'no errors counted');
    } finally {
      r.close();
    }
  });
}

test('TSBHYVE_NO_IO_URING=1: the same QD32 workload on the fallback', async (t) => {
  process.env.TSBHYVE_NO_IO_URING = '1';
  let r: BlkRig;
  try {
    r = rig({ size: DISK, opts: 'nocache', msix: true });
  } finally {
    delete process.env.TSBHYVE_NO_IO_URING;
  }
  try {
    t.equal(r.stats()?.engine, 'inline', 'fallback engine');
    await mixedRounds(t, r, 3, 'fallback');
  } finally {
    r.close();
  }
});

for (const opts of ['nocache', 'aio=threads,nocache']) {
  test(`flush: completes only after every write made available before it (${opts})`, async (t) => {
    const r = rig({ size: DISK, opts, msix: true });
    try {
      for (let round = 0; round < 3; round++) {
        r.alloc = new GuestAlloc(0x40000, r.m.memory.size);
        const writes: number[] = [];
        const chain = (type: number, slot: number, len: number, fill: number): number => {
          const h = r.alloc.alloc(16);
          r.m.memory.view.setUint32(h, type, true);
          r.m.memory.view.setUint32(h + 4, 0, true);
          r.m.memory.view.setBigUint64(h + 8, BigInt((slot * SLOT) / 512), true);
          const st = r.alloc.alloc(1);
          if (len === 0) return r.q.addChain([{ addr: h, len: 16, write: false }, { addr: st, len: 1, write: true }]);
          const b = r.alloc.alloc(len, 4096);
          r.m.memory.bytes.fill(fill, b, b + len);
          return r.q.addChain([{ addr: h, len: 16, write: false }, { addr: b, len, write: false }, { addr: st, len: 1, write: true }]);
        };
        for (let i = 0; i < 20; i++) writes.push(chain(T_OUT, i, SLOT, 0x40 + round));
        const flush = chain(T_FLUSH, 0, 0, 0);
        const later: number[] = [];
        for (let i = 20; i < 30; i++) later.push(chain(T_OUT, i, SLOT, 0x40 + round));
        for (const h of [...writes, flush, ...later]) r.q.publish(h);
        r.dev.notify(0);
        const used = await r.q.waitUsed(31);
        const pos = new Map(used.map((u, i) => [u.id, i]));
        const fpos = pos.get(flush)!;
        t.ok(writes.every((w) => pos.get(w)! < fpos), `round ${round}: the flush came back after all ${writes.length} writes before it`);
        const file = readFileSync(r.disk);
        t.ok(file.subarray(0, 30 * SLOT).every((b) => b === 0x40 + round), `round ${round}: all writes are in the file`);
      }
    } finally {
      r.close();
    }
  });
}

for (const opts of ['nocache', '', 'aio=threads,nocache']) {
  test(`reset with requests in flight: no guest memory is touched after the reset, the device restarts (${opts || 'default'})`, async (t) => {
    const r = rig({ size: 16 << 20, opts: opts || undefined, msix: true });
    try {
      const bufs: Array<{ b: number; s: number }> = [];
      const LEN = 256 * 1024;
      for (let i = 0; i < 40; i++) {
        const h = r.alloc.alloc(16);
        r.m.memory.view.setUint32(h, i % 2 ? T_OUT : T_IN, true);
        r.m.memory.view.setBigUint64(h + 8, BigInt((i * LEN) / 512 % ((16 << 20) / 512)), true);
        const b = r.alloc.alloc(LEN, 4096);
        const s = r.alloc.alloc(1);
        r.m.memory.bytes[s] = 0xee;
        bufs.push({ b, s });
        r.q.publish(r.q.addChain([{ addr: h, len: 16, write: false }, { addr: b, len: LEN, write: i % 2 === 0 }, { addr: s, len: 1, write: true }]));
      }
      r.dev.notify(0);
      // Reset as soon as the first request is back, with the others in flight: the worker stops, waiting for
      // whatever the kernel holds, before the reset returns.
      const deadline = Date.now() + 5000;
      while (r.q.usedIdx() === 0 && Date.now() < deadline) await new Promise((res) => setImmediate(res));
      const usedAtReset = r.q.usedIdx();
      r.dev.setStatus(0);
      t.comment(`reset with ${usedAtReset} of 40 requests returned`);
      for (const x of bufs) {
        r.m.memory.bytes.fill(0x77, x.b, x.b + LEN);
        r.m.memory.bytes[x.s] = 0x77;
      }
      const ring = Buffer.from(r.m.memory.bytes.subarray(r.q.base, r.q.base + 3 * 4096));
      await new Promise((res) => setTimeout(res, 200));
      let untouched = true;
      for (const x of bufs) {
        if (r.m.memory.bytes[x.s] !== 0x77) untouched = false;
        for (let j = 0; j < LEN; j += 512) if (r.m.memory.bytes[x.b + j] !== 0x77) untouched = false;
      }
      t.ok(untouched, 'buffers and status bytes untouched after the reset');
      t.ok(Buffer.from(r.m.memory.bytes.subarray(r.q.base, r.q.base + 3 * 4096)).equals(ring), 'rings untouched after the reset');
      r.q = r.dev.start(r.features);
      r.alloc = new GuestAlloc(0x40000, r.m.memory.size);
      const rep = await request(r, T_IN, 1, 4096);
      t.equal(rep.status, S_OK, 'a read after re-initialisation works');
      t.equal(rep.data[0], pattern(512), 'and returns disk bytes');
    } finally {
      r.close();
    }
  });
}
