// An HPET timer block at 0xFED00000 (IA-PC HPET Specification 1.0a). KVM has none; this follows the semantics of
// bhyve's in-kernel vhpet (sys/amd64/vmm/io/vhpet.c) where they agree with the specification: a 2^24 Hz counter,
// eight timers with one-shot and periodic modes, level or edge interrupts on IOAPIC pins 20-23 (the four highest
// pins of a 24-pin IOAPIC) or FSB (MSI) delivery. Beyond vhpet, the main counter is 64 bits wide and
// LegacyReplacement routing works (timer 0 -> IRQ0, timer 1 -> IRQ8), which the brief for this project asks for.
//
// Registers are 64 bits; the VM hands 8-byte accesses over as two 4-byte ones (low half first), and the guest may
// use 4-byte accesses on either half. Other sizes and misaligned accesses read all-ones and are not written.
import type { Machine, MmioSize } from '../machine.js';
import { HPET_BASE } from '../../vm/memmap.js';

export const HPET_SIZE = 0x400;
/** Counter frequency: 16.777216 MHz as vhpet (period 59604644 fs). */
export const HPET_FREQ_HZ = 16_777_216;
export const HPET_PERIOD_FS = Math.floor(1e15 / HPET_FREQ_HZ);
export const HPET_TIMERS = 8;

// General registers (spec §2.3.1, Table 2).
const REG_CAP = 0x000;
const REG_CONFIG = 0x010;
const REG_ISR = 0x020;
const REG_COUNTER = 0x0f0;
const TIMER_BASE = 0x100;
const TIMER_STRIDE = 0x20;
const T_CONFIG = 0x00;
const T_COMPARATOR = 0x08;
const T_FSB = 0x10;

// General capabilities (spec §2.3.4).
const CAP_REV_ID = 0x01;
const CAP_COUNT_SIZE = 1 << 13;
const CAP_LEG_RT = 1 << 15;
const CAP_VENDOR_INTEL = 0x8086 << 16;

// General configuration.
export const CNF_ENABLE = 0x1n;
export const CNF_LEG_RT = 0x2n;

// Timer configuration and capabilities (spec §2.3.8).
export const TN_INT_TYPE_LEVEL = 1n << 1n;
export const TN_INT_ENB = 1n << 2n;
export const TN_TYPE_PERIODIC = 1n << 3n;
export const TN_PER_INT_CAP = 1n << 4n;
export const TN_SIZE_CAP = 1n << 5n;
export const TN_VAL_SET = 1n << 6n;
export const TN_32MODE = 1n << 8n;
export const TN_INT_ROUTE_SHIFT = 9n;
export const TN_INT_ROUTE = 0x1fn << TN_INT_ROUTE_SHIFT;
export const TN_FSB_EN = 1n << 14n;
export const TN_FSB_CAP = 1n << 15n;
const TN_RO = TN_PER_INT_CAP | TN_SIZE_CAP | TN_FSB_CAP | (0xffff_ffffn << 32n);
const TN_WRITABLE = TN_INT_TYPE_LEVEL | TN_INT_ENB | TN_TYPE_PERIODIC | TN_VAL_SET | TN_32MODE | TN_INT_ROUTE | TN_FSB_EN;

const MASK64 = (1n << 64n) - 1n;
const MASK32 = 0xffff_ffffn;
const NS_PER_S = 1_000_000_000n;
/** setTimeout's limit; longer waits re-arm in steps. */
const MAX_TIMEOUT_MS = 0x7fff_ffff;

/** The IOAPIC pins timers may be routed to: vhpet's rule, the top four pins of the IOAPIC. */
export function hpetRouteMask(ioapicPins: number): number {
  if (ioapicPins >= 32) return 0xff00_0000;
  if (ioapicPins >= 20) return (0xf << (ioapicPins - 4)) >>> 0;
  return 0;
}

/** Low 32 bits of the General Capabilities and ID register, for the ACPI HPET table (spec §3.2.4). */
export function hpetCapabilities(timers = HPET_TIMERS): number {
  return (CAP_VENDOR_INTEL | CAP_LEG_RT | CAP_COUNT_SIZE | ((timers - 1) << 8) | CAP_REV_ID) >>> 0;
}

/** Where a timer's interrupt currently goes. */
type Route = { kind: 'none' } | { kind: 'ioapic'; pin: number } | { kind: 'legacy'; irq: number; pin: number } | { kind: 'msi' };

