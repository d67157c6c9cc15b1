// The guest's side of an AHCI HBA, for tests and benchmarks without a VM: a machine whose RAM the native port
// workers reach (VirtioTestMachine), and a driver that does what Linux's ahci driver does with the registers:
// HBA reset, per-port command list and FIS receive area, engine start and stop, COMRESET, and commands built as
// command headers, register FISes and PRDTs. Completions are awaited by polling PxCI / PxSACT with a deadline.
import { parseCommandLine } from '../../src/cli/parse.js';
import { initPci } from '../../src/platform/pci/init.js';
import type { PciBus } from '../../src/platform/pci/bus.js';
import { memoryLayout, GiB } from '../../src/vm/memmap.js';
import type { AhciController } from '../../devices/ahci/device.js';
import { GuestAlloc, PciFunctionAccess, VirtioTestMachine, type VirtioTestMachineOptions } from './virtio-driver.js';

// HBA and port registers (AHCI 1.3.1 §3)
export const CAP = 0x00, GHC = 0x04, IS = 0x08, PI = 0x0c, VS = 0x10;
export const PxCLB = 0x00, PxCLBU = 0x04, PxFB = 0x08, PxFBU = 0x0c, PxIS = 0x10, PxIE = 0x14, PxCMD = 0x18, PxTFD = 0x20,
  PxSIG = 0x24, PxSSTS = 0x28, PxSCTL = 0x2c, PxSERR = 0x30, PxSACT = 0x34, PxCI = 0x38;
export const CMD_ST = 1, CMD_FRE = 1 << 4, CMD_FR = 1 << 14, CMD_CR = 1 << 15;
export const IS_DHRS = 1, IS_PSS = 2, IS_SDBS = 8, IS_PCS = 1 << 6, IS_HBFS = 1 << 29, IS_TFES = 1 << 30;
export const ST_ERR = 0x01, ST_DRQ = 0x08, ST_DRDY = 0x40, ST_BSY = 0x80;
export const ER_ABRT = 0x04, ER_IDNF = 0x10;

/** One guest buffer of a PRDT. */
export interface Prd {
  addr: number;
  len: number;
}

export interface AtaCommand {
  command: number;
  features?: number;
  lba?: number;
  count?: number;
  device?: number;
  /** the control field (SRST is bit 2); with `control` the FIS is a control FIS (C bit clear) */
  control?: number;
  /** the 12-byte ATAPI command block: the header's A bit is set */
  cdb?: number[];
  /** the header's W bit: data goes from the guest to the device */
  write?: boolean;
  prdt?: Prd[];
  /** raw overrides for what hostile tests build */
  cfl?: number;
  fisType?: number;
  /** NCQ: also set the slot's PxSACT bit */
  queued?: boolean;
}

export interface CommandResult {
  /** PxTFD after completion (status | error << 8) */
  tfd: number;
  status: number;
  error: number;
  /** PxIS when the command ended */
  is: number;
  /** the command header's PRDBC */
  prdbc: number;
  /** the D2H register FIS in the receive area */
  d2h: Uint8Array;
  /** the port's CI bit stayed set: the command failed and the engine stopped */
  stuck: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface PortMemory {
  clb: number;
  fb: number;
  /** one command table per slot (0x80 bytes of FIS and ATAPI command, then room for PRDS_PER_TABLE entries) */
  tables: number[];
}

export const PRDS_PER_TABLE = 64;
const TABLE_BYTES = 0x80 + 16 * PRDS_PER_TABLE;

export class AhciDriver extends PciFunctionAccess {
  readonly abar: number;
  readonly alloc: GuestAlloc;
  readonly ports = new Map<number, PortMemory>();

  constructor(m: VirtioTestMachine, bus: PciBus, slot: number) {
    super(m, bus, slot);
    this.abar = (this.cfgRead(0x24, 4) & ~0xf) >>> 0;
    this.alloc = new GuestAlloc(0x100000, m.memory.size);
  }

  get controller(): AhciController {
    return this.fn.model as AhciController;
  }

  reg(off: number): number {
    return this.m.mmioRead(this.abar + off, 4) >>> 0;
  }
  setReg(off: number, value: number): void {
    this.m.mmioWrite(this.abar + off, value >>> 0, 4);
  }
  preg(port: number, off: number): number {
    return this.reg(0x100 + port * 0x80 + off);
  }
  setPreg(port: number, off: number, value: number): void {
    this.setReg(0x100 + port * 0x80 + off, value);
  }

