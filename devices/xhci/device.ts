// xhci (`-s S,xhci,tablet`): an xHCI 1.0 USB host controller as bhyve's pci_xhci.c presents it (8086:1E31,
// class 0C/03/30, SBRN 3.0, one MSI message and INTx; 8 root-hub ports, USB 3 on 1-4 and USB 2 on 5-8; 64 device
// slots; one interrupter), with the USB devices of its `slot.N` nodes on those ports. Everything runs here in
// TypeScript on the guest's register accesses: the command ring, the transfer rings of each endpoint, the event
// ring and the interrupt. All guest-provided indexes, lengths and pointers are checked where they are used; a
// malformed request gets the completion code the spec gives, or a Host System Error, never an exception.
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import type { PciBus } from '../../src/platform/pci/bus.js';
import type { PciDeviceModel, PciFunction } from '../../src/platform/pci/function.js';
import { PCIC_SERIALBUS, PCIR_CLASS, PCIR_DEVICE, PCIR_PROGIF, PCIR_SUBCLASS, PCIR_VENDOR } from '../../src/platform/pci/regs.js';
import type { PciDeviceFactory } from '../device.js';
import { readXhciOptions } from './options.js';
import * as R from './regs.js';
import { CC, type CompletionCode } from './regs.js';
import { encodeTrb, EventRing, GuestMem, pointer, RingConsumer, trbParam, trbType, type Trb } from './ring.js';
import { parseSetup, UsbTablet, type ControlResult, type SetupPacket, type UsbDevice } from './tablet.js';

export const XHCI_VENDOR = 0x8086;
export const XHCI_DEVICE = 0x1e31;
/** PCI config offsets of the serial bus release number and frame length adjustment (xHCI §5.2.3-5.2.4). */
const PCI_SBRN = 0x60;
const PCI_FLADJ = 0x61;
const CC_BABBLE = 3;
/** OUT data kept from one control transfer (a setup packet's wLength is capped by what a device could use). */
const CONTROL_OUT_MAX = 4096;

interface ControlState {
  setup: SetupPacket;
  /** the device's answer, decided at the Setup stage (IN and no-data requests) or at the Data stage (OUT) */
  result?: ControlResult;
}

interface Endpoint {
  dci: number;
  state: number;
  type: number;
  /** the endpoint context as software gave it; state and dequeue are patched in when written back */
  ctx: Uint8Array;
  ring: RingConsumer;
  control?: ControlState;
}

interface Slot {
  id: number;
  state: number;
  port: number;
  address: number;
  /** output device context (from the DCBAA), 0 until Address Device */
  out: number;
  ctx: Uint8Array;
  eps: Array<Endpoint | undefined>;
}

interface Port {
  portsc: number;
  portpmsc: number;
  device?: UsbDevice;
  /** the slot addressed through this port, 0 when none */
  slotId: number;
  usb3: boolean;
}

/** Counters of what the guest did wrong, for operators and tests. */
export interface XhciStats {
  ignoredDoorbells: number;
  budgetExhausted: number;
  hostSystemErrors: number;
  trbErrors: number;
  lostEvents: number;
  /** bugs caught at the register boundary (each halts the controller with HSE); always 0 unless tsbhyve is wrong */
  internalErrors: number;
}

type TdIo = { dir: 'in'; data: Uint8Array } | { dir: 'out'; limit: number; done: (data: Uint8Array) => boolean };

type CommandResult = { code: CompletionCode; slotId?: number };

const dword = (b: Uint8Array, i: number): number => new DataView(b.buffer, b.byteOffset + i * 4, 4).getUint32(0, true);
const setDword = (b: Uint8Array, i: number, v: number): void => new DataView(b.buffer, b.byteOffset + i * 4, 4).setUint32(0, v >>> 0, true);
const lo32 = (a: number): number => a % 2 ** 32 >>> 0;
const hi32 = (a: number): number => Math.floor(a / 2 ** 32) >>> 0;

export class XhciController implements PciDeviceModel {
  private readonly mem: GuestMem;
  readonly ports: Port[] = [];
  private slots: Array<Slot | undefined> = [];
  private usbcmd = 0;
  private usbsts = R.USBSTS_HCH;
  private dnctrl = 0;
  private crcrLo = 0;
  private crcrHi = 0;
  private crr = false;
  private readonly cmdRing = new RingConsumer();
  private dcbaap = 0;
  private config = 0;
  private iman = 0;
  private imod = 0x4000;
  private erstsz = 0;
  private erstbaLo = 0;
  private erstbaHi = 0;
  private erdpLo = 0;
  private erdpHi = 0;
  private ehb = false;
  private readonly events: EventRing = new EventRing();
  private irqLevel = false;
  private runStart = 0n;
  readonly stats: XhciStats = { ignoredDoorbells: 0, budgetExhausted: 0, hostSystemErrors: 0, trbErrors: 0, lostEvents: 0, internalErrors: 0 };
  /** the message of the last internal error, for the operator */
  lastInternalError?: string;

  constructor(
    readonly fn: PciFunction,
    memory: GuestMem,
    devices: Array<{ port: number; device: UsbDevice }>,
  ) {
    this.mem = memory;
    for (let p = 1; p <= R.MAX_PORTS; p++) {
      this.ports[p] = { portsc: 0, portpmsc: 0, slotId: 0, usb3: p < R.USB2_FIRST_PORT };
    }
    for (const { port, device } of devices) {
      this.ports[port]!.device = device;
      device.onData = (ep) => this.guarded(() => this.deviceData(port, ep));
    }
    this.reset();
  }

  /** The tablets attached to this controller, in slot order. */
  tablets(): UsbTablet[] {
    return this.ports.filter((p): p is Port => !!p && p.device instanceof UsbTablet).map((p) => p.device as UsbTablet);
  }

  /** HCRST (§4.2) and PCI reset: every register, slot, port and the event ring back to the power-on state. */
  reset(): void {
    this.usbcmd = 0;
    this.usbsts = R.USBSTS_HCH;
    this.dnctrl = 0;
    this.crcrLo = this.crcrHi = 0;
    this.crr = false;
    this.cmdRing.set(0, true);
    this.dcbaap = 0;
    this.config = 0;
    this.iman = 0;
    this.imod = 0x4000; // §5.5.2.2: IMODI defaults to 4000 (1 ms)
    this.erstsz = 0;
    this.erstbaLo = this.erstbaHi = 0;
    this.erdpLo = this.erdpHi = 0;
    this.ehb = false;
    this.events.reset();
    this.slots = [];
    for (let p = 1; p <= R.MAX_PORTS; p++) {
      const port = this.ports[p]!;
      port.slotId = 0;
      port.portpmsc = 0;
      port.device?.reset();
      port.portsc = R.PORTSC_PP | (R.PLS_RXDETECT << R.PORTSC_PLS_SHIFT);
      if (port.device) this.connect(port);
    }
    this.updateIrq();
  }

