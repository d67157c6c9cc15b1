// Linux bzImage direct boot per the x86 boot protocol (Documentation/arch/x86/boot.rst; zero-page.rst for
// the boot_params layout). The protected-mode kernel is loaded at its preferred address, a zero page is
// built from the image's setup header, and the kernel is entered at its 64-bit entry (load address +
// 0x200) in long mode, rsi = the zero page ("64-bit BOOT PROTOCOL").
import { StructWriter, readU16, readU32, readU64Number, readU8, slice } from './bytes.js';
import type { BootPlan, DirectBootInput, LinearFramebuffer } from './boot-plan.js';
import { PlanBuilder, describeRange, encodeCmdline } from './boot-plan.js';
import { E820_MAX_ENTRIES } from './e820.js';
import { prepareLongMode } from './entry-state.js';
import { LoaderError, hex } from './errors.js';
import { CMDLINE_ADDR, CMDLINE_AREA_SIZE, MODULES_MIN, PAGE_SIZE, ZERO_PAGE_ADDR, ZERO_PAGE_SIZE } from './low-memory.js';

/** "HdrS" at 0x202, read little-endian. */
export const HDRS_MAGIC = 0x53726448;
/** xloadflags arrived in 2.12; the 64-bit entry this loader uses is announced there (XLF_KERNEL_64). */
export const MIN_PROTOCOL = 0x020c;

// Offsets in the image's first sector and in boot_params (the setup header sits at the same offset in
// both). Names are the boot.rst field names.
export const BP = {
  screen_info: 0x000,
  acpi_rsdp_addr: 0x070,
  ext_ramdisk_image: 0x0c0,
  ext_ramdisk_size: 0x0c4,
  ext_cmd_line_ptr: 0x0c8,
  e820_entries: 0x1e8,
  setup_sects: 0x1f1,
  syssize: 0x1f4,
  boot_flag: 0x1fe,
  jump: 0x200,
  header: 0x202,
  version: 0x206,
  type_of_loader: 0x210,
  loadflags: 0x211,
  code32_start: 0x214,
  ramdisk_image: 0x218,
  ramdisk_size: 0x21c,
  cmd_line_ptr: 0x228,
  initrd_addr_max: 0x22c,
  kernel_alignment: 0x230,
  relocatable_kernel: 0x234,
  xloadflags: 0x236,
  cmdline_size: 0x238,
  hardware_subarch: 0x23c,
  setup_data: 0x250,
  pref_address: 0x258,
  init_size: 0x260,
  e820_table: 0x2d0,
} as const;
/** boot_params fields after the setup header start at 0x290 (edd_mbr_sig_buffer). */
const SETUP_HEADER_LIMIT = 0x290;
const E820_ENTRY_SIZE = 20;

export const LOADED_HIGH = 1 << 0;
export const XLF_KERNEL_64 = 1 << 0;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;
/** "Undefined" boot loader ID (boot.rst, type_of_loader). */
export const TYPE_OF_LOADER_UNDEFINED = 0xff;

export function isBzImage(file: Uint8Array): boolean {
  return file.length >= BP.header + 4 &&
    new DataView(file.buffer, file.byteOffset, file.byteLength).getUint32(BP.header, true) === HDRS_MAGIC;
}

/** The setup header fields the loader acts on, read and range-checked. */
export interface SetupHeader {
  version: number;
  setupSects: number;
  /** bytes of protected-mode code (syssize * 16) */
  payloadSize: number;
  /** offset of the header's end (0x202 + the jump's offset byte) */
  headerEnd: number;
  loadflags: number;
  xloadflags: number;
  relocatable: boolean;
  kernelAlignment: number;
  prefAddress: number;
  initSize: number;
  initrdAddrMax: number;
  cmdlineSize: number;
}

