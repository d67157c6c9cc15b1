// In-process direct kernel boot (config keys boot.kernel, boot.initrd, boot.cmdline): turn a kernel file
// into a BootPlan the VMM applies (see README.md). The format is detected from the content:
//   1. a Linux bzImage ("HdrS" setup header at 0x202);
//   2. an ELF with a Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY);
//   3. a Multiboot v1 image (0x1BADB002 header in the first 8192 bytes).
// An ELF carrying both a PVH note and a Multiboot header boots through PVH, the ABI made for this VM-level
// direct boot. Anything else is a LoaderError with code 'unknown-format'.
import type { BootFormat, BootPlan, DirectBootInput } from './boot-plan.js';
import { isBzImage, planBzImage } from './bzimage.js';
import { isElf } from './elf.js';
import { LoaderError } from './errors.js';
import { findMultibootHeader, planMultiboot } from './multiboot.js';
import { planPvh, probePvh } from './pvh.js';

export type { BootFormat, BootPlan, DirectBootInput, GuestWrite, LinearFramebuffer } from './boot-plan.js';
export type { E820Entry } from './e820.js';
export { E820_ACPI, E820_NVS, E820_RAM, E820_RESERVED, E820_UNUSABLE } from './e820.js';
export { LoaderError, type LoaderErrorCode } from './errors.js';
export type { DescriptorTable, GeneralRegisters, InitialVcpuState, SegmentState, SpecialRegisters } from './vcpu-state.js';

/** Names the format of a kernel image, or throws LoaderError('unknown-format'). */
export function detectFormat(kernel: Uint8Array): BootFormat {
  if (isBzImage(kernel)) return 'linux-bzimage';
  if (isElf(kernel) && probePvh(kernel)) return 'pvh-elf';
  if (findMultibootHeader(kernel)) return 'multiboot';
  throw unknownFormat(kernel);
}

/** Builds the boot plan for a direct kernel boot; every problem with the inputs is a LoaderError. */
export function planDirectBoot(input: DirectBootInput): BootPlan {
  const kernel = input.kernel;
  if (kernel.length === 0) throw new LoaderError('unknown-format', 'kernel file is empty');
  if (isBzImage(kernel)) return planBzImage(input);
  if (isElf(kernel)) {
    const pvh = probePvh(kernel);
    if (pvh) return planPvh(input, pvh.image, pvh.entry);
  }
  const mb = findMultibootHeader(kernel);
  if (mb) return planMultiboot(input, mb);
  throw unknownFormat(kernel);
}

function unknownFormat(kernel: Uint8Array): LoaderError {
  if (isElf(kernel)) {
    return new LoaderError('unknown-format', 'ELF kernel has neither a PVH entry note (Xen, type 18) nor a Multiboot header');
  }
  return new LoaderError('unknown-format', 'kernel is not a bzImage, a PVH ELF or a Multiboot image');
}
export { applyBootPlan, type BootMemoryTarget, type BootVcpuTarget, type KvmSregsFields } from './apply.js';
export { readBootFiles, type BootFiles } from './files.js';
