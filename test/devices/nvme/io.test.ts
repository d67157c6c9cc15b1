// NVM commands end to end through the native queue worker: reads and writes against the disk file with
// PRP1/PRP2 and PRP lists (offsets, page crossings, chained lists), flush and FUA, Compare, Write Zeroes,
// Dataset Management reaching the file, several queue pairs on their own MSI-X vectors, and the RAM namespace.
import { readFileSync, statSync } from 'node:fs';
import test from 'tape';
import { RecordedKvm } from '../../harness/virtio-driver.js';
import { nvmeMachine } from '../../harness/nvme-driver.js';
import { OP_COMPARE, OP_DSM, OP_READ, OP_FLUSH, OP_WRITE, OP_WRITE_ZEROES, pattern, readBlocks, rig, rw, writeBlocks } from './helpers.js';

const fileBytes = (path: string, off: number, len: number): Buffer => readFileSync(path).subarray(off, off + len);
const patterned = (off: number, len: number): Buffer => Buffer.from(Array.from({ length: len }, (_, i) => pattern(off + i)));

test('reads return the file at every size, with PRP1 offsets, PRP2 and PRP lists', async (t) => {
  const r = rig({ size: 4 << 20 });
  try {
    for (const [slba, blocks, offset] of [
      [0, 1, 0], [1, 8, 0], [3, 8, 512], [10, 9, 0], [100, 24, 1024], [200, 256, 0], [300, 1024, 2048], [4000, 4096, 0],
    ] as const) {
      const { c, data } = await readBlocks(r, 1, slba, blocks, 512, offset);
      t.equal(c.status, 0, `read ${blocks} LBAs at ${slba} (buffer offset ${offset}): success`);
      t.ok(Buffer.from(data).equals(patterned(slba * 512, blocks * 512)), '... data matches the file');
    }
  } finally {
    r.close();
  }
});

test('writes reach the file through chained PRP lists; flush and FUA succeed', async (t) => {
  const r = rig({ size: 4 << 20 });
  try {
    // 2 MiB at a 512-byte offset: 513 pages, so the PRP list spans two list pages (511 entries + chain).
    const data = new Uint8Array(2 << 20).map((_, i) => (i * 31 + 7) & 0xff);
    let c = await writeBlocks(r, 1, 64, data, 512, 512);
    t.equal(c.status, 0, '2 MiB write (MDTS) succeeds');
    c = await r.drv.ioCmd(1, { opcode: OP_FLUSH, nsid: 1 });
    t.equal(c.status, 0, 'flush succeeds');
    t.ok(fileBytes(r.disk, 64 * 512, data.length).equals(Buffer.from(data)), 'the file holds the data');
    c = await writeBlocks(r, 1, 7, new Uint8Array(512).fill(0xab), 512, 0, 1 << 30);
    t.equal(c.status, 0, 'write with FUA succeeds');
    t.ok(fileBytes(r.disk, 7 * 512, 512).equals(Buffer.alloc(512, 0xab)), 'and is in the file');
    c = await r.drv.ioCmd(1, { opcode: OP_FLUSH, nsid: 0xffffffff });
    t.equal(c.status, 0, 'flush of all namespaces (NSID FFFFFFFFh) succeeds');
    const st = r.drv.controller.stats()!;
    t.ok(st.bytesWritten >= data.length + 512 && st.writeCommands === 2, 'the worker counted both writes');
  } finally {
    r.close();
  }
});

test('Compare matches and mismatches', async (t) => {
  const r = rig();
  try {
    const buf = r.drv.buffer(1024);
    r.drv.fill(buf, patterned(20 * 512, 1024));
    let c = await r.drv.ioCmd(1, { opcode: OP_COMPARE, nsid: 1, prp1: buf.prp1, prp2: buf.prp2, cdw: rw(20, 2) });
    t.equal(c.status, 0, 'equal data: success');
    r.drv.fill(buf, Buffer.alloc(1024, 1));
    c = await r.drv.ioCmd(1, { opcode: OP_COMPARE, nsid: 1, prp1: buf.prp1, prp2: buf.prp2, cdw: rw(20, 2) });
    t.equal(c.status, 0x285, 'different data: Compare Failure (media error)');
    t.ok(c.dnr, 'with Do Not Retry');
  } finally {
    r.close();
  }
});

