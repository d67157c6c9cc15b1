// The ACPI fixed-hardware power management block bhyve's FADT describes (bhyve-facts §4.7, §4.9; ACPI 6.5 §4.8):
//   0x400 PM1a_STS (16 bits, write-1-to-clear)   0x402 PM1a_EN (16 bits)
//   0x404 PM1a_CNT (16 bits)                        0x408 PM_TMR (32 bits, 3.579545 MHz, read-only)
//   0x40C GPE0_STS (8 bits, write-1-to-clear)       0x40D GPE0_EN (8 bits)
//   0xB2  SMI_CMD: 0xA0 hands the hardware to the OS (SCI_EN), 0xA1 takes it back.
// The SCI is ISA IRQ 9, level-triggered, high while any enabled status bit is set. KVM has no PM timer, so it
// lives here too (bhyve keeps it in the kernel).
import type { Machine, PortSize } from '../machine.js';
import { IsaLine } from './isa-line.js';

export const PM1A_EVT_BASE = 0x400;
export const PM1A_CNT_BASE = 0x404;
export const PM_TMR_PORT = 0x408;
export const GPE0_BASE = 0x40c;
export const SMI_CMD_PORT = 0xb2;
export const ACPI_ENABLE_VALUE = 0xa0;
export const ACPI_DISABLE_VALUE = 0xa1;
export const SCI_IRQ = 9;
/** ACPI 6.5 §4.8.3.3: the PM timer runs at 3.579545 MHz. */
export const PM_TIMER_HZ = 3_579_545;

// PM1 status/enable bits (ACPI 6.5 Tables 4.16, 4.17).
export const PM1_TMR = 0x0001;
export const PM1_BM_STS = 0x0010;
export const PM1_GBL = 0x0020;
export const PM1_PWRBTN = 0x0100;
export const PM1_SLPBTN = 0x0200;
export const PM1_RTC = 0x0400;
export const PM1_WAK_STS = 0x8000;
/** Status bits the OS may clear. */
const PM1_STS_W1C = PM1_TMR | PM1_BM_STS | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC | PM1_WAK_STS;
/** Enables that exist here: the timer overflow, the global lock (ACPICA insists on setting it), power button, RTC. */
const PM1_EN_WRITABLE = PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_RTC;
/** Events that may raise the SCI. */
const PM1_SCI_EVENTS = PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC;

// PM1 control (ACPI 6.5 Table 4.18).
export const PM1_SCI_EN = 0x0001;
export const PM1_SLP_TYP_SHIFT = 10;
export const PM1_SLP_TYP = 0x1c00;
export const PM1_SLP_EN = 0x2000;
/** SLP_EN is write-only; bits 0-1 other than SCI_EN and 14-15 are reserved. */
const PM1_CNT_RESERVED = 0xc002;
/** bhyve's \_S5 package says SLP_TYP 5 means soft-off. */
export const SLP_TYP_S5 = 5;

/** GPE0 bit 0: the VM generation ID device's notification. */
export const GPE_VMGENID = 0;
const GPE0_VALID = 1 << GPE_VMGENID;

/** The PM timer's top bit (32-bit timer: bit 31) toggling sets TMR_STS (ACPI 6.5 §4.8.3.3). */
const TIMER_MSB_TICKS = 2 ** 31;

export class PowerManagement {
  private pm1Status = 0;
  private pm1Enable = 0;
  private pm1Control = 0;
  private gpe0Status = 0;
  private gpe0Enable = 0;
  private readonly sci: IsaLine;
  private readonly startNs: bigint;
  /** How many MSB toggles have been folded into TMR_STS so far. */
  private timerEpochs = 0;
  private timerWatch: NodeJS.Timeout | undefined;
  private readonly acpiListeners = new Set<(enabled: boolean) => void>();
  private closed = false;

