// The boot ROM's variable store (-l bootrom,ROM,VARS): the VARS file appears as a flash device directly below
// the ROM. Firmware (EDK II's bhyve platform) probes it with a few CFI basic command-set operations and writes
// variables one byte-program command at a time, so only those are modelled, as bhyve does:
//   - a write while "byte program" (0x10) is armed stores the data at that offset and returns to array mode;
//   - any other write is a command byte; "clear status" (0x50) and "read status" (0x70) make the next read
//     return 0 (ready, no error) and then fall back to array mode;
//   - reads in array mode return the file's bytes.
// Every programmed write goes to the file at once (pwrite), so variables survive the process as bhyve's
// shared mapping of the file does.
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';

import { describeErrno } from '../config/errors.js';
import type { IoSpace, MmioSize } from './machine.js';

const CFI_BYTE_PROGRAM = 0x10;
const CFI_CLEAR_STATUS = 0x50;
const CFI_READ_STATUS = 0x70;
const CFI_READ_ARRAY = 0xff;

export const PAGE_SIZE = 4096;

export class BootVarsError extends Error {}

export class BootVars {
  private readonly bytes: Uint8Array;
  private command = CFI_READ_ARRAY;
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly size: number,
    /** guest-physical address of the first byte */
    readonly gpa: number,
  ) {
    this.bytes = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, this.bytes, done, size - done, done);
      if (n <= 0) break;
      done += n;
    }
  }

  /**
   * Opens the VARS file read-write and places it so that it ends at `top` (the ROM's first byte). `room` is
   * how much of the boot ROM region is still free below the ROM. Messages follow bhyve's wording.
   */
  static open(path: string, top: number, room: number): BootVars {
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch (e) {
      throw new BootVarsError(`Error opening bootrom variable file "${path}": ${describeErrno(e as NodeJS.ErrnoException)}`);
    }
    try {
      const size = fstatSync(fd).size;
      if (size < PAGE_SIZE || size > room) {
        throw new BootVarsError(size > room ? `Invalid bootrom and variable aggregate size ${size}` : `Invalid bootrom variable size ${size}`);
      }
      return new BootVars(fd, size, top - size);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Claims the store's guest-physical range. */
  attach(io: IoSpace): void {
    io.registerMmio(this.gpa, this.size, (write, addr, size, value) => this.access(write, addr - this.gpa, size, value));
  }

  /** One guest access at `offset` into the store (the range check is the bus's; repeated here for safety). */
  access(write: boolean, offset: number, size: MmioSize, value: number): number {
    if (offset < 0 || offset + size > this.size) return write ? 0 : 0xffffffff;
    if (write) {
      if (this.command === CFI_BYTE_PROGRAM) {
        for (let i = 0; i < size; i++) this.bytes[offset + i] = (value >>> (8 * i)) & 0xff;
        this.persist(offset, size);
        this.command = CFI_READ_ARRAY;
      } else {
        this.command = value & 0xff;
      }
      return 0;
    }
    if (this.command === CFI_CLEAR_STATUS || this.command === CFI_READ_STATUS) {
      this.command = CFI_READ_ARRAY;
      return 0;
    }
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | this.bytes[offset + i]!;
    return v >>> 0;
  }

  private persist(offset: number, size: number): void {
    if (this.closed) return;
    writeSync(this.fd, this.bytes, offset, size, offset);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}
