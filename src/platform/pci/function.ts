// One PCI function: its 256-byte configuration space, BARs, capability list, MSI/MSI-X state and INTx line.
// The bus (bus.ts) routes the guest's configuration and BAR accesses here; the device model behind it
// (devices/<name>) supplies IDs, capabilities, BAR contents and its own register semantics.
import {
  MSIX_TABLE_ENTRY_SIZE,
  PCIM_BAR_IO_SPACE,
  PCIM_BAR_MEM_64,
  PCIM_BAR_MEM_PREFETCH,
  PCIM_CMD_INTxDIS,
  PCIM_CMD_MEMEN,
  PCIM_CMD_PORTEN,
  PCIM_MSICTRL_64BIT,
  PCIM_MSICTRL_MME_MASK,
  PCIM_MSICTRL_MSI_ENABLE,
  PCIM_MSIXCTRL_FUNCTION_MASK,
  PCIM_MSIXCTRL_MSIX_ENABLE,
  PCIM_MSIX_VCTRL_MASK,
  PCIM_STATUS_CAPPRESENT,
  PCIM_STATUS_INTxSTATE,
  PCIR_CAP_PTR,
  PCIR_COMMAND,
  PCIR_INTPIN,
  PCIR_STATUS,
  PCIY_EXPRESS,
  PCIY_MSI,
  PCIY_MSIX,
} from './regs.js';

export type BarType = 'none' | 'io' | 'mem32' | 'mem64' | 'memhi64';

export interface Bar {
  type: BarType;
  /** the address the BAR decodes at (the guest can move it) */
  addr: number;
  /** size in bytes, a power of two */
  size: number;
  /** the read-only low bits of the BAR register (space, type, prefetchable) */
  lobits: number;
}

/** What a device model implements; every hook is optional. */
export interface PciDeviceModel {
  /** A guest read of a BAR that is not MSI-X table/PBA; `offset` is within the BAR. */
  barRead?(bar: number, offset: number, size: 1 | 2 | 4): number;
  barWrite?(bar: number, offset: number, size: 1 | 2 | 4, value: number): void;
  /** Device-specific config registers: return a value to override the stored bytes, or undefined. */
  cfgRead?(offset: number, size: 1 | 2 | 4): number | undefined;
  /** Return true when the device consumed the write itself. */
  cfgWrite?(offset: number, size: 1 | 2 | 4, value: number): boolean;
  /** Called when a BAR starts or stops decoding at `addr` (for devices that map memory there). */
  barMapped?(bar: number, mapped: boolean, addr: number): void;
  /** Called when the INTx/MSI/MSI-X enable state changes (for devices that choose their interrupt path). */
  interruptModeChanged?(): void;
  /**
   * Called after a guest write that may change where interrupts go: an MSI-X table entry, the MSI-X enable or
   * function-mask bits, the MSI address/data or its number of messages (for devices that route vectors natively,
   * e.g. by irqfd).
   */
  interruptRouteChanged?(): void;
  /** Settles when the device's start-up work outside the guest is done (a listening socket); rejects if it failed. */
  readonly ready?: Promise<void>;
}

/** The interrupt wiring the bus sets up for a function's INTx pin. */
export interface IntxSink {
  assert(fn: PciFunction): void;
  deassert(fn: PciFunction): void;
}

/** MSI delivery (vm_lapic_msi). */
export type MsiSink = (addr: bigint, data: number) => void;

interface MsiState {
  capOff: number;
  /** messages the device asks for (a power of two, 1..32) */
  msgnum: number;
}

interface MsixState {
  capOff: number;
  tableBar: number;
  tableOffset: number;
  tableCount: number;
  pbaBar: number;
  pbaOffset: number;
  pbaSize: number;
  /** 4 dwords per entry: address low, address high, data, vector control */
  table: Uint32Array;
  /** the Pending Bit Array: one bit per vector, as the guest reads it (64-bit QWORDs, little-endian) */
  pba: Uint32Array;
}

type LintrState = 'idle' | 'asserted' | 'pending';

export class PciFunction {
  readonly cfg = new Uint8Array(256);
  private readonly view = new DataView(this.cfg.buffer);
  readonly bars: Bar[] = Array.from({ length: 6 }, () => ({ type: 'none' as BarType, addr: 0, size: 0, lobits: 0 }));
  model: PciDeviceModel = {};
  msi?: MsiState;
  msix?: MsixState;
  /** INTx: pin 1..4 (INTA..INTD) or 0 when the device uses none */
  lintrPin = 0;
  /** the IOAPIC pin and the PIRQ link (1..8) the bus routed the pin to */
  ioapicPin = 0;
  pirqPin = 0;
  private lintrState: LintrState = 'idle';
  private lastCap = 0;
  intx?: IntxSink;
  msiSink?: MsiSink;

