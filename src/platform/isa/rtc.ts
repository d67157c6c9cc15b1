// The MC146818 real-time clock and CMOS RAM (Motorola MC146818A datasheet) at ports 0x70 (index; bit 7 masks NMI)
// and 0x71 (data), with the upper 128 bytes of CMOS at 0x72/0x73. KVM has none, so it is emulated here with the
// semantics of bhyve's in-kernel vrtc, plus the UIP flag real parts have.
//
// The clock is kept as "RTC time" (host local time, or UTC with rtc.use_localtime=false) plus a monotonic host
// reference, so it never jumps with the host's wall clock. The date/time bytes are generated on read in the format
// register B asks for (BCD or binary, 12- or 24-hour). Setting register B's SET bit freezes them for the guest to
// write; clearing it makes the written time the new clock (an invalid one stops the clock, as vrtc does).
import type { Machine, PortSize } from '../machine.js';
import type { MemoryLayout } from '../../vm/memmap.js';
import { MiB, KiB } from '../../vm/memmap.js';

export const RTC_INDEX_PORT = 0x70;
export const RTC_DATA_PORT = 0x71;
export const RTC_EXT_INDEX_PORT = 0x72;
export const RTC_EXT_DATA_PORT = 0x73;
export const RTC_IRQ = 8;

// Register indices (datasheet Figure 3).
export const RTC_SEC = 0x00;
export const RTC_SEC_ALARM = 0x01;
export const RTC_MIN = 0x02;
export const RTC_MIN_ALARM = 0x03;
export const RTC_HOUR = 0x04;
export const RTC_HOUR_ALARM = 0x05;
export const RTC_WDAY = 0x06;
export const RTC_MDAY = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_STATUS_A = 0x0a;
export const RTC_STATUS_B = 0x0b;
export const RTC_STATUS_C = 0x0c;
export const RTC_STATUS_D = 0x0d;
/** The century byte the FADT names (bhyve-facts §4.7). */
export const RTC_CENTURY = 0x32;
/** bhyve's memory-size bytes (amd64/rtc.c): 64 KiB units above 16 MiB below 4 GiB, and above 4 GiB. */
export const RTC_LMEM_LSB = 0x34;
export const RTC_LMEM_MSB = 0x35;
export const RTC_HMEM_LSB = 0x5b;
export const RTC_HMEM_SB = 0x5c;
export const RTC_HMEM_MSB = 0x5d;

export const SA_UIP = 0x80;
const SA_DIVIDER = 0x70;
const SA_DIVIDER_32K = 0x20;
const SA_RATE = 0x0f;

export const SB_SET = 0x80;
export const SB_PIE = 0x40;
export const SB_AIE = 0x20;
export const SB_UIE = 0x10;
export const SB_SQWE = 0x08;
export const SB_BINARY = 0x04;
export const SB_24H = 0x02;
export const SB_DSE = 0x01;

export const SC_IRQF = 0x80;
export const SC_PF = 0x40;
export const SC_AF = 0x20;
export const SC_UF = 0x10;

export const SD_VRT = 0x80;

/** The update cycle is announced by UIP this long before the seconds change (datasheet: 244 us). */
const UIP_LEAD_NS = 244_000n;
const NS_PER_S = 1_000_000_000n;
/** Periodic interrupt: fastest rate the host timer is asked for (rates above ~1 kHz are coalesced). */
const MIN_TIMER_MS = 1;

export interface RtcOptions {
  /** The RTC shows host local time (bhyve's default) or UTC (-u, rtc.use_localtime=false). */
  localTime: boolean;
  /** Host wall clock in ms since the epoch (tests pass a fixed one). */
  wallClockMs?: () => number;
  /** Host monotonic clock in ns. */
  monotonicNs?: () => bigint;
}

interface Fields {
  sec: number;
  min: number;
  hour: number; // 0-23
  wday: number; // 1-7, Sunday = 1
  mday: number;
  month: number; // 1-12
  year: number; // full year
}

