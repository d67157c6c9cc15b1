// Guest memory as the xHC reaches it, TRBs, the consumer side of command and transfer rings (cycle-bit
// ownership, Link TRBs, a bound on the TRBs one pass may take) and the event ring with its segment table.
// Every guest pointer goes through the machine's checked accessor; a failed access is a value, never a throw.
import type { GuestMemoryAccess } from '../../src/platform/machine.js';
import {
  CC,
  ERST_MAX,
  TRB_CYCLE,
  TRB_HOST_CONTROLLER,
  TRB_LINK,
  TRB_TC,
} from './regs.js';

/** The guest's RAM through the checked accessor: undefined / false instead of an exception. */
export class GuestMem {
  constructor(private readonly mem: GuestMemoryAccess) {}

  read(gpa: number, len: number): Uint8Array | undefined {
    if (!validAddress(gpa) || len < 0) return undefined;
    try {
      return this.mem.read(gpa, len);
    } catch {
      return undefined;
    }
  }

  write(gpa: number, data: Uint8Array): boolean {
    if (!validAddress(gpa)) return false;
    try {
      this.mem.write(gpa, data);
      return true;
    } catch {
      return false;
    }
  }

  /** Whether [gpa, gpa+len) is readable, without copying more than a byte at each end. */
  covers(gpa: number, len: number): boolean {
    if (len === 0) return validAddress(gpa);
    return this.read(gpa, 1) !== undefined && this.read(gpa + len - 1, 1) !== undefined;
  }
}

function validAddress(gpa: number): boolean {
  return Number.isSafeInteger(gpa) && gpa >= 0;
}

/** A 64-bit guest pointer from two dwords; addresses past 2^53 become NaN, which every access refuses. */
export function pointer(lo: number, hi: number): number {
  return hi >= 0x200000 ? Number.NaN : hi * 2 ** 32 + (lo >>> 0);
}

/** One 16-byte TRB, read once into these fields (no second fetch from guest memory). */
export interface Trb {
  /** where it was read from */
  addr: number;
  paramLo: number;
  paramHi: number;
  status: number;
  control: number;
}

export const trbType = (t: Trb): number => (t.control >>> 10) & 0x3f;
export const trbParam = (t: Trb): number => pointer(t.paramLo, t.paramHi);

export function readTrb(mem: GuestMem, addr: number): Trb | undefined {
  const b = mem.read(addr, 16);
  if (!b) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, 16);
  return { addr, paramLo: v.getUint32(0, true), paramHi: v.getUint32(4, true), status: v.getUint32(8, true), control: v.getUint32(12, true) };
}

export function encodeTrb(paramLo: number, paramHi: number, status: number, control: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint32(0, paramLo >>> 0, true);
  v.setUint32(4, paramHi >>> 0, true);
  v.setUint32(8, status >>> 0, true);
  v.setUint32(12, control >>> 0, true);
  return b;
}

export type RingFetch =
  | { kind: 'trb'; trb: Trb }
  /** the TRB at the dequeue pointer belongs to software (its cycle bit differs from ours) */
  | { kind: 'empty' }
  /** the dequeue pointer (or a Link target) is outside guest RAM: a host system error */
  | { kind: 'memory' }
  /** the pass used up its budget, e.g. on a loop of Link TRBs */
  | { kind: 'budget' };

/**
 * The consumer side of a TRB ring (§4.9.2): a dequeue pointer and the consumer cycle state. Link TRBs are
 * followed (toggling the cycle when TC is set) and never handed out; each TRB looked at, Link or not, costs one
 * unit of `budget`, so a ring of Links pointing at each other ends the pass instead of the VMM.
 */
export class RingConsumer {
  dequeue = 0;
  cycle = true;
  budget = 0;

  set(dequeue: number, cycle: boolean): void {
    this.dequeue = dequeue;
    this.cycle = cycle;
  }

  /** The next TRB software handed over, following Links; does not advance past it. */
  peek(mem: GuestMem): RingFetch {
    for (;;) {
      if (this.budget <= 0) return { kind: 'budget' };
      const trb = readTrb(mem, this.dequeue);
      if (!trb) return { kind: 'memory' };
      if (((trb.control & TRB_CYCLE) !== 0) !== this.cycle) return { kind: 'empty' };
      if (trbType(trb) !== TRB_LINK) return { kind: 'trb', trb };
      this.budget--;
      // §6.4.4.1: the segment pointer is 16-byte aligned; its low bits are reserved.
      this.dequeue = pointer(trb.paramLo & ~0xf, trb.paramHi);
      if (trb.control & TRB_TC) this.cycle = !this.cycle;
    }
  }

  /** Moves past the TRB peek() returned. */
  advance(): void {
    this.budget--;
    this.dequeue += 16;
  }
}

/** One Event Ring Segment Table entry as read when ERSTBA was written (§6.5). */
interface Segment {
  base: number;
  size: number;
}

/** 'signalled': the event did not fit and the Event Ring Full Error event took the last TRB (interrupt due). */
export type PostResult = 'posted' | 'full' | 'signalled' | 'error';