  /** MSI at address 0xfee00000 with data 0x50 (message i: 0x50 + i), `messages` of them enabled (a power of two). */
  enableMsi(messages = 1): void {
    const cap = this.findCap(0x05);
    this.cfgWrite(cap + 4, 4, 0xfee00000);
    this.cfgWrite(cap + 8, 4, 0);
    this.cfgWrite(cap + 12, 2, 0x50);
    const ctrl = this.cfgRead(cap + 2, 2) & ~0x70;
    this.cfgWrite(cap + 2, 2, ctrl | (Math.log2(messages) << 4) | 1);
  }
  /** MSI messages the capability asks for (Multiple Message Capable). */
  msiMessagesCapable(): number {
    return 1 << ((this.cfgRead(this.findCap(0x05) + 2, 2) >> 1) & 7);
  }
  msiCount(message = 0): number {
    return this.m.irq.events.filter((e) => e.kind === 'msi' && e.data === 0x50 + message).length;
  }

  /** HBA reset, then AHCI mode with interrupts enabled. */
  reset(): void {
    this.setReg(GHC, 1);
    this.setReg(GHC, (1 << 31) | 2);
  }

  /** Stops the port, gives it a command list, FIS area and tables, clears its status, starts FRE then ST. */
  startPort(port: number, ie = 0xffffffff): PortMemory {
    this.stopPort(port);
    let pm = this.ports.get(port);
    if (!pm) {
      const clb = this.alloc.alloc(1024, 1024);
      const fb = this.alloc.alloc(256, 256);
      const tables = Array.from({ length: 32 }, () => this.alloc.alloc(TABLE_BYTES, 128));
      pm = { clb, fb, tables };
      this.ports.set(port, pm);
    }
    this.m.memory.bytes.fill(0, pm.clb, pm.clb + 1024);
    this.m.memory.bytes.fill(0, pm.fb, pm.fb + 256);
    this.setPreg(port, PxCLB, pm.clb);
    this.setPreg(port, PxCLBU, 0);
    this.setPreg(port, PxFB, pm.fb);
    this.setPreg(port, PxFBU, 0);
    this.setPreg(port, PxSERR, 0xffffffff);
    this.setPreg(port, PxIS, 0xffffffff);
    this.setReg(IS, 0xffffffff);
    this.setPreg(port, PxIE, ie);
    this.setPreg(port, PxCMD, this.preg(port, PxCMD) | CMD_FRE);
    this.setPreg(port, PxCMD, this.preg(port, PxCMD) | CMD_ST);
    return pm;
  }

  stopPort(port: number): void {
    this.setPreg(port, PxCMD, this.preg(port, PxCMD) & ~CMD_ST);
  }

  /** COMRESET: SCTL.DET 1 then 0. */
  comreset(port: number): void {
    this.setPreg(port, PxSCTL, 1);
    this.setPreg(port, PxSCTL, 0);
  }

  /** Writes the command header and table of `slot` (does not issue it). */
  build(port: number, slot: number, c: AtaCommand): void {
    const pm = this.ports.get(port)!;
    const v = this.m.memory.view;
    const table = pm.tables[slot]!;
    const prdt = c.prdt ?? [];
    const cfl = c.cfl ?? 5;
    const dw0 = (cfl & 0x1f) | (c.cdb ? 1 << 5 : 0) | (c.write ? 1 << 6 : 0) | (prdt.length << 16);
    const hdr = pm.clb + slot * 32;
    v.setUint32(hdr, dw0 >>> 0, true);
    v.setUint32(hdr + 4, 0, true);
    v.setUint32(hdr + 8, table, true);
    v.setUint32(hdr + 12, 0, true);
    this.m.memory.bytes.fill(0, table, table + 0x80);
    const lba = c.lba ?? 0;
    const count = c.count ?? 0;
    const f = (i: number, b: number): void => v.setUint8(table + i, b & 0xff);
    f(0, c.fisType ?? 0x27);
    f(1, c.control !== undefined ? 0 : 0x80);
    f(2, c.command);
    f(3, c.features ?? 0);
    f(4, lba);
    f(5, lba / 2 ** 8);
    f(6, lba / 2 ** 16);
    f(7, c.device ?? 0x40);
    f(8, lba / 2 ** 24);
    f(9, lba / 2 ** 32);
    f(10, lba / 2 ** 40);
    f(11, (c.features ?? 0) >> 8);
    f(12, count);
    f(13, count >> 8);
    f(15, c.control ?? 0);
    (c.cdb ?? []).forEach((b, i) => f(0x40 + i, b));
    prdt.forEach((p, i) => {
      const e = table + 0x80 + i * 16;
      v.setUint32(e, p.addr >>> 0, true);
      v.setUint32(e + 4, Math.floor(p.addr / 2 ** 32), true);
      v.setUint32(e + 8, 0, true);
      v.setUint32(e + 12, (p.len - 1) & 0x3fffff, true);
    });
  }

