// Fixed guest-physical addresses of what the loader itself puts in memory. All of it sits in the
// conventional RAM below 0x9F000 that bhyve's E820 reports as usable ([0, 0xA0000), bhyve-facts §4.1) and
// that nothing else in tsbhyve uses before the guest runs; the BIOS tables live at 0xF0000..0xFFFFF,
// above the VGA/ROM hole, and are never touched.
//
//   0x00000-0x00fff  left alone (real-mode IVT and BIOS data area; some kernels read it)
//   0x01000          GDT (0x30 bytes), see gdt.ts
//   0x01100          TSS for the long-mode/Multiboot TR (0x68 zero bytes)
//   0x06000-0x06fff  boot information page: PVH hvm_start_info or the Multiboot info block, with their
//                    memory map, module list and strings
//   0x07000-0x07fff  Linux zero page (struct boot_params)
//   0x08000-0x08fff  initial stack (rsp = 0x8ff0); no protocol requires one, it is only a safe value
//   0x09000-0x0efff  long-mode page tables: PML4, PDPT, 4 page directories (4 GiB in 2 MiB pages)
//   0x20000-0x2ffff  kernel command line (NUL-terminated)
import type { MemoryRange } from '../vm/memmap.js';

export const LOW_RESERVED: MemoryRange = { base: 0, size: 0x1000 };
export const GDT_ADDR = 0x1000;
export const TSS_ADDR = 0x1100;
/** A 32-bit TSS is 104 bytes; its limit is 0x67 (SDM vol. 3 §7.2.1; the PVH ABI asks for this limit too). */
export const TSS_LIMIT = 0x67;
export const BOOT_INFO_ADDR = 0x6000;
export const BOOT_INFO_SIZE = 0x1000;
export const ZERO_PAGE_ADDR = 0x7000;
export const ZERO_PAGE_SIZE = 0x1000;
export const STACK_BASE = 0x8000;
export const STACK_TOP = 0x8ff0;
export const PAGE_TABLES_ADDR = 0x9000;
export const PAGE_TABLES_SIZE = 0x6000;
export const CMDLINE_ADDR = 0x20000;
/** The most command-line bytes the loader's area holds, including the terminating NUL. */
export const CMDLINE_AREA_SIZE = 0x10000;
/** bhyve's MP table, SMBIOS and ACPI area (bhyve-facts §4.1); no loaded byte may land there. */
export const BIOS_TABLES: MemoryRange = { base: 0xf0000, size: 0x10000 };

export const PAGE_SIZE = 0x1000;
/**
 * Initrd and modules go at or above 1 MiB: the conventional memory below it is where the loader's own
 * data lives and where kernels keep real-mode trampolines.
 */
export const MODULES_MIN = 0x100000;
