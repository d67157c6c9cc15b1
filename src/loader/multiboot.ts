// Multiboot (version 1, spec 0.6.96) direct boot. The image carries a header in its first 8192 bytes,
// 4-byte aligned: magic 0x1BADB002, flags, checksum (the three sum to 0 mod 2^32) and, when flag 16 is
// set, the a.out-kludge load addresses. The kernel is entered in 32-bit protected mode, paging off, with
// eax = 0x2BADB002 and ebx = the Multiboot information block (spec §3.2 and §3.3).
import { StructWriter, readU32 } from './bytes.js';
import type { BootPlan, DirectBootInput } from './boot-plan.js';
import { PlanBuilder, describeRange, encodeCmdline } from './boot-plan.js';
import { E820_RAM } from './e820.js';
import { isElf, loadSegments, parseElf } from './elf.js';
import { prepareProtectedMode } from './entry-state.js';
import { LoaderError, hex } from './errors.js';
import { BOOT_INFO_ADDR, CMDLINE_ADDR, CMDLINE_AREA_SIZE, MODULES_MIN, PAGE_SIZE, TSS_ADDR } from './low-memory.js';

export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
export const MULTIBOOT_SEARCH = 8192;

// Header flags (§3.1.2). Bits 0-15 are requirements: a loader that does not know one must refuse.
export const MBH_PAGE_ALIGN = 1 << 0;
export const MBH_MEMORY_INFO = 1 << 1;
export const MBH_VIDEO_MODE = 1 << 2;
export const MBH_AOUT_KLUDGE = 1 << 16;
const MBH_KNOWN_REQUIRED = MBH_PAGE_ALIGN | MBH_MEMORY_INFO | MBH_VIDEO_MODE;

// Information block flags (§3.3).
export const MBI_MEMORY = 1 << 0;
export const MBI_CMDLINE = 1 << 2;
export const MBI_MODS = 1 << 3;
export const MBI_MMAP = 1 << 6;
export const MBI_LOADER_NAME = 1 << 9;

// The information page: info block (88 bytes up to the VBE fields), mmap, module list, strings.
export const INFO_SIZE = 88;
const MMAP_OFFSET = 0x80;
const MMAP_ENTRY_SIZE = 24; // u32 size (= 20, not counting itself), u64 base_addr, u64 length, u32 type
const MODS_OFFSET = 0xc80;
const MOD_ENTRY_SIZE = 16;
const LOADER_NAME_OFFSET = 0xca0;
const MOD_STRING_OFFSET = 0xcb0;
export const LOADER_NAME = 'tsbhyve';
export const MODULE_STRING = 'initrd';

export interface MultibootHeader {
  /** file offset of the header */
  offset: number;
  flags: number;
  /** a.out kludge addresses, present when flag 16 is set */
  aout?: { headerAddr: number; loadAddr: number; loadEndAddr: number; bssEndAddr: number; entryAddr: number };
}

/**
 * Finds the Multiboot header. Returns undefined when no aligned magic is present; a magic whose checksum
 * fails is an error, since the image evidently meant to be Multiboot.
 */
