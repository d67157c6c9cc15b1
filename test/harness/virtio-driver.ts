// The guest's side of a virtio device, for tests and benchmarks without a VM: guest RAM that native data
// paths can use (an anonymous-memory GuestRam from the addon), a machine around it, a driver for the legacy
// virtio PCI transport (configuration space, BAR0 registers, MSI-X table), and a split-virtqueue driver that
// lays out descriptor tables and rings as a guest driver does. Hostile tests use the raw writers to build
// what no correct driver would.
import type { DataPath, GuestMemoryAccess, Machine, MmioSize, PortSize, SuspendHow } from '../../src/platform/machine.js';
import { parseCommandLine } from '../../src/cli/parse.js';
import { initPci } from '../../src/platform/pci/init.js';
import type { PciBus } from '../../src/platform/pci/bus.js';
import type { PciFunction } from '../../src/platform/pci/function.js';
import { memoryLayout, GiB } from '../../src/vm/memmap.js';
import { nativeVirtio, type NativeGuestRam } from '../../devices/virtio-blk/native.js';
import {
  VIRTIO_CONFIG_OFFSET_MSIX,
  VIRTIO_CONFIG_OFFSET_NOMSIX,
  VIRTIO_MSI_CONFIG_VECTOR,
  VIRTIO_MSI_QUEUE_VECTOR,
  VIRTIO_PCI_GUEST_FEATURES,
  VIRTIO_PCI_HOST_FEATURES,
  VIRTIO_PCI_ISR,
  VIRTIO_PCI_QUEUE_NOTIFY,
  VIRTIO_PCI_QUEUE_NUM,
  VIRTIO_PCI_QUEUE_PFN,
  VIRTIO_PCI_QUEUE_SEL,
  VIRTIO_PCI_STATUS,
  VIRTIO_STATUS_ACKNOWLEDGE,
  VIRTIO_STATUS_DRIVER,
  VIRTIO_STATUS_DRIVER_OK,
} from '../../devices/virtio/constants.js';
import { RecordingInterrupts, TestIoSpace } from './machine.js';

const ONES: Record<number, number> = { 1: 0xff, 2: 0xffff, 4: 0xffff_ffff };

/** Guest RAM [0, size) backed by native anonymous memory, with the same bounds checks as the real accessor. */
export class NativeGuestMemory implements GuestMemoryAccess {
  readonly ram: NativeGuestRam;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  constructor(readonly size: number) {
    this.ram = new (nativeVirtio().GuestRam)(size, 0);
    this.bytes = new Uint8Array(this.ram.buffer());
    this.view = new DataView(this.bytes.buffer);
  }
  private check(gpa: number, len: number): void {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0 || gpa + len > this.size) {
      throw new RangeError(`guest access 0x${gpa.toString(16)}+${len} outside RAM`);
    }
  }
  read(gpa: number, len: number): Uint8Array {
    this.check(gpa, len);
    return this.bytes.slice(gpa, gpa + len);
  }
  write(gpa: number, data: Uint8Array): void {
    this.check(gpa, data.length);
    this.bytes.set(data, gpa);
  }
}

/** One call a device made on the (recorded) KVM plumbing. */
export type KvmCall =
  | { op: 'ioeventfd'; fd: number; addr: number; len: number; pio: boolean; data?: number; deassign: boolean }
  | { op: 'irqfd'; fd: number; gsi: number; deassign: boolean }
  | { op: 'setMsiRoute'; gsi: number; addr: bigint; data: number };

/**
 * Stands in for KVM's ioeventfd/irqfd/MSI-route calls and records them, so tests can check a device's KVM
 * wiring without /dev/kvm. Nothing is delivered by it: notifications still reach the device through its
 * register handler, and interrupt eventfds are written by the worker but read by nobody.
 */
