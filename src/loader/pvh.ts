// PVH direct boot of an ELF kernel (Xen's HVM direct boot ABI, docs/misc/pvh.pandoc, and
// xen/include/public/arch-x86/hvm/start_info.h; the same entry QEMU and Firecracker use for vmlinux).
// The kernel names its 32-bit entry in an ELF note of owner "Xen", type XEN_ELFNOTE_PHYS32_ENTRY (18).
// It is entered in 32-bit protected mode, paging off, with ebx pointing at struct hvm_start_info.
import { readU32, readU64 } from './bytes.js';
import type { BootPlan, DirectBootInput } from './boot-plan.js';
import { PlanBuilder, describeRange, encodeCmdline } from './boot-plan.js';
import type { ElfImage, ElfNote } from './elf.js';
import { elfNotes, loadSegments, parseElf } from './elf.js';
import { prepareProtectedMode } from './entry-state.js';
import { LoaderError, hex } from './errors.js';
import { BOOT_INFO_ADDR, CMDLINE_ADDR, CMDLINE_AREA_SIZE, MODULES_MIN, PAGE_SIZE } from './low-memory.js';

export const XEN_ELFNOTE_PHYS32_ENTRY = 18;
export const HVM_START_MAGIC = 0x336ec578;
/** Version 1 adds the memory map (memmap_paddr, memmap_entries). */
export const HVM_START_VERSION = 1;

// struct hvm_start_info (56 bytes), hvm_modlist_entry (32), hvm_memmap_table_entry (24); offsets as in
// start_info.h. They are laid out in the boot information page.
export const START_INFO_SIZE = 56;
export const MODLIST_ENTRY_SIZE = 32;
export const MEMMAP_ENTRY_SIZE = 24;
const MODLIST_OFFSET = 0x40;
const MEMMAP_OFFSET = 0x80;

/** The PVH entry address from the note, or undefined when the ELF has no such note. */
export function pvhEntry(notes: readonly ElfNote[]): number | undefined {
  const note = notes.find((n) => n.name === 'Xen' && n.type === XEN_ELFNOTE_PHYS32_ENTRY);
  if (!note) return undefined;
  // Linux emits the entry as a pointer-sized value; 4- and 8-byte descriptors are both seen.
  let entry: bigint;
  if (note.desc.length === 4) entry = BigInt(readU32(note.desc, 0, 'PVH entry note'));
  else if (note.desc.length === 8) entry = readU64(note.desc, 0, 'PVH entry note');
  else throw new LoaderError('bad-field', `PVH entry note has a ${note.desc.length}-byte descriptor, expected 4 or 8`);
  if (entry >= 1n << 32n) throw new LoaderError('bad-field', `PVH entry ${hex(entry)} is above 4 GiB (it is a 32-bit entry)`);
  return Number(entry);
}

/** Parses the ELF and returns it with its PVH entry, or undefined if it has no PVH note. */
export function probePvh(kernel: Uint8Array): { image: ElfImage; entry: number } | undefined {
  const image = parseElf(kernel);
  const entry = pvhEntry(elfNotes(kernel, image));
  return entry === undefined ? undefined : { image, entry };
}

export function planPvh(input: DirectBootInput, image: ElfImage, entry: number): BootPlan {
  const b = new PlanBuilder(input);
  const e820 = b.ram.e820;
  const memmapEnd = MEMMAP_OFFSET + e820.length * MEMMAP_ENTRY_SIZE;
  if (memmapEnd > PAGE_SIZE) throw new LoaderError('bad-input', `E820 map of ${e820.length} entries does not fit the start_info page`);

  // PVH ABI: TR a 32-bit TSS with base 0 and limit 0x67.
  const enter = prepareProtectedMode(b, 0);
  const cmdline = encodeCmdline(input.cmdline ?? '', CMDLINE_AREA_SIZE - 1, "the loader's command-line area");
  b.put(CMDLINE_ADDR, cmdline, 'command line');
  const writeInfo = b.reserve(BOOT_INFO_ADDR, PAGE_SIZE, 'boot information page');

  const loaded = loadSegments(input.kernel, image, (gpa, size, data, what) => {
    if (gpa + size > 2 ** 32) throw new LoaderError('out-of-ram', `${what} at ${hex(gpa)} ends above 4 GiB, out of reach of a 32-bit entry`);
    b.putRegion(gpa, size, data, what, true);
  });
  for (const r of loaded) b.note(describeRange('kernel segment', r.base, r.size));
  if (!loaded.some((r) => entry >= r.base && entry < r.base + r.size)) {
    throw new LoaderError('bad-field', `PVH entry ${hex(entry)} is outside every loaded segment`);
  }

  const info = new DataView(new ArrayBuffer(memmapEnd));
  info.setUint32(0, HVM_START_MAGIC, true);
  info.setUint32(4, HVM_START_VERSION, true);
  info.setUint32(8, 0, true); // flags: SIF_* are PV-only notions

  info.setBigUint64(24, BigInt(CMDLINE_ADDR), true);

  if (input.initrd && input.initrd.length > 0) {
    const size = input.initrd.length;
    const at = b.ram.findHigh(size, PAGE_SIZE, 2 ** 32, MODULES_MIN);
    if (at === undefined) throw new LoaderError('out-of-ram', `initrd (${size} bytes) does not fit in free RAM below 4 GiB next to the kernel`);
    b.put(at, input.initrd, 'initrd');
    b.note(describeRange('initrd (module 0)', at, size));
    info.setUint32(12, 1, true);
    info.setBigUint64(16, BigInt(BOOT_INFO_ADDR + MODLIST_OFFSET), true);
    info.setBigUint64(MODLIST_OFFSET, BigInt(at), true);
    info.setBigUint64(MODLIST_OFFSET + 8, BigInt(size), true);
    // cmdline_paddr 0: the module has no command line
  }

  info.setBigUint64(32, BigInt(input.rsdpAddress ?? 0), true);
  info.setBigUint64(40, BigInt(BOOT_INFO_ADDR + MEMMAP_OFFSET), true);
  info.setUint32(48, e820.length, true);
  e820.forEach((e, i) => {
    const o = MEMMAP_OFFSET + i * MEMMAP_ENTRY_SIZE;
    info.setBigUint64(o, BigInt(e.base), true);
    info.setBigUint64(o + 8, BigInt(e.length), true);
    info.setUint32(o + 16, e.type, true);
  });
  writeInfo(new Uint8Array(info.buffer));

  b.note(`PVH entry ${hex(entry)} in 32-bit protected mode, ebx = hvm_start_info at ${hex(BOOT_INFO_ADDR)}`);
  b.note(`command line at ${hex(CMDLINE_ADDR)} (${cmdline.length - 1} bytes), memory map of ${e820.length} entries, rsdp ${hex(input.rsdpAddress ?? 0)}`);
  return b.finish('pvh-elf', enter(entry, { rbx: BigInt(BOOT_INFO_ADDR) }));
}
