// A hostile guest: PRP entries and lists that point outside RAM, are misaligned or too short, LBA ranges past
// the namespace, transfers beyond MDTS, bad namespaces and opcodes, SGLs and fused commands, doorbells for
// queues that do not exist or with values past the queue, queues placed outside RAM, and a controller reset
// while I/O is in flight. Each gets the spec's status (or is ignored and reported), the host never crashes,
// and the controller keeps working.
import { readFileSync } from 'node:fs';
import test from 'tape';
import { OP_READ, OP_WRITE, pattern, readBlocks, rig, rw, writeBlocks } from './helpers.js';
import { PAGE } from '../../harness/nvme-driver.js';

const OUTSIDE = 0x7ff00000; // above the 64 MiB of test RAM, below the 32-bit PCI hole

test('PRPs: outside RAM, misaligned entries and lists, list pointers outside RAM', async (t) => {
  const r = rig({ size: 4 << 20 });
  try {
    const d = r.drv;
    const io = (prp1: number | bigint, prp2: number | bigint, blocks: number, op = OP_READ) =>
      d.ioCmd(1, { opcode: op, nsid: 1, prp1, prp2, cdw: rw(0, blocks) });
    const page = d.alloc.alloc(PAGE, PAGE);
    const page2 = d.alloc.alloc(PAGE, PAGE);
    t.equal((await io(OUTSIDE, 0, 1)).status, 0x004, 'PRP1 outside RAM: Data Transfer Error');
    t.equal((await io(page + 2, 0, 1)).status, 0x013, 'PRP1 not dword aligned: PRP Offset Invalid');
    t.equal((await io(page, page2 + 512, 16)).status, 0x013, 'PRP2 (a data page) with an offset: PRP Offset Invalid');
    t.equal((await io(page, OUTSIDE, 16)).status, 0x004, 'PRP2 data page outside RAM: Data Transfer Error');
    t.equal((await io(page, 1n << 60n, 16)).status, 0x004, 'PRP2 far beyond any memory: Data Transfer Error');
    // Three pages: PRP2 is a list.
    const list = d.alloc.alloc(PAGE, PAGE);
    d.m.memory.view.setBigUint64(list, BigInt(page2), true);
    d.m.memory.view.setBigUint64(list + 8, BigInt(OUTSIDE), true);
    t.equal((await io(page, list, 24)).status, 0x004, 'a list entry outside RAM: Data Transfer Error');
    d.m.memory.view.setBigUint64(list + 8, BigInt(page2 + 4), true);
    t.equal((await io(page, list, 24)).status, 0x013, 'a list entry with an offset: PRP Offset Invalid');
    t.equal((await io(page, list + 4, 24)).status, 0x013, 'a list pointer not qword aligned: PRP Offset Invalid');
    t.equal((await io(page, OUTSIDE, 24)).status, 0x004, 'a list pointer outside RAM: Data Transfer Error');
    // 2 MiB from a 512-byte offset touches 513 pages: the list's last entry chains to a second list page.
    // A chain pointer outside RAM must be refused, not followed.
    const big = d.alloc.alloc(PAGE, PAGE);
    for (let i = 0; i < 511; i++) d.m.memory.view.setBigUint64(big + i * 8, BigInt(page2), true);
    d.m.memory.view.setBigUint64(big + 511 * 8, BigInt(OUTSIDE), true);
    t.equal((await io(page + 512, big, 4096)).status, 0x004, 'a chained list page outside RAM: Data Transfer Error');
    d.m.memory.view.setBigUint64(big + 511 * 8, BigInt(page2 + 8), true);
    t.equal((await io(page + 512, big, 4096)).status, 0x013, 'a chain pointer with an offset: PRP Offset Invalid');
    t.equal((await io(page, 0, 1, OP_WRITE)).status, 0, 'a good write still succeeds');
  } finally {
    r.close();
  }
});

test('failed writes leave the file untouched', async (t) => {
  const r = rig();
  try {
    const before = readFileSync(r.disk);
    const page = r.drv.alloc.alloc(PAGE, PAGE);
    const c = await r.drv.ioCmd(1, { opcode: OP_WRITE, nsid: 1, prp1: page, prp2: OUTSIDE, cdw: rw(0, 16) });
    t.equal(c.status, 0x004, 'write with a bad PRP2: Data Transfer Error');
    t.ok(readFileSync(r.disk).equals(before), 'nothing was written (PRPs are checked before any byte moves)');
  } finally {
    r.close();
  }
});

test('LBA ranges, MDTS, namespaces, opcodes, SGLs and fused commands', async (t) => {
  const r = rig({ size: 4 << 20 });
  try {
    const d = r.drv;
    const buf = d.buffer(PAGE);
    const cmd = (over: Partial<Parameters<typeof d.ioCmd>[1]>) => d.ioCmd(1, { opcode: OP_READ, nsid: 1, prp1: buf.prp1, prp2: buf.prp2, cdw: rw(0, 8), ...over });
    t.equal((await cmd({ cdw: rw(8192, 1) })).status, 0x080, 'first LBA past the end: LBA Out of Range');
    t.equal((await cmd({ cdw: rw(8191, 2) })).status, 0x080, 'a range running past the end: LBA Out of Range');
    t.equal((await cmd({ cdw: rw(1n << 63n, 1) })).status, 0x080, 'a huge LBA (no wrap-around): LBA Out of Range');
    t.equal((await cmd({ cdw: rw(8191, 1) })).status, 0, 'the last LBA is fine');
    const huge = d.buffer(2 << 20);
    t.equal((await d.ioCmd(1, { opcode: OP_READ, nsid: 1, prp1: huge.prp1, prp2: huge.prp2, cdw: rw(0, 4097) })).status, 0x002,
      'more than MDTS (2 MiB): Invalid Field');
    t.equal((await cmd({ nsid: 2 })).status, 0x00b, 'namespace 2: Invalid Namespace');
    t.equal((await cmd({ nsid: 0 })).status, 0x00b, 'namespace 0: Invalid Namespace');
    t.equal((await cmd({ opcode: 0x7f })).status, 0x001, 'an unknown opcode: Invalid Command Opcode');
    t.equal((await cmd({ flags: 1 << 6 })).status, 0x002, 'an SGL (PSDT 01b): Invalid Field');
    t.equal((await cmd({ flags: 1 })).status, 0x002, 'a fused command: Invalid Field');
    const ok = await readBlocks(r, 1, 3, 1);
    t.ok(Buffer.from(ok.data).equals(Buffer.from(Array.from({ length: 512 }, (_, i) => pattern(3 * 512 + i)))), 'then reads still work');
  } finally {
    r.close();
  }
});