export class RecordedKvm implements NonNullable<DataPath['kvm']> {
  readonly calls: KvmCall[] = [];
  private nextGsi = 64;
  ioeventfd(fd: number, o: { addr: number; len: 0 | 1 | 2 | 4 | 8; pio: boolean; data?: number; deassign?: boolean }): void {
    this.calls.push({ op: 'ioeventfd', fd, addr: o.addr, len: o.len, pio: o.pio, data: o.data, deassign: !!o.deassign });
  }
  irqfd(fd: number, gsi: number, o?: { deassign?: boolean }): void {
    this.calls.push({ op: 'irqfd', fd, gsi, deassign: !!o?.deassign });
  }
  setMsiRoute(gsi: number, addr: bigint, data: number): void {
    this.calls.push({ op: 'setMsiRoute', gsi, addr, data });
  }
  allocMsiGsi(): number {
    return this.nextGsi++;
  }
  /** Takes the calls recorded so far. */
  take(): KvmCall[] {
    return this.calls.splice(0);
  }
}

export interface VirtioTestMachineOptions {
  memorySize?: number;
  /** record KVM wiring calls instead of running without KVM plumbing */
  kvm?: RecordedKvm;
}

/** A Machine whose RAM native workers can reach; records interrupts like TestMachine. */
export class VirtioTestMachine implements Machine {
  readonly io = new TestIoSpace();
  readonly irq = new RecordingInterrupts();
  readonly memory: NativeGuestMemory;
  readonly dataPath: DataPath;
  readonly suspends: SuspendHow[] = [];
  private readonly closers: Array<() => void> = [];

  constructor(opts: VirtioTestMachineOptions = {}) {
    this.memory = new NativeGuestMemory(opts.memorySize ?? 16 << 20);
    this.dataPath = { memoryHandle: this.memory.ram, kvm: opts.kvm, onClose: (fn) => void this.closers.push(fn) };
  }
  suspend(how: SuspendHow): void {
    this.suspends.push(how);
  }
  /** Stops every device worker (what the VM does before its memory goes). */
  close(): void {
    for (const fn of this.closers.splice(0).reverse()) fn();
  }

  in(port: number, size: PortSize): number {
    const c = this.io.ports.find((x) => port >= x.base && port < x.base + x.len);
    if (!c) return ONES[size]!;
    return ((c.handler(false, port, size, 0) >>> 0) & ONES[size]!) >>> 0;
  }
  out(port: number, value: number, size: PortSize): void {
    const c = this.io.ports.find((x) => port >= x.base && port < x.base + x.len);
    if (c) c.handler(true, port, size, ((value >>> 0) & ONES[size]!) >>> 0);
  }
  mmioRead(addr: number, size: MmioSize): number {
    const c = this.io.mmio.find((x) => addr >= x.base && addr < x.base + x.len);
    if (!c) return ONES[size]!;
    return ((c.handler(false, addr, size, 0) >>> 0) & ONES[size]!) >>> 0;
  }
  mmioWrite(addr: number, value: number, size: MmioSize): void {
    const c = this.io.mmio.find((x) => addr >= x.base && addr < x.base + x.len);
    if (c) c.handler(true, addr, size, ((value >>> 0) & ONES[size]!) >>> 0);
  }
}

const cf8 = (slot: number, off: number): number => (0x80000000 | (slot << 11) | (off & 0xfc)) >>> 0;

/** A guest driver's access to one PCI function on bus 0: configuration space by mechanism #1 (0xCF8/0xCFC). */
export class PciFunctionAccess {
  constructor(
    readonly m: VirtioTestMachine,
    readonly bus: PciBus,
    readonly slot: number,
  ) {}

  get fn(): PciFunction {
    return this.bus.find(0, this.slot, 0)!;
  }

  cfgRead(off: number, size: 1 | 2 | 4): number {
    this.m.out(0xcf8, cf8(this.slot, off), 4);
    return this.m.in(0xcfc + (off & 3), size) >>> 0;
  }
  cfgWrite(off: number, size: 1 | 2 | 4, value: number): void {
    this.m.out(0xcf8, cf8(this.slot, off), 4);
    this.m.out(0xcfc + (off & 3), value, size);
  }

