// The guest's side of an NVMe controller, for tests and benchmarks without a VM: a machine whose RAM the
// native queue worker can reach (VirtioTestMachine), a driver that brings the controller up as Linux's nvme
// driver does (registers, admin queue, MSI-X, I/O queue pairs), builds commands and PRP lists, and waits for
// completions by their phase tag. Hostile tests use the raw submit to build what no correct driver would.
import { parseCommandLine } from '../../src/cli/parse.js';
import { initPci } from '../../src/platform/pci/init.js';
import type { PciBus } from '../../src/platform/pci/bus.js';
import { memoryLayout, GiB } from '../../src/vm/memmap.js';
import type { NvmeController } from '../../devices/nvme/device.js';
import { GuestAlloc, PciFunctionAccess, VirtioTestMachine, type VirtioTestMachineOptions } from './virtio-driver.js';

export const PAGE = 4096;

/** One command as a driver fills it; unset fields are zero. */
export interface NvmeCommand {
  opcode: number;
  /** CDW0 bits 15:8 (FUSE, PSDT) */
  flags?: number;
  nsid?: number;
  prp1?: bigint | number;
  prp2?: bigint | number;
  /** CDW10..CDW15 */
  cdw?: number[];
}

export interface Completion {
  dw0: number;
  sqHead: number;
  sqId: number;
  cid: number;
  /** SCT << 8 | SC */
  status: number;
  dnr: boolean;
}

interface QueuePair {
  qid: number;
  entries: number;
  sqGpa: number;
  cqGpa: number;
  sqTail: number;
  cqHead: number;
  phase: boolean;
  nextCid: number;
}

/** Decodes the CQE at `gpa` if its phase tag equals `phase`. */
function setU64(v: DataView, at: number, x: bigint | number): void {
  if (typeof x === 'bigint') v.setBigUint64(at, x, true);
  else {
    v.setUint32(at, x >>> 0, true);
    v.setUint32(at + 4, Math.floor(x / 2 ** 32) >>> 0, true);
  }
}

function readCqe(m: VirtioTestMachine, gpa: number, phase: boolean): Completion | undefined {
  const v = m.memory.view;
  const dw3 = v.getUint32(gpa + 12, true);
  if (((dw3 >>> 16) & 1) !== (phase ? 1 : 0)) return undefined;
  const sf = dw3 >>> 17;
  return {
    dw0: v.getUint32(gpa, true),
    sqHead: v.getUint16(gpa + 8, true),
    sqId: v.getUint16(gpa + 10, true),
    cid: dw3 & 0xffff,
    status: ((sf >>> 8) & 7) << 8 | (sf & 0xff),
    dnr: (sf & (1 << 14)) !== 0,
  };
}

export class NvmeDriver extends PciFunctionAccess {
  readonly bar0: number;
  readonly admin: QueuePair;
  readonly io = new Map<number, QueuePair>();
  /** guest buffers above the queues */
  readonly alloc: GuestAlloc;

  constructor(m: VirtioTestMachine, bus: PciBus, slot: number) {
    super(m, bus, slot);
    this.bar0 = (this.cfgRead(0x10, 4) & ~0xf) >>> 0;
    if (this.cfgRead(0x14, 4) !== 0) throw new Error('test harness expects BAR0 below 4 GiB');
    this.admin = { qid: 0, entries: 0, sqGpa: 0, cqGpa: 0, sqTail: 0, cqHead: 0, phase: true, nextCid: 0 };
    this.alloc = new GuestAlloc(0x100000, m.memory.size);
  }

  get controller(): NvmeController {
    return this.fn.model as NvmeController;
  }

  reg(off: number): number {
    return this.m.mmioRead(this.bar0 + off, 4) >>> 0;
  }
  setReg(off: number, value: number): void {
    this.m.mmioWrite(this.bar0 + off, value >>> 0, 4);
  }
  reg64(off: number): bigint {
    return BigInt(this.reg(off)) | (BigInt(this.reg(off + 4)) << 32n);
  }
  setReg64(off: number, value: bigint): void {
    this.setReg(off, Number(value & 0xffffffffn));
    this.setReg(off + 4, Number(value >> 32n));
  }

  /** Programs `count` MSI-X entries (address 0xfee00000, data 0x40 + i) and enables MSI-X. */
  enableMsix(count: number): void {
    const cap = this.findCap(0x11);
    const tableReg = this.cfgRead(cap + 4, 4);
    const barReg = this.cfgRead(0x10 + (tableReg & 7) * 4, 4);
    const base = ((barReg & ~0xf) >>> 0) + ((tableReg & ~7) >>> 0);
    for (let i = 0; i < count; i++) {
      this.m.mmioWrite(base + i * 16, 0xfee00000, 4);
      this.m.mmioWrite(base + i * 16 + 4, 0, 4);
      this.m.mmioWrite(base + i * 16 + 8, 0x40 + i, 4);
      this.m.mmioWrite(base + i * 16 + 12, 0, 4);
    }
    this.cfgWrite(cap + 2, 2, this.cfgRead(cap + 2, 2) | 0x8000);
  }