export function parseSetupHeader(file: Uint8Array): SetupHeader {
  if (!isBzImage(file)) throw new LoaderError('unknown-format', 'no "HdrS" setup header at offset 0x202');
  if (readU16(file, BP.boot_flag, 'boot_flag') !== 0xaa55) throw new LoaderError('bad-field', 'boot_flag at 0x1fe is not 0xaa55');
  const version = readU16(file, BP.version, 'setup header version');
  if (version < MIN_PROTOCOL) {
    throw new LoaderError('unsupported', `boot protocol ${version >> 8}.${version & 0xff} is older than 2.12 (no 64-bit entry)`);
  }
  // "The end of setup header can be calculated as 0x202 + the byte value at offset 0x201" (boot.rst).
  const headerEnd = 0x202 + readU8(file, BP.jump + 1, 'setup header jump');
  if (headerEnd < BP.init_size + 4) throw new LoaderError('bad-field', `setup header ends at ${hex(headerEnd)}, before init_size`);
  if (headerEnd > SETUP_HEADER_LIMIT) throw new LoaderError('bad-field', `setup header claims to end at ${hex(headerEnd)}, past ${hex(SETUP_HEADER_LIMIT)}`);
  slice(file, 0, headerEnd, 'setup header');
  // setup_sects 0 means 4 (boot.rst, "setup_sects").
  const setupSects = readU8(file, BP.setup_sects, 'setup_sects') || 4;
  const payloadSize = readU32(file, BP.syssize, 'syssize') * 16;
  const loadflags = readU8(file, BP.loadflags, 'loadflags');
  const xloadflags = readU16(file, BP.xloadflags, 'xloadflags');
  const relocatable = readU8(file, BP.relocatable_kernel, 'relocatable_kernel') !== 0;
  const kernelAlignment = readU32(file, BP.kernel_alignment, 'kernel_alignment');
  const prefAddress = readU64Number(file, BP.pref_address, 'pref_address');
  const initSize = readU32(file, BP.init_size, 'init_size');
  const initrdAddrMax = readU32(file, BP.initrd_addr_max, 'initrd_addr_max');
  const cmdlineSize = readU32(file, BP.cmdline_size, 'cmdline_size');

  if (!(loadflags & LOADED_HIGH)) throw new LoaderError('unsupported', 'kernel is a zImage (LOADED_HIGH clear); only bzImage is supported');
  if (!(xloadflags & XLF_KERNEL_64)) throw new LoaderError('unsupported', 'kernel has no 64-bit entry point (XLF_KERNEL_64 clear)');
  if (payloadSize === 0) throw new LoaderError('bad-field', 'syssize is 0: no protected-mode kernel');
  const setupBytes = (setupSects + 1) * 512;
  if (setupBytes + payloadSize > file.length) {
    throw new LoaderError('truncated', `bzImage: setup (${setupBytes} bytes) + kernel (syssize ${payloadSize} bytes) exceed the ${file.length}-byte file`);
  }
  if (relocatable && (kernelAlignment === 0 || (kernelAlignment & (kernelAlignment - 1)) !== 0 || kernelAlignment % PAGE_SIZE !== 0)) {
    throw new LoaderError('bad-field', `kernel_alignment ${hex(kernelAlignment)} is not a power of two of at least 4 KiB`);
  }
  if (initSize < payloadSize) throw new LoaderError('bad-field', `init_size ${hex(initSize)} is smaller than the kernel itself (${hex(payloadSize)})`);
  return {
    version, setupSects, payloadSize, headerEnd, loadflags, xloadflags, relocatable, kernelAlignment,
    prefAddress, initSize, initrdAddrMax, cmdlineSize,
  };
}

export function planBzImage(input: DirectBootInput): BootPlan {
  const file = input.kernel;
  const h = parseSetupHeader(file);
  const b = new PlanBuilder(input);
  const e820 = b.ram.e820;
  if (e820.length > E820_MAX_ENTRIES) throw new LoaderError('bad-input', `E820 map has ${e820.length} entries, the zero page holds ${E820_MAX_ENTRIES}`);

  const enter = prepareLongMode(b);
  // cmdline_size: the longest command line, not counting the NUL (boot.rst, protocol 2.06+).
  const maxCmdline = Math.min(h.cmdlineSize, CMDLINE_AREA_SIZE - 1);
  const cmdline = encodeCmdline(input.cmdline ?? '', maxCmdline, `the kernel's cmdline_size`);
  b.put(CMDLINE_ADDR, cmdline, 'command line');
  const writeZeroPage = b.reserve(ZERO_PAGE_ADDR, ZERO_PAGE_SIZE, 'zero page');

  // The kernel occupies [load, load + init_size) while it decompresses and starts (boot.rst, init_size).
  // A relocatable kernel goes at pref_address if that is free, else at the lowest kernel_alignment-aligned
  // free address; a fixed one only at pref_address.
  let load: number | undefined;
  const prefAligned = !h.relocatable || h.prefAddress % h.kernelAlignment === 0;
  if (prefAligned && h.prefAddress + h.initSize <= 2 ** 32 && b.ram.isFree(h.prefAddress, h.initSize)) load = h.prefAddress;
  else if (h.relocatable) {
    const found = b.ram.findLow(h.initSize, h.kernelAlignment, 0x100000);
    if (found !== undefined && found + h.initSize <= 2 ** 32) load = found;
  }
  if (load === undefined) {
    throw new LoaderError('out-of-ram', `kernel needs ${hex(h.initSize)} bytes (init_size) ${h.relocatable ? '' : `at ${hex(h.prefAddress)} `}and that does not fit in free guest RAM below 4 GiB`);
  }
  const payload = file.subarray((h.setupSects + 1) * 512, (h.setupSects + 1) * 512 + h.payloadSize);
  b.putRegion(load, h.initSize, payload, 'kernel', false);
  b.note(`Linux bzImage, boot protocol ${h.version >> 8}.${h.version & 0xff}`);
  b.note(describeRange('kernel (init_size)', load, h.initSize));

  const zp = new StructWriter(ZERO_PAGE_SIZE);
  zp.set(BP.setup_sects, file.subarray(BP.setup_sects, h.headerEnd));
  if (input.framebuffer) writeScreenInfo(zp, input.framebuffer, b);
  zp.u8(BP.type_of_loader, TYPE_OF_LOADER_UNDEFINED);
  zp.u32(BP.code32_start, load);
  zp.u32(BP.hardware_subarch, 0); // default x86 PC
  zp.u64(BP.setup_data, 0); // no setup_data list
  zp.u32(BP.cmd_line_ptr, CMDLINE_ADDR);
  zp.u32(BP.ext_cmd_line_ptr, 0);

  if (input.initrd && input.initrd.length > 0) {
    const size = input.initrd.length;
    // As high as possible, page aligned, ending at or below initrd_addr_max + 1 (the last byte the initrd
    // may occupy, boot.rst) and inside RAM below 4 GiB, outside the kernel's init_size and the loader's areas.
    const limit = Math.min(h.initrdAddrMax + 1, 2 ** 32);
    const at = b.ram.findHigh(size, PAGE_SIZE, limit, MODULES_MIN);
    if (at === undefined) {
      throw new LoaderError('out-of-ram', `initrd (${size} bytes) does not fit in RAM below ${hex(limit)} without overlapping the kernel or the boot data`);
    }
    b.put(at, input.initrd, 'initrd');
    b.note(describeRange('initrd', at, size));
    zp.u32(BP.ramdisk_image, at);
    zp.u32(BP.ramdisk_size, size);
    zp.u32(BP.ext_ramdisk_image, Math.floor(at / 2 ** 32));
    zp.u32(BP.ext_ramdisk_size, Math.floor(size / 2 ** 32));
  } else {
    zp.u32(BP.ramdisk_image, 0);
    zp.u32(BP.ramdisk_size, 0);
  }

  if (input.rsdpAddress !== undefined) {
    if (h.version >= 0x020e) {
      zp.u64(BP.acpi_rsdp_addr, input.rsdpAddress);
      b.note(`acpi_rsdp_addr = ${hex(input.rsdpAddress)}`);
    } else {
      b.note('RSDP address not passed: protocol < 2.14 has no acpi_rsdp_addr; the kernel scans for it');
    }
  }

  zp.u8(BP.e820_entries, e820.length);
  e820.forEach((e, i) => {
    const o = BP.e820_table + i * E820_ENTRY_SIZE;
    zp.u64(o, e.base);
    zp.u64(o + 8, e.length);
    zp.u32(o + 16, e.type);
  });
  writeZeroPage(zp.bytes);

  const entry = load + 0x200;
  b.note(`64-bit entry ${hex(entry)} in long mode, rsi = zero page at ${hex(ZERO_PAGE_ADDR)}`);
  b.note(`command line at ${hex(CMDLINE_ADDR)} (${cmdline.length - 1} of ${h.cmdlineSize} bytes), E820 of ${e820.length} entries`);
  return b.finish('linux-bzimage', enter(entry, { rsi: BigInt(ZERO_PAGE_ADDR) }));
}