export class Rtc {
  private readonly cmos = new Uint8Array(256);
  private index = RTC_STATUS_D;
  private extIndex = 0;
  /** Last NMI-mask bit written to port 0x70 (KVM's NMI is not gated by it; recorded for diagnostics). */
  nmiMasked = false;
  /** RTC time in ns since 1970 at `baseMono`, or undefined when the guest programmed an invalid time. */
  private baseRtcNs: bigint | undefined;
  private baseMono: bigint;
  private lastUpdateSec: bigint;
  private updateTimer: NodeJS.Timeout | undefined;
  private periodicTimer: NodeJS.Timeout | undefined;
  private readonly mono: () => bigint;
  private closed = false;

  constructor(
    private readonly machine: Machine,
    opts: RtcOptions,
  ) {
    this.mono = opts.monotonicNs ?? (() => process.hrtime.bigint());
    const wall = opts.wallClockMs ? opts.wallClockMs() : Date.now();
    // Local time is encoded by shifting the epoch by the zone offset at start-up, then reading UTC fields.
    const shiftMin = opts.localTime ? -new Date(wall).getTimezoneOffset() : 0;
    this.baseRtcNs = BigInt(Math.round(wall + shiftMin * 60_000)) * 1_000_000n;
    this.baseMono = this.mono();
    this.lastUpdateSec = this.baseRtcNs / NS_PER_S;
    this.cmos[RTC_STATUS_A] = SA_DIVIDER_32K | 0x06; // 32.768 kHz time base, 1024 Hz periodic rate
    this.cmos[RTC_STATUS_B] = SB_24H;
    this.cmos[RTC_STATUS_D] = SD_VRT;
    machine.io.registerPort(RTC_INDEX_PORT, 2, (w, port, size, v) =>
      port === RTC_INDEX_PORT ? this.indexAccess(w, size, v) : this.dataAccess(w, size, v),
    );
    machine.io.registerPort(RTC_EXT_INDEX_PORT, 2, (w, port, size, v) => this.extAccess(w, port, size, v));
  }

  /** bhyve's rtc_init memory bytes for the layout (amd64/rtc.c). */
  setMemorySize(layout: MemoryLayout): void {
    const low = Math.max(0, Math.floor((layout.lowmem - 16 * MiB) / (64 * KiB)));
    const high = Math.floor(layout.highmem / (64 * KiB));
    this.cmos[RTC_LMEM_LSB] = low & 0xff;
    this.cmos[RTC_LMEM_MSB] = (low >> 8) & 0xff;
    this.cmos[RTC_HMEM_LSB] = high & 0xff;
    this.cmos[RTC_HMEM_SB] = (high >> 8) & 0xff;
    this.cmos[RTC_HMEM_MSB] = (high >> 16) & 0xff;
  }

  /** A CMOS byte as the guest would read it (date/time bytes freshly generated), without side effects. */
  peek(reg: number): number {
    if (!Number.isInteger(reg) || reg < 0 || reg > 0xff) return 0xff;
    if (reg < 0x80) this.refreshFields(reg);
    return reg === RTC_STATUS_A ? this.statusA() : reg === RTC_STATUS_D ? SD_VRT : this.cmos[reg]!;
  }

  /** The RTC's time in ms since 1970 as the guest sees it (local or UTC per configuration); NaN if invalid. */
  timeMs(): number {
    const ns = this.currentNs();
    return ns === undefined ? NaN : Number(ns / 1_000_000n);
  }

  // --- ports ------------------------------------------------------------------------------------------------

  private indexAccess(write: boolean, size: PortSize, v: number): number {
    if (size !== 1) return write ? 0 : 0xffff_ffff;
    if (!write) return 0xff; // the index register is write-only
    this.nmiMasked = (v & 0x80) !== 0;
    this.index = v & 0x7f;
    return 0;
  }

  private extAccess(write: boolean, port: number, size: PortSize, v: number): number {
    if (size !== 1) return write ? 0 : 0xffff_ffff;
    if (port === RTC_EXT_INDEX_PORT) {
      if (write) this.extIndex = v & 0x7f;
      return write ? 0 : 0xff;
    }
    const at = 0x80 + this.extIndex;
    if (!write) return this.cmos[at]!;
    this.cmos[at] = v & 0xff;
    return 0;
  }