  /** Walks the capability list: the offset of capability `id`, or 0. */
  findCap(id: number): number {
    let p = this.cfgRead(0x34, 1);
    for (let n = 0; p !== 0 && n < 48; n++) {
      if (this.cfgRead(p, 1) === id) return p;
      p = this.cfgRead(p + 1, 1);
    }
    return 0;
  }
}

/** The guest driver's view of one legacy virtio PCI function on bus 0. */
export class LegacyVirtioPci extends PciFunctionAccess {
  readonly bar0: number;
  constructor(m: VirtioTestMachine, bus: PciBus, slot: number) {
    super(m, bus, slot);
    this.bar0 = (this.cfgRead(0x10, 4) & ~3) >>> 0;
  }

  reg(off: number, size: PortSize): number {
    return this.m.in(this.bar0 + off, size);
  }
  setReg(off: number, size: PortSize, value: number): void {
    this.m.out(this.bar0 + off, value, size);
  }

  hostFeatures(): number {
    return this.reg(VIRTIO_PCI_HOST_FEATURES, 4);
  }
  setGuestFeatures(f: number): void {
    this.setReg(VIRTIO_PCI_GUEST_FEATURES, 4, f);
  }
  guestFeatures(): number {
    return this.reg(VIRTIO_PCI_GUEST_FEATURES, 4);
  }
  status(): number {
    return this.reg(VIRTIO_PCI_STATUS, 1);
  }
  setStatus(s: number): void {
    this.setReg(VIRTIO_PCI_STATUS, 1, s);
  }
  isr(): number {
    return this.reg(VIRTIO_PCI_ISR, 1);
  }
  notify(q: number): void {
    this.setReg(VIRTIO_PCI_QUEUE_NOTIFY, 2, q);
  }

  msixEnabled(): boolean {
    const cap = this.findCap(0x11);
    return cap !== 0 && (this.cfgRead(cap + 2, 2) & 0x8000) !== 0;
  }
  /** Device configuration offset in BAR0 as the driver computes it (§4.1.4.8). */
  configBase(): number {
    return this.msixEnabled() ? VIRTIO_CONFIG_OFFSET_MSIX : VIRTIO_CONFIG_OFFSET_NOMSIX;
  }
  config(off: number, size: PortSize): number {
    return this.reg(this.configBase() + off, size);
  }

  /** Guest-physical address of the MSI-X table (from the capability and the BAR it names). */
  msixTableBase(): number {
    const cap = this.findCap(0x11);
    if (cap === 0) throw new Error('no MSI-X capability');
    const tableReg = this.cfgRead(cap + 4, 4);
    const bar = tableReg & 7;
    return ((this.cfgRead(0x10 + bar * 4, 4) & ~0xf) >>> 0) + ((tableReg & ~7) >>> 0);
  }

  /** Writes dword `dword` (0 address low, 1 high, 2 data, 3 vector control) of MSI-X entry `i`. */
  msixEntryWrite(i: number, dword: number, value: number): void {
    this.m.mmioWrite(this.msixTableBase() + i * 16 + dword * 4, value, 4);
  }

  /** Programs MSI-X entries (address 0xfee00000, data 0x40 + i) and enables MSI-X. */
  enableMsix(vectors: number): void {
    const cap = this.findCap(0x11);
    const base = this.msixTableBase();
    for (let i = 0; i < vectors; i++) {
      this.m.mmioWrite(base + i * 16, 0xfee00000, 4);
      this.m.mmioWrite(base + i * 16 + 4, 0, 4);
      this.m.mmioWrite(base + i * 16 + 8, 0x40 + i, 4);
      this.m.mmioWrite(base + i * 16 + 12, 0, 4);
    }
    this.cfgWrite(cap + 2, 2, this.cfgRead(cap + 2, 2) | 0x8000);
  }
  setConfigVector(v: number): void {
    this.setReg(VIRTIO_MSI_CONFIG_VECTOR, 2, v);
  }
  setQueueVector(q: number, v: number): void {
    this.setReg(VIRTIO_PCI_QUEUE_SEL, 2, q);
    this.setReg(VIRTIO_MSI_QUEUE_VECTOR, 2, v);
  }