  constructor(
    private readonly machine: Machine,
    private readonly now: () => bigint = () => process.hrtime.bigint(),
  ) {
    this.sci = IsaLine.of(machine.irq, SCI_IRQ);
    this.startNs = now();
    machine.irq.setIsaTrigger(SCI_IRQ, true);
    const io = machine.io;
    io.registerPort(PM1A_EVT_BASE, 4, (w, port, size, v) => this.pm1Event(w, port - PM1A_EVT_BASE, size, v));
    io.registerPort(PM1A_CNT_BASE, 2, (w, port, size, v) => this.pm1ControlAccess(w, port - PM1A_CNT_BASE, size, v));
    io.registerPort(PM_TMR_PORT, 4, (w, port, size) => (w ? 0 : lane(this.timerValue(), port - PM_TMR_PORT, size)));
    io.registerPort(GPE0_BASE, 2, (w, port, size, v) => this.gpe0Access(w, port - GPE0_BASE, size, v));
    io.registerPort(SMI_CMD_PORT, 1, (w, _port, size, v) => this.smiCommand(w, size, v));
  }

  /** The PM timer's current count: free-running from start, 32 bits wide (the FADT sets TMR_VAL_EXT). */
  timerValue(): number {
    return this.timerTicks() % 2 ** 32;
  }

  private timerTicks(): number {
    const ns = this.now() - this.startNs;
    return Number((ns * BigInt(PM_TIMER_HZ)) / 1_000_000_000n);
  }

  /** True once the guest wrote ACPI_ENABLE to SMI_CMD (and not ACPI_DISABLE since). */
  get acpiEnabled(): boolean {
    return (this.pm1Control & PM1_SCI_EN) !== 0;
  }

  get sciAsserted(): boolean {
    return this.sci.high;
  }

  get status(): number {
    this.foldTimer();
    return this.pm1Status;
  }

  /** Calls `f(enabled)` whenever the guest switches ACPI mode through SMI_CMD. Returns the unsubscribe. */
  onAcpiModeChange(f: (enabled: boolean) => void): () => void {
    this.acpiListeners.add(f);
    return () => this.acpiListeners.delete(f);
  }

  /** The power button: PWRBTN_STS latches; the SCI follows if the OS enabled PWRBTN_EN. */
  pressPowerButton(): void {
    if (this.closed) return;
    this.pm1Status |= PM1_PWRBTN;
    this.updateSci();
  }

  /** Raises a general-purpose event (only the VM generation ID bit exists). */
  raiseGpe(bit: number): void {
    if (!Number.isInteger(bit) || bit < 0 || bit > 7 || (GPE0_VALID & (1 << bit)) === 0) {
      throw new RangeError(`GPE ${bit} is not wired`);
    }
    this.gpe0Status |= 1 << bit;
    this.updateSci();
  }

  private updateSci(): void {
    this.foldTimer();
    const pm1 = this.pm1Status & this.pm1Enable & PM1_SCI_EVENTS;
    const gpe = this.gpe0Status & this.gpe0Enable;
    this.sci.set(this, pm1 !== 0 || gpe !== 0);
  }

  /** Latches TMR_STS for every MSB toggle since the last look. */
  private foldTimer(): void {
    const epochs = Math.floor(this.timerTicks() / TIMER_MSB_TICKS);
    if (epochs !== this.timerEpochs) {
      this.timerEpochs = epochs;
      this.pm1Status |= PM1_TMR;
    }
  }

  /** With TMR_EN set, wakes up at the next MSB toggle so the SCI is not late (every ~10 minutes). */
  private scheduleTimerWatch(): void {
    if (this.timerWatch) clearTimeout(this.timerWatch);
    this.timerWatch = undefined;
    if (this.closed || (this.pm1Enable & PM1_TMR) === 0) return;
    const ticksLeft = (this.timerEpochs + 1) * TIMER_MSB_TICKS - this.timerTicks();
    const ms = Math.max(1, Math.ceil((ticksLeft * 1000) / PM_TIMER_HZ));
    this.timerWatch = setTimeout(() => {
      this.updateSci();
      this.scheduleTimerWatch();
    }, ms);
    this.timerWatch.unref();
  }

  private pm1Event(write: boolean, off: number, size: PortSize, value: number): number {
    if (off + size > 4) return write ? 0 : 0xffff_ffff;
    this.foldTimer();
    if (!write) return lane(this.pm1Status | (this.pm1Enable << 16), off, size);
    // Split the write into the status half and the enable half by byte lanes.
    const shifted = value * 2 ** (off * 8);
    const mask = (2 ** (size * 8) - 1) * 2 ** (off * 8);
    const sts = shifted & mask & 0xffff;
    const enMask = Math.floor(mask / 0x10000) & 0xffff;
    this.pm1Status &= ~(sts & PM1_STS_W1C);
    if (enMask !== 0) {
      const en = Math.floor(shifted / 0x10000) & 0xffff;
      this.pm1Enable = ((this.pm1Enable & ~enMask) | (en & enMask)) & PM1_EN_WRITABLE;
      this.scheduleTimerWatch();
    }
    this.updateSci();
    return 0;
  }

