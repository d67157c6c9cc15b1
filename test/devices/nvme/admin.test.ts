// The admin command set: I/O queue creation and deletion with every validity check, Get/Set Features,
// log pages, Asynchronous Event Requests, Abort, Format NVM, and Doorbell Buffer Config with the shadow
// doorbell / EventIdx protocol Linux's driver follows.
import { readFileSync } from 'node:fs';
import test from 'tape';
import { OP_READ, OP_WRITE, rig, rw } from './helpers.js';
import { PAGE } from '../../harness/nvme-driver.js';

test('Create I/O CQ/SQ: every invalid field gets its status code', async (t) => {
  const r = rig({ opts: 'maxq=2,qsz=64', queues: 0 });
  try {
    const d = r.drv;
    const page = d.alloc.alloc(PAGE * 4, PAGE);
    const cq = (qid: number, entries: number, flags: number, vector = 1, prp = page) =>
      d.adminCmd({ opcode: 0x05, prp1: prp, cdw: [((entries - 1) << 16) | qid, (vector << 16) | flags] }).status;
    const sq = (qid: number, entries: number, cqid: number, flags = 1, prp = page + PAGE) =>
      d.adminCmd({ opcode: 0x01, prp1: prp, cdw: [((entries - 1) << 16) | qid, (cqid << 16) | flags] }).status;
    t.equal(cq(0, 16, 3), 0x101, 'CQ id 0: Invalid Queue Identifier');
    t.equal(cq(3, 16, 3), 0x101, 'CQ id above maxq: Invalid Queue Identifier');
    t.equal(cq(1, 65, 3), 0x102, 'more entries than MQES + 1: Invalid Queue Size');
    t.equal(cq(1, 1, 3), 0x102, 'one entry: Invalid Queue Size');
    t.equal(cq(1, 16, 2), 0x002, 'not physically contiguous (PC = 0): Invalid Field');
    t.equal(cq(1, 16, 3, 3), 0x108, 'vector beyond the MSI-X table: Invalid Interrupt Vector');
    t.equal(cq(1, 16, 3, 1, page + 8), 0x002, 'a base that is not page aligned: Invalid Field');
    t.equal(cq(1, 16, 3, 1, 0x7fff0000), 0x002, 'a base outside guest RAM: Invalid Field');
    t.equal(cq(1, 16, 3), 0, 'a good CQ 1');
    t.equal(cq(1, 16, 3), 0x101, 'CQ 1 again: Invalid Queue Identifier');
    t.equal(sq(1, 16, 0), 0x100, 'SQ on CQ 0: Completion Queue Invalid');
    t.equal(sq(1, 16, 2), 0x100, 'SQ on a CQ that does not exist: Completion Queue Invalid');
    t.equal(sq(0, 16, 1), 0x101, 'SQ id 0: Invalid Queue Identifier');
    t.equal(sq(1, 65, 1), 0x102, 'SQ larger than MQES + 1: Invalid Queue Size');
    t.equal(sq(1, 16, 1, 0), 0x002, 'SQ not contiguous: Invalid Field');
    t.equal(sq(1, 16, 1), 0, 'a good SQ 1 on CQ 1');
    t.equal(sq(1, 16, 1), 0x101, 'SQ 1 again: Invalid Queue Identifier');
    const del = (op: number, qid: number) => d.adminCmd({ opcode: op, cdw: [qid] }).status;
    t.equal(del(0x04, 1), 0x10c, 'delete CQ 1 while SQ 1 uses it: Invalid Queue Deletion');
    t.equal(del(0x00, 0), 0x101, 'delete SQ 0 (admin): Invalid Queue Identifier');
    t.equal(del(0x00, 2), 0x101, 'delete an SQ that does not exist: Invalid Queue Identifier');
    t.equal(del(0x00, 1), 0, 'delete SQ 1');
    t.equal(del(0x04, 1), 0, 'then CQ 1');
    t.equal(del(0x04, 0), 0x101, 'delete CQ 0: Invalid Queue Identifier');
    t.equal(d.adminCmd({ opcode: 0xc1 }).status, 0x001, 'an unknown admin opcode: Invalid Command Opcode');
    t.equal(d.adminCmd({ opcode: 0x06, flags: 1, cdw: [1], prp1: page }).status, 0x002, 'a fused admin command: Invalid Field');
  } finally {
    r.close();
  }
});