  constructor(
    readonly bus: number,
    readonly slot: number,
    readonly func: number,
    /** the emulation name, for messages */
    readonly name: string,
  ) {}

  get label(): string {
    return `${this.name} at ${this.bus}:${this.slot}:${this.func}`;
  }

  // --- raw config space ----------------------------------------------------------------------------------

  get8(off: number): number {
    return this.cfg[off]!;
  }
  get16(off: number): number {
    return this.view.getUint16(off, true);
  }
  get32(off: number): number {
    return this.view.getUint32(off, true);
  }
  set8(off: number, v: number): void {
    this.cfg[off] = v & 0xff;
  }
  set16(off: number, v: number): void {
    this.view.setUint16(off, v & 0xffff, true);
  }
  set32(off: number, v: number): void {
    this.view.setUint32(off, v >>> 0, true);
  }

  /** Reads `size` stored bytes (size-aligned offset inside the 256 bytes). */
  getSized(off: number, size: 1 | 2 | 4): number {
    return size === 1 ? this.get8(off) : size === 2 ? this.get16(off) : this.get32(off);
  }
  setSized(off: number, size: 1 | 2 | 4, v: number): void {
    if (size === 1) this.set8(off, v);
    else if (size === 2) this.set16(off, v);
    else this.set32(off, v);
  }

  // --- capabilities --------------------------------------------------------------------------------------

  /** Appends a capability (the first byte of `body` is its ID; the next-pointer byte is filled in). */
  addCapability(body: Uint8Array): number {
    // Capabilities start at 0x40 and are dword aligned (PCI 3.0 §6.7).
    const off = this.lastCap === 0 ? 0x40 : (this.lastCap + this.capLength(this.lastCap) + 3) & ~3;
    if (off + body.length > 256) throw new Error(`${this.label}: no room for capability 0x${body[0]!.toString(16)}`);
    this.cfg.set(body, off);
    this.cfg[off + 1] = 0;
    if (this.lastCap === 0) this.set8(PCIR_CAP_PTR, off);
    else this.cfg[this.lastCap + 1] = off;
    this.set16(PCIR_STATUS, this.get16(PCIR_STATUS) | PCIM_STATUS_CAPPRESENT);
    this.capLengths.set(off, body.length);
    this.lastCap = off;
    return off;
  }
  private readonly capLengths = new Map<number, number>();
  private capLength(off: number): number {
    return this.capLengths.get(off) ?? 0;
  }

  /** The capability containing config offset `off`, if any: [start, id]. */
  capabilityAt(off: number): [number, number] | undefined {
    for (const [start, len] of this.capLengths) {
      if (off >= start && off < start + len) return [start, this.cfg[start]!];
    }
    return undefined;
  }

  /** An MSI capability (always 64-bit capable) for `msgnum` messages, a power of two from 1 to 32. */
  addMsiCapability(msgnum: number): void {
    if (![1, 2, 4, 8, 16, 32].includes(msgnum)) throw new Error(`${this.label}: bad MSI message count ${msgnum}`);
    const mmc = Math.log2(msgnum) << 1;
    const body = new Uint8Array(14);
    body[0] = PCIY_MSI;
    new DataView(body.buffer).setUint16(2, PCIM_MSICTRL_64BIT | mmc, true);
    const capOff = this.addCapability(body);
    this.msi = { capOff, msgnum };
  }

  /**
   * An MSI-X capability with `count` vectors whose table (at offset 0) and PBA (at the next 4 KiB boundary)
   * live in BAR `bar`; returns the BAR size the device must allocate as MEM32.
   */
  addMsixCapability(count: number, bar: number): number {
    if (count < 1 || count > 2048) throw new Error(`${this.label}: bad MSI-X vector count ${count}`);
    const tableSize = Math.ceil((count * MSIX_TABLE_ENTRY_SIZE) / 4096) * 4096;
    const pbaSize = Math.ceil(count / 64) * 8;
    const body = new Uint8Array(12);
    const dv = new DataView(body.buffer);
    body[0] = PCIY_MSIX;
    dv.setUint16(2, count - 1, true);
    dv.setUint32(4, 0 | bar, true);
    dv.setUint32(8, tableSize | bar, true);
    const capOff = this.addCapability(body);
    const table = new Uint32Array(count * 4);
    // Every vector starts masked (PCI 3.0 §6.8.2.9).
    for (let i = 0; i < count; i++) table[i * 4 + 3] = PCIM_MSIX_VCTRL_MASK;
    const pba = new Uint32Array(pbaSize / 4);
    this.msix = { capOff, tableBar: bar, tableOffset: 0, tableCount: count, pbaBar: bar, pbaOffset: tableSize, pbaSize, table, pba };
    return tableSize + pbaSize;
  }

