// bhyve's guest physical memory layout (bhyve-facts §4.1): RAM below the 3 GiB PCI hole, the rest from 4 GiB.
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** VM_LOWMEM_LIMIT: RAM never extends past 3 GiB below 4 GiB. */
export const LOWMEM_LIMIT = 3 * GiB;
export const HIGHMEM_BASE = 4 * GiB;
export const PCI_HOLE_BASE = 0xc000_0000;
export const PCI32_WINDOW = { base: 0xc000_0000, size: 512 * MiB } as const;
export const ECAM_BASE = 0xe000_0000;
export const ECAM_SIZE = 256 * MiB;
export const IOAPIC_BASE = 0xfec0_0000;
export const HPET_BASE = 0xfed0_0000;
export const LAPIC_BASE = 0xfee0_0000;
/** KVM's identity-map page and TSS pages, moved out of the boot ROM region to the top of the gap below the IOAPIC. */
export const KVM_PRIVATE = { base: 0xfebf_c000, size: 0x4000 } as const;
export const BOOTROM_BASE = 0xff00_0000;
export const BOOTROM_SIZE = 16 * MiB;
/** The 64-bit PCI window starts at the 32 GiB boundary above highmem and is 32 GiB long. */
export const PCI64_WINDOW_ALIGN = 32 * GiB;
export const PCI64_WINDOW_SIZE = 32 * GiB;

/** Low-memory tables (bhyve-facts §4.1). */
export const MPTABLE_BASE = 0xf0000;
export const SMBIOS_BASE = 0xf1000;
export const ACPI_BASE = 0xf2400;

export interface MemoryLayout {
  /** total guest RAM in bytes */
  size: number;
  /** RAM mapped at [0, lowmem) */
  lowmem: number;
  /** RAM mapped at [4 GiB, 4 GiB + highmem) */
  highmem: number;
  /** start of the 64-bit PCI BAR window */
  pci64Base: number;
}

export interface MemoryRange {
  base: number;
  size: number;
}

export function memoryLayout(size: number): MemoryLayout {
  if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`invalid guest memory size ${size}`);
  const lowmem = Math.min(size, LOWMEM_LIMIT);
  const highmem = size - lowmem;
  const top = HIGHMEM_BASE + highmem;
  const pci64Base = Math.ceil(top / PCI64_WINDOW_ALIGN) * PCI64_WINDOW_ALIGN;
  return { size, lowmem, highmem, pci64Base };
}

/** The RAM ranges of a layout in guest physical order. */
export function ramRanges(l: MemoryLayout): MemoryRange[] {
  const r: MemoryRange[] = [{ base: 0, size: l.lowmem }];
  if (l.highmem > 0) r.push({ base: HIGHMEM_BASE, size: l.highmem });
  return r;
}
