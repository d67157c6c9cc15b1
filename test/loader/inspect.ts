// Independent readers for what the loader writes: GDT descriptors and 4-level page tables, decoded the
// way the CPU would (Intel SDM vol. 3 §3.4.5 and §4.5), without using the loader's own encoders.
import type { PlanMemory } from './guest-memory.js';

export interface DecodedDescriptor {
  base: number;
  /** byte-granular limit */
  limit: number;
  type: number;
  s: boolean;
  dpl: number;
  present: boolean;
  avl: boolean;
  l: boolean;
  db: boolean;
  g: boolean;
}

export function decodeDescriptor(lo: number, hi: number): DecodedDescriptor {
  const g = ((hi >>> 23) & 1) === 1;
  const rawLimit = (lo & 0xffff) | (hi & 0xf0000);
  return {
    base: ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0,
    limit: g ? rawLimit * 0x1000 + 0xfff : rawLimit,
    type: (hi >>> 8) & 0xf,
    s: ((hi >>> 12) & 1) === 1,
    dpl: (hi >>> 13) & 3,
    present: ((hi >>> 15) & 1) === 1,
    avl: ((hi >>> 20) & 1) === 1,
    l: ((hi >>> 21) & 1) === 1,
    db: ((hi >>> 22) & 1) === 1,
    g,
  };
}

/** Reads the descriptor a selector names from the GDT at gdtBase. */
export function gdtEntry(mem: PlanMemory, gdtBase: number, selector: number): DecodedDescriptor {
  const v = mem.view(gdtBase + (selector & ~7), 8);
  return decodeDescriptor(v.getUint32(0, true), v.getUint32(4, true));
}

/** Translates a linear address through 4-level paging; undefined when not mapped. */
export function translate(mem: PlanMemory, cr3: bigint, va: number): number | undefined {
  const addrMask = 0x000f_ffff_ffff_f000n;
  const v = BigInt(va);
  const pml4e = mem.u64(Number((cr3 & addrMask) + ((v >> 39n) & 511n) * 8n));
  if (!(pml4e & 1n)) return undefined;
  const pdpte = mem.u64(Number((pml4e & addrMask) + ((v >> 30n) & 511n) * 8n));
  if (!(pdpte & 1n)) return undefined;
  if (pdpte & 0x80n) return Number((pdpte & 0x000f_ffff_c000_0000n) + (v & 0x3fff_ffffn));
  const pde = mem.u64(Number((pdpte & addrMask) + ((v >> 21n) & 511n) * 8n));
  if (!(pde & 1n)) return undefined;
  if (pde & 0x80n) return Number((pde & 0x000f_ffff_ffe0_0000n) + (v & 0x1f_ffffn));
  const pte = mem.u64(Number((pde & addrMask) + ((v >> 12n) & 511n) * 8n));
  if (!(pte & 1n)) return undefined;
  return Number((pte & addrMask) + (v & 0xfffn));
}
