// System Description Table plumbing shared by every ACPI table: the 36-byte header (ACPI 6.4 §5.2.6), the
// checksum rule, and the Generic Address Structure (§5.2.3.2).

export const OEM_ID = 'BHYVE ';
/** Creator ID/revision: the tool that built the tables (bhyve puts its basl there; this is ours). */
export const CREATOR_ID = 'TSBH';
export const CREATOR_REVISION = 1;
export const SDT_HEADER_SIZE = 36;

/** A little-endian writer over a fixed-size table image. */
export class TableWriter {
  readonly bytes: Buffer;
  constructor(size: number) {
    this.bytes = Buffer.alloc(size);
  }
  u8(off: number, v: number): void {
    this.bytes.writeUInt8(v, off);
  }
  u16(off: number, v: number): void {
    this.bytes.writeUInt16LE(v, off);
  }
  u32(off: number, v: number): void {
    this.bytes.writeUInt32LE(v, off);
  }
  u64(off: number, v: number | bigint): void {
    this.bytes.writeBigUInt64LE(BigInt(v), off);
  }
  ascii(off: number, s: string, width: number): void {
    if (s.length > width || !/^[\x20-\x7e]*$/.test(s)) throw new RangeError(`bad fixed-width ASCII field '${s}'`);
    this.bytes.write(s.padEnd(width, ' '), off, width, 'latin1');
  }
}

/** The byte that makes `bytes[start, start+len)` sum to zero modulo 256. */
export function checksumByte(bytes: Uint8Array, start = 0, len = bytes.length - start): number {
  let sum = 0;
  for (let i = start; i < start + len; i++) sum = (sum + bytes[i]!) & 0xff;
  return (0x100 - sum) & 0xff;
}

/** Sets the checksum byte at `at` so that the range sums to zero. The byte must be zero beforehand. */
export function fixChecksum(bytes: Uint8Array, at: number, start = 0, len = bytes.length - start): void {
  bytes[at] = 0;
  bytes[at] = checksumByte(bytes, start, len);
}

/**
 * Writes an SDT header and seals the table: length = the whole image, checksum over the whole image.
 * The OEM table ID follows bhyve's pattern "BV" + signature ("BVFACP  ", "BVDSDT  ", ...).
 */
export function sealSdt(w: TableWriter, signature: string, revision: number): Buffer {
  const b = w.bytes;
  w.ascii(0, signature, 4);
  w.u32(4, b.length);
  w.u8(8, revision);
  w.ascii(10, OEM_ID, 6);
  w.ascii(16, `BV${signature}`, 8);
  w.u32(24, 1);
  w.ascii(28, CREATOR_ID, 4);
  w.u32(32, CREATOR_REVISION);
  fixChecksum(b, 9);
  return b;
}

/** Generic Address Structure address spaces and access sizes. */
export const AddressSpace = { SystemMemory: 0, SystemIO: 1 } as const;
export const AccessSize = { Undefined: 0, Byte: 1, Word: 2, DWord: 3, QWord: 4 } as const;

export interface Gas {
  space: number;
  bitWidth: number;
  bitOffset: number;
  accessSize: number;
  address: number;
}

export function writeGas(w: TableWriter, off: number, g: Gas): void {
  w.u8(off, g.space);
  w.u8(off + 1, g.bitWidth);
  w.u8(off + 2, g.bitOffset);
  w.u8(off + 3, g.accessSize);
  w.u64(off + 4, g.address);
}

/** An I/O-port GAS, the form every FADT register block here uses. */
export const ioGas = (address: number, bitWidth: number, accessSize: number): Gas => ({
  space: AddressSpace.SystemIO,
  bitWidth,
  bitOffset: 0,
  accessSize,
  address,
});