  private dataAccess(write: boolean, size: PortSize, v: number): number {
    if (size !== 1) return write ? 0 : 0xffff_ffff;
    const reg = this.index;
    if (!write) return this.readReg(reg);
    this.writeReg(reg, v & 0xff);
    return 0;
  }

  private readReg(reg: number): number {
    switch (reg) {
      case RTC_STATUS_A:
        return this.statusA();
      case RTC_STATUS_C: {
        this.noteUpdates();
        const v = this.cmos[RTC_STATUS_C]!;
        this.cmos[RTC_STATUS_C] = 0; // reading C acknowledges every flag
        return v;
      }
      case RTC_STATUS_D:
        return SD_VRT; // the battery is always good
      default:
        this.refreshFields(reg);
        return this.cmos[reg]!;
    }
  }

  private writeReg(reg: number, v: number): void {
    switch (reg) {
      case RTC_STATUS_A:
        this.setStatusA(v);
        return;
      case RTC_STATUS_B:
        this.setStatusB(v);
        return;
      case RTC_STATUS_C:
      case RTC_STATUS_D:
        return; // read-only
      default:
        break;
    }
    if (isTimeField(reg)) {
      // Date/time bytes: while SET holds, the guest is composing a time; otherwise the write changes the clock.
      this.refreshFields(reg);
      this.cmos[reg] = reg === RTC_SEC ? v & 0x7f : v;
      if (!this.halted) this.takeTimeFromFields(this.currentNs());
      return;
    }
    this.cmos[reg] = v;
  }

  // --- clock --------------------------------------------------------------------------------------------

  private get halted(): boolean {
    return (this.cmos[RTC_STATUS_B]! & SB_SET) !== 0;
  }

  private get dividerRunning(): boolean {
    return (this.cmos[RTC_STATUS_A]! & SA_DIVIDER) === SA_DIVIDER_32K;
  }

  private get running(): boolean {
    return this.dividerRunning && !this.halted && this.baseRtcNs !== undefined;
  }

  private currentNs(): bigint | undefined {
    if (this.baseRtcNs === undefined) return undefined;
    if (!this.running) return this.baseRtcNs;
    return this.baseRtcNs + (this.mono() - this.baseMono);
  }

  /** Stops the clock at its current value (divider reset or SET). */
  private freeze(): void {
    const now = this.currentNs();
    this.baseRtcNs = now;
    this.baseMono = this.mono();
  }

  private statusA(): number {
    let v = this.cmos[RTC_STATUS_A]! & ~SA_UIP;
    const now = this.currentNs();
    if (this.running && now !== undefined) {
      const intoSecond = ((now % NS_PER_S) + NS_PER_S) % NS_PER_S;
      if (intoSecond >= NS_PER_S - UIP_LEAD_NS) v |= SA_UIP;
    }
    return v;
  }

  private setStatusA(v: number): void {
    const wasRunning = this.running;
    if (wasRunning) this.freeze();
    this.cmos[RTC_STATUS_A] = v & ~SA_UIP;
    if (this.running) this.baseMono = this.mono();
    this.reschedule();
  }

  private setStatusB(v: number): void {
    const old = this.cmos[RTC_STATUS_B]!;
    if (!(old & SB_SET) && v & SB_SET) {
      // Entering SET: freeze the bytes at the current time, in the current format, for the guest to edit.
      this.refreshFields(RTC_SEC, true);
      this.freeze();
      v &= ~SB_UIE; // the datasheet clears UIE when SET is written
    }
    this.cmos[RTC_STATUS_B] = v;
    if (old & SB_SET && !(v & SB_SET)) {
      this.takeTimeFromFields(undefined);
    }
    // Enabling an interrupt whose flag is already up raises IRQF (and the line) now.
    this.setFlags(0);
    this.reschedule();
  }