  /** A device present at reset is reported connected, with CSC set (§4.19.1). */
  private connect(port: Port): void {
    const d = port.device!;
    port.portsc = R.PORTSC_PP | R.PORTSC_CCS | R.PORTSC_CSC | (d.speed << R.PORTSC_SPEED_SHIFT);
    // A USB 3 link trains to U0 and is enabled by itself; a USB 2 port waits in Polling for a reset (§4.19.1.2).
    port.portsc |= port.usb3 ? R.PORTSC_PED | (R.PLS_U0 << R.PORTSC_PLS_SHIFT) : R.PLS_POLLING << R.PORTSC_PLS_SHIFT;
  }

  private get running(): boolean {
    return (this.usbcmd & R.USBCMD_RS) !== 0 && (this.usbsts & R.USBSTS_HCH) === 0;
  }

  // --- register file -------------------------------------------------------------------------------------

  barRead(bar: number, offset: number, size: 1 | 2 | 4): number {
    if (bar !== 0 || offset < 0 || offset >= R.BAR_SIZE) return 0;
    const v = this.readDword(offset & ~3) >>> 0;
    const shift = (offset & 3) * 8;
    return size === 4 ? v : (v >>> shift) & (size === 1 ? 0xff : 0xffff);
  }

  barWrite(bar: number, offset: number, size: 1 | 2 | 4, value: number): void {
    // §5.1: registers are written as dwords (64-bit ones as two); narrower or unaligned writes are dropped.
    if (bar !== 0 || size !== 4 || (offset & 3) !== 0 || offset < 0 || offset >= R.BAR_SIZE) return;
    this.guarded(() => this.writeDword(offset, value >>> 0));
  }