/**
 * The producer side of interrupter 0's event ring (§4.9.4). The segment table is read once when ERSTBA is
 * written; a table the controller cannot use (ERSTSZ 0 or past ERST Max, a segment outside RAM, misaligned or
 * not 16-4096 TRBs) leaves the ring unusable and posting to it is a host system error. The ring is full when
 * one free TRB is left: that TRB takes an Event Ring Full Error event and nothing else is written until software
 * moves ERDP.
 */
export class EventRing {
  private segments: Segment[] = [];
  private capacity = 0;
  /** linear enqueue index over all segments, and the producer cycle state */
  private enq = 0;
  private pcs = true;
  /** the linear index software has consumed up to (from ERDP) */
  private deq = 0;
  private fullSignalled = false;
  /** events that could not be posted because the ring was full */
  lost = 0;

  get usable(): boolean {
    return this.capacity > 0;
  }

  reset(): void {
    this.segments = [];
    this.capacity = 0;
    this.enq = 0;
    this.pcs = true;
    this.deq = 0;
    this.fullSignalled = false;
  }

  /** Reads the segment table (ERSTBA/ERSTSZ written); the enqueue pointer restarts at segment 0, cycle 1. */
  load(mem: GuestMem, erstba: number, erstsz: number): boolean {
    this.reset();
    if (erstsz === 0 || erstsz > 2 ** ERST_MAX || erstba % 64 !== 0) return false;
    const table = mem.read(erstba, erstsz * 16);
    if (!table) return false;
    const v = new DataView(table.buffer, table.byteOffset, table.length);
    const segs: Segment[] = [];
    for (let i = 0; i < erstsz; i++) {
      const base = pointer(v.getUint32(i * 16, true), v.getUint32(i * 16 + 4, true));
      const size = v.getUint32(i * 16 + 8, true) & 0xffff;
      // §6.5: segments are 64-byte aligned and hold 16 to 4096 TRBs.
      if (!(base % 64 === 0) || size < 16 || size > 4096 || !mem.covers(base, size * 16)) return false;
      segs.push({ base, size });
    }
    this.segments = segs;
    this.capacity = segs.reduce((n, s) => n + s.size, 0);
    return true;
  }

  private addressOf(index: number): number {
    let i = index;
    for (const s of this.segments) {
      if (i < s.size) return s.base + i * 16;
      i -= s.size;
    }
    return Number.NaN;
  }

  /** ERDP written: the TRB it points at becomes the dequeue position if it lies in the ring. */
  setDequeue(addr: number): void {
    let off = 0;
    for (const s of this.segments) {
      if (addr >= s.base && addr < s.base + s.size * 16 && (addr - s.base) % 16 === 0) {
        this.deq = off + (addr - s.base) / 16;
        if (this.free() >= 2) this.fullSignalled = false;
        return;
      }
      off += s.size;
    }
  }

  /** Free TRBs: the ring holds at most capacity - 1 events (enqueue + 1 == dequeue is full). */
  free(): number {
    if (this.capacity === 0) return 0;
    const used = (this.enq - this.deq + this.capacity) % this.capacity;
    return this.capacity - 1 - used;
  }

  /** Events software has not consumed yet. */
  pending(): boolean {
    return this.capacity > 0 && this.enq !== this.deq;
  }

  /** Whether one more ordinary event fits (one TRB stays for the Full Error event). */
  hasRoom(): boolean {
    return this.free() >= 2;
  }

  /**
   * Writes an event (the cycle bit is ours). 'full' when it did not fit (the Full Error event is written once in
   * the last free TRB), 'error' when the ring is unusable or its memory went away.
   */
  post(mem: GuestMem, trb: Uint8Array): PostResult {
    if (this.capacity === 0) return 'error';
    const free = this.free();
    if (free >= 2) return this.write(mem, trb) ? 'posted' : 'error';
    this.lost++;
    if (free === 1 && !this.fullSignalled) return this.signalFull(mem) ? 'signalled' : 'error';
    return 'full';
  }

  /**
   * A producer that found no room (hasRoom() false) waits for software; the ring's last free TRB, once, gets the
   * Event Ring Full Error event. True when that event was written now (an interrupt is due).
   */
  signalFull(mem: GuestMem): boolean {
    if (this.capacity === 0 || this.free() !== 1 || this.fullSignalled) return false;
    this.fullSignalled = true;
    return this.write(mem, encodeTrb(0, 0, CC.EVENT_RING_FULL << 24, TRB_HOST_CONTROLLER << 10));
  }

  private write(mem: GuestMem, trb: Uint8Array): boolean {
    const out = trb.slice();
    const v = new DataView(out.buffer);
    const ctl = v.getUint32(12, true);
    v.setUint32(12, ((ctl & ~TRB_CYCLE) | (this.pcs ? TRB_CYCLE : 0)) >>> 0, true);
    // The cycle bit is written last in hardware; writing the whole TRB at once is equivalent for the guest,
    // since it cannot observe the bytes until the interrupt or its next poll.
    if (!mem.write(this.addressOf(this.enq), out)) return false;
    this.enq++;
    if (this.enq === this.capacity) {
      this.enq = 0;
      this.pcs = !this.pcs;
    }
    return true;
  }
}