test('Write Zeroes and Dataset Management deallocate reach the file', async (t) => {
  const r = rig({ size: 4 << 20 });
  try {
    let c = await r.drv.ioCmd(1, { opcode: OP_WRITE_ZEROES, nsid: 1, cdw: rw(8, 16) });
    t.equal(c.status, 0, 'write zeroes succeeds');
    t.ok(fileBytes(r.disk, 8 * 512, 16 * 512).equals(Buffer.alloc(16 * 512)), 'the range reads as zeroes in the file');
    t.ok(fileBytes(r.disk, 24 * 512, 512).equals(patterned(24 * 512, 512)), 'the next LBA is untouched');
    const before = statSync(r.disk).blocks;
    // Two ranges: LBAs 1024..3071 and 6144..8191 (1 MiB each).
    const ranges = r.drv.buffer(32);
    const rv = Buffer.alloc(32);
    rv.writeUInt32LE(2048, 4);
    rv.writeBigUInt64LE(1024n, 8);
    rv.writeUInt32LE(2048, 20);
    rv.writeBigUInt64LE(6144n, 24);
    r.drv.fill(ranges, rv);
    c = await r.drv.ioCmd(1, { opcode: OP_DSM, nsid: 1, prp1: ranges.prp1, cdw: [1, 1 << 2] });
    t.equal(c.status, 0, 'deallocate of two ranges succeeds');
    t.ok(statSync(r.disk).blocks < before - 3000, 'the file lost the space (holes punched)');
    t.ok(fileBytes(r.disk, 1024 * 512, 2048 * 512).equals(Buffer.alloc(2048 * 512)), 'deallocated blocks read as zeroes');
    const { data } = await readBlocks(r, 1, 1024, 8);
    t.ok(Buffer.from(data).equals(Buffer.alloc(4096)), 'and the guest reads zeroes there');
    const n = Buffer.from(r.drv.identify(0, 1).data);
    t.equal(n[33]! & 7, 1, 'DLFEAT says deallocated blocks read as zeroes');
  } finally {
    r.close();
  }
});

test('dsm=disable: DSM is not advertised and is an invalid opcode; nodelete keeps the blocks', async (t) => {
  const r = rig({ opts: 'dsm=disable' });
  try {
    const c = Buffer.from(r.drv.identify(1).data);
    t.equal(c.readUInt16LE(520) & (1 << 2), 0, 'ONCS without Dataset Management');
    const ranges = r.drv.buffer(16);
    const done = await r.drv.ioCmd(1, { opcode: OP_DSM, nsid: 1, prp1: ranges.prp1, cdw: [0, 1 << 2] });
    t.equal(done.status, 0x001, 'Invalid Command Opcode');
  } finally {
    r.close();
  }
  const k = rig({ opts: 'nodelete' });
  try {
    const c = Buffer.from(k.drv.identify(1).data);
    t.equal(c.readUInt16LE(520) & (1 << 2), 0, 'dsm=auto with nodelete: not advertised');
  } finally {
    k.close();
  }
});

