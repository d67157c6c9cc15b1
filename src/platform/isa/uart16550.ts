// A 16550A UART (register set per the National Semiconductor PC16550D datasheet) as bhyve presents its COM ports:
// transmission completes at once (THRE and TEMT always set), received bytes come from a backend through a 16-byte
// FIFO, and the interrupt output follows the IIR: high while any enabled cause is pending, low when none is.
//
// Receive flow: bytes the backend delivers wait in `pending` until the FIFO has room, and while anything waits the
// backend is paused, so a slow guest stalls the sender instead of losing characters. Overrun (LSR.OE) can only
// happen in loopback mode, where the guest itself overfills its FIFO.
import type { Machine, PortSize } from '../machine.js';
import { IsaLine } from './isa-line.js';

/** What a UART needs from the outside world (a terminal, a tty, a TCP client). */
export interface UartBackend {
  /** Guest-transmitted bytes; dropped by the backend if nobody is listening. */
  write(data: Uint8Array): void;
  /** Starts delivering received bytes to `onData`. */
  start(onData: (data: Uint8Array) => void): void;
  /** Stops delivering until resume(); bytes stay with the sender (back-pressure). */
  pause(): void;
  resume(): void;
  close(): void;
}

/** Where the UART's interrupt output goes: an ISA line shared with other ports, or a PCI function's INTx pin. */
export interface UartInterruptLine {
  set(source: object, level: boolean): void;
}

export const UART_FIFO_SIZE = 16;
export const UART_REG_COUNT = 8;

// Register offsets (datasheet Table II).
export const enum UartReg {
  Data = 0, // RBR (read) / THR (write); DLL with DLAB
  Ier = 1, // DLM with DLAB
  IirFcr = 2,
  Lcr = 3,
  Mcr = 4,
  Lsr = 5,
  Msr = 6,
  Scr = 7,
}

export const IER_ERBFI = 0x01; // received data available
export const IER_ETBEI = 0x02; // transmitter holding register empty
export const IER_ELSI = 0x04; // receiver line status
export const IER_EDSSI = 0x08; // modem status

export const IIR_NOPEND = 0x01;
export const IIR_MLSC = 0x00;
export const IIR_TXRDY = 0x02;
export const IIR_RXRDY = 0x04;
export const IIR_RLS = 0x06;
export const IIR_FIFO_ENABLED = 0xc0;

export const FCR_ENABLE = 0x01;
export const FCR_RX_RESET = 0x02;
export const FCR_TX_RESET = 0x04;
export const FCR_DMA = 0x08;
export const FCR_TRIGGER = 0xc0;

export const LCR_DLAB = 0x80;

export const MCR_DTR = 0x01;
export const MCR_RTS = 0x02;
export const MCR_OUT1 = 0x04;
export const MCR_OUT2 = 0x08;
export const MCR_LOOP = 0x10;

export const LSR_DR = 0x01;
export const LSR_OE = 0x02;
export const LSR_THRE = 0x20;
export const LSR_TEMT = 0x40;

export const MSR_DCTS = 0x01;
export const MSR_DDSR = 0x02;
export const MSR_TERI = 0x04;
export const MSR_DDCD = 0x08;
export const MSR_CTS = 0x10;
export const MSR_DSR = 0x20;
export const MSR_RI = 0x40;
export const MSR_DCD = 0x80;
const MSR_DELTAS = MSR_DCTS | MSR_DDSR | MSR_TERI | MSR_DDCD;

/** The legacy COM ports (bhyve-facts §2.3): they exist whether or not a backend is attached. */
export const COM_PORTS = [
  { name: 'com1', base: 0x3f8, irq: 4 },
  { name: 'com2', base: 0x2f8, irq: 3 },
  { name: 'com3', base: 0x3e8, irq: 4 },
  { name: 'com4', base: 0x2e8, irq: 3 },
] as const;

/** Divisor for 115200 baud from the 1.8432 MHz clock; what the firmware would have left behind. */
const DEFAULT_DIVISOR = 1;

export class Uart16550 {
  private rxFifo: number[] = [];
  private rxCapacity = 1;
  /** Backend bytes not yet in the FIFO. */
  private pending: Uint8Array[] = [];
  private pendingOffset = 0;
  private paused = false;

