// The PCI hierarchy bhyve presents: buses of 32 slots x 8 functions, configuration access through mechanism #1
// (ports 0xCF8/0xCFC) and ECAM (0xE0000000), BAR allocation by decreasing size in bhyve's windows, BAR decode
// switched by the COMMAND register, and INTx routing through the LPC PIRQ links and the IOAPIC.
import type { Machine, MmioHandler, PortHandler } from '../machine.js';
import { ECAM_BASE, ECAM_SIZE, PCI32_WINDOW, PCI64_WINDOW_SIZE, type MemoryLayout } from '../../vm/memmap.js';
import { PciFunction, type BarType, type PciDeviceModel } from './function.js';
import { PirqRouter } from './pirq.js';
import {
  PCIM_CMD_BUSMASTEREN,
  PCIM_CMD_MEMEN,
  PCIM_CMD_PORTEN,
  PCIM_MFDEV,
  PCIR_BAR0,
  PCIR_BIOS,
  PCIR_COMMAND,
  PCIR_HDRTYPE,
  PCIR_INTLINE,
  PCIR_REVID,
} from './regs.js';

export const PCI_BUSES = 256;
export const PCI_SLOTS = 32;
export const PCI_FUNCS = 8;

/** The I/O port window for BARs (bhyve: 0x2000 up to the top of the port space). */
export const PCI_IO_WINDOW = { base: 0x2000, limit: 0x10000 } as const;
/** bhyve leaves this much room after each bus so a guest can move BARs (BUSIO/BUSMEM32/BUSMEM64_ROUNDUP). */
const BUS_IO_SPARE = 32;
const BUS_MEM32_SPARE = 1 << 20;
const BUS_MEM64_SPARE = 512 * 2 ** 20;
/** MEM64 BARs up to this size are placed below 4 GiB, since some drivers mishandle 64-bit BARs above it. */
const MEM64_LOW_LIMIT = 128 * 2 ** 20;

export interface Window {
  base: number;
  /** exclusive end */
  limit: number;
}

/** The address ranges a bus decodes; they become the root bridge's _CRS in the DSDT. */
export interface BusWindows {
  bus: number;
  io: Window;
  mem32: Window;
  mem64: Window;
}

export interface PciBusOptions {
  machine: Machine;
  layout: MemoryLayout;
  /** a boot ROM enables BARs itself and expects bhyve's fixed INTx routing */
  bootrom: boolean;
  /** decode BARs from the start (pci.enable_bars; bhyve's default: true without a boot ROM) */
  enableBars: boolean;
  warn: (message: string) => void;
}

interface PendingBar {
  fn: PciFunction;
  idx: number;
  type: BarType;
  size: number;
}

function roundUp(v: number, align: number): number {
  return Math.ceil(v / align) * align;
}

/** The next power of two >= v (v >= 1). */
function pow2(v: number): number {
  let p = 1;
  while (p < v) p *= 2;
  return p;
}

export class PciBus {
  private readonly functions = new Map<number, PciFunction>();
  readonly windows: BusWindows[] = [];
  readonly pirq: PirqRouter;
  private pending: PendingBar[] = [];
  private ioBase: number = PCI_IO_WINDOW.base;
  private mem32Base: number = PCI32_WINDOW.base;
  private mem64Base: number;
  private readonly mem64Limit: number;
  private lastIoapicPin = 0;
  /** per bus and slot: how many functions use INTA..INTD, and where each pin was routed */
  private readonly intpins = new Map<number, Array<{ count: number; ioapicPin: number; pirqPin: number }>>();
  // mechanism #1 address register
  private cfgEnable = false;
  private cfgBus = 0;
  private cfgSlot = 0;
  private cfgFunc = 0;
  private cfgOff = 0;

  constructor(private readonly opts: PciBusOptions) {
    this.mem64Base = opts.layout.pci64Base;
    this.mem64Limit = opts.layout.pci64Base + PCI64_WINDOW_SIZE;
    this.pirq = new PirqRouter(opts.machine.irq, opts.bootrom);
  }

  private static key(bus: number, slot: number, func: number): number {
    return (bus << 8) | (slot << 3) | func;
  }

  find(bus: number, slot: number, func: number): PciFunction | undefined {
    return this.functions.get(PciBus.key(bus, slot, func));
  }

  all(): PciFunction[] {
    return [...this.functions.values()].sort((a, b) => PciBus.key(a.bus, a.slot, a.func) - PciBus.key(b.bus, b.slot, b.func));
  }