test('INTx: the pin is high while an I/O CQ holds an entry and drops when its head doorbell drains it', async (t) => {
  const r = rig({ size: 1 << 20, msix: false });
  try {
    const pin = r.drv.fn.ioapicPin;
    const irq = r.m.irq;
    t.ok(pin > 0, `INTx wired to IOAPIC pin ${pin}`);
    t.notOk(irq.pinHigh(pin), 'low with nothing posted');
    const buf = r.drv.buffer(512);
    r.drv.queue(1, { opcode: OP_READ, nsid: 1, prp1: buf.prp1, prp2: buf.prp2, cdw: rw(3, 1) });
    r.drv.ring(1);
    await irq.waitFor(() => irq.pinHigh(pin), 10_000, 'INTx asserted');
    const c = r.drv.poll(1, false);
    t.equal(c?.status, 0, 'the read completed');
    t.ok(irq.pinHigh(pin), 'still high after the entry is read but before the head doorbell');
    r.drv.setReg(0x1000 + 8 * 1 + 4, 1);
    await irq.waitFor(() => !irq.pinHigh(pin), 10_000, 'INTx deasserted');
    t.pass('the CQ head doorbell that drained the queue lowered the pin');
  } finally {
    r.close();
  }
});

test('several I/O queue pairs complete on their own MSI-X vectors, all in flight at once', async (t) => {
  const r = rig({ size: 4 << 20, opts: 'maxq=4', queues: 4 });
  try {
    const before = [1, 2, 3, 4].map((v) => r.drv.msixCount(v));
    const bufs = [1, 2, 3, 4].map((q) => {
      const b = r.drv.buffer(8 * 512);
      const data = Buffer.alloc(8 * 512, q);
      r.drv.fill(b, data);
      return b;
    });
    for (const q of [1, 2, 3, 4]) {
      for (let k = 0; k < 8; k++) {
        r.drv.queue(q, { opcode: OP_WRITE, nsid: 1, prp1: bufs[q - 1]!.prp1, prp2: bufs[q - 1]!.prp2, cdw: rw(q * 1000 + k * 8, 8) });
      }
    }
    for (const q of [1, 2, 3, 4]) r.drv.ring(q);
    for (const q of [1, 2, 3, 4]) {
      for (let k = 0; k < 8; k++) t.equal((await r.drv.wait(q)).status, 0, `queue ${q} command ${k}: success`);
    }
    await r.m.irq.waitFor(() => [1, 2, 3, 4].every((v, i) => r.drv.msixCount(v) > before[i]!), 10_000, 'an MSI-X message per queue');
    t.pass('each queue raised its own vector');
    for (const q of [1, 2, 3, 4]) {
      t.ok(fileBytes(r.disk, q * 1000 * 512, 64 * 512).equals(Buffer.alloc(64 * 512, q)), `queue ${q}'s writes are in the file`);
    }
  } finally {
    r.close();
  }
});

test('a queue that is full completes everything once the host consumes completions', async (t) => {
  const r = rig({ entries: 4 });
  try {
    // Three commands fill a 4-entry CQ; a fourth waits until the head doorbell frees a slot.
    const buf = r.drv.buffer(512);
    for (let i = 0; i < 3; i++) r.drv.queue(1, { opcode: 0x02, nsid: 1, prp1: buf.prp1, cdw: rw(i, 1) });
    r.drv.ring(1);
    const got = [];
    for (let i = 0; i < 3; i++) got.push(await r.drv.wait(1, 10_000, i === 2));
    t.deepEqual(got.map((c) => c.status), [0, 0, 0], 'three completions');
    for (let i = 0; i < 2; i++) r.drv.queue(1, { opcode: 0x02, nsid: 1, prp1: buf.prp1, cdw: rw(i, 1) });
    r.drv.ring(1);
    t.equal((await r.drv.wait(1)).status, 0, 'the queue wrapped: phase flipped and the next completion is seen');
    t.equal((await r.drv.wait(1)).status, 0, 'and the one after');
  } finally {
    r.close();
  }
});

