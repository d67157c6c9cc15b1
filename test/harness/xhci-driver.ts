// The guest's side of an xHCI controller, for tests without a VM: a machine with the controller from a bhyve
// command line fragment, and a driver that does what Linux's xhci-hcd and usbhid do (controller reset, DCBAA,
// command ring, event ring segments, Enable Slot, Address Device, control transfers on EP0, Configure Endpoint,
// interrupt IN TRBs) through the registers and guest memory. Hostile tests use the raw writers (TRBs, contexts,
// registers) to build what no correct driver would.
import { parseCommandLine } from '../../src/cli/parse.js';
import { initPci } from '../../src/platform/pci/init.js';
import type { PciBus } from '../../src/platform/pci/bus.js';
import { memoryLayout, GiB } from '../../src/vm/memmap.js';
import type { XhciController } from '../../devices/xhci/device.js';
import * as R from '../../devices/xhci/regs.js';
import { TestMachine } from './machine.js';

const cf8 = (slot: number, off: number): number => (0x80000000 | (slot << 11) | (off & 0xfc)) >>> 0;

/** A decoded event TRB. */
export interface XhciEvent {
  type: number;
  code: number;
  slotId: number;
  /** Transfer events: the endpoint's DCI */
  epId: number;
  /** the TRB pointer (or Event Data value) */
  ptr: number;
  /** Transfer events: the residual length; Command Completion: the completion parameter */
  len: number;
  ed: boolean;
  /** Port Status Change: the port */
  port: number;
}

/** A ring software produces into: TRBs with its cycle bit, a Link TRB with Toggle Cycle at the end. */
export class ProducerRing {
  enq = 0;
  cycle = true;
  constructor(
    readonly m: TestMachine,
    readonly base: number,
    /** TRBs including the Link */
    readonly size: number,
  ) {
    m.memory.bytes.fill(0, base, base + size * 16);
  }

  get enqueueAddr(): number {
    return this.base + this.enq * 16;
  }

  /** Writes a TRB at the enqueue pointer (cycle bit set to ours); returns its address. */
  push(paramLo: number, paramHi: number, status: number, control: number): number {
    const at = this.enqueueAddr;
    writeTrb(this.m, at, paramLo, paramHi, status, (control & ~1) | (this.cycle ? 1 : 0));
    this.enq++;
    if (this.enq === this.size - 1) {
      writeTrb(this.m, this.base + this.enq * 16, this.base, 0, 0, (R.TRB_LINK << 10) | R.TRB_TC | (this.cycle ? 1 : 0));
      this.enq = 0;
      this.cycle = !this.cycle;
    }
    return at;
  }
}

export function writeTrb(m: TestMachine, at: number, paramLo: number, paramHi: number, status: number, control: number): void {
  const v = new DataView(m.memory.bytes.buffer);
  v.setUint32(at, paramLo >>> 0, true);
  v.setUint32(at + 4, paramHi >>> 0, true);
  v.setUint32(at + 8, status >>> 0, true);
  v.setUint32(at + 12, control >>> 0, true);
}

export interface Setup {
  bmRequestType: number;
  bRequest: number;
  wValue?: number;
  wIndex?: number;
  wLength?: number;
}

export interface ControlOutcome {
  /** completion code of the last event (the Status stage's, or the error) */
  code: number;
  events: XhciEvent[];
  data: Uint8Array;
  /** bytes the Data stage moved (its length minus the residual reported for it) */
  actual: number;
}

export interface StartOptions {
  /** event ring segment sizes (default one of 64 TRBs) */
  segments?: number[];
  commandTrbs?: number;
  maxSlots?: number;
  msi?: boolean;
}

export class XhciDriver {
  readonly bar0: number;
  private next = 0x10000;
  dcbaa = 0;
  cmd?: ProducerRing;
  erst = 0;
  segments: Array<{ base: number; size: number }> = [];
  /** the event ring's dequeue position */
  evSeg = 0;
  evIdx = 0;
  evCycle = true;
  /** events read while waiting for something else */
  readonly seen: XhciEvent[] = [];
  readonly ep0 = new Map<number, ProducerRing>();
  readonly rings = new Map<string, ProducerRing>();
  readonly outputs = new Map<number, number>();

  constructor(
    readonly m: TestMachine,
    readonly bus: PciBus,
    readonly slot: number,
  ) {
    this.bar0 = (this.cfgRead(0x10, 4) & ~0xf) >>> 0;
  }

  get controller(): XhciController {
    return this.bus.find(0, this.slot, 0)!.model as XhciController;
  }