  /** Adds a function before its device initialises (so a device can look at its neighbours). */
  add(fn: PciFunction): void {
    const k = PciBus.key(fn.bus, fn.slot, fn.func);
    if (this.functions.has(k)) throw new Error(`pci slot ${fn.bus}:${fn.slot}:${fn.func} already occupied!`);
    this.functions.set(k, fn);
    fn.msiSink = (addr, data) => this.opts.machine.irq.msi(addr, data);
    fn.intx = { assert: (f) => this.pirq.assert(f), deassert: (f) => this.pirq.deassert(f) };
    // bhyve: without a boot ROM bus mastering is on from the start; with one the firmware turns it on.
    if (!this.opts.bootrom) fn.set16(PCIR_COMMAND, fn.get16(PCIR_COMMAND) | PCIM_CMD_BUSMASTEREN);
  }

  // --- BAR allocation ------------------------------------------------------------------------------------

  /**
   * A device asks for BAR `idx` of `type` and `size` bytes (rounded up to a power of two, at least 4 for I/O and
   * 16 for memory). Addresses are assigned by endBus(), largest first.
   */
  allocBar(fn: PciFunction, idx: number, type: 'io' | 'mem32' | 'mem64', size: number): void {
    if (idx < 0 || idx > 5 || (type === 'mem64' && idx === 5)) throw new Error(`${fn.label}: bad BAR index ${idx}`);
    const sz = Math.max(pow2(size), type === 'io' ? 4 : 16);
    const at = this.pending.findIndex((p) => p.size < sz);
    const entry = { fn, idx, type, size: sz };
    if (at < 0) this.pending.push(entry);
    else this.pending.splice(at, 0, entry);
    if (this.opts.enableBars) {
      const bit = type === 'io' ? PCIM_CMD_PORTEN : PCIM_CMD_MEMEN;
      fn.set16(PCIR_COMMAND, fn.get16(PCIR_COMMAND) | bit);
    }
  }

  /** Marks the start of a bus: its windows begin where the allocators are now. */
  beginBus(bus: number): void {
    this.windows.push({
      bus,
      io: { base: this.ioBase, limit: 0 },
      mem32: { base: this.mem32Base, limit: 0 },
      mem64: { base: this.mem64Base, limit: 0 },
    });
  }

  /** Assigns the bus's BARs (largest first) and closes its windows with bhyve's spare room. */
  endBus(bus: number): void {
    for (const p of this.pending) this.assignBar(p);
    this.pending = [];
    const w = this.windows.find((x) => x.bus === bus);
    if (!w) throw new Error(`endBus(${bus}) without beginBus`);
    this.ioBase = roundUp(this.ioBase + BUS_IO_SPARE, BUS_IO_SPARE);
    this.mem32Base = roundUp(this.mem32Base + BUS_MEM32_SPARE, BUS_MEM32_SPARE);
    this.mem64Base = roundUp(this.mem64Base + BUS_MEM64_SPARE, BUS_MEM64_SPARE);
    w.io.limit = Math.min(this.ioBase, PCI_IO_WINDOW.limit);
    w.mem32.limit = Math.min(this.mem32Base, PCI32_WINDOW.base + PCI32_WINDOW.size);
    w.mem64.limit = Math.min(this.mem64Base, this.mem64Limit);
  }

  private allocate(kind: 'io' | 'mem32' | 'mem64', size: number): number {
    const [base, limit] =
      kind === 'io'
        ? [this.ioBase, PCI_IO_WINDOW.limit]
        : kind === 'mem32'
          ? [this.mem32Base, PCI32_WINDOW.base + PCI32_WINDOW.size]
          : [this.mem64Base, this.mem64Limit];
    const addr = roundUp(base, size);
    if (addr + size > limit) throw new Error(`no room for a ${size}-byte ${kind} BAR`);
    if (kind === 'io') this.ioBase = addr + size;
    else if (kind === 'mem32') this.mem32Base = addr + size;
    else this.mem64Base = addr + size;
    return addr;
  }

