// The root pointers (ACPI 6.4 §5.2.5, §5.2.7, §5.2.8): the RSDP that firmware and OS search for, and the
// RSDT/XSDT that list every other table but the FACS and DSDT (those hang off the FADT).
import { OEM_ID, TableWriter, fixChecksum, sealSdt } from './sdt.js';

export const RSDP_SIZE = 36;

export function buildRsdp(rsdt: number, xsdt: number): Buffer {
  const w = new TableWriter(RSDP_SIZE);
  w.ascii(0, 'RSD PTR ', 8);
  w.ascii(9, OEM_ID, 6);
  w.u8(15, 2); // revision 2: the XSDT fields are valid
  w.u32(16, rsdt);
  w.u32(20, RSDP_SIZE);
  w.u64(24, xsdt);
  // The ACPI 1.0 checksum covers the first 20 bytes; the extended one the whole structure.
  fixChecksum(w.bytes, 8, 0, 20);
  fixChecksum(w.bytes, 32, 0, RSDP_SIZE);
  return w.bytes;
}

export function buildRsdt(tables: readonly number[]): Buffer {
  const w = new TableWriter(36 + 4 * tables.length);
  tables.forEach((gpa, i) => w.u32(36 + 4 * i, gpa));
  return sealSdt(w, 'RSDT', 1);
}

export function buildXsdt(tables: readonly number[]): Buffer {
  const w = new TableWriter(36 + 8 * tables.length);
  tables.forEach((gpa, i) => w.u64(36 + 8 * i, gpa));
  return sealSdt(w, 'XSDT', 1);
}