  private dll = DEFAULT_DIVISOR & 0xff;
  private dlh = DEFAULT_DIVISOR >> 8;
  private ier = 0;
  private fcr = 0;
  private lcr = 0x03; // 8N1
  private mcr = 0;
  private lsr = 0;
  private msr: number;
  private scr = 0;
  /** The "THR empty" cause: set when THR empties or ETBEI is enabled, cleared by an IIR read reporting it. */
  private threPending = false;
  private readonly line: UartInterruptLine | undefined;
  private closed = false;

  constructor(
    private readonly backend: UartBackend | undefined,
    irqLine?: UartInterruptLine,
  ) {
    this.line = irqLine;
    this.msr = this.modemInputs();
    backend?.start((data) => this.receive(data));
  }

  /** Claims the 8 registers at `base` and drives ISA IRQ `irq` on `machine`. */
  static attach(machine: Machine, base: number, irq: number, backend?: UartBackend): Uart16550 {
    const uart = new Uart16550(backend, IsaLine.of(machine.irq, irq));
    machine.io.registerPort(base, UART_REG_COUNT, (write, port, size, value) =>
      uart.access(write, port - base, size, value),
    );
    return uart;
  }

  /** A port access at register offset `reg`. Registers are 8 bits wide; other sizes read all-ones, write nothing. */
  access(write: boolean, reg: number, size: PortSize, value: number): number {
    if (size !== 1 || !Number.isInteger(reg) || reg < 0 || reg >= UART_REG_COUNT) {
      return write ? 0 : 0xffff_ffff;
    }
    let result = 0;
    if (write) this.writeReg(reg, value & 0xff);
    else result = this.readReg(reg);
    this.updateInterrupt();
    return result;
  }

  private get dlab(): boolean {
    return (this.lcr & LCR_DLAB) !== 0;
  }

  private get loopback(): boolean {
    return (this.mcr & MCR_LOOP) !== 0;
  }

  /** MSR's upper nibble: in loopback the modem outputs fold back (datasheet, MCR bit 4); else a cable is attached. */
  private modemInputs(): number {
    if (!this.loopback) return MSR_DCD | MSR_DSR | MSR_CTS;
    let m = 0;
    if (this.mcr & MCR_DTR) m |= MSR_DSR;
    if (this.mcr & MCR_RTS) m |= MSR_CTS;
    if (this.mcr & MCR_OUT1) m |= MSR_RI;
    if (this.mcr & MCR_OUT2) m |= MSR_DCD;
    return m;
  }

  private writeReg(reg: number, v: number): void {
    switch (reg) {
      case UartReg.Data:
        if (this.dlab) {
          this.dll = v;
          return;
        }
        if (this.loopback) {
          // The transmitter feeds the receiver; overfilling the FIFO is an overrun.
          if (!this.putRx(v)) this.lsr |= LSR_OE;
        } else {
          this.backend?.write(Uint8Array.of(v));
        }
        this.threPending = true;
        return;
      case UartReg.Ier:
        if (this.dlab) {
          this.dlh = v;
          return;
        }
        // Enabling ETBEI while THR is empty (always, here) raises the THRE cause at once; Linux's THRE probe needs it.
        if ((this.ier & IER_ETBEI) === 0 && (v & IER_ETBEI) !== 0) this.threPending = true;
        this.ier = v & 0x0f;
        return;
      case UartReg.IirFcr: {
        const enable = (v & FCR_ENABLE) !== 0;
        if (enable !== ((this.fcr & FCR_ENABLE) !== 0)) {
          // Switching FIFO mode clears the receiver (datasheet, FCR bit 0).
          this.resetRx(enable ? UART_FIFO_SIZE : 1);
        } else if (v & FCR_RX_RESET) {
          this.resetRx(this.rxCapacity);
        }
        // TX reset has nothing to do: the transmitter is always empty.
        this.fcr = v & (FCR_ENABLE | FCR_DMA | FCR_TRIGGER);
        return;
      }
      case UartReg.Lcr:
        this.lcr = v;
        return;
      case UartReg.Mcr: {
        const oldMsr = this.modemInputs();
        this.mcr = v & 0x1f;
        const newMsr = this.modemInputs();
        const changed = oldMsr ^ newMsr;
        let delta = 0;
        if (changed & MSR_CTS) delta |= MSR_DCTS;
        if (changed & MSR_DSR) delta |= MSR_DDSR;
        if (changed & MSR_DCD) delta |= MSR_DDCD;
        // TERI reports RI going from on to off only.
        if (oldMsr & MSR_RI && !(newMsr & MSR_RI)) delta |= MSR_TERI;
        this.msr = newMsr | ((this.msr | delta) & MSR_DELTAS);
        this.refill();
        return;
      }
      case UartReg.Lsr:
      case UartReg.Msr:
        // Read-only status (writes are a factory test mode on real parts); ignored.
        return;
      case UartReg.Scr:
        this.scr = v;
        return;
    }
  }