  private assignBar({ fn, idx, type, size }: PendingBar): void {
    const where = type === 'io' ? 'io' : type === 'mem64' && size > MEM64_LOW_LIMIT ? 'mem64' : 'mem32';
    const addr = this.allocate(where, size);
    const bar = fn.bars[idx]!;
    bar.type = type;
    bar.addr = addr;
    bar.size = size;
    bar.lobits = PciFunction.lobitsFor(type, size);
    fn.set32(PCIR_BAR0 + idx * 4, fn.barRegister(idx));
    if (type === 'mem64') {
      const hi = fn.bars[idx + 1]!;
      hi.type = 'memhi64';
      fn.set32(PCIR_BAR0 + (idx + 1) * 4, fn.barRegister(idx + 1));
    }
    if (fn.decodeEnabled(idx)) this.mapBar(fn, idx);
  }

  // --- BAR decode ----------------------------------------------------------------------------------------

  private readonly mapped = new Map<string, { space: 'io' | 'mem'; base: number }>();

  private mapBar(fn: PciFunction, idx: number): void {
    const bar = fn.bars[idx]!;
    const id = `${PciBus.key(fn.bus, fn.slot, fn.func)}/${idx}`;
    if (this.mapped.has(id) || bar.size === 0) return;
    const io = this.opts.machine.io;
    try {
      if (bar.type === 'io') {
        const handler: PortHandler = (write, port, size, value) => this.barAccess(fn, idx, port - bar.addr, write, size, value);
        io.registerPort(bar.addr, bar.size, handler);
        this.mapped.set(id, { space: 'io', base: bar.addr });
      } else {
        const handler: MmioHandler = (write, addr, size, value) => this.barAccess(fn, idx, addr - bar.addr, write, size, value);
        io.registerMmio(bar.addr, bar.size, handler);
        this.mapped.set(id, { space: 'mem', base: bar.addr });
      }
    } catch (e) {
      // A guest that moves a BAR onto another device's range gets no decode there, as real hardware would
      // give undefined results; the VMM keeps running.
      this.opts.warn(`${fn.label}: BAR ${idx} at 0x${bar.addr.toString(16)} not decoded: ${(e as Error).message}`);
      return;
    }
    fn.model.barMapped?.(idx, true, bar.addr);
  }

  private unmapBar(fn: PciFunction, idx: number): void {
    const id = `${PciBus.key(fn.bus, fn.slot, fn.func)}/${idx}`;
    const m = this.mapped.get(id);
    if (!m) return;
    if (m.space === 'io') this.opts.machine.io.unregisterPort(m.base);
    else this.opts.machine.io.unregisterMmio(m.base);
    this.mapped.delete(id);
    fn.model.barMapped?.(idx, false, m.base);
  }

  private barAccess(fn: PciFunction, idx: number, offset: number, write: boolean, size: 1 | 2 | 4, value: number): number {
    const bar = fn.bars[idx]!;
    if (offset < 0 || offset + size > bar.size) return write ? 0 : 0xffffffff;
    if (fn.msixRegion(idx, offset)) {
      if (write) {
        fn.msixWrite(idx, offset, size, value);
        return 0;
      }
      return fn.msixRead(idx, offset, size);
    }
    if (write) {
      fn.model.barWrite?.(idx, offset, size, value);
      return 0;
    }
    return fn.model.barRead ? fn.model.barRead(idx, offset, size) : 0xffffffff;
  }

  // --- configuration access -----------------------------------------------------------------------------

  /** A configuration read of `size` bytes at `off` (0..4095) of B:S:F, as the guest sees it. */
  configRead(bus: number, slot: number, func: number, off: number, size: 1 | 2 | 4): number {
    const fn = this.find(bus, slot, func);
    const ones = size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    if (!fn || off % size !== 0) return ones;
    // Past the 256 standard bytes: an empty extended capability list at 0x100, all ones beyond.
    if (off >= 256) return off < 0x104 ? 0 : ones;
    let v = fn.model.cfgRead?.(off, size);
    if (v === undefined) v = fn.getSized(off, size);
    // The multi-function bit is set for any slot that has more than one function.
    if (off <= PCIR_HDRTYPE && off + size > PCIR_HDRTYPE && this.slotIsMultifunction(bus, slot)) {
      v |= PCIM_MFDEV << (8 * (PCIR_HDRTYPE - off));
    }
    return v >>> 0;
  }

  private slotIsMultifunction(bus: number, slot: number): boolean {
    let n = 0;
    for (let f = 0; f < PCI_FUNCS; f++) if (this.find(bus, slot, f)) n++;
    return n > 1;
  }

