// What a direct kernel boot produces: the bytes to put in guest memory and the state the BSP starts in.
// The VMM applies it as described in README.md (write memory, then KVM_SET_SREGS, then KVM_SET_REGS).
import type { MemoryLayout } from '../vm/memmap.js';
import type { E820Entry } from './e820.js';
import { LoaderError, hex } from './errors.js';
import { GuestRam } from './guest-ram.js';
import type { InitialVcpuState } from './vcpu-state.js';

export type BootFormat = 'linux-bzimage' | 'pvh-elf' | 'multiboot';

export interface GuestWrite {
  /** guest-physical address of the first byte */
  gpa: number;
  /** the bytes (may be a view into the caller's kernel/initrd buffer: apply before reusing those) */
  bytes: Uint8Array;
  /** what this is, for logs and errors */
  what: string;
}

export interface BootPlan {
  format: BootFormat;
  /** sorted by gpa, non-overlapping, each inside one E820 RAM entry */
  writes: GuestWrite[];
  vcpu: InitialVcpuState;
  /** one human-readable line per decision (entry point, where each piece went) */
  description: string[];
}

export interface DirectBootInput {
  /** boot.kernel: a bzImage, a PVH ELF or a Multiboot image */
  kernel: Uint8Array;
  /** boot.initrd */
  initrd?: Uint8Array;
  /** boot.cmdline */
  cmdline?: string;
  layout: MemoryLayout;
  /** the guest's E820 map (at most 128 entries) */
  e820: readonly E820Entry[];
  /** guest-physical address of the ACPI RSDP, when ACPI tables are built */
  rsdpAddress?: number;
  /** a linear framebuffer for the kernel's console (fbuf): described to Linux in screen_info */
  framebuffer?: LinearFramebuffer;
}

/** A 32-bit XRGB8888 linear framebuffer (red in bits 16-23, green 8-15, blue 0-7). */
export interface LinearFramebuffer {
  base: number;
  size: number;
  width: number;
  height: number;
  /** bytes per row */
  stride: number;
}

/** Collects claims and writes while one format's loader lays out memory. */
export class PlanBuilder {
  readonly ram: GuestRam;
  private readonly writes: GuestWrite[] = [];
  private readonly lines: string[] = [];

  constructor(input: DirectBootInput) {
    this.ram = new GuestRam(input.e820, input.layout);
    const r = input.rsdpAddress;
    if (r !== undefined && (!Number.isSafeInteger(r) || r <= 0)) throw new LoaderError('bad-input', `RSDP address ${r} is not a guest address`);
  }

  /** Claims [gpa, gpa + bytes.length) and writes the bytes there. */
  put(gpa: number, bytes: Uint8Array, what: string): void {
    this.ram.claim(gpa, bytes.length, what);
    this.writes.push({ gpa, bytes, what });
  }

  /**
   * Claims `size` bytes at `gpa` and fills them with `data` followed by zeros when `zeroTail` is set
   * (an ELF segment's bss: ELF spec, "p_memsz ... the extra bytes are defined to hold the value 0").
   */
  putRegion(gpa: number, size: number, data: Uint8Array, what: string, zeroTail: boolean): void {
    if (data.length > size) throw new LoaderError('bad-field', `${what}: ${data.length} bytes of data do not fit its ${size}-byte region`);
    this.ram.claim(gpa, size, what);
    if (data.length > 0) this.writes.push({ gpa, bytes: data, what });
    if (zeroTail && size > data.length) {
      this.writes.push({ gpa: gpa + data.length, bytes: new Uint8Array(size - data.length), what: `${what} (zero fill)` });
    }
  }

  /**
   * Claims [gpa, gpa + size) now, for contents built later; the returned function writes them (at most
   * `size` bytes). Fixed areas are reserved first so a kernel segment landing on one is reported as such.
   */
  reserve(gpa: number, size: number, what: string): (bytes: Uint8Array) => void {
    this.ram.claim(gpa, size, what);
    return (bytes) => {
      if (bytes.length > size) throw new LoaderError('bad-input', `${what}: ${bytes.length} bytes exceed its ${size}-byte area`);
      this.writes.push({ gpa, bytes, what });
    };
  }

  note(line: string): void {
    this.lines.push(line);
  }

  finish(format: BootFormat, vcpu: InitialVcpuState): BootPlan {
    const writes = [...this.writes].sort((a, b) => a.gpa - b.gpa);
    return { format, writes, vcpu, description: [...this.lines] };
  }
}

/** Encodes a command line as NUL-terminated bytes, at most `maxLength` characters before the NUL. */
export function encodeCmdline(cmdline: string, maxLength: number, limitName: string): Uint8Array {
  if (cmdline.includes('\0')) throw new LoaderError('bad-input', 'command line contains a NUL character');
  const text = new TextEncoder().encode(cmdline);
  if (text.length > maxLength) {
    throw new LoaderError('cmdline-too-long', `command line is ${text.length} bytes, ${limitName} allows ${maxLength}`);
  }
  const out = new Uint8Array(text.length + 1);
  out.set(text);
  return out;
}

/** One line of BootPlan.description for a placed range. */
export function describeRange(what: string, base: number, size: number): string {
  return `${what}: ${hex(base)}..${hex(base + size)} (${size} bytes)`;
}