  /** A PCI Express capability of the given device/port type (e.g. 4 = root port, 9 = RC integrated endpoint). */
  addPcieCapability(type: number): void {
    const body = new Uint8Array(0x3c);
    const dv = new DataView(body.buffer);
    body[0] = PCIY_EXPRESS;
    dv.setUint16(2, 0x2 | (type << 4), true); // capability version 2
    if (type === 4) {
      // A root port reports an x1 link that is up (PCIe Base §7.5.3.6-7.5.3.8).
      dv.setUint32(0x0c, 0x11, true);
      dv.setUint16(0x12, 0x11 | 0x2000, true);
    }
    this.addCapability(body);
  }

  // --- MSI / MSI-X ---------------------------------------------------------------------------------------

  msiEnabled(): boolean {
    return !!this.msi && (this.get16(this.msi.capOff + 2) & PCIM_MSICTRL_MSI_ENABLE) !== 0;
  }

  /** Messages the guest enabled (Multiple Message Enable). */
  msiEnabledCount(): number {
    if (!this.msi) return 0;
    return 1 << ((this.get16(this.msi.capOff + 2) & PCIM_MSICTRL_MME_MASK) >> 4);
  }

  msixEnabled(): boolean {
    return !!this.msix && (this.get16(this.msix.capOff + 2) & PCIM_MSIXCTRL_MSIX_ENABLE) !== 0;
  }

  private msixFunctionMasked(): boolean {
    return !!this.msix && (this.get16(this.msix.capOff + 2) & PCIM_MSIXCTRL_FUNCTION_MASK) !== 0;
  }

  /** The address and data of MSI message `index` while MSI is enabled with that many messages, else undefined. */
  msiMessage(index = 0): { addr: bigint; data: number } | undefined {
    if (!this.msi || !this.msiEnabled() || index >= this.msiEnabledCount()) return undefined;
    const c = this.msi.capOff;
    const addr = (BigInt(this.get32(c + 8)) << 32n) | BigInt(this.get32(c + 4));
    return { addr, data: (this.get16(c + 12) + index) & 0xffff };
  }

  /** Sends MSI message `index` if MSI is enabled and the guest enabled that many messages. */
  generateMsi(index: number): boolean {
    if (!this.msi || !this.msiEnabled() || index >= this.msiEnabledCount() || !this.msiSink) return false;
    const c = this.msi.capOff;
    const addr = (BigInt(this.get32(c + 8)) << 32n) | BigInt(this.get32(c + 4));
    const data = this.get16(c + 12);
    this.msiSink(addr, (data + index) & 0xffff);
    return true;
  }

  /**
   * Sends MSI-X vector `index`. While the function or the vector is masked the message is held in the
   * Pending Bit Array and sent when both are unmasked (PCI 3.0 §6.8.2.9; bhyve drops it, which can lose
   * a completion a driver masked the vector around).
   */
  generateMsix(index: number): boolean {
    const m = this.msix;
    if (!m || !this.msixEnabled() || index >= m.tableCount || !this.msiSink) return false;
    if (this.msixFunctionMasked() || m.table[index * 4 + 3]! & PCIM_MSIX_VCTRL_MASK) {
      m.pba[index >>> 5]! |= 1 << (index & 31);
      return false;
    }
    this.sendMsixEntry(index);
    return true;
  }

  /** MSI-X table entry `index` as the guest programmed it, and whether it (or the function) is masked now. */
  msixEntry(index: number): { addr: bigint; data: number; masked: boolean } | undefined {
    const m = this.msix;
    if (!m || index < 0 || index >= m.tableCount) return undefined;
    const e = index * 4;
    return {
      addr: (BigInt(m.table[e + 1]!) << 32n) | BigInt(m.table[e]!),
      data: m.table[e + 2]!,
      masked: this.msixFunctionMasked() || (m.table[e + 3]! & PCIM_MSIX_VCTRL_MASK) !== 0,
    };
  }

  /** Whether vector `index` has a message held while masked. */
  msixPending(index: number): boolean {
    const m = this.msix;
    return !!m && index < m.tableCount && (m.pba[index >>> 5]! & (1 << (index & 31))) !== 0;
  }