  configWrite(bus: number, slot: number, func: number, off: number, size: 1 | 2 | 4, value: number): void {
    const fn = this.find(bus, slot, func);
    if (!fn || off % size !== 0 || off >= 256) return;
    if (fn.model.cfgWrite?.(off, size, value)) return;
    if ((off >= PCIR_BAR0 && off < PCIR_BAR0 + 24) || (off >= PCIR_BIOS && off < PCIR_BIOS + 4)) {
      // BAR registers take only aligned dword writes (PCI 3.0 §6.2.5.1).
      if (size !== 4) return;
      if (off >= PCIR_BIOS) return; // no expansion ROMs: the register stays 0
      this.barWrite(fn, (off - PCIR_BAR0) / 4, value >>> 0);
      return;
    }
    if (fn.capabilityAt(off)) {
      fn.capabilityWrite(off, size, value);
      return;
    }
    if (off >= PCIR_COMMAND && off < PCIR_REVID) {
      this.commandStatusWrite(fn, off, size, value);
      return;
    }
    // Identification, header type, capability pointer and interrupt pin are read-only; the rest of the header
    // (cache line size, latency timer, interrupt line, device-specific space) is plain storage.
    for (let i = 0; i < size; i++) {
      const o = off + i;
      const readOnly = o < 4 || (o >= 8 && o < 0x0c) || o === PCIR_HDRTYPE || (o >= 0x2c && o < 0x30) || o === 0x34 || o === 0x3d;
      if (!readOnly) fn.cfg[o] = (value >>> (8 * i)) & 0xff;
    }
  }

  private barWrite(fn: PciFunction, idx: number, value: number): void {
    const bar = fn.bars[idx]!;
    switch (bar.type) {
      case 'none':
        fn.set32(PCIR_BAR0 + idx * 4, 0);
        return;
      case 'io':
      case 'mem32':
      case 'mem64': {
        // Sizing writes all ones and reads back the size mask; the low bits are the BAR's type and stay put.
        const mask = ~(bar.size - 1) >>> 0;
        let addr = (value & mask) >>> 0;
        if (bar.type === 'io') addr &= 0xffff;
        const newAddr = bar.type === 'mem64' ? Math.floor(bar.addr / 2 ** 32) * 2 ** 32 + addr : addr;
        fn.set32(PCIR_BAR0 + idx * 4, (addr | bar.lobits) >>> 0);
        if (newAddr !== bar.addr) this.moveBar(fn, idx, newAddr);
        return;
      }
      case 'memhi64': {
        const lo = fn.bars[idx - 1]!;
        // For BARs of 4 GiB or more the mask reaches into the high dword.
        const hiMask = lo.size > 2 ** 32 ? (~(lo.size / 2 ** 32 - 1) >>> 0) : 0xffffffff;
        const hi = (value & hiMask) >>> 0;
        fn.set32(PCIR_BAR0 + idx * 4, hi);
        const newAddr = hi * 2 ** 32 + (lo.addr % 2 ** 32);
        if (newAddr !== lo.addr) this.moveBar(fn, idx - 1, newAddr);
        return;
      }
    }
  }

  private moveBar(fn: PciFunction, idx: number, addr: number): void {
    const decoding = fn.decodeEnabled(idx);
    if (decoding) this.unmapBar(fn, idx);
    fn.bars[idx]!.addr = addr;
    if (decoding) this.mapBar(fn, idx);
  }

  private commandStatusWrite(fn: PciFunction, off: number, size: 1 | 2 | 4, value: number): void {
    const oldCmd = fn.get16(PCIR_COMMAND);
    // PCI 3.0 §6.2.2-6.2.3: all of STATUS and command bits 7 and 11-15 are read-only here.
    const readonly = (0xfffff880 >>> ((off & 3) * 8)) >>> 0;
    const old = fn.getSized(off, size);
    fn.setSized(off, size, ((value & ~readonly) | (old & readonly)) >>> 0);
    const cmd = fn.get16(PCIR_COMMAND);
    const changed = oldCmd ^ cmd;
    for (let i = 0; i < 6; i++) {
      const b = fn.bars[i]!;
      if (b.type === 'none' || b.type === 'memhi64') continue;
      const bit = b.type === 'io' ? PCIM_CMD_PORTEN : PCIM_CMD_MEMEN;
      if (!(changed & bit)) continue;
      if (cmd & bit) this.mapBar(fn, i);
      else this.unmapBar(fn, i);
    }
    fn.updateLintr();
  }