interface Timer {
  config: bigint;
  comparator: bigint;
  /** Periodic increment (vhpet's comprate); 0 in one-shot mode. */
  period: bigint;
  fsb: bigint;
  /** Host timer waiting for the next match. */
  handle: NodeJS.Timeout | undefined;
  /** Absolute tick (see `absTicks`) at which the armed match happens. */
  targetAbs: bigint;
  /** Where a level interrupt is being held, to release the same line. */
  held: Route | undefined;
}

export class Hpet {
  private config = 0n;
  private isr = 0n;
  /** Counter value at `baseMono` (while enabled) or the frozen value (while disabled). */
  private counterBase = 0n;
  private baseMono = 0n;
  private readonly timers: Timer[] = [];
  private readonly routeMask: bigint;
  private closed = false;

  constructor(
    private readonly machine: Machine,
    readonly timerCount = HPET_TIMERS,
    private readonly mono: () => bigint = () => process.hrtime.bigint(),
  ) {
    if (!Number.isInteger(timerCount) || timerCount < 3 || timerCount > 32) throw new RangeError('HPET needs 3-32 timers');
    this.routeMask = BigInt(hpetRouteMask(machine.irq.ioapicPins));
    for (let i = 0; i < timerCount; i++) {
      this.timers.push({
        config: (this.routeMask << 32n) | TN_PER_INT_CAP | TN_SIZE_CAP | TN_FSB_CAP,
        comparator: MASK64,
        period: 0n,
        fsb: 0n,
        handle: undefined,
        targetAbs: 0n,
        held: undefined,
      });
    }
    machine.io.registerMmio(HPET_BASE, HPET_SIZE, (write, addr, size, value) =>
      this.access(write, addr - HPET_BASE, size, value),
    );
  }

  get capabilities(): bigint {
    return (BigInt(HPET_PERIOD_FS) << 32n) | BigInt(hpetCapabilities(this.timerCount));
  }

  get enabled(): boolean {
    return (this.config & CNF_ENABLE) !== 0n;
  }

  /** The main counter now (64 bits). */
  counter(): bigint {
    return this.absTicks() & MASK64;
  }

  /** The counter without wrapping: the timeline matches are scheduled on. */
  private absTicks(): bigint {
    if (!this.enabled) return this.counterBase;
    return this.counterBase + ((this.mono() - this.baseMono) * BigInt(HPET_FREQ_HZ)) / NS_PER_S;
  }

  access(write: boolean, offset: number, size: MmioSize, value: number): number {
    if (size !== 4 || !Number.isInteger(offset) || offset < 0 || offset >= HPET_SIZE || offset & 3) {
      return write ? 0 : 0xffff_ffff;
    }
    const reg = offset & ~7;
    const high = (offset & 4) !== 0;
    if (!write) {
      const v = this.readReg(reg);
      return Number(high ? (v >> 32n) & MASK32 : v & MASK32);
    }
    const data = BigInt(value >>> 0) << (high ? 32n : 0n);
    const mask = MASK32 << (high ? 32n : 0n);
    this.writeReg(reg, data, mask);
    return 0;
  }

  private timerAt(reg: number): { t: Timer; n: number; sub: number } | undefined {
    if (reg < TIMER_BASE) return undefined;
    const n = Math.floor((reg - TIMER_BASE) / TIMER_STRIDE);
    if (n >= this.timerCount) return undefined;
    return { t: this.timers[n]!, n, sub: (reg - TIMER_BASE) % TIMER_STRIDE };
  }

  private readReg(reg: number): bigint {
    switch (reg) {
      case REG_CAP:
        return this.capabilities;
      case REG_CONFIG:
        return this.config;
      case REG_ISR:
        return this.isr;
      case REG_COUNTER: {
        const c = this.counter();
        return c;
      }
    }
    const at = this.timerAt(reg);
    if (!at) return 0n; // reserved
    switch (at.sub) {
      case T_CONFIG:
        return at.t.config;
      case T_COMPARATOR:
        return at.t.config & TN_32MODE ? at.t.comparator & MASK32 : at.t.comparator;
      case T_FSB:
        return at.t.fsb;
      default:
        return 0n;
    }
  }

