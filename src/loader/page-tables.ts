// Identity-mapped page tables for entering long mode: guest-virtual == guest-physical for [0, 4 GiB),
// built from 2 MiB pages (SDM vol. 3 §4.5, 4-level paging) so no 1 GiB-page CPU feature is needed.
// The Linux 64-bit boot protocol (boot.rst) requires the kernel, the zero page and the command line to be
// identity-mapped; every loader address here is below 4 GiB, so mapping the first 4 GiB covers them all.
// Layout from `base`: PML4, PDPT, then 4 page directories, one per GiB: 6 pages in all.

const PTE_PRESENT = 1n << 0n;
const PTE_WRITE = 1n << 1n;
const PTE_PAGE_SIZE = 1n << 7n;
const TABLE_BYTES = 0x1000;
export const IDENTITY_MAP_BYTES = 4 * 0x4000_0000;
export const PAGE_TABLE_PAGES = 6;

export interface PageTables {
  /** the tables, 6 consecutive 4 KiB pages to write at `base` */
  bytes: Uint8Array;
  /** the CR3 value: the PML4's physical address */
  cr3: bigint;
}

export function identityMap4GiB(base: number): PageTables {
  if (base % TABLE_BYTES !== 0) throw new RangeError(`page tables must be 4 KiB aligned, got ${base}`);
  const bytes = new Uint8Array(PAGE_TABLE_PAGES * TABLE_BYTES);
  const dv = new DataView(bytes.buffer);
  const pml4 = BigInt(base);
  const pdpt = pml4 + BigInt(TABLE_BYTES);
  dv.setBigUint64(0, pdpt | PTE_PRESENT | PTE_WRITE, true);
  for (let gib = 0; gib < 4; gib++) {
    const pd = pdpt + BigInt((1 + gib) * TABLE_BYTES);
    dv.setBigUint64(TABLE_BYTES + gib * 8, pd | PTE_PRESENT | PTE_WRITE, true);
    const pdOffset = (2 + gib) * TABLE_BYTES;
    for (let i = 0; i < 512; i++) {
      const phys = BigInt(gib) * 0x4000_0000n + BigInt(i) * 0x20_0000n;
      dv.setBigUint64(pdOffset + i * 8, phys | PTE_PRESENT | PTE_WRITE | PTE_PAGE_SIZE, true);
    }
  }
  return { bytes, cr3: pml4 };
}