  // --- PCI and registers -----------------------------------------------------------------------------------

  cfgRead(off: number, size: 1 | 2 | 4 = 4): number {
    this.m.out(0xcf8, cf8(this.slot, off), 4);
    return this.m.in(0xcfc + (off & 3), size) >>> 0;
  }
  cfgWrite(off: number, size: 1 | 2 | 4, value: number): void {
    this.m.out(0xcf8, cf8(this.slot, off), 4);
    this.m.out(0xcfc + (off & 3), value, size);
  }
  findCap(id: number): number {
    let p = this.cfgRead(0x34, 1);
    for (let n = 0; p !== 0 && n < 48; n++) {
      if (this.cfgRead(p, 1) === id) return p;
      p = this.cfgRead(p + 1, 1);
    }
    return 0;
  }

  reg(off: number, size: 1 | 2 | 4 = 4): number {
    return this.m.read(this.bar0 + off, size) >>> 0;
  }
  setReg(off: number, v: number, size: 1 | 2 | 4 = 4): void {
    this.m.write(this.bar0 + off, v >>> 0, size);
  }
  setReg64(off: number, v: number): void {
    this.setReg(off, v % 2 ** 32);
    this.setReg(off + 4, Math.floor(v / 2 ** 32));
  }
  op(off: number): number {
    return this.reg(R.OP_BASE + off);
  }
  setOp(off: number, v: number): void {
    this.setReg(R.OP_BASE + off, v);
  }
  ir(off: number): number {
    return this.reg(R.IR0_BASE + off);
  }
  setIr(off: number, v: number): void {
    this.setReg(R.IR0_BASE + off, v);
  }
  portsc(port: number): number {
    return this.reg(R.PORT_BASE + (port - 1) * R.PORT_STRIDE);
  }
  setPortsc(port: number, v: number): void {
    this.setReg(R.PORT_BASE + (port - 1) * R.PORT_STRIDE, v);
  }
  doorbell(n: number, v: number): void {
    this.setReg(R.DB_BASE + n * 4, v);
  }

  /** MSI at 0xfee00000 with data 0x41. */
  enableMsi(): void {
    const cap = this.findCap(0x05);
    this.cfgWrite(cap + 4, 4, 0xfee00000);
    this.cfgWrite(cap + 8, 4, 0);
    this.cfgWrite(cap + 12, 2, 0x41);
    this.cfgWrite(cap + 2, 2, this.cfgRead(cap + 2, 2) | 1);
  }
  msiCount(): number {
    return this.m.irq.events.filter((e) => e.kind === 'msi' && e.data === 0x41).length;
  }

  // --- guest memory ----------------------------------------------------------------------------------------

  alloc(size: number, align = 64): number {
    const at = Math.ceil(this.next / align) * align;
    this.next = at + size;
    if (this.next > this.m.memory.bytes.length) throw new Error('test guest memory exhausted');
    this.m.memory.bytes.fill(0, at, at + size);
    return at;
  }
  u32(gpa: number): number {
    return new DataView(this.m.memory.bytes.buffer).getUint32(gpa, true);
  }
  setU32(gpa: number, v: number): void {
    new DataView(this.m.memory.bytes.buffer).setUint32(gpa, v >>> 0, true);
  }
  setU64(gpa: number, v: number): void {
    this.setU32(gpa, v % 2 ** 32);
    this.setU32(gpa + 4, Math.floor(v / 2 ** 32));
  }
  bytes(gpa: number, len: number): Uint8Array {
    return this.m.memory.bytes.slice(gpa, gpa + len);
  }

  // --- bring-up --------------------------------------------------------------------------------------------

  /** HCRST as xhci_reset does: stop, reset, wait for CNR and HCRST to clear. */
  reset(): void {
    this.setOp(R.OP_USBCMD, 0);
    this.setOp(R.OP_USBCMD, R.USBCMD_HCRST);
    if (this.op(R.OP_USBCMD) & R.USBCMD_HCRST || this.op(R.OP_USBSTS) & R.USBSTS_CNR) throw new Error('reset did not complete');
  }