  private writeReg(reg: number, data: bigint, mask: bigint): void {
    switch (reg) {
      case REG_CAP:
        return; // read-only
      case REG_CONFIG:
        this.writeConfig(merge(this.config, data, mask) & (CNF_ENABLE | CNF_LEG_RT));
        return;
      case REG_ISR: {
        // Write 1 to clear a level-triggered timer's status and release its line.
        const clear = this.isr & data & mask;
        for (let n = 0; n < this.timerCount; n++) if (clear & (1n << BigInt(n))) this.release(n);
        return;
      }
      case REG_COUNTER: {
        // Software should only write the counter while halted (spec §2.3.7); a write while running restarts from it.
        const now = this.counter();
        this.counterBase = merge(now, data, mask);
        this.baseMono = this.mono();
        this.rearmAll();
        return;
      }
    }
    const at = this.timerAt(reg);
    if (!at) return;
    switch (at.sub) {
      case T_CONFIG:
        this.writeTimerConfig(at.n, data, mask);
        return;
      case T_COMPARATOR:
        this.writeComparator(at.n, data, mask);
        return;
      case T_FSB:
        at.t.fsb = merge(at.t.fsb, data, mask);
        return;
    }
  }

  private writeConfig(v: bigint): void {
    const old = this.config;
    if ((old ^ v) & CNF_ENABLE) {
      // Freeze or restart the counter at its current value.
      const now = this.absTicks();
      this.counterBase = now & MASK64;
      this.baseMono = this.mono();
    }
    this.config = v;
    if ((old ^ v) & CNF_LEG_RT) {
      // Lines held for level interrupts move with the routing.
      for (let n = 0; n < 2 && n < this.timerCount; n++) this.rehold(n);
    }
    this.rearmAll();
  }

  private writeTimerConfig(n: number, data: bigint, mask: bigint): void {
    const t = this.timers[n]!;
    let v = merge(t.config, data, mask);
    v = (v & TN_WRITABLE) | (t.config & TN_RO);
    // A route the capability mask does not allow falls back to 0 = not connected (vhpet).
    const pin = Number((v & TN_INT_ROUTE) >> TN_INT_ROUTE_SHIFT);
    if (pin !== 0 && (this.routeMask & (1n << BigInt(pin))) === 0n) v &= ~TN_INT_ROUTE;
    t.config = v;
    if (!(v & TN_TYPE_PERIODIC)) t.period = 0n;
    if (v & TN_32MODE) t.comparator &= MASK32;
    this.rehold(n);
    this.arm(n);
  }

  private writeComparator(n: number, data: bigint, mask: bigint): void {
    const t = this.timers[n]!;
    const width = t.config & TN_32MODE ? MASK32 : MASK64;
    if (t.config & TN_TYPE_PERIODIC) {
      // In periodic mode every write sets the increment; with VAL_SET it also sets the comparator (spec §2.3.9.2.2).
      t.period = merge(t.period, data, mask) & width;
      if (t.config & TN_VAL_SET) t.comparator = merge(t.comparator, data, mask) & width;
    } else {
      t.comparator = merge(t.comparator, data, mask) & width;
    }
    // VAL_SET covers one comparator write. An 8-byte store reaches us as two halves, low first, so in 64-bit
    // mode it stays armed until the high half has been written.
    if (t.config & TN_32MODE || mask >> 32n !== 0n) t.config &= ~TN_VAL_SET;
    // Half a periodic comparator is not a comparator yet: arm once the high half is in.
    if (t.config & TN_VAL_SET && t.config & TN_TYPE_PERIODIC) return;
    this.arm(n);
  }

  // --- interrupts -----------------------------------------------------------------------------------------

  private routeOf(n: number): Route {
    const t = this.timers[n]!;
    if (t.config & TN_FSB_EN) return { kind: 'msi' };
    if (this.config & CNF_LEG_RT && n < 2) {
      // LegacyReplacement (spec §2.4): timer 0 takes IRQ0 (IOAPIC pin 2), timer 1 takes IRQ8.
      return n === 0 ? { kind: 'legacy', irq: 0, pin: 2 } : { kind: 'legacy', irq: 8, pin: 8 };
    }
    const pin = Number((t.config & TN_INT_ROUTE) >> TN_INT_ROUTE_SHIFT);
    return pin === 0 ? { kind: 'none' } : { kind: 'ioapic', pin };
  }

  private fire(n: number): void {
    const t = this.timers[n]!;
    if (!(t.config & TN_INT_ENB) || this.closed) return;
    const route = this.routeOf(n);
    if (route.kind === 'msi') {
      // FSB delivery: the message data is the low half, the address the high half (spec §2.3.10).
      this.machine.irq.msi(t.fsb >> 32n, Number(t.fsb & MASK32));
      return;
    }
    if (route.kind === 'none') return;
    const irq = this.machine.irq;
    if (!(t.config & TN_INT_TYPE_LEVEL)) {
      if (route.kind === 'ioapic') irq.ioapicPulse(route.pin);
      else irq.isaPulse(route.irq, route.pin);
      return;
    }
    const bit = 1n << BigInt(n);
    if (this.isr & bit) return; // already asserted
    this.isr |= bit;
    t.held = route;
    if (route.kind === 'ioapic') irq.ioapicAssert(route.pin);
    else irq.isaAssert(route.irq, route.pin);
  }