  private sendMsixEntry(index: number): void {
    const m = this.msix!;
    const e = index * 4;
    this.msiSink?.((BigInt(m.table[e + 1]!) << 32n) | BigInt(m.table[e]!), m.table[e + 2]!);
  }

  /** Sends and clears the pending messages of every vector that is no longer masked. */
  private flushMsixPending(): void {
    const m = this.msix;
    if (!m || !this.msixEnabled() || this.msixFunctionMasked()) return;
    for (let w = 0; w < m.pba.length; w++) {
      if (m.pba[w] === 0) continue;
      for (let b = 0; b < 32; b++) {
        const index = w * 32 + b;
        if ((m.pba[w]! & (1 << b)) === 0 || m.table[index * 4 + 3]! & PCIM_MSIX_VCTRL_MASK) continue;
        m.pba[w]! &= ~(1 << b);
        this.sendMsixEntry(index);
      }
    }
  }

  /** Whether a BAR offset falls in the MSI-X table or PBA (those the bus answers itself). */
  msixRegion(bar: number, offset: number): 'table' | 'pba' | undefined {
    const m = this.msix;
    if (!m) return undefined;
    if (bar === m.tableBar && offset >= m.tableOffset && offset < m.tableOffset + m.tableCount * MSIX_TABLE_ENTRY_SIZE) {
      return 'table';
    }
    if (bar === m.pbaBar && offset >= m.pbaOffset && offset < m.pbaOffset + m.pbaSize) return 'pba';
    return undefined;
  }

  /** MSI-X table and PBA reads: 4-byte aligned dwords (and single bytes for debuggers). */
  msixRead(bar: number, offset: number, size: 1 | 2 | 4): number {
    const m = this.msix!;
    if (this.msixRegion(bar, offset) === 'pba') {
      const rel = offset - m.pbaOffset;
      if (rel % size !== 0 || size === 2) return size === 1 ? 0xff : 0xffff;
      const word = m.pba[rel >>> 2]!;
      return size === 4 ? word : (word >>> ((rel & 3) * 8)) & 0xff;
    }
    const rel = offset - m.tableOffset;
    if (rel % size !== 0 || size === 2) return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
    const word = m.table[rel >>> 2]!;
    return size === 4 ? word : (word >>> ((rel & 3) * 8)) & 0xff;
  }

  msixWrite(bar: number, offset: number, size: 1 | 2 | 4, value: number): void {
    const m = this.msix!;
    if (this.msixRegion(bar, offset) !== 'table' || size !== 4) return; // PCI 3.0: dword (or qword) writes only
    const rel = offset - m.tableOffset;
    if (rel % 4 !== 0) return;
    m.table[rel >>> 2] = value >>> 0;
    this.model.interruptRouteChanged?.();
    if ((rel & 15) === 12 && (value & PCIM_MSIX_VCTRL_MASK) === 0) this.flushMsixPending();
  }

  // --- INTx ----------------------------------------------------------------------------------------------

  /** INTx may reach the guest only while it is not disabled in COMMAND and MSI/MSI-X are off. */
  private lintrPermitted(): boolean {
    return (this.get16(PCIR_COMMAND) & PCIM_CMD_INTxDIS) === 0 && !this.msiEnabled() && !this.msixEnabled();
  }

  assertLintr(): void {
    if (this.lintrPin === 0 || this.lintrState !== 'idle') return;
    this.set16(PCIR_STATUS, this.get16(PCIR_STATUS) | PCIM_STATUS_INTxSTATE);
    if (this.lintrPermitted()) {
      this.lintrState = 'asserted';
      this.intx?.assert(this);
    } else {
      this.lintrState = 'pending';
    }
  }

  deassertLintr(): void {
    if (this.lintrPin === 0) return;
    this.set16(PCIR_STATUS, this.get16(PCIR_STATUS) & ~PCIM_STATUS_INTxSTATE);
    if (this.lintrState === 'asserted') this.intx?.deassert(this);
    this.lintrState = 'idle';
  }

  /** Re-evaluates masking after COMMAND or MSI/MSI-X enable changes: a masked line is held pending. */
  updateLintr(): void {
    if (this.lintrState === 'asserted' && !this.lintrPermitted()) {
      this.intx?.deassert(this);
      this.lintrState = 'pending';
    } else if (this.lintrState === 'pending' && this.lintrPermitted()) {
      this.lintrState = 'asserted';
      this.intx?.assert(this);
    }
  }