test('a read-only disk: writes are refused with Namespace Write Protected', async (t) => {
  const r = rig({ opts: 'ro' });
  try {
    const c = await writeBlocks(r, 1, 0, new Uint8Array(512));
    t.equal(c.status, 0x020, 'write: Namespace is Write Protected');
    const z = await r.drv.ioCmd(1, { opcode: 0x08, nsid: 1, cdw: rw(0, 1) });
    t.equal(z.status, 0x020, 'write zeroes: Namespace is Write Protected');
    t.equal((await readBlocks(r, 1, 0, 1)).c.status, 0, 'reads work');
  } finally {
    r.close();
  }
});

test('doorbells: unknown queues, values past the queue, admin doorbells out of range; nothing breaks', async (t) => {
  const r = rig({ opts: 'maxq=2' });
  try {
    const d = r.drv;
    d.setReg(0x1000 + 8 * 2, 3); // SQ 2 does not exist
    d.setReg(0x1000 + 8 * 1 + 4, 9999); // CQ 1 head past its size
    d.setReg(0x1000 + 8 * 1, 64); // SQ 1 tail == size
    d.setReg(0x3ff8, 1); // far past the last queue
    d.setReg(0x1000, 999); // admin SQ tail past its size
    d.setReg(0x1004, 999); // admin CQ head past its size
    d.setReg(0x1002, 1); // misaligned: dropped
    const end = Date.now() + 10_000;
    while (d.controller.errorLogCount < 6n && Date.now() < end) await new Promise((res) => setTimeout(res, 1));
    t.equal(d.controller.errorLogCount, 6n, 'six bad doorbell writes were logged');
    t.equal((await readBlocks(r, 1, 0, 1)).c.status, 0, 'I/O on queue 1 still works');
    t.equal(d.identify(1).status, 0, 'the admin queue still works');
  } finally {
    r.close();
  }
});

test('a controller reset while I/O is in flight stops the queues cleanly and the controller comes back', async (t) => {
  const r = rig({ size: 8 << 20, entries: 64 });
  try {
    const d = r.drv;
    const q = d.io.get(1)!;
    const bufs = Array.from({ length: 24 }, () => d.buffer(1 << 20));
    for (let i = 0; i < 24; i++) d.queue(1, { opcode: OP_READ, nsid: 1, prp1: bufs[i]!.prp1, prp2: bufs[i]!.prp2, cdw: rw((i % 8) * 2048, 2048) });
    d.ring(1);
    d.disable(); // CC.EN = 0 with commands queued and running
    t.equal(d.reg(0x1c) & 1, 0, 'not ready after the reset');
    const cq = d.m.memory.read(q.cqGpa, 64 * 16);
    await new Promise((res) => setTimeout(res, 100));
    t.ok(Buffer.from(d.m.memory.read(q.cqGpa, 64 * 16)).equals(Buffer.from(cq)), 'no completion is written after the reset returns');
    t.equal(d.enable() & 3, 1, 'enabled again');
    const { cq: c1, sq: s1 } = d.createQueuePair(1, 16, 1);
    t.deepEqual([c1.status, s1?.status], [0, 0], 'queue 1 can be created again (the old one is gone)');
    t.equal((await readBlocks(r, 1, 5, 4)).c.status, 0, 'and I/O works');
  } finally {
    r.close();
  }
});

test('queues whose memory is not guest RAM are refused; an admin queue off RAM is fatal at enable', async (t) => {
  const r = rig({ queues: 0 });
  try {
    const d = r.drv;
    const last = d.m.memory.size - PAGE;
    const cq = d.adminCmd({ opcode: 0x05, prp1: last, cdw: [(1023 << 16) | 1, (1 << 16) | 3] });
    t.equal(cq.status, 0x002, 'a 1024-entry CQ running off the end of RAM: Invalid Field');
    t.equal(d.adminCmd({ opcode: 0x05, prp1: last, cdw: [(255 << 16) | 1, (1 << 16) | 3] }).status, 0, 'one that fits in the last page works');
    const sq = d.adminCmd({ opcode: 0x01, prp1: last, cdw: [(1023 << 16) | 1, (1 << 16) | 1] });
    t.equal(sq.status, 0x002, 'an SQ running off the end of RAM: Invalid Field');
    // The admin queues are checked when the controller is enabled.
    d.setReg(0x14, 0);
    d.setReg(0x24, (15 << 16) | 4095);
    d.setReg64(0x28, BigInt(last));
    d.setReg(0x14, (6 << 16) | (4 << 20) | 1);
    t.equal(d.reg(0x1c) & 3, 2, 'an admin SQ of 4096 entries running off RAM: Controller Fatal Status');
  } finally {
    r.close();
  }
});
