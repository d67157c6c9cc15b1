// QEMU's firmware configuration interface (QEMU docs/specs/fw_cfg.rst) on I/O ports, as bhyve's qemu_fwcfg.c
// offers it with lpc.fwcfg=qemu: a 16-bit selector at 0x510 and an 8-bit data port at 0x511 that streams the
// selected item byte by byte. The traditional interface only: no DMA (the ID item says so), no writes.
//
// Fixed items: 0x00 signature "QEMU", 0x01 feature bits, 0x05 NB_CPUS, 0x0F MAX_CPUS, 0x19 the file directory.
// Files take selectors from 0x20 in name order, and the directory lists them sorted by name.
import type { Machine, PortSize } from '../machine.js';

export const FWCFG_SELECTOR_PORT = 0x510;
export const FWCFG_DATA_PORT = 0x511;

export const FW_CFG_SIGNATURE = 0x00;
export const FW_CFG_ID = 0x01;
export const FW_CFG_NB_CPUS = 0x05;
export const FW_CFG_MAX_CPUS = 0x0f;
export const FW_CFG_FILE_DIR = 0x19;
export const FW_CFG_FILE_FIRST = 0x20;
/** Selector bits 14 (write) and 15 (architecture-specific) are not items of their own; the item is bits 0-13. */
const FW_CFG_ENTRY_MASK = 0x3fff;
/** ID bit 0: the traditional I/O interface; bit 1 (DMA) stays clear. */
export const FW_CFG_VERSION_TRADITIONAL = 0x1;

/** A directory entry: be32 size, be16 select, be16 reserved, 56-byte NUL-terminated name. */
export const FWCFG_DIR_ENTRY_SIZE = 64;
export const FWCFG_NAME_SIZE = 56;
/** More files than selectors 0x20..0x3FFF cannot exist. */
const MAX_FILES = FW_CFG_ENTRY_MASK + 1 - FW_CFG_FILE_FIRST;

export class FwCfgError extends Error {
  override name = 'FwCfgError';
}

export interface FwCfgFileEntry {
  name: string;
  select: number;
  size: number;
}

export class FwCfg {
  private readonly fixed = new Map<number, Uint8Array>();
  /** Files by name; selectors follow name order. */
  private readonly files = new Map<string, Uint8Array>();
  private sortedNames: string[] = [];
  private directory = new Uint8Array(4);
  private selected: Uint8Array = new Uint8Array(0);
  private offset = 0;
  private selector = 0;

  constructor(machine: Machine, opts: { ncpus: number }) {
    if (!Number.isInteger(opts.ncpus) || opts.ncpus < 1 || opts.ncpus > 0xffff) throw new FwCfgError(`bad vCPU count ${opts.ncpus}`);
    this.fixed.set(FW_CFG_SIGNATURE, new TextEncoder().encode('QEMU'));
    this.fixed.set(FW_CFG_ID, le32(FW_CFG_VERSION_TRADITIONAL));
    this.fixed.set(FW_CFG_NB_CPUS, le16(opts.ncpus));
    this.fixed.set(FW_CFG_MAX_CPUS, le16(opts.ncpus));
    this.rebuildDirectory();
    this.select(FW_CFG_SIGNATURE);
    machine.io.registerPort(FWCFG_SELECTOR_PORT, 2, (w, port, size, v) => this.access(w, port, size, v));
  }

  /** Adds or replaces a file. Names are 1-55 bytes; contents are copied. */
  addFile(name: string, data: Uint8Array): void {
    const nameBytes = new TextEncoder().encode(name);
    if (nameBytes.length === 0 || nameBytes.length >= FWCFG_NAME_SIZE || nameBytes.includes(0)) {
      throw new FwCfgError(`invalid fw_cfg file name "${name}"`);
    }
    if (!this.files.has(name) && this.files.size >= MAX_FILES) throw new FwCfgError('too many fw_cfg files');
    if (data.length > 0xffff_ffff) throw new FwCfgError(`fw_cfg file ${name} too large`);
    this.files.set(name, new Uint8Array(data));
    this.rebuildDirectory();
  }

  /** The directory as the guest sees it. */
  list(): FwCfgFileEntry[] {
    return this.sortedNames.map((name, i) => ({ name, select: FW_CFG_FILE_FIRST + i, size: this.files.get(name)!.length }));
  }

  private rebuildDirectory(): void {
    // Byte-wise order of the names, as QEMU's strcmp-sorted insertion produces.
    this.sortedNames = [...this.files.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const dir = new Uint8Array(4 + FWCFG_DIR_ENTRY_SIZE * this.sortedNames.length);
    const view = new DataView(dir.buffer);
    view.setUint32(0, this.sortedNames.length, false);
    this.sortedNames.forEach((name, i) => {
      const at = 4 + i * FWCFG_DIR_ENTRY_SIZE;
      view.setUint32(at, this.files.get(name)!.length, false);
      view.setUint16(at + 4, FW_CFG_FILE_FIRST + i, false);
      dir.set(new TextEncoder().encode(name), at + 8);
    });
    this.directory = dir;
    // Keep a selection in progress pointing at the same item number (its contents may have moved).
    this.select(this.selector);
  }

  private item(key: number): Uint8Array {
    if (key === FW_CFG_FILE_DIR) return this.directory;
    const fixed = this.fixed.get(key);
    if (fixed) return fixed;
    const i = key - FW_CFG_FILE_FIRST;
    if (i >= 0 && i < this.sortedNames.length) return this.files.get(this.sortedNames[i]!)!;
    return new Uint8Array(0); // no such item: reads return 0
  }

  private select(selector: number): void {
    this.selector = selector & 0xffff;
    this.selected = this.item(this.selector & FW_CFG_ENTRY_MASK);
    this.offset = 0;
  }

  private access(write: boolean, port: number, size: PortSize, value: number): number {
    if (port === FWCFG_SELECTOR_PORT) {
      // The selector is a 16-bit register; writing it rewinds the data stream.
      if (size !== 2) return write ? 0 : 0xffff_ffff;
      if (write) this.select(value);
      return write ? 0 : this.selector;
    }
    // Data port: byte reads stream the item, 0 past its end; writes are not supported (bhyve rejects them).
    if (write || size !== 1) return write ? 0 : 0xffff_ffff;
    if (this.offset >= this.selected.length) return 0;
    return this.selected[this.offset++]!;
  }
}

function le16(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, (v >> 8) & 0xff);
}

function le32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

/** Parses a directory item read from the data port (for firmware-side tests and tools). */
export function parseFwCfgDirectory(bytes: Uint8Array): FwCfgFileEntry[] {
  if (bytes.length < 4) throw new FwCfgError('directory too short');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, false);
  if (bytes.length < 4 + count * FWCFG_DIR_ENTRY_SIZE) throw new FwCfgError('directory truncated');
  const out: FwCfgFileEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = 4 + i * FWCFG_DIR_ENTRY_SIZE;
    const nameBytes = bytes.subarray(at + 8, at + FWCFG_DIR_ENTRY_SIZE);
    const end = nameBytes.indexOf(0);
    out.push({
      size: view.getUint32(at, false),
      select: view.getUint16(at + 4, false),
      name: new TextDecoder().decode(nameBytes.subarray(0, end < 0 ? nameBytes.length : end)),
    });
  }
  return out;
}