  /** Regenerates the date/time bytes from the clock unless the guest owns them (SET) or `force`. */
  private refreshFields(reg: number, force = false): void {
    if (!isTimeField(reg)) return;
    if (this.halted && !force) return;
    const ns = this.currentNs();
    if (ns === undefined) return;
    const f = fieldsOf(ns);
    const b = this.cmos[RTC_STATUS_B]!;
    const enc = (n: number): number => (b & SB_BINARY ? n : toBcd(n));
    this.cmos[RTC_SEC] = enc(f.sec);
    this.cmos[RTC_MIN] = enc(f.min);
    if (b & SB_24H) {
      this.cmos[RTC_HOUR] = enc(f.hour);
    } else {
      const h12 = f.hour % 12 === 0 ? 12 : f.hour % 12;
      this.cmos[RTC_HOUR] = enc(h12) | (f.hour >= 12 ? 0x80 : 0);
    }
    this.cmos[RTC_WDAY] = enc(f.wday);
    this.cmos[RTC_MDAY] = enc(f.mday);
    this.cmos[RTC_MONTH] = enc(f.month);
    this.cmos[RTC_YEAR] = enc(f.year % 100);
    this.cmos[RTC_CENTURY] = enc(Math.floor(f.year / 100));
  }

  /**
   * Makes the date/time bytes the clock's time, keeping `keepFractionOf`'s sub-second part (a write while running
   * does not reset the divider chain); an invalid time stops the clock.
   */
  private takeTimeFromFields(keepFractionOf: bigint | undefined): void {
    const secs = this.parseFields();
    if (secs === undefined) {
      this.baseRtcNs = undefined;
    } else {
      const frac = keepFractionOf === undefined ? 0n : ((keepFractionOf % NS_PER_S) + NS_PER_S) % NS_PER_S;
      this.baseRtcNs = BigInt(secs) * NS_PER_S + frac;
      this.lastUpdateSec = BigInt(secs);
    }
    this.baseMono = this.mono();
    this.reschedule();
  }

  /** The date/time bytes as seconds since 1970, or undefined if any is out of range. */
  private parseFields(): number | undefined {
    const b = this.cmos[RTC_STATUS_B]!;
    const dec = (v: number): number | undefined => {
      if (b & SB_BINARY) return v;
      const hi = v >> 4;
      const lo = v & 0x0f;
      return hi > 9 || lo > 9 ? undefined : hi * 10 + lo;
    };
    const sec = dec(this.cmos[RTC_SEC]!);
    const min = dec(this.cmos[RTC_MIN]!);
    let hourByte = this.cmos[RTC_HOUR]!;
    const pm = !(b & SB_24H) && (hourByte & 0x80) !== 0;
    if (!(b & SB_24H)) hourByte &= 0x7f;
    let hour = dec(hourByte);
    const mday = dec(this.cmos[RTC_MDAY]!);
    const month = dec(this.cmos[RTC_MONTH]!);
    const yy = dec(this.cmos[RTC_YEAR]!);
    const cc = dec(this.cmos[RTC_CENTURY]!);
    if (sec === undefined || min === undefined || hour === undefined || mday === undefined) return undefined;
    if (month === undefined || yy === undefined || cc === undefined) return undefined;
    if (!(b & SB_24H)) {
      if (hour < 1 || hour > 12) return undefined;
      hour = (hour % 12) + (pm ? 12 : 0);
    }
    const year = cc * 100 + yy;
    if (sec > 59 || min > 59 || hour > 23 || month < 1 || month > 12 || yy > 99 || year < 1970) return undefined;
    if (mday < 1 || mday > daysInMonth(year, month)) return undefined;
    return Date.UTC(year, month - 1, mday, hour, min, sec) / 1000;
  }

  // --- interrupts ---------------------------------------------------------------------------------------

  /** ORs flags into register C; IRQF rises (and IRQ 8 gets an edge) when an enabled flag is set. */
  private setFlags(flags: number): void {
    const b = this.cmos[RTC_STATUS_B]!;
    const c = (this.cmos[RTC_STATUS_C]! | flags) & (SC_PF | SC_AF | SC_UF);
    const enabled = (b & SB_PIE && c & SC_PF) || (b & SB_AIE && c & SC_AF) || (b & SB_UIE && c & SC_UF);
    const oldIrqf = this.cmos[RTC_STATUS_C]! & SC_IRQF;
    // IRQF = PF.PIE + AF.AIE + UF.UIE (datasheet, register C).
    this.cmos[RTC_STATUS_C] = c | (enabled ? SC_IRQF : 0);
    // vrtc signals IRQ 8 as an edge on the 0 -> 1 transition of IRQF.
    if (enabled && !oldIrqf && !this.closed) this.machine.irq.isaPulse(RTC_IRQ, RTC_IRQ);
  }

