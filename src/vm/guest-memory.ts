// TypeScript's view of guest RAM, through the same checked accessor the native data paths use
// (native/guestmem). Every method validates (gpa, len) in native code first; a refused range throws
// GuestMemoryError and touches nothing.
import { GuestMemoryError, memFault } from './errors.js';
import type { NativeVm } from './native-vmm.js';
import type { MemoryLayout } from './memmap.js';

/** Largest single view: views come from 2 GiB external buffers placed every 1 GiB (Node caps each at 4 GiB). */
/** A guest-physical address; bigint allowed so callers can pass any 64-bit value (checked natively). */
export type Gpa = number | bigint;

export const MAX_VIEW = 1024 * 1024 * 1024;

export class GuestMemory {
  constructor(
    private readonly nat: NativeVm,
    readonly layout: MemoryLayout,
  ) {}

  private fail(code: number, gpa: Gpa, len: number): never {
    throw new GuestMemoryError(memFault(code) ?? 'out-of-range', gpa, len);
  }

  /** Throws unless [gpa, gpa + len) is guest RAM (writable when `write`). */
  check(gpa: Gpa, len: number, write = false): void {
    const code = this.nat.memCheck(gpa, len, write, false);
    if (code !== 0) this.fail(code, gpa, len);
  }

  /** True when [gpa, gpa + len) is guest RAM. */
  isRam(gpa: Gpa, len: number): boolean {
    return this.nat.memCheck(gpa, len, false, false) === 0;
  }

  /** A copy of guest bytes (may span lowmem and highmem only when they are adjacent; they are not). */
  read(gpa: Gpa, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.readInto(gpa, out);
    return out;
  }

  readInto(gpa: Gpa, dst: Uint8Array): void {
    const code = this.nat.memRead(gpa, dst);
    if (code !== 0) this.fail(code, gpa, dst.byteLength);
  }

  write(gpa: Gpa, src: Uint8Array): void {
    const code = this.nat.memWrite(gpa, src);
    if (code !== 0) this.fail(code, gpa, src.byteLength);
  }

  /**
   * A live view of [gpa, gpa + len) of guest RAM (at most MAX_VIEW bytes, inside one RAM range). Reads
   * and writes through it are the guest's memory; it stays valid (reading zeros) after the VM closes.
   */
  view(gpa: Gpa, len: number): Uint8Array {
    return this.viewAny(gpa, len, false);
  }

  /** @internal also serves ROM and device segments mapped into the guest (used by the loader). */
  viewAny(gpa: Gpa, len: number, anyKind = true): Uint8Array {
    if (len > MAX_VIEW) throw new RangeError(`guest memory views are limited to ${MAX_VIEW} bytes`);
    const r = this.nat.memView(gpa, len, anyKind);
    if (typeof r === 'number') this.fail(r, gpa, len);
    return new Uint8Array(r[0], r[1], len);
  }

  private dv(gpa: Gpa, len: number): DataView {
    const v = this.view(gpa, len);
    return new DataView(v.buffer, v.byteOffset, len);
  }

  readU8(gpa: Gpa): number { return this.dv(gpa, 1).getUint8(0); }
  readU16(gpa: Gpa): number { return this.dv(gpa, 2).getUint16(0, true); }
  readU32(gpa: Gpa): number { return this.dv(gpa, 4).getUint32(0, true); }
  readU64(gpa: Gpa): bigint { return this.dv(gpa, 8).getBigUint64(0, true); }
  writeU8(gpa: Gpa, v: number): void { this.dv(gpa, 1).setUint8(0, v); }
  writeU16(gpa: Gpa, v: number): void { this.dv(gpa, 2).setUint16(0, v, true); }
  writeU32(gpa: Gpa, v: number): void { this.dv(gpa, 4).setUint32(0, v, true); }
  writeU64(gpa: Gpa, v: bigint): void { this.dv(gpa, 8).setBigUint64(0, v, true); }
}