export function findMultibootHeader(file: Uint8Array): MultibootHeader | undefined {
  const end = Math.min(file.length, MULTIBOOT_SEARCH);
  let badChecksumAt: number | undefined;
  for (let o = 0; o + 12 <= end; o += 4) {
    if (readU32(file, o, 'Multiboot magic') !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = readU32(file, o + 4, 'Multiboot flags');
    const checksum = readU32(file, o + 8, 'Multiboot checksum');
    if (((MULTIBOOT_HEADER_MAGIC + flags + checksum) >>> 0) !== 0) {
      badChecksumAt ??= o;
      continue;
    }
    const header: MultibootHeader = { offset: o, flags };
    if (flags & MBH_AOUT_KLUDGE) {
      if (o + 32 > MULTIBOOT_SEARCH) throw new LoaderError('bad-field', `Multiboot header at offset ${hex(o)} with address fields extends past the first ${MULTIBOOT_SEARCH} bytes`);
      const what = 'Multiboot header address fields';
      header.aout = {
        headerAddr: readU32(file, o + 12, what), loadAddr: readU32(file, o + 16, what),
        loadEndAddr: readU32(file, o + 20, what), bssEndAddr: readU32(file, o + 24, what),
        entryAddr: readU32(file, o + 28, what),
      };
    }
    return header;
  }
  if (badChecksumAt !== undefined) {
    throw new LoaderError('bad-checksum', `Multiboot header at offset ${hex(badChecksumAt)}: magic + flags + checksum is not 0`);
  }
  return undefined;
}

/** The a.out kludge (§3.1.3): file bytes from the header's position back to load_addr go to load_addr. */
function loadAout(b: PlanBuilder, file: Uint8Array, h: MultibootHeader): number {
  const a = h.aout!;
  if (a.loadAddr > a.headerAddr) throw new LoaderError('bad-field', `Multiboot load_addr ${hex(a.loadAddr)} is above header_addr ${hex(a.headerAddr)}`);
  const fileStart = h.offset - (a.headerAddr - a.loadAddr);
  if (fileStart < 0) throw new LoaderError('bad-field', `Multiboot header_addr - load_addr (${hex(a.headerAddr - a.loadAddr)}) reaches before the start of the file`);
  let loadEnd: number;
  if (a.loadEndAddr === 0) loadEnd = a.loadAddr + (file.length - fileStart);
  else {
    if (a.loadEndAddr <= a.loadAddr) throw new LoaderError('bad-field', `Multiboot load_end_addr ${hex(a.loadEndAddr)} is not above load_addr ${hex(a.loadAddr)}`);
    loadEnd = a.loadEndAddr;
  }
  const loadSize = loadEnd - a.loadAddr;
  if (fileStart + loadSize > file.length) {
    throw new LoaderError('truncated', `Multiboot image: load_addr..load_end_addr needs ${loadSize} bytes from file offset ${hex(fileStart)} but the file is ${file.length} bytes`);
  }
  let memEnd = loadEnd;
  if (a.bssEndAddr !== 0) {
    if (a.bssEndAddr < loadEnd) throw new LoaderError('bad-field', `Multiboot bss_end_addr ${hex(a.bssEndAddr)} is below the end of the loaded image ${hex(loadEnd)}`);
    memEnd = a.bssEndAddr;
  }
  if (memEnd > 2 ** 32) throw new LoaderError('out-of-ram', `Multiboot image ends at ${hex(memEnd)}, above 4 GiB`);
  b.putRegion(a.loadAddr, memEnd - a.loadAddr, file.subarray(fileStart, fileStart + loadSize), 'Multiboot image', true);
  b.note(describeRange('kernel (a.out kludge)', a.loadAddr, memEnd - a.loadAddr));
  if (a.entryAddr < a.loadAddr || a.entryAddr >= loadEnd) {
    throw new LoaderError('bad-field', `Multiboot entry_addr ${hex(a.entryAddr)} is outside the loaded image ${hex(a.loadAddr)}..${hex(loadEnd)}`);
  }
  return a.entryAddr;
}

/** An ELF Multiboot kernel: PT_LOAD segments at their physical addresses, entered at e_entry. */
function loadElf(b: PlanBuilder, file: Uint8Array): number {
  const image = parseElf(file);
  const loaded = loadSegments(file, image, (gpa, size, data, what) => {
    if (gpa + size > 2 ** 32) throw new LoaderError('out-of-ram', `${what} at ${hex(gpa)} ends above 4 GiB`);
    b.putRegion(gpa, size, data, what, true);
  });
  for (const r of loaded) b.note(describeRange('kernel segment', r.base, r.size));
  if (!loaded.some((r) => image.entry >= r.base && image.entry < r.base + r.size)) {
    throw new LoaderError('bad-field', `ELF entry ${hex(image.entry)} is outside every loaded segment`);
  }
  return image.entry;
}

export function planMultiboot(input: DirectBootInput, header: MultibootHeader): BootPlan {
  const unknown = header.flags & 0xffff & ~MBH_KNOWN_REQUIRED;
  if (unknown) throw new LoaderError('unsupported', `Multiboot header requires flags ${hex(unknown)} this loader does not know`);
  const b = new PlanBuilder(input);
  const e820 = b.ram.e820;

  const enter = prepareProtectedMode(b, TSS_ADDR);
  const cmdline = encodeCmdline(input.cmdline ?? '', CMDLINE_AREA_SIZE - 1, "the loader's command-line area");
  b.put(CMDLINE_ADDR, cmdline, 'command line');
  const writeInfo = b.reserve(BOOT_INFO_ADDR, PAGE_SIZE, 'boot information page');

  let entry: number;
  if (header.aout) entry = loadAout(b, input.kernel, header);
  else if (isElf(input.kernel)) entry = loadElf(b, input.kernel);
  else throw new LoaderError('unsupported', 'Multiboot image is not ELF and does not set the address fields (flag 16)');

  const info = new StructWriter(MOD_STRING_OFFSET + MODULE_STRING.length + 1);
  let flags = MBI_MEMORY | MBI_CMDLINE | MBI_MMAP | MBI_LOADER_NAME;
  // mem_lower: KiB of RAM from 0 (at most 640); mem_upper: KiB of RAM contiguous from 1 MiB (§3.3).
  const low = e820.find((e) => e.type === E820_RAM && e.base === 0);
  const upper = e820.find((e) => e.type === E820_RAM && e.base <= 0x100000 && e.base + e.length > 0x100000);
  info.u32(4, Math.min(low ? Math.floor(low.length / 1024) : 0, 640));
  info.u32(8, upper ? Math.min(Math.floor((upper.base + upper.length - 0x100000) / 1024), 0xffff_ffff) : 0);
  info.u32(16, CMDLINE_ADDR);

  if (input.initrd && input.initrd.length > 0) {
    const size = input.initrd.length;
    // Modules are page-aligned whether or not flag 0 asks for it.
    const at = b.ram.findHigh(size, PAGE_SIZE, 2 ** 32, MODULES_MIN);
    if (at === undefined) throw new LoaderError('out-of-ram', `initrd module (${size} bytes) does not fit in free RAM below 4 GiB next to the kernel`);
    b.put(at, input.initrd, 'initrd module');
    b.note(describeRange('initrd (module 0)', at, size));
    flags |= MBI_MODS;
    info.u32(20, 1);
    info.u32(24, BOOT_INFO_ADDR + MODS_OFFSET);
    info.u32(MODS_OFFSET, at);
    info.u32(MODS_OFFSET + 4, at + size);
    info.u32(MODS_OFFSET + 8, BOOT_INFO_ADDR + MOD_STRING_OFFSET);
    info.set(MOD_STRING_OFFSET, new TextEncoder().encode(MODULE_STRING));
  }

  e820.forEach((e, i) => {
    const o = MMAP_OFFSET + i * MMAP_ENTRY_SIZE;
    info.u32(o, MMAP_ENTRY_SIZE - 4);
    info.u64(o + 4, e.base);
    info.u64(o + 12, e.length);
    info.u32(o + 20, e.type);
  });
  info.u32(44, e820.length * MMAP_ENTRY_SIZE);
  info.u32(48, BOOT_INFO_ADDR + MMAP_OFFSET);
  info.set(LOADER_NAME_OFFSET, new TextEncoder().encode(LOADER_NAME));
  info.u32(64, BOOT_INFO_ADDR + LOADER_NAME_OFFSET);
  info.u32(0, flags);
  writeInfo(info.bytes);

  if (header.flags & MBH_VIDEO_MODE) b.note('kernel asked for a video mode (flag 2): none is set, no display in direct boot');
  b.note(`Multiboot entry ${hex(entry)} in 32-bit protected mode, eax = ${hex(MULTIBOOT_BOOTLOADER_MAGIC)}, ebx = info at ${hex(BOOT_INFO_ADDR)}`);
  b.note(`command line at ${hex(CMDLINE_ADDR)} (${cmdline.length - 1} bytes), memory map of ${e820.length} entries`);
  return b.finish('multiboot', enter(entry, { rax: BigInt(MULTIBOOT_BOOTLOADER_MAGIC), rbx: BigInt(BOOT_INFO_ADDR) }));
}