test('Get/Set Features: queues, write cache, temperature, vectors, power, saveability', async (t) => {
  const r = rig({ opts: 'maxq=8', queues: 0 });
  try {
    const d = r.drv;
    const set = (fid: number, v: number, sv = 0) => d.adminCmd({ opcode: 0x09, cdw: [fid | sv, v] });
    const get = (fid: number, sel = 0, cdw11 = 0) => d.adminCmd({ opcode: 0x0a, cdw: [fid | (sel << 8), cdw11] });
    const nq = set(0x07, (63 << 16) | 63);
    t.equal(nq.status, 0, 'Set Number of Queues');
    t.equal(nq.dw0, (7 << 16) | 7, '... allocates maxq SQs and CQs (0\'s based)');
    t.equal(set(0x07, 0xffff).status, 0x002, '65536 queues: Invalid Field');
    t.equal(get(0x07).dw0, (7 << 16) | 7, 'Get Number of Queues');
    t.equal(get(0x06).dw0, 1, 'write cache on by default');
    t.equal(set(0x06, 0).status, 0, 'write cache off');
    t.equal(get(0x06).dw0, 0, 'reads back off');
    t.equal(get(0x06, 1).dw0, 1, 'default is on');
    t.equal(get(0x06, 3).dw0 & 0b111, 0b100, 'capabilities: changeable, not saveable');
    t.equal(set(0x06, 1, 1 << 31).status, 0x10d, 'save: Feature Identifier Not Saveable');
    t.equal(set(0x04, 330).status, 0, 'over-temperature threshold 330 K');
    t.equal(get(0x04).dw0, 330, 'reads back');
    t.equal(set(0x04, (1 << 20) | 250).status, 0, 'under-temperature threshold');
    t.equal(get(0x04, 0, 1 << 20).dw0, 250, 'reads back');
    t.equal(set(0x04, (3 << 16) | 330).status, 0x002, 'a temperature sensor that does not exist: Invalid Field');
    t.equal(set(0x09, 9 | (1 << 16)).status, 0x002, 'vector config beyond the table: Invalid Field');
    t.equal(set(0x09, 3 | (1 << 16)).status, 0, 'coalescing disabled on vector 3');
    t.equal(get(0x09, 0, 3).dw0, 3 | (1 << 16), 'reads back with CD');
    t.equal(set(0x02, 1).status, 0x002, 'power state 1 (NPSS is 0): Invalid Field');
    t.equal(set(0x02, 0).status, 0, 'power state 0');
    t.equal(set(0x08, 0x0a04).status, 0, 'interrupt coalescing');
    t.equal(get(0x08).dw0, 0x0a04, 'reads back');
    t.equal(set(0x0b, 0x1ff).status, 0, 'async event configuration');
    t.equal(get(0x0b).dw0, 0x1ff, 'reads back');
    t.equal(get(0x0f).status, 0x002, 'an unsupported feature (keep alive): Invalid Field');
    // A controller reset restores the defaults.
    d.enable();
    t.equal(get(0x06).dw0, 1, 'write cache back on after reset');
    t.equal(get(0x04).dw0, 343, 'over-temperature threshold back to WCTEMP');
  } finally {
    r.close();
  }
});