  /** xhci_init + xhci_run: slots, DCBAA, command ring, ERST, interrupter 0 enabled, run. */
  start(o: StartOptions = {}): void {
    if (o.msi !== false) this.enableMsi();
    this.setOp(R.OP_CONFIG, o.maxSlots ?? R.MAX_SLOTS);
    this.dcbaa = this.alloc(8 * (R.MAX_SLOTS + 1), 64);
    this.setReg64(R.OP_BASE + R.OP_DCBAAP_LO, this.dcbaa);
    const n = o.commandTrbs ?? 32;
    this.cmd = new ProducerRing(this.m, this.alloc(n * 16, 64), n);
    this.setReg64(R.OP_BASE + R.OP_CRCR_LO, this.cmd.base | 1);
    const sizes = o.segments ?? [64];
    this.segments = sizes.map((size) => ({ base: this.alloc(size * 16, 64), size }));
    this.erst = this.alloc(16 * sizes.length, 64);
    this.segments.forEach((s, i) => {
      this.setU64(this.erst + i * 16, s.base);
      this.setU32(this.erst + i * 16 + 8, s.size);
    });
    this.evSeg = this.evIdx = 0;
    this.evCycle = true;
    this.setIr(R.IR_ERSTSZ, sizes.length);
    this.setReg64(R.IR0_BASE + R.IR_ERDP_LO, this.segments[0]!.base);
    this.setReg64(R.IR0_BASE + R.IR_ERSTBA_LO, this.erst);
    this.setIr(R.IR_IMOD, 160);
    this.setIr(R.IR_IMAN, R.IMAN_IE);
    this.setOp(R.OP_USBCMD, R.USBCMD_RS | R.USBCMD_INTE | R.USBCMD_HSEE);
  }

  // --- events ----------------------------------------------------------------------------------------------

  get evAddr(): number {
    return this.segments[this.evSeg]!.base + this.evIdx * 16;
  }

  /** The next event if the controller posted one (cycle bit matches); advances and writes ERDP. */
  poll(updateErdp = true): XhciEvent | undefined {
    if (this.segments.length === 0) return undefined;
    const at = this.evAddr;
    const ctl = this.u32(at + 12);
    if (((ctl & 1) !== 0) !== this.evCycle) return undefined;
    const lo = this.u32(at);
    const hi = this.u32(at + 4);
    const st = this.u32(at + 8);
    const ev: XhciEvent = {
      type: (ctl >>> 10) & 0x3f,
      code: st >>> 24,
      slotId: ctl >>> 24,
      epId: (ctl >>> 16) & 0x1f,
      ptr: hi * 2 ** 32 + lo,
      len: st & 0xffffff,
      ed: (ctl & 4) !== 0,
      port: lo >>> 24,
    };
    this.evIdx++;
    if (this.evIdx === this.segments[this.evSeg]!.size) {
      this.evIdx = 0;
      this.evSeg++;
      if (this.evSeg === this.segments.length) {
        this.evSeg = 0;
        this.evCycle = !this.evCycle;
      }
    }
    if (updateErdp) this.ackEvents();
    return ev;
  }

  /** Writes ERDP at the current dequeue position, clearing EHB (and IMAN.IP), as the interrupt handler does. */
  ackEvents(): void {
    this.setIr(R.IR_IMAN, R.IMAN_IE | R.IMAN_IP);
    this.setReg(R.IR0_BASE + R.IR_ERDP_LO, (this.evAddr | R.ERDP_EHB | (this.evSeg & 7)) >>> 0);
    this.setReg(R.IR0_BASE + R.IR_ERDP_HI, 0);
  }

  /** Every event posted so far (including those seen while waiting). */
  drain(): XhciEvent[] {
    const out = this.seen.splice(0);
    for (let e = this.poll(); e; e = this.poll()) out.push(e);
    return out;
  }

  /** The next event of `type`, keeping the others in `seen`. */
  take(type: number): XhciEvent | undefined {
    const i = this.seen.findIndex((e) => e.type === type);
    if (i >= 0) return this.seen.splice(i, 1)[0];
    for (let e = this.poll(); e; e = this.poll()) {
      if (e.type === type) return e;
      this.seen.push(e);
    }
    return undefined;
  }

  // --- commands --------------------------------------------------------------------------------------------

  /** Places a command TRB, rings doorbell 0 and returns its Command Completion event. */
  command(paramLo: number, paramHi: number, status: number, control: number): XhciEvent {
    const at = this.cmd!.push(paramLo, paramHi, status, control);
    this.doorbell(0, 0);
    const ev = this.take(R.TRB_COMMAND_COMPLETION);
    if (!ev) throw new Error(`no completion for command type ${(control >>> 10) & 0x3f}`);
    if (ev.ptr !== at) throw new Error(`completion for 0x${ev.ptr.toString(16)}, expected 0x${at.toString(16)}`);
    return ev;
  }

  enableSlot(): XhciEvent {
    return this.command(0, 0, 0, R.TRB_ENABLE_SLOT << 10);
  }

