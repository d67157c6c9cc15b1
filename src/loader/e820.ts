// The E820 memory map the caller hands in (built elsewhere from the memory layout), and the checks it
// must pass before any boot structure repeats it to the guest. Types follow the ACPI address range types
// that E820, PVH's hvm_memmap_table_entry and Multiboot's mmap all share (1 = RAM, 2 = reserved, ...).
import type { MemoryLayout } from '../vm/memmap.js';
import { ramRanges } from '../vm/memmap.js';
import { LoaderError, hex } from './errors.js';

export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;
export const E820_UNUSABLE = 5;

export interface E820Entry {
  base: number;
  length: number;
  type: number;
}

/** The zero page holds at most 128 entries (boot_params.e820_table, E820_MAX_ENTRIES_ZEROPAGE). */
export const E820_MAX_ENTRIES = 128;

/**
 * Validates the map and returns a sorted copy: 1..128 entries, integral non-empty ranges below 2^53,
 * no overlaps, and every RAM entry inside RAM the layout really maps.
 */
export function checkE820(map: readonly E820Entry[], layout: MemoryLayout): E820Entry[] {
  if (map.length === 0) throw new LoaderError('bad-input', 'E820 map is empty');
  if (map.length > E820_MAX_ENTRIES) {
    throw new LoaderError('bad-input', `E820 map has ${map.length} entries, more than the ${E820_MAX_ENTRIES} a boot structure holds`);
  }
  const sorted = map.map((e) => ({ base: e.base, length: e.length, type: e.type })).sort((a, b) => a.base - b.base);
  const ram = ramRanges(layout);
  let prevEnd = 0;
  for (const e of sorted) {
    const { base, length, type } = e;
    if (!Number.isSafeInteger(base) || base < 0 || !Number.isSafeInteger(length) || length <= 0 ||
        !Number.isSafeInteger(base + length)) {
      throw new LoaderError('bad-input', `E820 entry base ${base} length ${length} is not a valid range`);
    }
    if (!Number.isInteger(type) || type < 1 || type > 0xffff_ffff) {
      throw new LoaderError('bad-input', `E820 entry at ${hex(base)} has invalid type ${type}`);
    }
    if (base < prevEnd) throw new LoaderError('bad-input', `E820 entry at ${hex(base)} overlaps the previous entry`);
    prevEnd = base + length;
    if (type === E820_RAM && !ram.some((r) => base >= r.base && base + length <= r.base + r.size)) {
      throw new LoaderError('bad-input', `E820 RAM entry ${hex(base)}..${hex(base + length)} is not backed by guest RAM`);
    }
  }
  if (!sorted.some((e) => e.type === E820_RAM)) throw new LoaderError('bad-input', 'E820 map has no RAM entry');
  return sorted;
}