test('log pages: SMART counts the I/O, firmware slot, error log; offsets and bad pages', async (t) => {
  const r = rig();
  try {
    const d = r.drv;
    const buf = d.buffer(64 * 512);
    for (let i = 0; i < 3; i++) await d.ioCmd(1, { opcode: OP_READ, nsid: 1, prp1: buf.prp1, prp2: buf.prp2, cdw: rw(0, 64) });
    await d.ioCmd(1, { opcode: OP_WRITE, nsid: 1, prp1: buf.prp1, prp2: buf.prp2, cdw: rw(0, 64) });
    const log = (lid: number, bytes: number, nsid = 0xffffffff, offset = 0) => {
      const b = d.alloc.alloc(PAGE, PAGE);
      const numd = bytes / 4 - 1;
      const c = d.adminCmd({ opcode: 0x02, nsid, prp1: b, cdw: [lid | ((numd & 0xffff) << 16), numd >>> 16, offset, 0] });
      return { status: c.status, data: Buffer.from(d.m.memory.read(b, bytes)) };
    };
    const smart = log(0x02, 512);
    t.equal(smart.status, 0, 'SMART / Health log');
    t.equal(smart.data.readUInt16LE(1), 300, 'composite temperature in kelvin');
    t.equal(smart.data[3], 100, 'available spare 100%');
    t.equal(smart.data.readBigUInt64LE(64), 3n, 'host read commands: 3');
    t.equal(smart.data.readBigUInt64LE(80), 1n, 'host write commands: 1');
    t.equal(smart.data.readBigUInt64LE(32), 1n, 'data units read: 96 KiB rounds up to 1 (thousand 512-byte units)');
    t.equal(log(0x02, 512, 1).status, 0x002, 'SMART for one namespace (LPA bit 0 clear): Invalid Field');
    const fw = log(0x03, 512);
    t.equal(fw.data[0], 1, 'firmware slot 1 active');
    t.equal(fw.data.toString('latin1', 8, 16).trimEnd(), '1.0', 'slot 1 revision');
    const part = log(0x02, 8, 0xffffffff, 1 << 2);
    t.equal(part.data.readUInt8(0), 10, 'a log page read from dword offset 1 starts at byte 4 (spare threshold)');
    t.equal(log(0x02, 512, 0xffffffff, 2).status, 0x002, 'an offset that is not dword aligned: Invalid Field');
    t.equal(log(0x7e, 512).status, 0x109, 'an unsupported page: Invalid Log Page');
    t.equal(log(0x01, 64).status, 0, 'error information log');
  } finally {
    r.close();
  }
});

/** Waits for `pred`, checking every millisecond; fails after 10 s (it says what it waited for). */
async function until(pred: () => boolean, what = 'the worker\'s report'): Promise<void> {
  const end = Date.now() + 10_000;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 1));
  }
}

test('Asynchronous Event Requests: the limit, a doorbell error reported and re-armed by its log page', async (t) => {
  const r = rig({ opts: 'maxq=2' });
  try {
    const d = r.drv;
    const aer = () => d.queue(0, { opcode: 0x0c });
    const cids = [aer(), aer(), aer(), aer()];
    d.ring(0);
    t.equal(d.poll(0), undefined, 'four AERs (AERL + 1) stay outstanding');
    aer();
    d.ring(0);
    const over = d.poll(0)!;
    t.equal(over.status, 0x105, 'a fifth: Asynchronous Event Request Limit Exceeded');
    // The guest writes the doorbell of a queue that does not exist.
    d.setReg(0x1000 + 8 * 2, 1);
    await until(() => d.controller.errorLogCount === 1n); // the worker reports it through the event loop
    const ev = d.poll(0);
    t.ok(ev, 'an AER completes');
    t.ok(cids.includes(ev!.cid), '... one of the outstanding ones');
    t.equal(ev!.dw0 & 7, 0, 'type: error status');
    t.equal((ev!.dw0 >>> 8) & 0xff, 0, 'info: write to an invalid doorbell register');
    t.equal((ev!.dw0 >>> 16) & 0xff, 1, 'log page: error information');
    d.setReg(0x1000 + 8 * 1, 9999);
    await until(() => d.controller.errorLogCount === 2n);
    t.equal(d.poll(0), undefined, 'a second error is held until the host reads the error log');
    const b = d.alloc.alloc(PAGE, PAGE);
    t.equal(d.adminCmd({ opcode: 0x02, prp1: b, cdw: [0x01 | (15 << 16)] }).status, 0, 'read the error log');
    const next = d.poll(0);
    t.ok(next, 'then the held event is reported');
    t.equal((next!.dw0 >>> 8) & 0xff, 1, 'info: invalid doorbell write value');
    const entry = Buffer.from(d.m.memory.read(b, 64));
    t.ok(entry.readBigUInt64LE(0) >= 1n, 'the error log entry has a count');
  } finally {
    r.close();
  }
});