  /**
   * Guest-driven work never throws by design (every failure is a completion code or HSE); should a bug make it
   * throw, the VMM still must not stop: the controller halts with a Host System Error and the error is counted.
   */
  private guarded(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.stats.internalErrors++;
      this.lastInternalError = e instanceof Error ? e.message : String(e);
      this.hostSystemError();
    }
  }

  private readDword(off: number): number {
    if (off < R.CAPLENGTH) return this.capability(off);
    if (off >= R.PORT_BASE && off < R.PORT_BASE + R.MAX_PORTS * R.PORT_STRIDE) {
      const port = this.ports[1 + Math.floor((off - R.PORT_BASE) / R.PORT_STRIDE)]!;
      const reg = (off - R.PORT_BASE) % R.PORT_STRIDE;
      return reg === 0 ? port.portsc : reg === 4 ? port.portpmsc : 0;
    }
    if (off >= R.OP_BASE && off < R.PORT_BASE) return this.operational(off - R.OP_BASE);
    if (off >= R.XECP_BASE && off < R.XECP_BASE + R.XECP_SIZE) return this.extendedCapability(off - R.XECP_BASE);
    if (off === R.RT_BASE) return this.mfindex();
    if (off >= R.IR0_BASE && off < R.IR0_BASE + 0x20) return this.interrupter(off - R.IR0_BASE);
    return 0; // doorbells read 0 (§5.6), reserved space too
  }

  private capability(off: number): number {
    switch (off) {
      case 0:
        return R.CAPLENGTH | (R.HCIVERSION << 16);
      case R.CAP_HCSPARAMS1:
        return R.MAX_SLOTS | (R.MAX_INTRS << 8) | (R.MAX_PORTS << 24);
      case R.CAP_HCSPARAMS2:
        return 0x4 | (R.ERST_MAX << 4); // IST 4 frames, no scratchpad buffers
      case R.CAP_HCSPARAMS3:
        return 0;
      case R.CAP_HCCPARAMS1:
        // AC64, 32-byte contexts, no port power control, NSS, MaxPSASize 0 (no streams), the xECP pointer in dwords.
        return (1 | (1 << 7) | ((R.XECP_BASE / 4) << 16)) >>> 0;
      case R.CAP_DBOFF:
        return R.DB_BASE;
      case R.CAP_RTSOFF:
        return R.RT_BASE;
      default:
        return 0;
    }
  }

  /** Two Supported Protocol capabilities (§7.2): USB 2.0 on ports 5-8, then USB 3.0 on ports 1-4. */
  private extendedCapability(off: number): number {
    const usb3 = off >= 0x10;
    switch (off & 0xf) {
      case 0:
        return (2 | ((usb3 ? 0 : 4) << 8) | ((usb3 ? 3 : 2) << 24)) >>> 0; // ID 2, next (dwords), revision major
      case 4:
        return 0x20425355; // "USB "
      case 8:
        return (usb3 ? R.USB3_FIRST_PORT : R.USB2_FIRST_PORT) | (R.PORTS_PER_PROTOCOL << 8);
      default:
        return 0; // protocol slot type 0
    }
  }

  private operational(off: number): number {
    switch (off) {
      case R.OP_USBCMD:
        return this.usbcmd;
      case R.OP_USBSTS:
        return this.usbsts;
      case R.OP_PAGESIZE:
        return 1; // 4 KiB pages
      case R.OP_DNCTRL:
        return this.dnctrl;
      case R.OP_CRCR_LO:
        return this.crr ? R.CRCR_CRR : 0; // §5.4.5: the pointer reads as 0
      case R.OP_DCBAAP_LO:
        return lo32(this.dcbaap);
      case R.OP_DCBAAP_HI:
        return hi32(this.dcbaap);
      case R.OP_CONFIG:
        return this.config;
      default:
        return 0;
    }
  }

  private interrupter(off: number): number {
    switch (off) {
      case R.IR_IMAN:
        return this.iman;
      case R.IR_IMOD:
        return this.imod;
      case R.IR_ERSTSZ:
        return this.erstsz;
      case R.IR_ERSTBA_LO:
        return this.erstbaLo;
      case R.IR_ERSTBA_HI:
        return this.erstbaHi;
      case R.IR_ERDP_LO:
        return (this.erdpLo | (this.ehb ? R.ERDP_EHB : 0)) >>> 0;
      case R.IR_ERDP_HI:
        return this.erdpHi;
      default:
        return 0;
    }
  }

  /** MFINDEX counts 125 us microframes while running (§5.5.1). */
  private mfindex(): number {
    if (!this.running) return 0;
    return Number(((process.hrtime.bigint() - this.runStart) / 125_000n) & 0x3fffn);
  }

  private writeDword(off: number, v: number): void {
    if (off < R.CAPLENGTH) return;
    if (off >= R.PORT_BASE && off < R.PORT_BASE + R.MAX_PORTS * R.PORT_STRIDE) {
      const n = 1 + Math.floor((off - R.PORT_BASE) / R.PORT_STRIDE);
      const reg = (off - R.PORT_BASE) % R.PORT_STRIDE;
      if (reg === 0) this.portscWrite(n, v);
      else if (reg === 4) this.ports[n]!.portpmsc = v;
      return;
    }
    if (off >= R.OP_BASE && off < R.PORT_BASE) return this.operationalWrite(off - R.OP_BASE, v);
    if (off >= R.DB_BASE && off < R.DB_BASE + (R.MAX_SLOTS + 1) * 4) return this.doorbell((off - R.DB_BASE) / 4, v);
    if (off >= R.IR0_BASE && off < R.IR0_BASE + 0x20) return this.interrupterWrite(off - R.IR0_BASE, v);
  }

  private operationalWrite(off: number, v: number): void {
    switch (off) {
      case R.OP_USBCMD:
        return this.usbcmdWrite(v);
      case R.OP_USBSTS:
        this.usbsts &= ~(v & R.USBSTS_RW1C);
        this.updateIrq();
        return;
      case R.OP_DNCTRL:
        this.dnctrl = v & 0xffff;
        return;
      case R.OP_CRCR_LO:
        return this.crcrWrite(v, undefined);
      case R.OP_CRCR_HI:
        return this.crcrWrite(undefined, v);
      case R.OP_DCBAAP_LO:
        this.dcbaap = pointer(v & ~0x3f, hi32(this.dcbaap));
        return;
      case R.OP_DCBAAP_HI:
        this.dcbaap = pointer(lo32(this.dcbaap), v);
        return;
      case R.OP_CONFIG:
        // MaxSlotsEn may not exceed MaxSlots (§5.4.7); U3E and CIE are stored.
        this.config = (Math.min(v & 0xff, R.MAX_SLOTS) | (v & 0x300)) >>> 0;
        return;
    }
  }

  private usbcmdWrite(v: number): void {
    if (v & R.USBCMD_HCRST) {
      this.reset();
      return;
    }
    const wasRunning = (this.usbcmd & R.USBCMD_RS) !== 0;
    this.usbcmd = v & R.USBCMD_STORED;
    if ((v & R.USBCMD_RS) && !wasRunning) {
      this.usbsts &= ~R.USBSTS_HCH;
      this.runStart = process.hrtime.bigint();
      // Changes that happened while halted (a device present at reset) are reported now (§4.19.2).
      for (let p = 1; p <= R.MAX_PORTS; p++) if (this.ports[p]!.portsc & R.PORTSC_CHANGE) this.portEvent(p);
    } else if (!(v & R.USBCMD_RS) && wasRunning) {
      this.usbsts |= R.USBSTS_HCH;
      this.crr = false; // §5.4.5: stopping the controller stops the command ring
    }
    this.updateIrq();
  }

  private crcrWrite(lo: number | undefined, hi: number | undefined): void {
    if (this.crr) {
      // §4.6.1.1-4.6.1.2: Command Stop and Command Abort. Commands run to completion when their doorbell is
      // written, so both only stop the ring, with a Command Ring Stopped event at the next command.
      if (lo !== undefined && lo & (R.CRCR_CS | R.CRCR_CA)) {
        this.crr = false;
        const at = this.cmdRing.dequeue;
        this.postEvent(encodeTrb(lo32(at), hi32(at), CC.COMMAND_RING_STOPPED << 24, R.TRB_COMMAND_COMPLETION << 10), true);
      }
      return;
    }
    if (lo !== undefined) this.crcrLo = lo;
    if (hi !== undefined) this.crcrHi = hi;
    // The dequeue pointer is 64-byte aligned (§5.4.5); RCS is the consumer cycle state.
    this.cmdRing.set(pointer(this.crcrLo & ~0x3f, this.crcrHi), (this.crcrLo & R.CRCR_RCS) !== 0);
  }

  private interrupterWrite(off: number, v: number): void {
    switch (off) {
      case R.IR_IMAN:
        this.iman = ((this.iman & ~(v & R.IMAN_IP)) & ~R.IMAN_IE) | (v & R.IMAN_IE);
        this.updateIrq();
        return;
      case R.IR_IMOD:
        this.imod = v >>> 0;
        return;
      case R.IR_ERSTSZ:
        this.erstsz = v & 0xffff;
        return;
      case R.IR_ERSTBA_LO:
        this.erstbaLo = v & ~0x3f;
        this.loadErst();
        return;
      case R.IR_ERSTBA_HI:
        this.erstbaHi = v;
        this.loadErst();
        return;
      case R.IR_ERDP_LO:
        this.erdpLo = (v & ~R.ERDP_EHB) >>> 0; // the pointer and DESI; EHB is write-1-to-clear
        if (v & R.ERDP_EHB) this.ehb = false; // RW1C (§5.5.2.3.3)
        this.dequeueMoved();
        return;
      case R.IR_ERDP_HI:
        this.erdpHi = v;
        this.dequeueMoved();
        return;
    }
  }

  /** ERSTBA written: the segment table is read once (§4.9.4); the ring starts over at segment 0. */
  private loadErst(): void {
    this.events.load(this.mem, pointer(this.erstbaLo, this.erstbaHi), this.erstsz);
  }

  private dequeueMoved(): void {
    const hadRoom = this.events.hasRoom();
    this.events.setDequeue(pointer(this.erdpLo & ~0xf, this.erdpHi));
    // Events software has not consumed yet raise the interrupt again once it is no longer busy (§4.17.2).
    if (!this.ehb && this.events.pending()) this.raiseInterrupt();
    else this.updateIrq();
    if (!hadRoom && this.events.hasRoom()) this.resumeAll();
  }

  // --- interrupts ----------------------------------------------------------------------------------------

  /** An event wants an interrupt: IP and EHB are set unless software is still handling the last one. */
  private raiseInterrupt(): void {
    if (this.ehb) return;
    this.ehb = true;
    this.iman |= R.IMAN_IP;
    this.usbsts |= R.USBSTS_EINT;
    this.updateIrq();
  }

  /**
   * The interrupt reaches the guest while IP, IE and USBCMD.INTE are set (§4.17.1), or on a host system error
   * with HSEE. MSI sends one message when that becomes true (and clears IP); INTx follows it as a level.
   */
  private updateIrq(): void {
    const level =
      ((this.iman & R.IMAN_IP) !== 0 && (this.iman & R.IMAN_IE) !== 0 && (this.usbcmd & R.USBCMD_INTE) !== 0) ||
      ((this.usbsts & R.USBSTS_HSE) !== 0 && (this.usbcmd & R.USBCMD_HSEE) !== 0);
    const rising = level && !this.irqLevel;
    this.irqLevel = level;
    if (this.fn.msiEnabled()) {
      this.fn.deassertLintr();
      if (rising && this.fn.generateMsi(0) && (this.iman & R.IMAN_IP)) {
        // §4.17.5: with MSI the controller clears IP itself once the message is sent; EHB stays until ERDP.
        this.iman &= ~R.IMAN_IP;
        this.irqLevel = (this.usbsts & R.USBSTS_HSE) !== 0 && (this.usbcmd & R.USBCMD_HSEE) !== 0;
      }
    } else if (level) {
      this.fn.assertLintr();
    } else {
      this.fn.deassertLintr();
    }
  }

  interruptModeChanged(): void {
    this.irqLevel = false;
    this.updateIrq();
  }

  /** Posts an event; false when it could not be (the ring is full or unusable). */
  private postEvent(trb: Uint8Array, interrupt: boolean): boolean {
    const r = this.events.post(this.mem, trb);
    if (r === 'error') {
      this.hostSystemError();
      return false;
    }
    if (r !== 'posted') this.stats.lostEvents++;
    if (r === 'signalled' || (r === 'posted' && interrupt)) this.raiseInterrupt();
    return r === 'posted';
  }

  /** Whether a producer may go on: one more event fits, or else the Full Error event is posted and it waits. */
  private roomForEvent(): boolean {
    if (!this.events.usable) {
      this.hostSystemError();
      return false;
    }
    if (this.events.hasRoom()) return true;
    if (this.events.signalFull(this.mem)) this.raiseInterrupt();
    return false;
  }

  /** §5.4.2 HSE: a memory access the controller needed failed; it halts until reset. */
  private hostSystemError(): void {
    this.stats.hostSystemErrors++;
    this.usbsts |= R.USBSTS_HSE | R.USBSTS_HCH;
    this.usbcmd &= ~R.USBCMD_RS;
    this.crr = false;
    this.updateIrq();
  }

  // --- ports ---------------------------------------------------------------------------------------------

  private portscWrite(n: number, v: number): void {
    const port = this.ports[n]!;
    const before = port.portsc;
    let sc = port.portsc;
    sc &= ~(v & R.PORTSC_CHANGE); // RW1C
    if (v & R.PORTSC_PED) sc &= ~R.PORTSC_PED; // software may disable, never enable (§4.19.1.1)
    sc = (sc & ~R.PORTSC_WAKE_MASK) | (v & R.PORTSC_WAKE_MASK);
    port.portsc = sc;
    const warm = (v & R.PORTSC_WPR) !== 0 && port.usb3; // WPR is reserved on USB 2 ports
    if ((v & R.PORTSC_PR) || warm) this.portReset(port, warm);
    else if ((v & R.PORTSC_LWS) && (port.portsc & R.PORTSC_PED)) this.linkStateWrite(port, (v >>> R.PORTSC_PLS_SHIFT) & 0xf);
    if ((port.portsc & ~before) & R.PORTSC_CHANGE) this.portEvent(n);
  }

  /** §4.19.5: a reset enables a connected port in U0; the device sees a bus reset. */
  private portReset(port: Port, warm: boolean): void {
    if (!port.device) return;
    port.device.reset();
    const sc = port.portsc & ~(R.PORTSC_PLS_MASK | R.PORTSC_PR | R.PORTSC_SPEED_MASK);
    port.portsc = sc | R.PORTSC_PED | R.PORTSC_PRC | (warm ? R.PORTSC_WRC : 0) | (port.device.speed << R.PORTSC_SPEED_SHIFT);
  }

  /** Software link-state writes (§4.19.1.2 / 4.23.2): suspend to U3, resume, back to U0. */
  private linkStateWrite(port: Port, pls: number): void {
    const cur = (port.portsc & R.PORTSC_PLS_MASK) >>> R.PORTSC_PLS_SHIFT;
    let next = cur;
    let changed = false;
    if (pls === R.PLS_U3 && cur === R.PLS_U0) next = R.PLS_U3;
    else if (pls === R.PLS_RESUME && cur === R.PLS_U3) next = R.PLS_RESUME;
    else if (pls === R.PLS_U0 && (cur === R.PLS_RESUME || cur === R.PLS_U3)) {
      next = R.PLS_U0;
      changed = true;
    }
    port.portsc = (port.portsc & ~R.PORTSC_PLS_MASK) | (next << R.PORTSC_PLS_SHIFT) | (changed ? R.PORTSC_PLC : 0);
  }

  private portEvent(n: number): void {
    this.usbsts |= R.USBSTS_PCD;
    if (!this.running) return;
    // A port event that finds the ring full is lost; PORTSC still shows the change (§4.19.2).
    if (!this.events.usable) return this.hostSystemError();
    if (!this.events.hasRoom()) {
      this.stats.lostEvents++;
      if (this.events.signalFull(this.mem)) this.raiseInterrupt();
      return;
    }
    this.postEvent(encodeTrb(n << 24, 0, CC.SUCCESS << 24, R.TRB_PORT_STATUS_CHANGE << 10), true);
  }

  // --- doorbells -----------------------------------------------------------------------------------------

  private doorbell(n: number, v: number): void {
    const target = v & 0xff;
    const stream = v >>> 16;
    if (!this.running) {
      this.stats.ignoredDoorbells++;
      return;
    }
    if (n === 0) {
      // §5.6: the host controller doorbell has one target, the command ring.
      if (target !== 0 || stream !== 0) {
        this.stats.ignoredDoorbells++;
        return;
      }
      this.runCommandRing();
      return;
    }
    const slot = this.slots[n];
    const ep = slot?.eps[target];
    // Target 0 and 32-255 are reserved; there are no streams (MaxPSASize 0), so a stream ID is invalid.
    if (!slot || target < 1 || target > 31 || stream !== 0 || !ep) {
      this.stats.ignoredDoorbells++;
      return;
    }
    // Ringing a stopped endpoint restarts it (§4.6.9); a halted or errored one waits for Reset Endpoint.
    if (ep.state === R.EP_STOPPED) {
      ep.state = R.EP_RUNNING;
      this.writeOutput(slot);
    }
    this.runEndpoint(slot, ep);
  }

  /** Work that waited for room in the event ring. */
  private resumeAll(): void {
    if (!this.running) return;
    if (this.crr) this.runCommandRing();
    for (const slot of this.slots) {
      if (!slot) continue;
      for (const ep of slot.eps) if (ep && ep.state === R.EP_RUNNING) this.runEndpoint(slot, ep);
    }
  }

  private deviceData(port: number, ep: number): void {
    const slot = this.slots[this.ports[port]!.slotId];
    const e = slot?.eps[ep * 2 + 1];
    if (slot && e && e.state === R.EP_RUNNING && this.running) this.runEndpoint(slot, e);
  }

  // --- command ring (§4.6) -------------------------------------------------------------------------------

  private runCommandRing(): void {
    this.crr = true;
    this.cmdRing.budget = R.RING_BUDGET;
    while (this.running && this.crr) {
      if (!this.roomForEvent()) return;
      const f = this.cmdRing.peek(this.mem);
      if (f.kind === 'empty') return;
      if (f.kind === 'budget') {
        this.stats.budgetExhausted++;
        return;
      }
      if (f.kind === 'memory') return this.hostSystemError();
      this.cmdRing.advance();
      const r = this.command(f.trb);
      const a = f.trb.addr;
      this.postEvent(encodeTrb(lo32(a), hi32(a), r.code << 24, ((R.TRB_COMMAND_COMPLETION << 10) | ((r.slotId ?? 0) << 24)) >>> 0), true);
    }
  }

  private command(t: Trb): CommandResult {
    const slotId = t.control >>> 24;
    switch (trbType(t)) {
      case R.TRB_NOOP_CMD:
        return { code: CC.SUCCESS };
      case R.TRB_ENABLE_SLOT:
        return this.enableSlot(t);
      case R.TRB_DISABLE_SLOT:
        return this.withSlot(slotId, (s) => this.disableSlot(s));
      case R.TRB_ADDRESS_DEVICE:
        return this.withSlot(slotId, (s) => this.addressDevice(s, t));
      case R.TRB_CONFIGURE_EP:
        return this.withSlot(slotId, (s) => this.configureEndpoint(s, t));
      case R.TRB_EVALUATE_CONTEXT:
        return this.withSlot(slotId, (s) => this.evaluateContext(s, t));
      case R.TRB_RESET_EP:
        return this.withSlot(slotId, (s) => this.endpointCommand(s, t, 'reset'));
      case R.TRB_STOP_EP:
        return this.withSlot(slotId, (s) => this.endpointCommand(s, t, 'stop'));
      case R.TRB_SET_TR_DEQUEUE:
        return this.withSlot(slotId, (s) => this.endpointCommand(s, t, 'dequeue'));
      case R.TRB_RESET_DEVICE:
        return this.withSlot(slotId, (s) => this.resetDevice(s));
      default:
        // Transfer, event and optional command types this controller does not offer (§4.6: TRB Error).
        this.stats.trbErrors++;
        return { code: CC.TRB };
    }
  }

  private withSlot(slotId: number, f: (s: Slot) => CompletionCode): CommandResult {
    const s = slotId >= 1 && slotId <= R.MAX_SLOTS ? this.slots[slotId] : undefined;
    if (!s) return { code: CC.SLOT_NOT_ENABLED, slotId };
    return { code: f(s), slotId };
  }

  private enableSlot(t: Trb): CommandResult {
    // Slot type must match the Supported Protocol capabilities' Protocol Slot Type, 0.
    if (((t.control >>> 16) & 0x1f) !== 0) return { code: CC.TRB };
    const max = this.config & 0xff;
    for (let id = 1; id <= max; id++) {
      if (this.slots[id]) continue;
      this.slots[id] = { id, state: R.SLOT_ENABLED, port: 0, address: 0, out: 0, ctx: new Uint8Array(32), eps: [] };
      return { code: CC.SUCCESS, slotId: id };
    }
    return { code: CC.NO_SLOTS };
  }

  private disableSlot(s: Slot): CompletionCode {
    this.unbind(s);
    this.slots[s.id] = undefined;
    return CC.SUCCESS;
  }

  private unbind(s: Slot): void {
    const port = this.ports[s.port];
    if (port && port.slotId === s.id) port.slotId = 0;
    s.port = 0;
  }

  /** Reads an Input Context (§6.2.5) once; undefined when the pointer is unusable. */
  private inputContext(t: Trb): Uint8Array | undefined {
    // §6.4.3.4: the pointer is 16-byte aligned; its low 4 bits are reserved.
    return this.mem.read(pointer(t.paramLo & ~0xf, t.paramHi), R.INPUT_CTX_SIZE);
  }

  /** A TR Dequeue Pointer (with DCS in bit 0) that is usable: non-zero and in guest RAM. */
  private ringPointer(lo: number, hi: number): { addr: number; cycle: boolean } | undefined {
    const addr = pointer(lo & ~0xf, hi);
    if (addr === 0 || !this.mem.covers(addr, 16)) return undefined;
    return { addr, cycle: (lo & 1) !== 0 };
  }

  private addressDevice(s: Slot, t: Trb): CompletionCode {
    const bsr = (t.control & R.TRB_BSR) !== 0;
    // §4.6.5: from Enabled, or from Default when SET_ADDRESS is now to be sent.
    if (s.state === R.SLOT_ADDRESSED || s.state === R.SLOT_CONFIGURED || (s.state === R.SLOT_DEFAULT && bsr)) return CC.CONTEXT_STATE;
    const input = this.inputContext(t);
    if (!input) return CC.PARAMETER;
    if ((dword(input, 1) & 3) !== 3) return CC.PARAMETER; // A0 and A1
    const slotCtx = input.slice(32, 64);
    const ep0 = input.slice(64, 96);
    const portNum = (dword(slotCtx, 1) >>> 16) & 0xff;
    if (portNum < 1 || portNum > R.MAX_PORTS) return CC.PARAMETER;
    const port = this.ports[portNum]!;
    // No hubs exist, so a route string leads nowhere; neither does a port without an enabled device, nor one
    // whose device already answers at another slot's address.
    if ((dword(slotCtx, 0) & 0xfffff) !== 0 || !port.device || !(port.portsc & R.PORTSC_PED)) return CC.USB_TRANSACTION;
    if (port.slotId !== 0 && port.slotId !== s.id) return CC.USB_TRANSACTION;
    if (((dword(ep0, 1) >>> 3) & 7) !== R.EPT_CONTROL || dword(ep0, 1) >>> 16 === 0) return CC.PARAMETER;
    const ring = this.ringPointer(dword(ep0, 2), dword(ep0, 3));
    if (!ring) return CC.PARAMETER;
    const out = this.outputContext(s.id);
    if (out === undefined) return CC.PARAMETER;
    s.out = out;
    s.port = portNum;
    port.slotId = s.id;
    s.ctx = slotCtx;
    if (bsr) {
      s.state = R.SLOT_DEFAULT;
      s.address = 0;
    } else {
      s.state = R.SLOT_ADDRESSED;
      s.address = s.id; // one device per slot: the slot ID is a unique USB address
      port.device.setAddress(s.address);
    }
    s.eps = [];
    s.eps[1] = this.newEndpoint(1, ep0, ring);
    return this.writeOutput(s) ? CC.SUCCESS : CC.PARAMETER;
  }

  /** DCBAA[slot]: a 64-byte aligned device context in guest RAM (§6.1). */
  private outputContext(slotId: number): number | undefined {
    const e = this.mem.read(this.dcbaap + slotId * 8, 8);
    if (!e || this.dcbaap === 0) return undefined;
    const addr = pointer(dword(e, 0), dword(e, 1));
    if (addr === 0 || addr % 64 !== 0 || !this.mem.covers(addr, R.DEVICE_CTX_SIZE)) return undefined;
    return addr;
  }

  private newEndpoint(dci: number, ctx: Uint8Array, ring: { addr: number; cycle: boolean }): Endpoint {
    const ep: Endpoint = { dci, state: R.EP_RUNNING, type: (dword(ctx, 1) >>> 3) & 7, ctx: ctx.slice(), ring: new RingConsumer() };
    ep.ring.set(ring.addr, ring.cycle);
    return ep;
  }

  /** Writes the output device context: software reads slot and endpoint state from it (§4.5.3). */
  private writeOutput(s: Slot): boolean {
    if (!s.out) return true;
    const b = new Uint8Array(R.DEVICE_CTX_SIZE);
    const sc = s.ctx.slice();
    let last = 1;
    for (let dci = 1; dci <= 31; dci++) if (s.eps[dci]) last = dci;
    setDword(sc, 0, (dword(sc, 0) & 0x07ffffff) | (last << 27)); // Context Entries
    setDword(sc, 3, (s.address & 0xff) | (s.state << 27));
    b.set(sc, 0);
    for (let dci = 1; dci <= 31; dci++) {
      const ep = s.eps[dci];
      if (!ep) continue;
      const c = ep.ctx.slice();
      setDword(c, 0, (dword(c, 0) & ~7) | ep.state);
      setDword(c, 2, (lo32(ep.ring.dequeue) & ~0xf) | (ep.ring.cycle ? 1 : 0));
      setDword(c, 3, hi32(ep.ring.dequeue));
      b.set(c, dci * 32);
    }
    if (this.mem.write(s.out, b)) return true;
    this.hostSystemError();
    return false;
  }

  private configureEndpoint(s: Slot, t: Trb): CompletionCode {
    if (s.state !== R.SLOT_ADDRESSED && s.state !== R.SLOT_CONFIGURED) return CC.CONTEXT_STATE;
    if (t.control & R.TRB_DC) {
      // Deconfigure: every endpoint but EP0 goes (§4.6.6).
      for (let dci = 2; dci <= 31; dci++) s.eps[dci] = undefined;
      s.state = R.SLOT_ADDRESSED;
      this.writeOutput(s);
      return CC.SUCCESS;
    }
    const input = this.inputContext(t);
    if (!input) return CC.PARAMETER;
    const drop = dword(input, 0);
    const add = dword(input, 1);
    // Check every added endpoint before changing anything: the command either applies whole or not at all.
    const added: Array<{ dci: number; ctx: Uint8Array; ring: { addr: number; cycle: boolean } }> = [];
    for (let dci = 2; dci <= 31; dci++) {
      if (!(add & (1 << dci))) continue;
      const ctx = input.slice((dci + 1) * 32, (dci + 2) * 32);
      const type = (dword(ctx, 1) >>> 3) & 7;
      const inDir = type >= R.EPT_CONTROL; // 4 control (bidirectional), 5-7 IN
      if (type === 0 || dword(ctx, 1) >>> 16 === 0) return CC.PARAMETER;
      // Even DCIs are OUT endpoints, odd ones IN (and control) (§4.5.1).
      if (type !== R.EPT_CONTROL && inDir !== (dci % 2 === 1)) return CC.PARAMETER;
      if (type === R.EPT_CONTROL && dci % 2 === 0) return CC.PARAMETER;
      // No streams (MaxPSASize 0): MaxPStreams must be 0.
      if (((dword(ctx, 0) >>> 10) & 0x1f) !== 0) return CC.PARAMETER;
      const ring = this.ringPointer(dword(ctx, 2), dword(ctx, 3));
      if (!ring) return CC.PARAMETER;
      added.push({ dci, ctx, ring });
    }
    for (let dci = 2; dci <= 31; dci++) if (drop & (1 << dci)) s.eps[dci] = undefined;
    for (const a of added) s.eps[a.dci] = this.newEndpoint(a.dci, a.ctx, a.ring);
    if (add & 1) s.ctx = input.slice(32, 64);
    s.state = s.eps.some((e, dci) => e && dci >= 2) ? R.SLOT_CONFIGURED : R.SLOT_ADDRESSED;
    this.writeOutput(s);
    return CC.SUCCESS;
  }

  private evaluateContext(s: Slot, t: Trb): CompletionCode {
    if (s.state === R.SLOT_ENABLED) return CC.CONTEXT_STATE;
    const input = this.inputContext(t);
    if (!input) return CC.PARAMETER;
    const add = dword(input, 1);
    // §6.2.2.3: only the slot's Max Exit Latency and Interrupter Target and EP0's Max Packet Size are evaluated.
    if (add & 1) {
      const target = dword(input, 8 + 2) >>> 22;
      if (target >= R.MAX_INTRS) return CC.PARAMETER;
      setDword(s.ctx, 1, (dword(s.ctx, 1) & 0xffff0000) | (dword(input, 8 + 1) & 0xffff));
    }
    if (add & 2) {
      const mps = dword(input, 16 + 1) >>> 16;
      const ep0 = s.eps[1];
      if (mps === 0 || !ep0) return CC.PARAMETER;
      setDword(ep0.ctx, 1, (dword(ep0.ctx, 1) & 0xffff) | (mps << 16));
    }
    this.writeOutput(s);
    return CC.SUCCESS;
  }

  private endpointCommand(s: Slot, t: Trb, what: 'reset' | 'stop' | 'dequeue'): CompletionCode {
    const dci = (t.control >>> 16) & 0x1f;
    if (dci === 0) return CC.TRB;
    const ep = s.eps[dci];
    if (!ep) return CC.CONTEXT_STATE; // a disabled endpoint is in none of the states these commands need
    if (what === 'reset') {
      // §4.6.8: Halted -> Stopped; the ring restarts at the dequeue pointer when the doorbell is rung.
      if (ep.state !== R.EP_HALTED) return CC.CONTEXT_STATE;
      ep.state = R.EP_STOPPED;
      ep.control = undefined;
    } else if (what === 'stop') {
      if (ep.state !== R.EP_RUNNING) return CC.CONTEXT_STATE;
      ep.state = R.EP_STOPPED;
    } else {
      // §4.6.10: only while Stopped or Error; no streams, so the Stream ID must be 0.
      if (ep.state !== R.EP_STOPPED && ep.state !== R.EP_ERROR) return CC.CONTEXT_STATE;
      if (t.status >>> 16 !== 0) return CC.INVALID_STREAM_ID;
      const ring = this.ringPointer(t.paramLo & ~0xe, t.paramHi);
      if (!ring) return CC.PARAMETER;
      ep.ring.set(ring.addr, ring.cycle);
      ep.control = undefined;
    }
    this.writeOutput(s);
    return CC.SUCCESS;
  }

  private resetDevice(s: Slot): CompletionCode {
    if (s.state === R.SLOT_ENABLED) return CC.CONTEXT_STATE;
    for (let dci = 2; dci <= 31; dci++) s.eps[dci] = undefined;
    s.state = R.SLOT_DEFAULT;
    s.address = 0;
    this.ports[s.port]?.device?.reset();
    this.writeOutput(s);
    return CC.SUCCESS;
  }

  // --- transfer rings (§4.10-4.11) -----------------------------------------------------------------------

  /** §6.4.2.1: the TRB's address (or, for an Event Data TRB, its data), the residual length, the endpoint. */
  private transferEvent(s: Slot, ep: Endpoint, trb: Trb, code: number, residual: number, interrupt: boolean, ed = false): void {
    const lo = ed ? trb.paramLo : lo32(trb.addr);
    const hi = ed ? trb.paramHi : hi32(trb.addr);
    const control = (R.TRB_TRANSFER_EVENT << 10) | (ed ? 1 << 2 : 0) | (ep.dci << 16) | (s.id << 24);
    this.postEvent(encodeTrb(lo, hi, ((code << 24) | (residual & 0xffffff)) >>> 0, control >>> 0), interrupt);
  }

  /** An error that halts the endpoint (§4.10.2): one event on the TRB, then the ring waits for software. */
  private halt(s: Slot, ep: Endpoint, trb: Trb, code: number, residual = 0): void {
    if (code === CC.TRB) this.stats.trbErrors++;
    ep.state = R.EP_HALTED;
    ep.control = undefined;
    this.transferEvent(s, ep, trb, code, residual, true);
    this.writeOutput(s);
  }

  private runEndpoint(s: Slot, ep: Endpoint): void {
    ep.ring.budget = R.RING_BUDGET;
    const port = this.ports[s.port];
    // A device behind a disabled port (software wrote PED, or it was never reset) does not answer.
    const device = port && port.portsc & R.PORTSC_PED ? port.device : undefined;
    while (this.running && ep.state === R.EP_RUNNING && this.slots[s.id] === s) {
      if (!this.roomForEvent()) return;
      const f = ep.ring.peek(this.mem);
      if (f.kind === 'empty') return;
      if (f.kind === 'budget') {
        this.stats.budgetExhausted++;
        return;
      }
      if (f.kind === 'memory') return this.hostSystemError();
      const t = f.trb;
      const type = trbType(t);
      if (type === R.TRB_NOOP || type === R.TRB_EVENT_DATA) {
        ep.ring.advance();
        if (t.control & R.TRB_IOC) this.transferEvent(s, ep, t, CC.SUCCESS, 0, (t.control & R.TRB_BEI) === 0, type === R.TRB_EVENT_DATA);
        continue;
      }
      if (!device) {
        this.halt(s, ep, t, CC.USB_TRANSACTION);
        return;
      }
      const progressed = ep.dci === 1 || ep.type === R.EPT_CONTROL ? this.controlStep(s, ep, device, t) : this.dataTd(s, ep, device, t);
      if (!progressed) return;
    }
  }

  /** One TRB of a control transfer on EP0; false when the endpoint cannot go on now. */
  private controlStep(s: Slot, ep: Endpoint, device: UsbDevice, t: Trb): boolean {
    const type = trbType(t);
    if (type === R.TRB_SETUP) {
      // §6.4.1.2.1: the packet is immediate data of exactly 8 bytes.
      if (!(t.control & R.TRB_IDT) || (t.status & 0x1ffff) !== 8) {
        this.halt(s, ep, t, CC.TRB);
        return false;
      }
      const raw = encodeTrb(t.paramLo, t.paramHi, 0, 0).subarray(0, 8);
      const setup = parseSetup(raw);
      const dirIn = (setup.bmRequestType & 0x80) !== 0;
      // A request with OUT data runs once the Data stage brought it; the rest run now.
      ep.control = { setup, result: dirIn || setup.wLength === 0 ? device.control(setup) : undefined };
      ep.ring.advance();
      if (t.control & R.TRB_IOC) this.transferEvent(s, ep, t, CC.SUCCESS, 0, (t.control & R.TRB_BEI) === 0);
      return true;
    }
    const ctl = ep.control;
    if (type === R.TRB_DATA) {
      if (!ctl) {
        this.halt(s, ep, t, CC.TRB);
        return false;
      }
      const dirIn = (t.control & R.TRB_DIR_IN) !== 0;
      if (dirIn !== ((ctl.setup.bmRequestType & 0x80) !== 0)) {
        this.halt(s, ep, t, CC.TRB);
        return false;
      }
      if (ctl.result?.kind === 'stall') {
        this.halt(s, ep, t, CC.STALL, t.status & 0x1ffff);
        return false;
      }
      if (dirIn) {
        const data = ctl.result?.kind === 'in' ? ctl.result.data : new Uint8Array(0);
        return this.runCollected(s, ep, t, { dir: 'in', data });
      }
      return this.runCollected(s, ep, t, {
        dir: 'out',
        limit: Math.min(ctl.setup.wLength, CONTROL_OUT_MAX),
        done: (out) => {
          ctl.result = device.control(ctl.setup, out);
          return ctl.result.kind !== 'stall';
        },
      });
    }
    if (type === R.TRB_STATUS) {
      if (!ctl) {
        this.halt(s, ep, t, CC.TRB);
        return false;
      }
      ctl.result ??= device.control(ctl.setup, new Uint8Array(0));
      if (ctl.result.kind === 'stall') {
        this.halt(s, ep, t, CC.STALL);
        return false;
      }
      ep.control = undefined;
      ep.ring.advance();
      if (t.control & R.TRB_IOC) this.transferEvent(s, ep, t, CC.SUCCESS, 0, (t.control & R.TRB_BEI) === 0);
      return true;
    }
    // Normal TRBs belong inside a Data stage TD; isochronous and command TRBs never on a control ring.
    this.halt(s, ep, t, CC.TRB);
    return false;
  }

  /** A TD on a bulk or interrupt endpoint (isochronous transfers are not offered). */
  private dataTd(s: Slot, ep: Endpoint, device: UsbDevice, t: Trb): boolean {
    const epNum = ep.dci >>> 1;
    const dirIn = ep.dci % 2 === 1;
    if (trbType(t) !== R.TRB_NORMAL || ep.type === R.EPT_ISOCH_IN || ep.type === R.EPT_ISOCH_OUT) {
      this.halt(s, ep, t, CC.TRB);
      return false;
    }
    if (!device.hasEndpoint(epNum, dirIn)) {
      this.halt(s, ep, t, CC.USB_TRANSACTION, t.status & 0x1ffff);
      return false;
    }
    if (!dirIn) return this.runCollected(s, ep, t, { dir: 'out', limit: 0, done: () => true });
    // An IN TD waits on the ring until the device has a packet (the device NAKs meanwhile).
    if (!device.hasIn(epNum)) return false;
    const save = { dequeue: ep.ring.dequeue, cycle: ep.ring.cycle };
    const td = this.collectTd(ep);
    if (td.kind !== 'ok') {
      ep.ring.set(save.dequeue, save.cycle);
      return this.tdProblem(s, ep, t, td.kind);
    }
    const room = td.trbs.reduce((n, x) => n + (trbType(x) === R.TRB_EVENT_DATA ? 0 : x.status & 0x1ffff), 0);
    const packet = device.takeIn(epNum)!;
    if (packet.length > room) {
      // The device sent more than the TD can hold: babble (§4.10.2.4).
      ep.ring.set(save.dequeue, save.cycle);
      this.halt(s, ep, t, CC_BABBLE);
      return false;
    }
    return this.runTd(s, ep, td.trbs, save, { dir: 'in', data: packet });
  }

  /** Reads the TRBs of the TD starting at the dequeue pointer (following CH), advancing past them. */
  private collectTd(ep: Endpoint): { kind: 'ok'; trbs: Trb[] } | { kind: 'wait' | 'memory' | 'long' } {
    const trbs: Trb[] = [];
    for (;;) {
      const f = ep.ring.peek(this.mem);
      if (f.kind === 'memory') return { kind: 'memory' };
      // Software has not finished writing the TD (or the pass is out of budget): try again later.
      if (f.kind !== 'trb') return { kind: 'wait' };
      trbs.push(f.trb);
      ep.ring.advance();
      if (!(f.trb.control & R.TRB_CH)) return { kind: 'ok', trbs };
      if (trbs.length >= R.TD_MAX_TRBS) return { kind: 'long' };
    }
  }

  private tdProblem(s: Slot, ep: Endpoint, first: Trb, kind: 'wait' | 'memory' | 'long'): boolean {
    if (kind === 'memory') this.hostSystemError();
    else if (kind === 'long') this.halt(s, ep, first, CC.TRB);
    return false;
  }

  /** Collects the TD at the dequeue pointer (each TRB read once) and runs it. */
  private runCollected(s: Slot, ep: Endpoint, first: Trb, io: TdIo): boolean {
    const save = { dequeue: ep.ring.dequeue, cycle: ep.ring.cycle };
    const td = this.collectTd(ep);
    if (td.kind !== 'ok') {
      ep.ring.set(save.dequeue, save.cycle);
      return this.tdProblem(s, ep, first, td.kind);
    }
    return this.runTd(s, ep, td.trbs, save, io);
  }

  /**
   * Moves one TD's data (§4.10.1): an IN source is written into the TRBs' buffers in order; a short transfer ends
   * the TD with a Short Packet event on the TRB where the data ran out (when it has ISP or IOC) and skips the rest.
   * OUT data is gathered (up to `limit` bytes kept; every buffer is still checked) and handed to `done`.
   */
  private runTd(s: Slot, ep: Endpoint, trbs: Trb[], save: { dequeue: number; cycle: boolean }, io: TdIo): boolean {
    const first = trbs[0]!;
    let off = 0; // bytes moved so far in this TD
    const kept: Uint8Array[] = [];
    let keptLen = 0;
    const events: Array<() => void> = [];
    for (let i = 0; i < trbs.length; i++) {
      const t = trbs[i]!;
      const type = trbType(t);
      const wantIrq = (t.control & R.TRB_BEI) === 0;
      if (type === R.TRB_EVENT_DATA) {
        const moved = off;
        if (t.control & R.TRB_IOC) events.push(() => this.transferEvent(s, ep, t, CC.SUCCESS, moved, wantIrq, true));
        continue;
      }
      if (i > 0 ? type !== R.TRB_NORMAL : type !== R.TRB_NORMAL && type !== R.TRB_DATA) {
        ep.ring.set(save.dequeue, save.cycle);
        this.halt(s, ep, t, CC.TRB);
        return false;
      }
      const len = t.status & 0x1ffff;
      const idt = (t.control & R.TRB_IDT) !== 0;
      if (idt && (io.dir === 'in' || len > 8)) {
        ep.ring.set(save.dequeue, save.cycle);
        this.halt(s, ep, t, CC.TRB);
        return false;
      }
      const buf = trbParam(t);
      if (io.dir === 'in') {
        const n = Math.min(len, io.data.length - off);
        if (n > 0 && !this.mem.write(buf, io.data.subarray(off, off + n))) {
          this.hostSystemError();
          return false;
        }
        off += n;
        if (n < len) {
          if (t.control & (R.TRB_ISP | R.TRB_IOC)) events.push(() => this.transferEvent(s, ep, t, CC.SHORT_PACKET, len - n, wantIrq));
          break;
        }
      } else {
        const data = idt ? encodeTrb(t.paramLo, t.paramHi, 0, 0).subarray(0, len) : len > 0 ? this.outData(buf, len, io.limit - keptLen) : new Uint8Array(0);
        if (!data) {
          this.hostSystemError();
          return false;
        }
        if (keptLen < io.limit) {
          const take = data.subarray(0, io.limit - keptLen);
          kept.push(take);
          keptLen += take.length;
        }
        off += len;
      }
      if (t.control & R.TRB_IOC) events.push(() => this.transferEvent(s, ep, t, CC.SUCCESS, 0, wantIrq));
    }
    if (io.dir === 'out') {
      const all = new Uint8Array(keptLen);
      let at = 0;
      for (const k of kept) {
        all.set(k, at);
        at += k.length;
      }
      if (!io.done(all)) {
        this.halt(s, ep, first, CC.STALL, first.status & 0x1ffff);
        return false;
      }
    }
    for (const e of events) e();
    return true;
  }

  /** OUT data at `buf`: the whole buffer must be in RAM; at most `keep` bytes are copied. */
  private outData(buf: number, len: number, keep: number): Uint8Array | undefined {
    if (!this.mem.covers(buf, len)) return undefined;
    return keep > 0 ? this.mem.read(buf, Math.min(len, keep)) : new Uint8Array(0);
  }

  // --- PCI configuration ---------------------------------------------------------------------------------

  /** SBRN is read-only; FLADJ is stored (§5.2.3-5.2.4). */
  cfgWrite(offset: number, size: 1 | 2 | 4, value: number): boolean {
    if (offset + size <= PCI_SBRN || offset > PCI_FLADJ) return false;
    for (let i = 0; i < size; i++) if (offset + i === PCI_FLADJ) this.fn.set8(PCI_FLADJ, (value >>> (8 * i)) & 0x3f);
    return true;
  }
}

