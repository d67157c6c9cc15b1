// A hostile driver: malformed chains, addresses outside RAM, overflowing lengths, wrong directions, broken
// indirect tables and ring indices. Each case ends with either an IOERR status (the request was answered) or
// DEVICE_NEEDS_RESET (the queue is unusable, §2.1.2); afterwards the device serves good requests again,
// without a reset in the first case and after one in the second. The host process must never crash.
import test from 'tape';
import { VIRTIO_STATUS_NEEDS_RESET } from '../../../devices/virtio/constants.js';
import { VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from '../../harness/virtio-driver.js';
import { header, pattern, request, rig, S_IOERR, S_OK, T_IN, T_OUT, type BlkRig } from './helpers.js';

async function waitNeedsReset(r: BlkRig): Promise<boolean> {
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    if (r.dev.status() & VIRTIO_STATUS_NEEDS_RESET) return true;
    await new Promise((res) => setTimeout(res, 2));
  }
  return false;
}

/** A good read must work (after a reset and re-initialisation when `reinit`). */
async function stillServes(t: test.Test, r: BlkRig, reinit: boolean): Promise<void> {
  if (reinit) r.q = r.dev.start(r.features, 0x20000);
  const rep = await request(r, T_IN, 2, 512);
  t.equal(rep.status, S_OK, reinit ? 'after reset, a good read works' : 'the next good read works');
  t.equal(rep.data[0], pattern(1024), 'with the right data');
}

/** Submits the broken chain at `head`: the device must flag NEEDS_RESET, then serve again after a reset. */
async function expectNeedsReset(t: test.Test, r: BlkRig, head: number, what: string): Promise<void> {
  r.q.publish(head);
  r.dev.notify(0);
  t.ok(await waitNeedsReset(r), what);
  await stillServes(t, r, true);
}

/** Submits a raw chain starting at `head` and returns the used entry. */
async function submit(r: BlkRig, head: number): Promise<{ id: number; len: number }> {
  r.q.publish(head);
  r.dev.notify(0);
  const [u] = await r.q.waitUsed(1);
  return u!;
}

function statusByte(r: BlkRig): number {
  const s = r.alloc.alloc(1);
  r.m.memory.bytes[s] = 0xee;
  return s;
}

for (const opts of ['', 'aio=threads', 'aio=threads,iothreads=4']) test(`descriptor loop: NEEDS_RESET, config interrupt, then a reset brings the queue back${opts ? ` (${opts})` : ''}`, async (t) => {
  const r = rig({ msix: true, opts });
  try {
    const h = header(r, T_IN, 0);
    r.q.writeDesc(0, h, 16, VRING_DESC_F_NEXT, 1);
    r.q.writeDesc(1, h, 16, VRING_DESC_F_NEXT, 0);
    r.q.publish(0);
    r.dev.notify(0);
    t.ok(await waitNeedsReset(r), 'DEVICE_NEEDS_RESET set');
    t.ok(r.m.irq.events.some((e) => e.kind === 'msi' && e.data === 0x40), 'configuration-change vector raised');
    t.ok(r.warnings.some((w) => /loop/.test(w)), 'the operator is told why');
    await stillServes(t, r, true);
  } finally {
    r.close();
  }
});

test('a self-referencing descriptor (next = itself) is a loop too', async (t) => {
  const r = rig();
  try {
    r.q.writeDesc(5, header(r, T_IN, 0), 16, VRING_DESC_F_NEXT, 5);
    await expectNeedsReset(t, r, 5, 'NEEDS_RESET');
  } finally {
    r.close();
  }
});

test('indirect table longer than the queue (chain longer than the queue size)', async (t) => {
  const r = rig();
  try {
    const segs = Array.from({ length: r.q.size + 1 }, () => ({ addr: r.alloc.alloc(512), len: 512, write: true }));
    segs[0] = { addr: header(r, T_IN, 0), len: 16, write: false };
    await expectNeedsReset(t, r, r.q.addIndirect(r.alloc.alloc(16 * segs.length), segs), 'NEEDS_RESET');
  } finally {
    r.close();
  }
});

test('nested indirect tables are refused', async (t) => {
  const r = rig();
  try {
    const inner = r.alloc.alloc(32);
    r.q.writeIndirectTable(inner, [{ addr: header(r, T_IN, 0), len: 16, write: false }, { addr: statusByte(r), len: 1, write: true }]);
    const outer = r.alloc.alloc(16);
    r.m.memory.view.setBigUint64(outer, BigInt(inner), true);
    r.m.memory.view.setUint32(outer + 8, 32, true);
    r.m.memory.view.setUint16(outer + 12, VRING_DESC_F_INDIRECT, true);
    r.q.writeDesc(0, outer, 16, VRING_DESC_F_INDIRECT, 0);
    await expectNeedsReset(t, r, 0, 'NEEDS_RESET');
  } finally {
    r.close();
  }
});

