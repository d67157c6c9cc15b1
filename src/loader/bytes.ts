// Bounds-checked little-endian access to untrusted file bytes, and a small writer for the structures
// the loader builds. Every read names what it reads so a truncated file gives a precise message.
import { LoaderError, hex } from './errors.js';

function need(buf: Uint8Array, off: number, len: number, what: string): void {
  if (!Number.isSafeInteger(off) || off < 0 || off + len > buf.length) {
    throw new LoaderError('truncated', `${what}: needs bytes ${hex(off)}..${hex(off + len)} but the file is ${buf.length} bytes`);
  }
}

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function readU8(buf: Uint8Array, off: number, what: string): number {
  need(buf, off, 1, what);
  return buf[off]!;
}

export function readU16(buf: Uint8Array, off: number, what: string): number {
  need(buf, off, 2, what);
  return view(buf).getUint16(off, true);
}

export function readU32(buf: Uint8Array, off: number, what: string): number {
  need(buf, off, 4, what);
  return view(buf).getUint32(off, true);
}

export function readU64(buf: Uint8Array, off: number, what: string): bigint {
  need(buf, off, 8, what);
  return view(buf).getBigUint64(off, true);
}

/** A u64 field that must be usable as a JavaScript number (below 2^53), e.g. an address or a size. */
export function readU64Number(buf: Uint8Array, off: number, what: string): number {
  return toSafeNumber(readU64(buf, off, what), what);
}

export function toSafeNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new LoaderError('bad-field', `${what} ${hex(v)} is beyond any guest address`);
  return Number(v);
}

/** The bytes [off, off + len) of the file, as a view (no copy); a clear error if they are not all there. */
export function slice(buf: Uint8Array, off: number, len: number, what: string): Uint8Array {
  if (!Number.isSafeInteger(len) || len < 0) throw new LoaderError('bad-field', `${what}: invalid length ${len}`);
  need(buf, off, len, what);
  return buf.subarray(off, off + len);
}

/** A zero-filled structure under construction (boot_params, hvm_start_info, multiboot info, ...). */
export class StructWriter {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.dv = view(this.bytes);
  }
  u8(off: number, v: number): void {
    this.dv.setUint8(off, v);
  }
  u16(off: number, v: number): void {
    this.dv.setUint16(off, v, true);
  }
  u32(off: number, v: number): void {
    this.dv.setUint32(off, v >>> 0, true);
  }
  u64(off: number, v: number | bigint): void {
    this.dv.setBigUint64(off, BigInt(v), true);
  }
  set(off: number, src: Uint8Array): void {
    this.bytes.set(src, off);
  }
}