  private pm1ControlAccess(write: boolean, off: number, size: PortSize, value: number): number {
    if (off + size > 2) return write ? 0 : 0xffff_ffff;
    if (!write) return lane(this.pm1Control, off, size);
    const mask = ((2 ** (size * 8) - 1) << (off * 8)) & 0xffff;
    const v = (value << (off * 8)) & mask;
    // SCI_EN belongs to the SMI handler, never to the OS; SLP_EN reads back as 0.
    const keep = this.pm1Control & ~mask;
    this.pm1Control = ((keep | v) & ~(PM1_SLP_EN | PM1_CNT_RESERVED | PM1_SCI_EN)) | (this.pm1Control & PM1_SCI_EN);
    if (v & PM1_SLP_EN) {
      const slpTyp = (this.pm1Control & PM1_SLP_TYP) >> PM1_SLP_TYP_SHIFT;
      if (slpTyp === SLP_TYP_S5) this.machine.suspend('poweroff');
      // Other sleep states (S1-S4) are not offered by the DSDT; a write of them does nothing.
    }
    return 0;
  }

  private gpe0Access(write: boolean, off: number, size: PortSize, value: number): number {
    // ACPI 6.5 §4.8.1.5: GPE registers are accessed a byte at a time.
    if (size !== 1 || off > 1) return write ? 0 : 0xffff_ffff;
    if (!write) return off === 0 ? this.gpe0Status : this.gpe0Enable;
    if (off === 0) this.gpe0Status &= ~(value & GPE0_VALID);
    else this.gpe0Enable = value & GPE0_VALID;
    this.updateSci();
    return 0;
  }

  private smiCommand(write: boolean, size: PortSize, value: number): number {
    if (!write || size !== 1) return write ? 0 : 0xffff_ffff; // write-only port
    let enabled: boolean;
    if (value === ACPI_ENABLE_VALUE) enabled = true;
    else if (value === ACPI_DISABLE_VALUE) enabled = false;
    else return 0;
    const was = this.acpiEnabled;
    if (enabled) this.pm1Control |= PM1_SCI_EN;
    else this.pm1Control &= ~PM1_SCI_EN;
    if (was !== enabled) for (const f of [...this.acpiListeners]) f(enabled);
    return 0;
  }

  close(): void {
    this.closed = true;
    if (this.timerWatch) clearTimeout(this.timerWatch);
    this.sci.set(this, false);
    this.acpiListeners.clear();
  }
}

/** Bytes [off, off+size) of a little-endian register value. */
function lane(value: number, off: number, size: PortSize): number {
  return Math.floor((value >>> 0) / 2 ** (off * 8)) % 2 ** (size * 8);
}

/** Where SIGTERM is delivered; `process` in a VM, a plain EventEmitter in tests. */
export interface SignalSource {
  on(event: 'SIGTERM', f: () => void): unknown;
  off(event: 'SIGTERM', f: () => void): unknown;
}

/**
 * bhyve's SIGTERM rule (amd64/pm.c): until the guest turns ACPI on, SIGTERM keeps its default action and kills the
 * VM; once ACPI is on, SIGTERM presses the power button so the guest can shut down cleanly; turning ACPI off
 * restores the default. Returns a function that removes the rule.
 */
export function installSigtermPowerButton(pm: PowerManagement, signals: SignalSource = process): () => void {
  const press = (): void => pm.pressPowerButton();
  let installed = false;
  const apply = (enabled: boolean): void => {
    if (enabled && !installed) signals.on('SIGTERM', press);
    else if (!enabled && installed) signals.off('SIGTERM', press);
    installed = enabled;
  };
  apply(pm.acpiEnabled);
  const unsubscribe = pm.onAcpiModeChange(apply);
  return () => {
    unsubscribe();
    apply(false);
  };
}