  /** Claims 0xCF8 (address) and 0xCFC-0xCFF (data) and the ECAM window. */
  install(): void {
    const io = this.opts.machine.io;
    const accel = this.opts.machine.accel?.pciConf1;
    if (accel) {
      // The VMM serves 0xCF8/0xCFC itself and forwards accesses to present functions to the ECAM handler below.
      const present = new Uint8Array(8192);
      for (const fn of this.functions.values()) {
        const bit = (fn.bus << 8) | (fn.slot << 3) | fn.func;
        present[bit >> 3]! |= 1 << (bit & 7);
      }
      accel(ECAM_BASE, present);
    } else {
      this.installConf1Ports();
    }
    io.registerMmio(ECAM_BASE, ECAM_SIZE, (write, addr, size, value) => {
      const rel = addr - ECAM_BASE;
      const bus = (rel >>> 20) & 0xff;
      const slot = (rel >>> 15) & 0x1f;
      const func = (rel >>> 12) & 7;
      const off = rel & 0xfff;
      if (write) {
        this.configWrite(bus, slot, func, off, size, value);
        return 0;
      }
      return this.configRead(bus, slot, func, off, size);
    });
  }

  /** Mechanism #1 in TypeScript, for machines without the native path (tests, other backends). */
  private installConf1Ports(): void {
    const io = this.opts.machine.io;
    // Only 0xCF8 itself: 0xCF9 is the reset control register, a different device; a dword access at 0xCF8
    // arrives here as one 4-byte access.
    io.registerPort(0xcf8, 1, (write, _port, size, value) => {
      if (size !== 4) return size === 2 ? 0xffff : 0xff;
      if (write) {
        this.cfgEnable = (value & 0x80000000) !== 0;
        this.cfgOff = value & 0xfc;
        this.cfgFunc = (value >>> 8) & 7;
        this.cfgSlot = (value >>> 11) & 0x1f;
        this.cfgBus = (value >>> 16) & 0xff;
        return 0;
      }
      const x = (this.cfgBus << 16) | (this.cfgSlot << 11) | (this.cfgFunc << 8) | this.cfgOff;
      return (this.cfgEnable ? x | 0x80000000 : x) >>> 0;
    });
    io.registerPort(0xcfc, 4, (write, port, size, value) => {
      const off = this.cfgOff + (port - 0xcfc);
      if (!this.cfgEnable) return 0xffffffff;
      if (write) {
        this.configWrite(this.cfgBus, this.cfgSlot, this.cfgFunc, off, size, value);
        return 0;
      }
      return this.configRead(this.cfgBus, this.cfgSlot, this.cfgFunc, off, size);
    });
  }

  // --- INTx routing --------------------------------------------------------------------------------------

  /**
   * Routes every function that asked for INTx: the least-used pin of its slot, then an IOAPIC pin (round-robin
   * from 16, or bhyve's fixed formula with a boot ROM) and a PIRQ link; INTLINE reports the link's ISA IRQ.
   * Runs after every device initialised, so the LPC bridge has reserved the ISA IRQs it uses.
   */
  routeInterrupts(): void {
    const pciPins = this.opts.machine.irq.ioapicPins - 16;
    for (const fn of this.all()) {
      if (!fn.wantsLintr) continue;
      const slotKey = (fn.bus << 5) | fn.slot;
      let pins = this.intpins.get(slotKey);
      if (!pins) {
        pins = Array.from({ length: 4 }, () => ({ count: 0, ioapicPin: 0, pirqPin: 0 }));
        this.intpins.set(slotKey, pins);
      }
      let best = 0;
      for (let p = 1; p < 4; p++) if (pins[p]!.count < pins[best]!.count) best = p;
      const ii = pins[best]!;
      ii.count++;
      fn.setLintrPin(best + 1);
      if (ii.ioapicPin === 0) {
        if (pciPins <= 0) throw new Error('the IOAPIC has no pins for PCI INTx');
        ii.ioapicPin = this.opts.bootrom ? 16 + ((4 + fn.slot + fn.lintrPin) % 8) : 16 + (this.lastIoapicPin++ % pciPins);
      }
      if (ii.pirqPin === 0) ii.pirqPin = this.pirq.allocPin(fn.slot, fn.lintrPin);
      fn.ioapicPin = ii.ioapicPin;
      fn.pirqPin = ii.pirqPin;
      fn.set8(PCIR_INTLINE, this.pirq.irqOf(ii.pirqPin));
    }
  }
}

export type { PciDeviceModel };