test('ram=MiB: data written is read back; flush succeeds', async (t) => {
  const r = rig({ spec: 'ram=4' });
  try {
    const data = new Uint8Array(8192).map((_, i) => (i * 3) & 0xff);
    t.equal((await writeBlocks(r, 1, 10, data, 4096)).status, 0, 'write 2 LBAs of 4 KiB');
    const { c, data: back } = await readBlocks(r, 1, 10, 2, 4096);
    t.equal(c.status, 0, 'read back');
    t.ok(Buffer.from(back).equals(Buffer.from(data)), 'same bytes');
    t.equal((await r.drv.ioCmd(1, { opcode: OP_FLUSH, nsid: 1 })).status, 0, 'flush');
  } finally {
    r.close();
  }
});

test('the I/O engine: io_uring by default; aio=threads runs commands synchronously with the same results', async (t) => {
  for (const [opts, engines] of [['', ['io_uring', 'sync']], ['aio=threads', ['sync']]] as const) {
    const r = rig({ size: 1 << 20, opts, queues: 2 });
    try {
      const data = new Uint8Array(64 * 512).map((_, i) => (i * 5 + 1) & 0xff);
      t.equal((await writeBlocks(r, 1, 100, data, 512, 0, 1 << 30)).status, 0, `${opts || 'default'}: FUA write`);
      const { c, data: back } = await readBlocks(r, 2, 100, 64);
      t.ok(c.status === 0 && Buffer.from(back).equals(Buffer.from(data)), `${opts || 'default'}: read back on another queue`);
      const st = r.drv.controller.stats()!;
      // io_uring may be refused by the kernel (then the note says why): either way the answer is the same.
      t.ok((engines as readonly string[]).includes(st.engine), `${opts || 'default'}: engine ${st.engine}${st.engineNote ? ` (${st.engineNote})` : ''}`);
    } finally {
      r.close();
    }
  }
});

test('KVM wiring: unmasked MSI-X vectors get irqfds; shadow doorbells get ioeventfds, dropped on reset', async (t) => {
  const kvm = new RecordedKvm();
  const { m, drv } = nvmeMachine(['-s', `4,nvme,ram=4,maxq=2`], 4, { kvm });
  try {
    drv.enableMsix(3);
    drv.enable();
    const calls = kvm.take();
    t.equal(calls.filter((c) => c.op === 'irqfd' && !c.deassign).length, 3, 'an irqfd per unmasked vector (admin + 2 queues)');
    t.ok(calls.some((c) => c.op === 'setMsiRoute' && c.data === 0x41), 'vector 1 routed to its message');
    const shadow = drv.alloc.alloc(4096, 4096);
    const ei = drv.alloc.alloc(4096, 4096);
    t.equal(drv.adminCmd({ opcode: 0x7c, prp1: shadow, prp2: ei }).status, 0, 'Doorbell Buffer Config');
    const ev = kvm.take().filter((c) => c.op === 'ioeventfd');
    const want = [1, 2].flatMap((q) => [drv.bar0 + 0x1000 + 8 * q, drv.bar0 + 0x1004 + 8 * q]);
    t.deepEqual(ev.map((c) => c.addr).sort(), want.sort(), 'ioeventfds on every I/O SQ tail and CQ head doorbell (not the admin ones)');
    t.ok(ev.every((c) => c.len === 4 && !c.pio && c.data === undefined && !c.deassign), '4-byte MMIO, no data match');
    drv.disable();
    const gone = kvm.take().filter((c) => c.op === 'ioeventfd');
    t.equal(gone.filter((c) => c.deassign).length, 4, 'a controller reset removes them');
    // Masking a vector takes it off its irqfd (the PBA then holds it).
    drv.enable();
    kvm.take();
    const cap = drv.findCap(0x11);
    const tableReg = drv.cfgRead(cap + 4, 4);
    const tableBase = ((drv.cfgRead(0x10 + (tableReg & 7) * 4, 4) & ~0xf) >>> 0) + ((tableReg & ~7) >>> 0);
    m.mmioWrite(tableBase + 16 + 12, 1, 4);
    t.ok(drv.controller.stats() !== undefined, 'the controller keeps running with a masked vector');
  } finally {
    m.close();
  }
});
