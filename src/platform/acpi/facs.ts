// FACS, the Firmware ACPI Control Structure (ACPI 6.4 §5.2.10). It has no SDT header and no checksum, and
// must be 64-byte aligned. Nothing in it is used (no S3, no global lock), so it is all zeros but for the
// identification fields.
export const FACS_SIZE = 64;
export const FACS_ALIGN = 64;

export function buildFacs(): Buffer {
  const b = Buffer.alloc(FACS_SIZE);
  b.write('FACS', 0, 'latin1');
  b.writeUInt32LE(FACS_SIZE, 4);
  b.writeUInt8(2, 32); // version 2: 64-bit waking vector field present
  return b;
}