for (const [name, len] of [['length 0', 0], ['length 15', 15], ['length not a multiple of 16', 40], ['length 2^32-16', 0xfffffff0]] as const) {
  test(`bad indirect table ${name}`, async (t) => {
    const r = rig();
    try {
      r.q.writeDesc(0, r.alloc.alloc(64), len, VRING_DESC_F_INDIRECT, 0);
      await expectNeedsReset(t, r, 0, 'NEEDS_RESET');
    } finally {
      r.close();
    }
  });
}

test('indirect table outside guest RAM, and INDIRECT with NEXT', async (t) => {
  let r = rig();
  try {
    r.q.writeDesc(0, r.m.memory.size - 16, 64, VRING_DESC_F_INDIRECT, 0);
    await expectNeedsReset(t, r, 0, 'table past the end of RAM: NEEDS_RESET');
  } finally {
    r.close();
  }
  r = rig();
  try {
    const tbl = r.alloc.alloc(32);
    r.q.writeIndirectTable(tbl, [{ addr: header(r, T_IN, 0), len: 16, write: false }, { addr: statusByte(r), len: 1, write: true }]);
    r.q.writeDesc(0, tbl, 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
    r.q.publish(0);
    r.dev.notify(0);
    t.ok(await waitNeedsReset(r), 'INDIRECT|NEXT: NEEDS_RESET');
  } finally {
    r.close();
  }
});

test('avail idx jumping by more than the queue size, and a head out of range', async (t) => {
  let r = rig();
  try {
    r.q.setAvailIdx(r.q.size + 1);
    r.dev.notify(0);
    t.ok(await waitNeedsReset(r), 'avail idx jump: NEEDS_RESET');
    await stillServes(t, r, true);
  } finally {
    r.close();
  }
  r = rig();
  try {
    await expectNeedsReset(t, r, r.q.size + 7, 'avail entry >= queue size: NEEDS_RESET');
  } finally {
    r.close();
  }
});

test('next index past the table', async (t) => {
  const r = rig();
  try {
    r.q.writeDesc(0, header(r, T_IN, 0), 16, VRING_DESC_F_NEXT, r.q.size);
    r.q.publish(0);
    r.dev.notify(0);
    t.ok(await waitNeedsReset(r), 'NEEDS_RESET');
  } finally {
    r.close();
  }
});

for (const opts of ['', 'aio=threads', 'aio=threads,iothreads=4']) test(`addresses past guest RAM and gpa+len overflow: IOERR, the queue keeps working${opts ? ` (${opts})` : ''}`, async (t) => {
  const r = rig({ opts });
  try {
    const size = r.m.memory.size;
    const cases: Array<[string, number | bigint, number]> = [
      ['data buffer past the end of RAM', size, 512],
      ['data buffer straddling the end of RAM', size - 256, 512],
      ['gpa + len wraps 2^64', 2n ** 64n - 256n, 512],
      ['huge length', 0x1000, 0xfffffe00],
    ];
    for (const [what, addr, len] of cases) {
      const s = statusByte(r);
      const head = r.q.addChain([
        { addr: header(r, T_IN, 0), len: 16, write: false },
        { addr: addr as number, len, write: true },
        { addr: s, len: 1, write: true },
      ]);
      if (typeof addr === 'bigint') r.q.writeDesc((head + 1) % r.q.size, addr, len, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, (head + 2) % r.q.size);
      const u = await submit(r, head);
      t.equal(r.m.memory.bytes[s], S_IOERR, `${what}: IOERR`);
      t.equal(u.len, 1, `${what}: only the status byte is reported written`);
    }
    // The header itself outside RAM.
    const s = statusByte(r);
    const head = r.q.addChain([{ addr: size + 4096, len: 16, write: false }, { addr: s, len: 1, write: true }]);
    await submit(r, head);
    t.equal(r.m.memory.bytes[s], S_IOERR, 'header outside RAM: IOERR');
    t.equal(r.dev.status() & VIRTIO_STATUS_NEEDS_RESET, 0, 'no reset needed');
    await stillServes(t, r, false);
  } finally {
    r.close();
  }
});

test('wrong directions, short headers, readable-after-writable: IOERR', async (t) => {
  const r = rig();
  try {
    const file0 = pattern(0);
    const cases: Array<[string, (s: number) => Array<{ addr: number; len: number; write: boolean }>]> = [
      ['read with a device-readable data buffer', (s) => [{ addr: header(r, T_IN, 0), len: 16, write: false }, { addr: r.alloc.alloc(512), len: 512, write: false }, { addr: s, len: 1, write: true }]],
      ['write with a device-writable data buffer', (s) => [{ addr: header(r, T_OUT, 0), len: 16, write: false }, { addr: r.alloc.alloc(512), len: 512, write: true }, { addr: s, len: 1, write: true }]],
      ['header shorter than 16 bytes', (s) => [{ addr: header(r, T_IN, 0), len: 8, write: false }, { addr: s, len: 1, write: true }]],
      ['header in a writable descriptor', (s) => [{ addr: header(r, T_IN, 0), len: 16, write: true }, { addr: s, len: 1, write: true }]],
      ['readable data after the status', (s) => [{ addr: header(r, T_OUT, 0), len: 16, write: false }, { addr: s, len: 1, write: true }, { addr: r.alloc.alloc(512), len: 512, write: false }]],
    ];
    for (const [what, build] of cases) {
      const s = statusByte(r);
      await submit(r, r.q.addChain(build(s)));
      t.equal(r.m.memory.bytes[s], S_IOERR, `${what}: IOERR`);
    }
    const rep = await request(r, T_IN, 0, 512);
    t.equal(rep.data[0], file0, 'no write reached the disk');
    await stillServes(t, r, false);
  } finally {
    r.close();
  }
});

test('missing or empty status descriptor: returned with length 0, nothing written', async (t) => {
  const r = rig();
  try {
    const probe = r.alloc.alloc(16);
    r.m.memory.bytes.fill(0x77, probe, probe + 16);
    let u = await submit(r, r.q.addChain([{ addr: header(r, T_IN, 0), len: 16, write: false }, { addr: probe, len: 0, write: true }]));
    t.equal(u.len, 0, 'zero-length status: used length 0');
    u = await submit(r, r.q.addChain([{ addr: header(r, T_IN, 0), len: 16, write: false }, { addr: probe, len: 1, write: false }]));
    t.equal(u.len, 0, 'readable status: used length 0');
    t.ok(r.m.memory.bytes.subarray(probe, probe + 16).every((b) => b === 0x77), 'the device wrote nothing');
    u = await submit(r, r.q.addChain([{ addr: header(r, T_IN, 0), len: 16, write: false }, { addr: r.m.memory.size + 1, len: 1, write: true }]));
    t.equal(u.len, 0, 'status outside RAM: used length 0');
    await stillServes(t, r, false);
  } finally {
    r.close();
  }
});

test('queue rings outside guest RAM: NEEDS_RESET at activation', async (t) => {
  const r = rig();
  try {
    r.dev.setStatus(0);
    r.dev.setStatus(3);
    r.dev.setGuestFeatures(r.features);
    r.dev.setReg(8, 4, (r.m.memory.size >>> 12) + 16); // QUEUE_PFN past RAM
    r.dev.setStatus(7);
    t.ok(await waitNeedsReset(r), 'NEEDS_RESET');
    await stillServes(t, r, true);
  } finally {
    r.close();
  }
});

for (const opts of ['', 'aio=threads', 'aio=threads,iothreads=4']) test(`random garbage in the descriptor table and rings never crashes the host${opts ? ` (${opts})` : ''}`, async (t) => {
  const r = rig({ opts });
  try {
    let seed = 12345;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed;
    };
    let resets = 0;
    for (let round = 0; round < 60; round++) {
      for (let i = 0; i < r.q.size; i++) {
        const kind = rand() % 4;
        const addr = kind === 0 ? rand() % r.m.memory.size : kind === 1 ? rand() * 4096 : 0x40000 + (rand() % 0x10000);
        r.q.writeDesc(i, addr, rand() % 3 === 0 ? rand() : rand() % 2048, rand() & 7, rand() % (r.q.size + 4));
      }
      // headers at the targets often look like real requests (type 0/1/8)
      for (let i = 0; i < 4; i++) r.q.publish(rand() % r.q.size);
      r.dev.notify(0);
      await new Promise((res) => setTimeout(res, 2));
      if (r.dev.status() & VIRTIO_STATUS_NEEDS_RESET) {
        resets++;
        r.q = r.dev.start(r.features, 0x20000 + (round % 2) * 0x10000);
      }
    }
    t.pass(`survived 60 rounds of garbage (${resets} resets)`);
    r.q = r.dev.start(r.features, 0x20000);
    await stillServes(t, r, false);
  } finally {
    r.close();
  }
});