  queueSize(q: number): number {
    this.setReg(VIRTIO_PCI_QUEUE_SEL, 2, q);
    return this.reg(VIRTIO_PCI_QUEUE_NUM, 2);
  }

  /** Zeroes the rings at `gpa` (page aligned), writes the PFN, and returns a driver for the queue. */
  setupQueue(q: number, gpa: number): SplitQueueDriver {
    const size = this.queueSize(q);
    if (size === 0) throw new Error(`queue ${q} does not exist`);
    const drv = new SplitQueueDriver(this.m.memory, gpa, size);
    this.setReg(VIRTIO_PCI_QUEUE_SEL, 2, q);
    this.setReg(VIRTIO_PCI_QUEUE_PFN, 4, gpa / 4096);
    return drv;
  }

  /** The usual legacy start: reset, ACKNOWLEDGE|DRIVER, features, queue, DRIVER_OK. */
  start(features: number, queueGpa = 0x10000): SplitQueueDriver {
    this.setStatus(0);
    this.setStatus(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    this.setGuestFeatures(features);
    const q = this.setupQueue(0, queueGpa);
    this.setStatus(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
    return q;
  }
}

export interface Seg {
  addr: number;
  len: number;
  write: boolean;
}

export const VRING_DESC_F_NEXT = 1;
export const VRING_DESC_F_WRITE = 2;
export const VRING_DESC_F_INDIRECT = 4;

/** A split virtqueue in the legacy layout, driven as a guest driver would (virtio 1.2 §2.7). */
export class SplitQueueDriver {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  private nextDesc = 0;
  private availIdx = 0;
  private lastUsed = 0;

  constructor(
    readonly mem: NativeGuestMemory,
    readonly base: number,
    readonly size: number,
  ) {
    this.desc = base;
    this.avail = base + 16 * size;
    this.used = Math.ceil((this.avail + 6 + 2 * size) / 4096) * 4096;
    mem.bytes.fill(0, base, this.used + 6 + 8 * size);
  }

  writeDesc(i: number, addr: number | bigint, len: number, flags: number, next: number): void {
    const v = this.mem.view;
    const o = this.desc + 16 * i;
    v.setBigUint64(o, BigInt(addr), true);
    v.setUint32(o + 8, len >>> 0, true);
    v.setUint16(o + 12, flags, true);
    v.setUint16(o + 14, next, true);
  }

  /** Writes an indirect table at `gpa` for `segs`, and returns its byte length. */
  writeIndirectTable(gpa: number, segs: Seg[]): number {
    const v = this.mem.view;
    segs.forEach((s, i) => {
      const o = gpa + 16 * i;
      v.setBigUint64(o, BigInt(s.addr), true);
      v.setUint32(o + 8, s.len, true);
      v.setUint16(o + 12, (s.write ? VRING_DESC_F_WRITE : 0) | (i + 1 < segs.length ? VRING_DESC_F_NEXT : 0), true);
      v.setUint16(o + 14, i + 1 < segs.length ? i + 1 : 0, true);
    });
    return 16 * segs.length;
  }

  /** Builds a chain from free descriptors (round robin) and returns its head. */
  addChain(segs: Seg[]): number {
    const ids = segs.map(() => this.nextDesc++ % this.size);
    segs.forEach((s, i) => {
      const last = i + 1 === segs.length;
      this.writeDesc(ids[i]!, s.addr, s.len, (s.write ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT), last ? 0 : ids[i + 1]!);
    });
    return ids[0]!;
  }

  /** One descriptor pointing at an indirect table (written at `tableGpa`) holding `segs`. */
  addIndirect(tableGpa: number, segs: Seg[]): number {
    const len = this.writeIndirectTable(tableGpa, segs);
    const id = this.nextDesc++ % this.size;
    this.writeDesc(id, tableGpa, len, VRING_DESC_F_INDIRECT, 0);
    return id;
  }

  /** Puts `head` in the available ring and publishes it (§2.7.13). */
  publish(head: number): void {
    const v = this.mem.view;
    v.setUint16(this.avail + 4 + 2 * (this.availIdx % this.size), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    v.setUint16(this.avail + 2, this.availIdx, true);
  }

  /** Raw write of the avail index (hostile tests). */
  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.mem.view.setUint16(this.avail + 2, this.availIdx, true);
  }
  setAvailFlags(flags: number): void {
    this.mem.view.setUint16(this.avail, flags, true);
  }
  /** used_event (EVENT_IDX): interrupt me when the used index passes this. */
  setUsedEvent(idx: number): void {
    this.mem.view.setUint16(this.avail + 4 + 2 * this.size, idx, true);
  }
  availEvent(): number {
    return this.mem.view.getUint16(this.used + 4 + 8 * this.size, true);
  }

  usedIdx(): number {
    return this.mem.view.getUint16(this.used + 2, true);
  }
  /** False when the device asked not to be notified (VIRTQ_USED_F_NO_NOTIFY; without EVENT_IDX, §2.7.10). */
  kickWanted(): boolean {
    return (this.mem.view.getUint16(this.used, true) & 1) === 0;
  }
  usedElem(i: number): { id: number; len: number } {
    const o = this.used + 4 + 8 * (i % this.size);
    return { id: this.mem.view.getUint32(o, true), len: this.mem.view.getUint32(o + 4, true) };
  }

  /** Waits until the device has returned `count` more chains, then returns them in order. */
  async waitUsed(count = 1, timeoutMs = 5000): Promise<Array<{ id: number; len: number }>> {
    const deadline = Date.now() + timeoutMs;
    while (((this.usedIdx() - this.lastUsed) & 0xffff) < count) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} used entries (used idx ${this.usedIdx()}, last ${this.lastUsed})`);
      await new Promise((r) => setTimeout(r, 1));
    }
    const out: Array<{ id: number; len: number }> = [];
    for (let i = 0; i < count; i++) out.push(this.usedElem((this.lastUsed + i) & 0xffff));
    this.lastUsed = (this.lastUsed + count) & 0xffff;
    return out;
  }

  /** True when nothing new was used within `ms` (for requests that must not complete). */
  async idleFor(ms: number): Promise<boolean> {
    const before = this.usedIdx();
    await new Promise((r) => setTimeout(r, ms));
    return this.usedIdx() === before;
  }
}

/** A bump allocator for guest buffers. */
export class GuestAlloc {
  constructor(private next: number, private readonly limit: number) {}
  alloc(len: number, align = 16): number {
    const at = Math.ceil(this.next / align) * align;
    if (at + len > this.limit) throw new Error('guest allocator exhausted');
    this.next = at + len;
    return at;
  }
}

/**
 * A machine with one virtio device in slot `slot`, built from a bhyve command line fragment, e.g.
 * `['-s', '3,virtio-blk,/tmp/disk.img']` (add '-W' for MSI instead of MSI-X).
 */
export function virtioMachine(
  args: string[],
  slot: number,
  opts: VirtioTestMachineOptions = {},
): { m: VirtioTestMachine; bus: PciBus; dev: LegacyVirtioPci; warnings: string[] } {
  const m = new VirtioTestMachine(opts);
  const warnings: string[] = [];
  const { tree } = parseCommandLine([...args, 'vm'], (w) => warnings.push(w));
  const bus = initPci({ tree, machine: m, layout: memoryLayout(GiB), bootrom: false, warn: (w) => warnings.push(w) });
  return { m, bus, dev: new LegacyVirtioPci(m, bus, slot), warnings };
}