  /** Latches UF (and AF on an alarm match) for each update cycle that passed since the last look. */
  private noteUpdates(): void {
    const now = this.running ? this.currentNs() : undefined;
    if (now === undefined) return;
    const sec = now / NS_PER_S;
    if (sec === this.lastUpdateSec) return;
    const b = this.cmos[RTC_STATUS_B]!;
    let flags = SC_UF;
    if (b & SB_AIE && this.alarmMatches()) flags |= SC_AF;
    this.lastUpdateSec = sec;
    this.setFlags(flags);
  }

  /** The alarm bytes against the current time; 0xC0-0xFF in an alarm byte means "any" (datasheet). */
  private alarmMatches(): boolean {
    this.refreshFields(RTC_SEC);
    const pairs: Array<[number, number]> = [
      [RTC_SEC_ALARM, RTC_SEC],
      [RTC_MIN_ALARM, RTC_MIN],
      [RTC_HOUR_ALARM, RTC_HOUR],
    ];
    return pairs.every(([a, t]) => this.cmos[a]! >= 0xc0 || this.cmos[a] === this.cmos[t]);
  }

  /** Host timers for the enabled interrupts: one at each second boundary for UF/AF, one at the periodic rate. */
  private reschedule(): void {
    if (this.updateTimer) clearTimeout(this.updateTimer);
    if (this.periodicTimer) clearTimeout(this.periodicTimer);
    this.updateTimer = this.periodicTimer = undefined;
    if (this.closed) return;
    const b = this.cmos[RTC_STATUS_B]!;
    if (b & (SB_UIE | SB_AIE) && this.running) this.armUpdate();
    if (b & SB_PIE && this.dividerRunning && (this.cmos[RTC_STATUS_A]! & SA_RATE) !== 0) this.armPeriodic();
  }

  private armUpdate(): void {
    const now = this.currentNs()!;
    const toNext = NS_PER_S - (((now % NS_PER_S) + NS_PER_S) % NS_PER_S);
    const ms = Math.max(MIN_TIMER_MS, Math.ceil(Number(toNext) / 1e6));
    this.updateTimer = setTimeout(() => {
      this.updateTimer = undefined;
      this.noteUpdates();
      if (this.cmos[RTC_STATUS_B]! & (SB_UIE | SB_AIE) && this.running) this.armUpdate();
    }, ms);
    this.updateTimer.unref();
  }

  private armPeriodic(): void {
    const rate = this.cmos[RTC_STATUS_A]! & SA_RATE;
    // Rates 1 and 2 repeat 8 and 9 (datasheet Table 5); otherwise 32768 >> (rate - 1) Hz.
    const hz = rate <= 2 ? 32768 >> (rate + 6) : 32768 >> (rate - 1);
    const ms = Math.max(MIN_TIMER_MS, 1000 / hz);
    this.periodicTimer = setTimeout(() => {
      this.periodicTimer = undefined;
      this.setFlags(SC_PF);
      const b = this.cmos[RTC_STATUS_B]!;
      if (b & SB_PIE && this.dividerRunning && !this.closed) this.armPeriodic();
    }, ms);
    this.periodicTimer.unref();
  }

  close(): void {
    this.closed = true;
    this.reschedule();
  }
}

function isTimeField(reg: number): boolean {
  return (reg <= RTC_YEAR && reg !== RTC_SEC_ALARM && reg !== RTC_MIN_ALARM && reg !== RTC_HOUR_ALARM) || reg === RTC_CENTURY;
}

function toBcd(n: number): number {
  return ((Math.floor(n / 10) % 10) << 4) | n % 10;
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function fieldsOf(ns: bigint): Fields {
  const d = new Date(Number(ns / 1_000_000n) - (ns < 0n && ns % 1_000_000n !== 0n ? 1 : 0));
  return {
    sec: d.getUTCSeconds(),
    min: d.getUTCMinutes(),
    hour: d.getUTCHours(),
    wday: d.getUTCDay() + 1,
    mday: d.getUTCDate(),
    month: d.getUTCMonth() + 1,
    year: d.getUTCFullYear(),
  };
}