/** The first tablet on any xhci controller of this bus (for the VNC server), if there is one. */
export function findUsbTablet(bus: PciBus): UsbTablet | undefined {
  for (const fn of bus.all()) {
    if (fn.model instanceof XhciController) {
      const t = fn.model.tablets()[0];
      if (t) return t;
    }
  }
  return undefined;
}

export const createXhci: PciDeviceFactory = (ctx) => {
  const fn = ctx.fn;
  // bhyve allows one controller per VM.
  if (ctx.bus.all().some((f) => f !== fn && f.model instanceof XhciController)) {
    throw new BhyveError(ExitStatus.ERROR, 'pci_xhci controller already defined', false);
  }
  const specs = readXhciOptions(ctx.tree, ctx.node);
  if (specs.length === 0) ctx.warn(`${fn.label}: no USB devices configured`);
  const devices = specs.map((s) => ({ port: s.port, device: new UsbTablet() as UsbDevice }));
  const dev = new XhciController(fn, new GuestMem(ctx.machine.memory), devices);
  fn.set16(PCIR_VENDOR, XHCI_VENDOR);
  fn.set16(PCIR_DEVICE, XHCI_DEVICE);
  fn.set8(PCIR_CLASS, PCIC_SERIALBUS);
  fn.set8(PCIR_SUBCLASS, 0x03); // USB
  fn.set8(PCIR_PROGIF, 0x30); // xHCI
  fn.set8(PCI_SBRN, 0x30); // USB 3.0
  fn.set8(PCI_FLADJ, 0x20); // 60000 high-speed bit times per frame
  fn.addMsiCapability(1);
  fn.requestLintr();
  ctx.bus.allocBar(fn, 0, 'mem64', R.BAR_SIZE);
  return dev;
};