  /** Asks for an INTx pin; the bus picks the least-used pin of the slot and routes it. */
  requestLintr(): void {
    this.wantsLintr = true;
  }
  wantsLintr = false;

  setLintrPin(pin: number): void {
    this.lintrPin = pin;
    this.set8(PCIR_INTPIN, pin);
  }

  // --- guest writes to capabilities ---------------------------------------------------------------------

  /** Applies a guest write that lands in a capability; only the writable fields change. */
  capabilityWrite(off: number, size: 1 | 2 | 4, value: number): void {
    const cap = this.capabilityAt(off);
    if (!cap) return;
    const [start, id] = cap;
    // Overlay the write on a copy of the capability, then take only the writable fields from it.
    const next = this.cfg.slice(start, start + this.capLength(start));
    for (let i = 0; i < size; i++) {
      const o = off + i - start;
      if (o >= 0 && o < next.length) next[o] = (value >>> (8 * i)) & 0xff;
    }
    const nv = new DataView(next.buffer);
    const before = { msi: this.msiEnabled(), msix: this.msixEnabled() };
    const oldCtl = this.get16(start + 2);
    const newCtl = nv.getUint16(2, true);
    if (id === PCIY_MSI) {
      // MSI enable and Multiple Message Enable (never more than the device can send), address and data.
      const mme = Math.min((newCtl & PCIM_MSICTRL_MME_MASK) >> 4, (oldCtl >> 1) & 7);
      this.set16(start + 2, (oldCtl & ~(PCIM_MSICTRL_MSI_ENABLE | PCIM_MSICTRL_MME_MASK)) | (newCtl & PCIM_MSICTRL_MSI_ENABLE) | (mme << 4));
      const msg = [this.get32(start + 4), this.get32(start + 8), this.get16(start + 12)];
      this.set32(start + 4, nv.getUint32(4, true) & ~3);
      this.set32(start + 8, nv.getUint32(8, true));
      this.set16(start + 12, nv.getUint16(12, true));
      // A new message, or a new number of messages (a device with several may route them differently).
      const mmeChanged = mme !== (oldCtl & PCIM_MSICTRL_MME_MASK) >> 4;
      if (mmeChanged || msg[0] !== this.get32(start + 4) || msg[1] !== this.get32(start + 8) || msg[2] !== this.get16(start + 12)) {
        this.model.interruptRouteChanged?.();
      }
    } else if (id === PCIY_MSIX) {
      // Only the enable and function-mask bits; the table size and locations are read-only.
      const bits = PCIM_MSIXCTRL_MSIX_ENABLE | PCIM_MSIXCTRL_FUNCTION_MASK;
      this.set16(start + 2, (oldCtl & ~bits) | (newCtl & bits));
      if (((oldCtl ^ newCtl) & bits) !== 0) {
        this.model.interruptRouteChanged?.();
        this.flushMsixPending();
      }
    } else if (id === PCIY_EXPRESS) {
      // Device and link control/status are accepted; the capability registers stay read-only.
      for (const [lo, hi] of [[0x08, 0x0c], [0x10, 0x14]] as const) {
        this.cfg.set(next.subarray(lo, hi), start + lo);
      }
    }
    const after = { msi: this.msiEnabled(), msix: this.msixEnabled() };
    if (before.msi !== after.msi || before.msix !== after.msix) {
      this.updateLintr();
      this.model.interruptModeChanged?.();
    }
  }

  // --- BARs ----------------------------------------------------------------------------------------------

  decodeEnabled(bar: number): boolean {
    const cmd = this.get16(PCIR_COMMAND);
    return this.bars[bar]!.type === 'io' ? (cmd & PCIM_CMD_PORTEN) !== 0 : (cmd & PCIM_CMD_MEMEN) !== 0;
  }

  /** The value of a BAR register for an address, with its read-only low bits. */
  barRegister(bar: number): number {
    const b = this.bars[bar]!;
    if (b.type === 'memhi64') {
      const lo = this.bars[bar - 1]!;
      return Math.floor(lo.addr / 2 ** 32) >>> 0;
    }
    if (b.type === 'none') return 0;
    return ((b.addr % 2 ** 32) | b.lobits) >>> 0;
  }

  static lobitsFor(type: BarType, size: number): number {
    if (type === 'io') return PCIM_BAR_IO_SPACE;
    if (type === 'mem64') return PCIM_BAR_MEM_64 | (size > 128 * 2 ** 20 ? PCIM_BAR_MEM_PREFETCH : 0);
    return 0;
  }
}