  /** MSI messages delivered so far for MSI-X vector `v` (data 0x40 + v). */
  msixCount(v: number): number {
    return this.m.irq.events.filter((e) => e.kind === 'msi' && e.data === 0x40 + v).length;
  }

  /** Disables, sets up the admin queue pair and enables with 64/16-byte I/O entries; returns CSTS. */
  enable(adminEntries = 32, cc = (6 << 16) | (4 << 20) | 1): number {
    this.setReg(0x14, 0);
    const a = this.admin;
    a.entries = adminEntries;
    a.sqGpa ||= this.alloc.alloc(64 * 4096, PAGE);
    a.cqGpa ||= this.alloc.alloc(16 * 4096, PAGE);
    this.m.memory.bytes.fill(0, a.cqGpa, a.cqGpa + 16 * adminEntries);
    a.sqTail = 0;
    a.cqHead = 0;
    a.phase = true;
    this.setReg(0x24, ((adminEntries - 1) << 16) | (adminEntries - 1));
    this.setReg64(0x28, BigInt(a.sqGpa));
    this.setReg64(0x30, BigInt(a.cqGpa));
    this.setReg(0x14, cc);
    return this.reg(0x1c);
  }

  /** Clears CC.EN (controller reset) and forgets the I/O queues. */
  disable(): void {
    this.setReg(0x14, 0);
    this.io.clear();
  }

  // Written in place, without a buffer per command: the no-VM benches (bench/nvme) time this driver with the device.
  private writeSqe(q: QueuePair, c: NvmeCommand, cid: number): void {
    const at = q.sqGpa + q.sqTail * 64;
    const v = this.m.memory.view;
    this.m.memory.bytes.fill(0, at, at + 64);
    v.setUint32(at, (c.opcode & 0xff) | ((c.flags ?? 0) << 8) | (cid << 16), true);
    v.setUint32(at + 4, c.nsid ?? 0, true);
    setU64(v, at + 24, c.prp1 ?? 0);
    setU64(v, at + 32, c.prp2 ?? 0);
    const cdw = c.cdw ?? [];
    for (let i = 0; i < cdw.length; i++) v.setUint32(at + 40 + 4 * i, cdw[i]! >>> 0, true);
    q.sqTail = (q.sqTail + 1) % q.entries;
  }

  /** Places a command in queue `qid` without ringing; returns its command id. */
  queue(qid: number, c: NvmeCommand): number {
    const q = qid === 0 ? this.admin : this.io.get(qid);
    if (!q) throw new Error(`no queue ${qid}`);
    const cid = q.nextCid;
    q.nextCid = (q.nextCid + 1) & 0xffff;
    this.writeSqe(q, c, cid);
    return cid;
  }

  /** Rings the SQ tail doorbell of `qid` with what was queued (or `value`). */
  ring(qid: number, value?: number): void {
    const q = qid === 0 ? this.admin : this.io.get(qid)!;
    this.setReg(0x1000 + 8 * qid, value ?? q.sqTail);
  }

  /** Takes the next completion of `qid` if one is posted, and rings the CQ head doorbell. */
  poll(qid: number, ringHead = true): Completion | undefined {
    const q = qid === 0 ? this.admin : this.io.get(qid)!;
    const c = readCqe(this.m, q.cqGpa + q.cqHead * 16, q.phase);
    if (!c) return undefined;
    q.cqHead = (q.cqHead + 1) % q.entries;
    if (q.cqHead === 0) q.phase = !q.phase;
    if (ringHead) this.setReg(0x1000 + 8 * qid + 4, q.cqHead);
    return c;
  }

  /** An admin command: the controller runs it while the doorbell write is handled. */
  adminCmd(c: NvmeCommand): Completion {
    const cid = this.queue(0, c);
    this.ring(0);
    const done = this.poll(0);
    if (!done) throw new Error(`admin opcode 0x${c.opcode.toString(16)} did not complete`);
    if (done.cid !== cid) throw new Error(`admin completion for cid ${done.cid}, expected ${cid}`);
    return done;
  }

  /** Identify into a fresh page; returns the status and the data. */
  identify(cns: number, nsid = 0): { status: number; data: Uint8Array } {
    const buf = this.alloc.alloc(PAGE, PAGE);
    this.m.memory.bytes.fill(0, buf, buf + PAGE);
    const c = this.adminCmd({ opcode: 0x06, nsid, prp1: buf, cdw: [cns] });
    return { status: c.status, data: this.m.memory.read(buf, PAGE) };
  }