  /** Issues slots (their SACT bits first for queued commands). */
  issue(port: number, slots: number[], queued = false): void {
    const mask = slots.reduce((a, s) => a | (1 << s), 0) >>> 0;
    if (queued) this.setPreg(port, PxSACT, mask);
    this.setPreg(port, PxCI, mask);
  }

  /** Waits until the slots' CI (and SACT) bits clear, or a task file / host bus error stops the port. */
  async wait(port: number, slots: number[], timeoutMs = 5000): Promise<void> {
    const mask = slots.reduce((a, s) => a | (1 << s), 0) >>> 0;
    const end = Date.now() + timeoutMs;
    for (;;) {
      const busy = (this.preg(port, PxCI) | this.preg(port, PxSACT)) & mask;
      if (busy === 0 || this.preg(port, PxIS) & (IS_TFES | IS_HBFS)) return;
      if (Date.now() > end) throw new Error(`port ${port}: slots 0x${mask.toString(16)} not done after ${timeoutMs} ms (CI 0x${this.preg(port, PxCI).toString(16)})`);
      await sleep(1);
    }
  }

  /** Builds, issues and awaits one command in `slot`. */
  async command(port: number, c: AtaCommand, slot = 0): Promise<CommandResult> {
    this.build(port, slot, c);
    this.issue(port, [slot], c.queued);
    await this.wait(port, [slot]);
    return this.result(port, slot);
  }

  result(port: number, slot: number): CommandResult {
    const pm = this.ports.get(port)!;
    const tfd = this.preg(port, PxTFD);
    return {
      tfd,
      status: tfd & 0xff,
      error: (tfd >>> 8) & 0xff,
      is: this.preg(port, PxIS),
      prdbc: this.m.memory.view.getUint32(pm.clb + slot * 32 + 4, true),
      d2h: this.m.memory.bytes.slice(pm.fb + 0x40, pm.fb + 0x54),
      stuck: (this.preg(port, PxCI) & (1 << slot)) !== 0,
    };
  }

  /** After a failed command: stop and restart the engine and clear the error state, as Linux's EH does. */
  recover(port: number): void {
    this.stopPort(port);
    this.setPreg(port, PxSERR, 0xffffffff);
    this.setPreg(port, PxIS, 0xffffffff);
    this.setPreg(port, PxCMD, this.preg(port, PxCMD) | CMD_ST);
  }

  /** A guest buffer of `len` bytes (page aligned). */
  buffer(len: number): number {
    return this.alloc.alloc(len, 4096);
  }
  bytes(addr: number, len: number): Uint8Array {
    return this.m.memory.bytes.slice(addr, addr + len);
  }
}

/** A machine with an ahci function in slot `slot`, from a bhyve command line fragment. */
export function ahciMachine(
  args: string[],
  slot: number,
  opts: VirtioTestMachineOptions = {},
): { m: VirtioTestMachine; bus: PciBus; drv: AhciDriver; warnings: string[] } {
  const m = new VirtioTestMachine(opts);
  const warnings: string[] = [];
  const { tree } = parseCommandLine([...args, 'vm'], (w) => warnings.push(w));
  const bus = initPci({ tree, machine: m, layout: memoryLayout(GiB), bootrom: false, warn: (w) => warnings.push(w) });
  return { m, bus, drv: new AhciDriver(m, bus, slot), warnings };
}