  private readReg(reg: number): number {
    switch (reg) {
      case UartReg.Data: {
        if (this.dlab) return this.dll;
        const b = this.rxFifo.shift() ?? 0;
        this.refill();
        return b;
      }
      case UartReg.Ier:
        return this.dlab ? this.dlh : this.ier;
      case UartReg.IirFcr: {
        const cause = this.interruptCause();
        // Reading IIR with the THRE cause reported acknowledges it (datasheet Table IV).
        if (cause === IIR_TXRDY) this.threPending = false;
        return cause | (this.fcr & FCR_ENABLE ? IIR_FIFO_ENABLED : 0);
      }
      case UartReg.Lcr:
        return this.lcr;
      case UartReg.Mcr:
        return this.mcr;
      case UartReg.Lsr: {
        const v = this.lsr | LSR_THRE | LSR_TEMT | (this.rxFifo.length > 0 ? LSR_DR : 0);
        this.lsr &= ~LSR_OE; // error bits clear on read
        return v;
      }
      case UartReg.Msr: {
        const v = this.msr;
        this.msr &= ~MSR_DELTAS;
        return v;
      }
      default:
        return this.scr;
    }
  }

  /** The highest-priority pending cause (datasheet Table IV): line status, RX data, THR empty, modem status. */
  private interruptCause(): number {
    if (this.ier & IER_ELSI && this.lsr & LSR_OE) return IIR_RLS;
    if (this.ier & IER_ERBFI && this.rxFifo.length > 0) return IIR_RXRDY;
    if (this.ier & IER_ETBEI && this.threPending) return IIR_TXRDY;
    if (this.ier & IER_EDSSI && this.msr & MSR_DELTAS) return IIR_MLSC;
    return IIR_NOPEND;
  }

  private updateInterrupt(): void {
    this.line?.set(this, this.interruptCause() !== IIR_NOPEND);
  }

  private putRx(b: number): boolean {
    if (this.rxFifo.length >= this.rxCapacity) return false;
    this.rxFifo.push(b);
    return true;
  }

  private resetRx(capacity: number): void {
    this.rxFifo = [];
    this.rxCapacity = capacity;
    this.refill();
  }

  /** Bytes from the backend; kept in order until the FIFO takes them. */
  receive(data: Uint8Array): void {
    if (this.closed || data.length === 0) return;
    this.pending.push(data);
    this.refill();
    this.updateInterrupt();
  }

  /** Moves waiting backend bytes into the FIFO (not in loopback, where the receiver hears only the transmitter). */
  private refill(): void {
    if (!this.loopback) {
      while (this.pending.length > 0 && this.rxFifo.length < this.rxCapacity) {
        const chunk = this.pending[0]!;
        this.rxFifo.push(chunk[this.pendingOffset++]!);
        if (this.pendingOffset >= chunk.length) {
          this.pending.shift();
          this.pendingOffset = 0;
        }
      }
    }
    const wantPause = this.pending.length > 0;
    if (wantPause !== this.paused && this.backend && !this.closed) {
      this.paused = wantPause;
      if (wantPause) this.backend.pause();
      else this.backend.resume();
    }
  }

  /** Interrupt line level, for tests and diagnostics. */
  get interruptPending(): boolean {
    return this.interruptCause() !== IIR_NOPEND;
  }

  /** Bytes received but not yet read by the guest (FIFO plus waiting). */
  get bufferedBytes(): number {
    let n = this.rxFifo.length - this.pendingOffset;
    for (const c of this.pending) n += c.length;
    return n; // pendingOffset counts bytes of pending[0] already moved
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.line?.set(this, false);
    this.backend?.close();
  }
}