  /** An input context (control + slot + 31 endpoints), zeroed; returns its address. */
  inputContext(): number {
    return this.alloc(R.INPUT_CTX_SIZE, 64);
  }

  /** Address Device for `slotId` on root port `port` with EP0 max packet `mps`, as xhci_setup_device does. */
  addressDevice(slotId: number, port: number, o: { bsr?: boolean; mps?: number; speed?: number } = {}): XhciEvent {
    let out = this.outputs.get(slotId);
    if (out === undefined) {
      out = this.alloc(R.DEVICE_CTX_SIZE, 64);
      this.outputs.set(slotId, out);
      this.setU64(this.dcbaa + slotId * 8, out);
    }
    let ring = this.ep0.get(slotId);
    if (!ring) {
      ring = new ProducerRing(this.m, this.alloc(64 * 16, 64), 64);
      this.ep0.set(slotId, ring);
    }
    const ic = this.inputContext();
    this.setU32(ic + 4, 3); // A0 | A1
    this.setU32(ic + 32, (1 << 27) | ((o.speed ?? R.SPEED_HIGH) << 20));
    this.setU32(ic + 32 + 4, port << 16);
    this.setU32(ic + 64 + 4, (3 << 1) | (R.EPT_CONTROL << 3) | ((o.mps ?? 64) << 16));
    this.setU64(ic + 64 + 8, ring.enqueueAddr | (ring.cycle ? 1 : 0));
    this.setU32(ic + 64 + 16, 8);
    return this.command(ic, 0, 0, (R.TRB_ADDRESS_DEVICE << 10) | (o.bsr ? R.TRB_BSR : 0) | (slotId << 24));
  }

  /** Output context dword `i` of context `ctx` (0 slot, DCI 1..31). */
  outputDword(slotId: number, ctx: number, i: number): number {
    return this.u32(this.outputs.get(slotId)! + ctx * 32 + i * 4);
  }
  slotState(slotId: number): number {
    return this.outputDword(slotId, 0, 3) >>> 27;
  }
  epState(slotId: number, dci: number): number {
    return this.outputDword(slotId, dci, 0) & 7;
  }

  /** Configure Endpoint adding an interrupt IN endpoint `ep` (DCI 2*ep+1) with a fresh ring. */
  configureInterruptIn(slotId: number, ep = 1, o: { mps?: number; type?: number; dci?: number } = {}): XhciEvent {
    const dci = o.dci ?? ep * 2 + 1;
    const ring = new ProducerRing(this.m, this.alloc(32 * 16, 64), 32);
    this.rings.set(`${slotId}/${dci}`, ring);
    const ic = this.inputContext();
    this.setU32(ic + 4, 1 | (1 << dci));
    this.setU32(ic + 32, (dci << 27) | (R.SPEED_HIGH << 20));
    this.setU32(ic + 32 + 4, 5 << 16);
    const c = ic + (dci + 1) * 32;
    this.setU32(c, 7 << 16); // interval
    this.setU32(c + 4, (3 << 1) | ((o.type ?? R.EPT_INTERRUPT_IN) << 3) | ((o.mps ?? 8) << 16));
    this.setU64(c + 8, ring.base | 1);
    this.setU32(c + 16, 8 | (8 << 16));
    return this.command(ic, 0, 0, (R.TRB_CONFIGURE_EP << 10) | (slotId << 24));
  }

  ring(slotId: number, dci: number): ProducerRing {
    return this.rings.get(`${slotId}/${dci}`)!;
  }

  // --- transfers -------------------------------------------------------------------------------------------