  /** Clears timer n's status bit and lets go of its line. */
  private release(n: number): void {
    const t = this.timers[n]!;
    this.isr &= ~(1n << BigInt(n));
    const held = t.held;
    t.held = undefined;
    if (!held) return;
    if (held.kind === 'ioapic') this.machine.irq.ioapicDeassert(held.pin);
    else if (held.kind === 'legacy') this.machine.irq.isaDeassert(held.irq, held.pin);
  }

  /** After a configuration change: a held level interrupt that is no longer wanted, or moved, is released. */
  private rehold(n: number): void {
    const t = this.timers[n]!;
    if (!t.held) return;
    const route = this.routeOf(n);
    const same =
      (route.kind === 'ioapic' && t.held.kind === 'ioapic' && route.pin === t.held.pin) ||
      (route.kind === 'legacy' && t.held.kind === 'legacy' && route.irq === t.held.irq);
    if (!(t.config & TN_INT_ENB) || !(t.config & TN_INT_TYPE_LEVEL) || !same) this.release(n);
  }

  // --- scheduling -----------------------------------------------------------------------------------------

  private rearmAll(): void {
    for (let n = 0; n < this.timerCount; n++) this.arm(n);
  }

  /** Schedules timer n's next comparator match on a host timer (only while the counter runs). */
  private arm(n: number): void {
    const t = this.timers[n]!;
    if (t.handle) clearTimeout(t.handle);
    t.handle = undefined;
    if (!this.enabled || this.closed) return;
    const now = this.absTicks();
    const width = t.config & TN_32MODE ? MASK32 : MASK64;
    // Ticks until the counter (in the timer's width) next equals the comparator; a full wrap if it equals now.
    let delta = (t.comparator - (now & width)) & width;
    if (t.config & TN_TYPE_PERIODIC && t.period !== 0n && delta > (width + 1n) / 2n) {
      // A periodic comparator behind the counter steps forward by whole periods (as vhpet_adjust_compval does)
      // instead of waiting for the counter to wrap.
      const behind = ((now & width) - t.comparator) & width;
      t.comparator = (t.comparator + (behind / t.period + 1n) * t.period) & width;
      delta = (t.comparator - (now & width)) & width;
    }
    if (delta === 0n) delta = width + 1n;
    t.targetAbs = now + delta;
    this.wait(n);
  }

  private wait(n: number): void {
    const t = this.timers[n]!;
    const ticks = t.targetAbs - this.absTicks();
    const ms = ticks <= 0n ? 0 : Math.min(MAX_TIMEOUT_MS, Math.ceil(Number((ticks * 1000n) / BigInt(HPET_FREQ_HZ)) + 0.001));
    t.handle = setTimeout(() => this.expired(n), ms);
    t.handle.unref();
  }

  private expired(n: number): void {
    const t = this.timers[n]!;
    t.handle = undefined;
    if (!this.enabled || this.closed) return;
    const now = this.absTicks();
    if (now < t.targetAbs) {
      this.wait(n); // host timer ran early or the wait was capped
      return;
    }
    if (t.config & TN_TYPE_PERIODIC && t.period !== 0n) {
      // Next comparator: the first multiple of the period past the counter (missed periods coalesce, as vhpet).
      const width = t.config & TN_32MODE ? MASK32 : MASK64;
      const passed = (now - t.targetAbs) / t.period + 1n;
      t.comparator = (t.comparator + passed * t.period) & width;
      t.targetAbs += passed * t.period;
      this.fire(n);
      this.wait(n);
      return;
    }
    this.fire(n);
    // One-shot: the next match is a full counter wrap away (2^32 ticks = 256 s in 32-bit mode).
    if (t.config & TN_32MODE) this.arm(n);
  }

  close(): void {
    this.closed = true;
    for (let n = 0; n < this.timerCount; n++) {
      const t = this.timers[n]!;
      if (t.handle) clearTimeout(t.handle);
      t.handle = undefined;
      if (t.held) this.release(n);
    }
  }
}

function merge(old: bigint, data: bigint, mask: bigint): bigint {
  return (old & ~mask) | (data & mask);
}
