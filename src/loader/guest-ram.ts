// Where things may go in guest RAM. Everything a boot plan writes is first claimed here: a claim must lie
// inside one E820 RAM entry (which checkE820 has tied to RAM the layout maps) and must not overlap an
// earlier claim or a fixed reserved area. The searches find room for the initrd and modules.
import type { MemoryLayout } from '../vm/memmap.js';
import type { E820Entry } from './e820.js';
import { E820_RAM, checkE820 } from './e820.js';
import { LoaderError, hex } from './errors.js';
import { BIOS_TABLES, LOW_RESERVED } from './low-memory.js';

export interface Claim {
  base: number;
  size: number;
  what: string;
}

function alignDown(v: number, a: number): number {
  return v - (v % a);
}

function alignUp(v: number, a: number): number {
  const r = v % a;
  return r === 0 ? v : v + (a - r);
}

export class GuestRam {
  readonly e820: readonly E820Entry[];
  private readonly ram: readonly E820Entry[];
  /** claims sorted by base */
  private readonly claims: Claim[] = [];

  constructor(e820: readonly E820Entry[], layout: MemoryLayout) {
    this.e820 = checkE820(e820, layout);
    this.ram = this.e820.filter((e) => e.type === E820_RAM);
    this.insert({ ...LOW_RESERVED, what: 'the real-mode IVT/BIOS data area' });
    this.insert({ ...BIOS_TABLES, what: "bhyve's BIOS tables area (MP table, SMBIOS, ACPI)" });
  }

  /** Reserves [base, base + size) for `what`, or explains why that is impossible. */
  claim(base: number, size: number, what: string): void {
    if (!Number.isSafeInteger(base) || base < 0 || !Number.isSafeInteger(size) || size <= 0 || !Number.isSafeInteger(base + size)) {
      throw new LoaderError('out-of-ram', `${what} at ${hex(base)} (${size} bytes) is not a valid guest range`);
    }
    const end = base + size;
    if (!this.ram.some((e) => base >= e.base && end <= e.base + e.length)) {
      throw new LoaderError('out-of-ram', `${what} at ${hex(base)}..${hex(end)} is not inside guest RAM`);
    }
    const hit = this.overlapping(base, size);
    if (hit) throw new LoaderError('overlap', `${what} at ${hex(base)}..${hex(end)} overlaps ${hit.what} at ${hex(hit.base)}..${hex(hit.base + hit.size)}`);
    this.insert({ base, size, what });
  }

  /** True if claim(base, size) would succeed. */
  isFree(base: number, size: number): boolean {
    const end = base + size;
    return Number.isSafeInteger(end) && size > 0 && base >= 0 &&
      this.ram.some((e) => base >= e.base && end <= e.base + e.length) && !this.overlapping(base, size);
  }

  /**
   * The highest `align`-aligned base at or above `min` with [base, base + size) free and ending at or
   * below `limit`.
   */
  findHigh(size: number, align: number, limit: number, min: number): number | undefined {
    for (let i = this.ram.length - 1; i >= 0; i--) {
      const e = this.ram[i]!;
      let top = Math.min(e.base + e.length, limit);
      while (top - size >= e.base) {
        const cand = alignDown(top - size, align);
        if (cand < e.base || cand < min) break;
        const hit = this.overlapping(cand, size);
        if (!hit) return cand;
        top = hit.base;
      }
    }
    return undefined;
  }

  /** The lowest `align`-aligned base at or above `min` with [base, base + size) free. */
  findLow(size: number, align: number, min: number): number | undefined {
    for (const e of this.ram) {
      let cand = alignUp(Math.max(e.base, min), align);
      while (cand + size <= e.base + e.length) {
        const hit = this.overlapping(cand, size);
        if (!hit) return cand;
        cand = alignUp(hit.base + hit.size, align);
      }
    }
    return undefined;
  }

  /** Everything claimed so far, in address order. */
  claimed(): readonly Claim[] {
    return this.claims;
  }

  private overlapping(base: number, size: number): Claim | undefined {
    const end = base + size;
    return this.claims.find((c) => base < c.base + c.size && c.base < end);
  }

  private insert(c: Claim): void {
    const i = this.claims.findIndex((x) => x.base > c.base);
    if (i < 0) this.claims.push(c);
    else this.claims.splice(i, 0, c);
  }
}