  /**
   * A control transfer on EP0 as xhci_queue_ctrl_tx lays it out: Setup (IDT, TRT), an optional Data stage
   * (ISP for IN) and a Status stage with IOC in the other direction.
   */
  control(slotId: number, s: Setup, out?: Uint8Array): ControlOutcome {
    const ring = this.ep0.get(slotId)!;
    const len = s.wLength ?? 0;
    const dirIn = (s.bmRequestType & 0x80) !== 0;
    const lo = (s.bmRequestType & 0xff) | ((s.bRequest & 0xff) << 8) | (((s.wValue ?? 0) & 0xffff) << 16);
    const hi = ((s.wIndex ?? 0) & 0xffff) | ((len & 0xffff) << 16);
    const trt = len === 0 ? 0 : dirIn ? 3 : 2;
    ring.push(lo, hi, 8, (R.TRB_SETUP << 10) | R.TRB_IDT | (trt << 16));
    let buf = 0;
    if (len > 0) {
      buf = this.alloc(len, 8);
      this.m.memory.bytes.fill(0xee, buf, buf + len);
      if (out) this.m.memory.bytes.set(out.subarray(0, len), buf);
      ring.push(buf, 0, len, (R.TRB_DATA << 10) | (dirIn ? R.TRB_DIR_IN | R.TRB_ISP : 0));
    }
    const status = ring.push(0, 0, 0, (R.TRB_STATUS << 10) | R.TRB_IOC | (dirIn && len > 0 ? 0 : R.TRB_DIR_IN));
    this.doorbell(slotId, 1);
    const events: XhciEvent[] = [];
    let actual = len;
    for (;;) {
      const e = this.take(R.TRB_TRANSFER_EVENT);
      if (!e) break;
      events.push(e);
      if (e.code === R.CC.SHORT_PACKET) actual = len - e.len;
      if (e.ptr === status || (e.code !== R.CC.SUCCESS && e.code !== R.CC.SHORT_PACKET)) break;
    }
    const last = events[events.length - 1];
    return { code: last?.code ?? 0, events, data: len > 0 ? this.bytes(buf, actual) : new Uint8Array(0), actual };
  }

  getDescriptor(slotId: number, type: number, index: number, len: number, recipient = 0, wIndex = 0): ControlOutcome {
    return this.control(slotId, { bmRequestType: 0x80 | recipient, bRequest: 6, wValue: (type << 8) | index, wIndex, wLength: len });
  }

  /** Queues a Normal TRB of `len` bytes (ISP | IOC) on an IN endpoint and rings its doorbell; returns the buffer. */
  queueIn(slotId: number, dci: number, len = 8, flags = R.TRB_ISP | R.TRB_IOC): { buf: number; trb: number } {
    const buf = this.alloc(Math.max(len, 1), 8);
    this.m.memory.bytes.fill(0xee, buf, buf + len);
    const trb = this.ring(slotId, dci).push(buf, 0, len, (R.TRB_NORMAL << 10) | flags);
    this.doorbell(slotId, dci);
    return { buf, trb };
  }
}

/** A machine with an xhci function in slot `slot`, e.g. from `['-s', '30,xhci,tablet']`. */
export function xhciMachine(args: string[], slot: number, memorySize = 4 << 20): { m: TestMachine; bus: PciBus; drv: XhciDriver; warnings: string[] } {
  const m = new TestMachine({ memorySize });
  const warnings: string[] = [];
  const { tree } = parseCommandLine([...args, 'vm'], (w) => warnings.push(w));
  const bus = initPci({ tree, machine: m, layout: memoryLayout(GiB), bootrom: false, warn: (w) => warnings.push(w) });
  return { m, bus, drv: new XhciDriver(m, bus, slot), warnings };
}

/**
 * The Linux path to a configured tablet: reset, start, reset port 5, Enable Slot, Address Device, descriptors,
 * Configure Endpoint (EP1 IN), SET_CONFIGURATION 1 and SET_IDLE 0.
 */
export function enumerateTablet(drv: XhciDriver, port = R.USB2_FIRST_PORT): { slotId: number } {
  drv.reset();
  drv.start();
  drv.setPortsc(port, R.PORTSC_PP | R.PORTSC_PR);
  drv.setPortsc(port, drv.portsc(port) & (R.PORTSC_PP | R.PORTSC_CHANGE));
  const slot = drv.enableSlot();
  if (slot.code !== R.CC.SUCCESS) throw new Error(`Enable Slot: ${slot.code}`);
  const a = drv.addressDevice(slot.slotId, port);
  if (a.code !== R.CC.SUCCESS) throw new Error(`Address Device: ${a.code}`);
  const dev = drv.getDescriptor(slot.slotId, 1, 0, 18);
  if (dev.code !== R.CC.SUCCESS) throw new Error(`GET_DESCRIPTOR device: ${dev.code}`);
  const c = drv.configureInterruptIn(slot.slotId, 1);
  if (c.code !== R.CC.SUCCESS) throw new Error(`Configure Endpoint: ${c.code}`);
  const sc = drv.control(slot.slotId, { bmRequestType: 0x00, bRequest: 9, wValue: 1 });
  if (sc.code !== R.CC.SUCCESS) throw new Error(`SET_CONFIGURATION: ${sc.code}`);
  drv.control(slot.slotId, { bmRequestType: 0x21, bRequest: 0x0a, wValue: 0 });
  drv.drain();
  return { slotId: slot.slotId };
}
