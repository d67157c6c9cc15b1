// The GDT every boot path loads. One layout for all of them, so the descriptor bytes in guest memory and
// the hidden segment state handed to KVM are built from the same SegmentState values and cannot disagree.
//   0x00 null, 0x08 null, 0x10 code, 0x18 data, 0x20 TSS (16 bytes in long mode, 8 otherwise)
// 0x10/0x18 are the selectors the Linux boot protocol names __BOOT_CS/__BOOT_DS (boot.rst, "64-bit BOOT
// PROTOCOL" and "32-bit BOOT PROTOCOL"); PVH and Multiboot leave selector values unspecified.
import type { DescriptorTable, SegmentState } from './vcpu-state.js';
import { busyTss, flatCode, flatData } from './vcpu-state.js';

export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
export const BOOT_TSS = 0x20;
/** Size reserved for the GDT in guest memory (the long-mode layout is 0x30 bytes). */
export const GDT_MAX_SIZE = 0x30;

export interface BootSegments {
  code: SegmentState;
  data: SegmentState;
  tss: SegmentState;
}

export function bootSegments(longMode: boolean, tssBase: number, tssLimit: number): BootSegments {
  return { code: flatCode(BOOT_CS, longMode), data: flatData(BOOT_DS), tss: busyTss(BOOT_TSS, tssBase, tssLimit) };
}

/**
 * Encodes one 8-byte segment descriptor (SDM vol. 3 §3.4.5, figure 3-8). With g set the 20-bit limit
 * field holds the limit in 4 KiB units.
 */
export function encodeDescriptor(seg: SegmentState): bigint {
  const rawLimit = seg.g ? seg.limit >>> 12 : seg.limit;
  if (rawLimit > 0xfffff) throw new RangeError(`segment limit ${seg.limit} does not fit a descriptor`);
  const base = seg.base & 0xffff_ffffn;
  let d = BigInt(rawLimit & 0xffff);
  d |= (base & 0xffffffn) << 16n;
  d |= BigInt(seg.type & 0xf) << 40n;
  d |= (seg.s ? 1n : 0n) << 44n;
  d |= BigInt(seg.dpl & 3) << 45n;
  d |= (seg.present ? 1n : 0n) << 47n;
  d |= BigInt((rawLimit >>> 16) & 0xf) << 48n;
  d |= (seg.avl ? 1n : 0n) << 52n;
  d |= (seg.l ? 1n : 0n) << 53n;
  d |= (seg.db ? 1n : 0n) << 54n;
  d |= (seg.g ? 1n : 0n) << 55n;
  d |= (base >> 24n) << 56n;
  return d;
}

/** The GDT bytes and the GDTR value for a table placed at `gdtBase`. */
export function buildGdt(segs: BootSegments, longMode: boolean, gdtBase: number): { bytes: Uint8Array; gdtr: DescriptorTable } {
  const size = longMode ? 0x30 : 0x28;
  const bytes = new Uint8Array(size);
  const dv = new DataView(bytes.buffer);
  dv.setBigUint64(BOOT_CS, encodeDescriptor(segs.code), true);
  dv.setBigUint64(BOOT_DS, encodeDescriptor(segs.data), true);
  dv.setBigUint64(BOOT_TSS, encodeDescriptor(segs.tss), true);
  // In IA-32e mode a system descriptor is 16 bytes; the upper 8 hold base[63:32] (SDM vol. 3 §7.2.3).
  if (longMode) dv.setBigUint64(BOOT_TSS + 8, segs.tss.base >> 32n, true);
  return { bytes, gdtr: { base: BigInt(gdtBase), limit: size - 1 } };
}