// struct screen_info (arch/x86 boot_params at 0x000, include/uapi/linux/screen_info.h) fields used for an EFI-style
// linear framebuffer: the kernel's sysfb then registers it for efifb (or simpledrm), and fbcon draws on it.
const SI = {
  orig_video_isVGA: 0x0f,
  lfb_width: 0x12,
  lfb_height: 0x14,
  lfb_depth: 0x16,
  lfb_base: 0x18,
  lfb_size: 0x1c,
  lfb_linelength: 0x24,
  red_size: 0x26,
  capabilities: 0x36,
  ext_lfb_base: 0x3a,
} as const;
const VIDEO_TYPE_EFI = 0x70;
const VIDEO_CAPABILITY_64BIT_BASE = 1 << 1;

function writeScreenInfo(zp: StructWriter, fb: LinearFramebuffer, b: PlanBuilder): void {
  if (!(fb.width > 0 && fb.height > 0 && fb.stride >= fb.width * 4 && fb.stride * fb.height <= fb.size && fb.base > 0)) {
    throw new LoaderError('bad-input', `framebuffer ${fb.width}x${fb.height} (stride ${fb.stride}) does not fit its ${fb.size} bytes`);
  }
  zp.u8(SI.orig_video_isVGA, VIDEO_TYPE_EFI);
  zp.u16(SI.lfb_width, fb.width);
  zp.u16(SI.lfb_height, fb.height);
  zp.u16(SI.lfb_depth, 32);
  zp.u32(SI.lfb_base, fb.base % 2 ** 32);
  zp.u32(SI.lfb_size, fb.size); // bytes for VIDEO_TYPE_EFI (64 KiB units only for VESA)
  zp.u16(SI.lfb_linelength, fb.stride);
  // red 8 at 16, green 8 at 8, blue 8 at 0, reserved 8 at 24
  zp.set(SI.red_size, Uint8Array.from([8, 16, 8, 8, 8, 0, 8, 24]));
  if (fb.base >= 2 ** 32) {
    zp.u32(SI.capabilities, VIDEO_CAPABILITY_64BIT_BASE);
    zp.u32(SI.ext_lfb_base, Math.floor(fb.base / 2 ** 32));
  }
  b.note(`screen_info: EFI framebuffer ${fb.width}x${fb.height}x32 at ${hex(fb.base)}`);
}