test('Abort declines; Format NVM erases with SES=1 and refuses other formats', async (t) => {
  const r = rig({ size: 1 << 20 });
  try {
    const d = r.drv;
    const ab = d.adminCmd({ opcode: 0x08, cdw: [1 | (5 << 16)] });
    t.equal(ab.status, 0, 'Abort completes');
    t.equal(ab.dw0 & 1, 1, '... saying the command was not aborted');
    t.equal(d.adminCmd({ opcode: 0x80, nsid: 1, cdw: [1] }).status, 0x10a, 'LBA format 1: Invalid Format');
    t.equal(d.adminCmd({ opcode: 0x80, nsid: 1, cdw: [1 << 5] }).status, 0x10a, 'protection information: Invalid Format');
    t.equal(d.adminCmd({ opcode: 0x80, nsid: 1, cdw: [2 << 9] }).status, 0x002, 'cryptographic erase: Invalid Field');
    t.equal(d.adminCmd({ opcode: 0x80, nsid: 3, cdw: [0] }).status, 0x00b, 'namespace 3: Invalid Namespace');
    t.equal(d.adminCmd({ opcode: 0x80, nsid: 1, cdw: [0] }).status, 0, 'format without erase');
    t.notOk(readFileSync(r.disk).equals(Buffer.alloc(1 << 20)), '... keeps the data');
    t.equal(d.adminCmd({ opcode: 0x80, nsid: 1, cdw: [1 << 9] }).status, 0, 'format with user data erase');
    t.ok(readFileSync(r.disk).equals(Buffer.alloc(1 << 20)), '... leaves every block zero');
  } finally {
    r.close();
  }
});

/** Linux's nvme_dbbuf_need_event: ring only when the event index lies in (old, new]. */
const needEvent = (eventIdx: number, next: number, old: number): boolean =>
  ((next - eventIdx - 1) & 0xffff) < ((next - old) & 0xffff);

test('shadow doorbells: commands complete through the shadow tail and head, ringing only when EventIdx asks', async (t) => {
  const r = rig({ queues: 0 });
  try {
    const d = r.drv;
    const shadow = d.alloc.alloc(PAGE, PAGE);
    const eventIdx = d.alloc.alloc(PAGE, PAGE);
    t.equal(d.adminCmd({ opcode: 0x7c, prp1: shadow, prp2: d.alloc.alloc(PAGE, PAGE) + 8 }).status, 0x002,
      'EventIdx buffer not page aligned: Invalid Field');
    t.equal(d.adminCmd({ opcode: 0x7c, prp1: shadow, prp2: eventIdx }).status, 0, 'Doorbell Buffer Config');
    const entries = 4;
    t.equal(d.createQueuePair(1, entries, 1).sq?.status, 0, 'queue pair 1 after it');
    const v = d.m.memory.view;
    let tail = 0;
    let head = 0;
    let phase = true;
    let rings = 0;
    const q = d.io.get(1)!;
    const buf = d.buffer(512);
    const n = 12; // three times around a 4-entry CQ: only possible if the worker reads the shadow head
    for (let i = 0; i < n; i++) {
      d.queue(1, { opcode: OP_READ, nsid: 1, prp1: buf.prp1, cdw: rw(i, 1) });
      const old = tail;
      tail = q.sqTail;
      v.setUint32(shadow + 8, tail, true);
      if (needEvent(v.getUint32(eventIdx + 8, true), tail, old)) {
        d.setReg(0x1008, tail);
        rings++;
      }
      const until = Date.now() + 10_000;
      for (;;) {
        const dw3 = v.getUint32(q.cqGpa + head * 16 + 12, true);
        if (((dw3 >>> 16) & 1) === (phase ? 1 : 0)) {
          t.equal(dw3 >>> 17, 0, `command ${i}: success`);
          break;
        }
        if (Date.now() > until) throw new Error(`command ${i} never completed`);
        await new Promise((res) => setTimeout(res, 1));
      }
      const oldHead = head;
      head = (head + 1) % entries;
      if (head === 0) phase = !phase;
      v.setUint32(shadow + 12, head, true);
      if (needEvent(v.getUint32(eventIdx + 12, true), head, oldHead)) d.setReg(0x100c, head);
    }
    t.ok(rings <= n, `${rings} SQ doorbell writes for ${n} commands`);
    const st = r.drv.controller.stats()!;
    t.ok(st.shadowReads > 0, 'the worker read the shadow doorbells');
    t.equal(v.getUint32(eventIdx + 8, true), tail, 'an idle worker leaves EventIdx at the tail it saw');
  } finally {
    r.close();
  }
});