  /** Creates CQ `qid` (vector `vector`) and its SQ, as nvme_create_queue does. */
  createQueuePair(qid: number, entries: number, vector = qid, ien = true): { cq: Completion; sq?: Completion } {
    const cqGpa = this.alloc.alloc(Math.ceil((entries * 16) / PAGE) * PAGE, PAGE);
    const sqGpa = this.alloc.alloc(Math.ceil((entries * 64) / PAGE) * PAGE, PAGE);
    this.m.memory.bytes.fill(0, cqGpa, cqGpa + entries * 16);
    const cq = this.adminCmd({ opcode: 0x05, prp1: cqGpa, cdw: [((entries - 1) << 16) | qid, (vector << 16) | (ien ? 2 : 0) | 1] });
    if (cq.status !== 0) return { cq };
    const sq = this.adminCmd({ opcode: 0x01, prp1: sqGpa, cdw: [((entries - 1) << 16) | qid, (qid << 16) | 1] });
    if (sq.status === 0) this.io.set(qid, { qid, entries, sqGpa, cqGpa, sqTail: 0, cqHead: 0, phase: true, nextCid: 0 });
    return { cq, sq };
  }

  /** Waits for the next completion on I/O queue `qid` (the worker is another thread). */
  async wait(qid: number, timeoutMs = 10_000, ringHead = true): Promise<Completion> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const c = this.poll(qid, ringHead);
      if (c) return c;
      if (Date.now() > until) throw new Error(`no completion on queue ${qid} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Submits one I/O command, rings, and waits for its completion. */
  async ioCmd(qid: number, c: NvmeCommand): Promise<Completion> {
    const cid = this.queue(qid, c);
    this.ring(qid);
    const done = await this.wait(qid);
    if (done.cid !== cid) throw new Error(`completion for cid ${done.cid}, expected ${cid}`);
    return done;
  }

  /**
   * A data buffer of `len` bytes starting `offset` bytes into its first page, with PRP1/PRP2 (and a PRP
   * list when more than two pages are touched), as nvme_pci_setup_prps lays them out.
   */
  buffer(len: number, offset = 0): { gpa: number; pages: number[]; prp1: number; prp2: number } {
    const npages = Math.ceil((offset + len) / PAGE);
    // Pages deliberately not contiguous: every other page, so a walker that assumes contiguity fails.
    const pages: number[] = [];
    for (let i = 0; i < npages; i++) {
      pages.push(this.alloc.alloc(PAGE, PAGE));
      this.alloc.alloc(PAGE, PAGE);
    }
    const prp1 = pages[0]! + offset;
    let prp2 = 0;
    if (npages === 2) prp2 = pages[1]!;
    else if (npages > 2) prp2 = this.prpList(pages.slice(1));
    return { gpa: prp1, pages, prp1, prp2 };
  }

  /** A PRP list for `pages` (chained through the last entry of each list page). */
  prpList(pages: number[]): number {
    const perPage = PAGE / 8;
    const first = this.alloc.alloc(PAGE, PAGE);
    let list = first;
    let i = 0;
    while (i < pages.length) {
      const remaining = pages.length - i;
      const room = remaining > perPage ? perPage - 1 : remaining;
      for (let k = 0; k < room; k++) this.m.memory.view.setBigUint64(list + k * 8, BigInt(pages[i + k]!), true);
      i += room;
      if (i < pages.length) {
        const next = this.alloc.alloc(PAGE, PAGE);
        this.m.memory.view.setBigUint64(list + (perPage - 1) * 8, BigInt(next), true);
        list = next;
      }
    }
    return first;
  }

  /** Copies `data` into a buffer made by buffer(). */
  fill(buf: { pages: number[]; prp1: number }, data: Uint8Array): void {
    let off = 0;
    let at = buf.prp1;
    for (let p = 0; off < data.length; p++) {
      const page = p === 0 ? at : buf.pages[p]!;
      const room = PAGE - (page % PAGE);
      const n = Math.min(room, data.length - off);
      this.m.memory.write(page, data.subarray(off, off + n));
      off += n;
      at = 0;
    }
  }

  /** Reads `len` bytes back from a buffer made by buffer(). */
  gather(buf: { pages: number[]; prp1: number }, len: number): Uint8Array {
    const out = new Uint8Array(len);
    let off = 0;
    for (let p = 0; off < len; p++) {
      const page = p === 0 ? buf.prp1 : buf.pages[p]!;
      const n = Math.min(PAGE - (page % PAGE), len - off);
      out.set(this.m.memory.read(page, n), off);
      off += n;
    }
    return out;
  }
}

/**
 * A machine with an nvme function in slot `slot`, from a bhyve command line fragment such as
 * `['-s', '4,nvme,/tmp/disk.img,maxq=4']`.
 */
export function nvmeMachine(
  args: string[],
  slot: number,
  opts: VirtioTestMachineOptions = {},
): { m: VirtioTestMachine; bus: PciBus; drv: NvmeDriver; warnings: string[] } {
  const m = new VirtioTestMachine({ memorySize: 64 << 20, ...opts });
  const warnings: string[] = [];
  const { tree } = parseCommandLine([...args, 'vm'], (w) => warnings.push(w));
  const bus = initPci({ tree, machine: m, layout: memoryLayout(GiB), bootrom: false, warn: (w) => warnings.push(w) });
  return { m, bus, drv: new NvmeDriver(m, bus, slot), warnings };
}
