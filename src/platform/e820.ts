// The E820 memory map a guest is given, built as bhyve's amd64/e820.c builds it: RAM [0, lowmem) and
// [4 GiB, 4 GiB + highmem), minus the VGA hole [0xA0000, 0xC0000) and the ROM hole [0xC0000, 0x100000).
// The MP table, SMBIOS and in-memory ACPI tables live inside the ROM hole, so no extra entry protects them.
// Devices may then carve typed ranges out of RAM (bhyve's e820_alloc), e.g. a VM generation ID.
import { HIGHMEM_BASE, type MemoryLayout } from '../vm/memmap.js';

/** Address range types (ACPI 6.4 §15.1), shared by the boot_params table and fw_cfg etc/e820. */
export enum E820Type {
  Ram = 1,
  Reserved = 2,
  Acpi = 3,
  Nvs = 4,
}

export interface E820Entry {
  base: number;
  length: number;
  type: E820Type;
}

export class E820Error extends Error {
  override name = 'E820Error';
}

export const VGA_HOLE = { base: 0xa_0000, end: 0xc_0000 } as const;
export const ROM_HOLE = { base: 0xc_0000, end: 0x10_0000 } as const;
/** One entry as the Linux boot protocol (struct boot_e820_entry) and fw_cfg etc/e820 store it. */
export const E820_ENTRY_SIZE = 20;

/** The map for a memory layout, with no device reservations. Entries are sorted and never overlap. */
export function e820FromLayout(l: MemoryLayout): E820Entry[] {
  // bhyve's hole removal asserts the holes lie inside RAM; a guest smaller than 1 MiB has nowhere to put
  // the BIOS-area tables either, so it is refused here.
  if (l.lowmem <= ROM_HOLE.end) throw new E820Error(`guest memory below 1 MiB is not supported (lowmem ${l.lowmem})`);
  const map: E820Entry[] = [
    { base: 0, length: VGA_HOLE.base, type: E820Type.Ram },
    { base: ROM_HOLE.end, length: l.lowmem - ROM_HOLE.end, type: E820Type.Ram },
  ];
  if (l.highmem > 0) map.push({ base: HIGHMEM_BASE, length: l.highmem, type: E820Type.Ram });
  return map;
}

/**
 * Marks [base, base + length) as `type`. Like bhyve's e820_add_entry the range must lie within one RAM
 * entry; that entry is split around it. Returns a new map; the input is not modified.
 */
export function e820Reserve(map: readonly E820Entry[], base: number, length: number, type: E820Type): E820Entry[] {
  if (type === E820Type.Ram) throw new E820Error('e820Reserve cannot add RAM');
  if (!Number.isSafeInteger(base) || !Number.isSafeInteger(length) || base < 0 || length <= 0) {
    throw new E820Error(`bad range base=${base} length=${length}`);
  }
  const end = base + length;
  const i = map.findIndex((e) => e.type === E820Type.Ram && base >= e.base && end <= e.base + e.length);
  if (i < 0) throw new E820Error(`range [0x${base.toString(16)}, 0x${end.toString(16)}) is not inside one RAM entry`);
  const ram = map[i]!;
  const pieces: E820Entry[] = [];
  if (base > ram.base) pieces.push({ base: ram.base, length: base - ram.base, type: E820Type.Ram });
  pieces.push({ base, length, type });
  const ramEnd = ram.base + ram.length;
  if (end < ramEnd) pieces.push({ base: end, length: ramEnd - end, type: E820Type.Ram });
  return [...map.slice(0, i), ...pieces, ...map.slice(i + 1)];
}

/**
 * Reserves `length` bytes at the highest `alignment`-aligned address below `maxAddress` that fits in RAM
 * (bhyve's E820_ALLOCATE_HIGHEST, used for ranges taken "from the top of lowmem"). Address 0 is never given.
 */
export function e820AllocHighest(
  map: readonly E820Entry[],
  maxAddress: number,
  length: number,
  alignment: number,
  type: E820Type,
): { map: E820Entry[]; base: number } {
  if (alignment <= 0 || (alignment & (alignment - 1)) !== 0) throw new E820Error(`alignment ${alignment} is not a power of two`);
  for (let i = map.length - 1; i >= 0; i--) {
    const e = map[i]!;
    if (e.type !== E820Type.Ram) continue;
    const end = Math.min(maxAddress, e.base + e.length);
    const start = Math.ceil(e.base / alignment) * alignment;
    if (end < start || end - start < length || end - length === 0) continue;
    const base = Math.floor((end - length) / alignment) * alignment;
    if (base < start) continue;
    return { map: e820Reserve(map, base, length, type), base };
  }
  throw new E820Error(`no RAM below 0x${maxAddress.toString(16)} for ${length} bytes`);
}

/** The packed little-endian form: u64 base, u64 length, u32 type per entry. */
export function encodeE820(map: readonly E820Entry[]): Buffer {
  const b = Buffer.alloc(map.length * E820_ENTRY_SIZE);
  map.forEach((e, i) => {
    const o = i * E820_ENTRY_SIZE;
    b.writeBigUInt64LE(BigInt(e.base), o);
    b.writeBigUInt64LE(BigInt(e.length), o + 8);
    b.writeUInt32LE(e.type, o + 16);
  });
  return b;
}
