// The ACPI tables as QEMU-style firmware (OVMF, SeaBIOS) loads them over fw_cfg when lpc.fwcfg=qemu:
// "etc/acpi/rsdp" and "etc/acpi/tables" blobs plus the "etc/table-loader" script that tells the firmware
// where to allocate them, which fields to relocate and which checksums to recompute. The command format is
// QEMU's linker/loader interface (hw/acpi/bios-linker-loader.c): 128-byte little-endian entries.
import type { AcpiTables } from './index.js';

export const FWCFG_RSDP_FILE = 'etc/acpi/rsdp';
export const FWCFG_TABLES_FILE = 'etc/acpi/tables';
export const FWCFG_LOADER_FILE = 'etc/table-loader';

export const LOADER_ENTRY_SIZE = 128;
const TABLES_ALIGN = 64;
/** fw_cfg file names are at most 55 characters plus NUL. */
const FILE_NAME_SIZE = 56;

export const LoaderCommand = { Allocate: 1, AddPointer: 2, AddChecksum: 3 } as const;
/** Allocation zones: anywhere in RAM, or the 0xE0000-0xFFFFF F-segment where the RSDP must be found. */
export const LoaderZone = { High: 1, FSeg: 2 } as const;

export interface FwCfgAcpi {
  rsdp: Buffer;
  tables: Buffer;
  loader: Buffer;
}

/**
 * Re-bases the tables for fw_cfg: pointer fields hold offsets inside the target file (the firmware adds
 * the file's allocated address), checksum bytes are zero (the firmware computes them after relocation).
 * The tables keep the relative placement they have in memory (the blob begins at the 64-byte boundary at
 * or below the RSDT), so a firmware that allocates "etc/acpi/tables" there reproduces the in-memory
 * image byte for byte.
 */
export function buildFwCfgAcpi(t: AcpiTables): FwCfgAcpi {
  const [rsdpTable, ...rest] = t.tables;
  if (!rsdpTable || rsdpTable.signature !== 'RSD PTR ' || rest.length === 0) throw new Error('ACPI table set must start with the RSDP');
  // The blob starts on a 64-byte boundary so that the FACS, 64-byte aligned in memory, stays aligned
  // wherever the firmware places the blob (it allocates with that alignment).
  const tablesBase = Math.floor(rest[0]!.gpa / TABLES_ALIGN) * TABLES_ALIGN;
  const last = rest[rest.length - 1]!;
  const tables = Buffer.alloc(last.gpa + last.bytes.length - tablesBase);
  const rsdp = Buffer.from(rsdpTable.bytes);
  const fileOf = (sig: string): string => (sig === 'RSD PTR ' ? FWCFG_RSDP_FILE : FWCFG_TABLES_FILE);
  const offsetIn = (sig: string): number => {
    const tb = t.tables.find((x) => x.signature === sig);
    if (!tb) throw new Error(`pointer to missing table ${sig}`);
    return sig === 'RSD PTR ' ? 0 : tb.gpa - tablesBase;
  };

  const commands: Buffer[] = [allocate(FWCFG_TABLES_FILE, TABLES_ALIGN, LoaderZone.High), allocate(FWCFG_RSDP_FILE, 16, LoaderZone.FSeg)];
  const checksums: Buffer[] = [];
  for (const tb of t.tables) {
    const file = fileOf(tb.signature);
    const base = tb.signature === 'RSD PTR ' ? 0 : tb.gpa - tablesBase;
    const image = file === FWCFG_RSDP_FILE ? rsdp : tables;
    if (file === FWCFG_TABLES_FILE) tb.bytes.copy(tables, base);
    for (const p of tb.pointers) {
      const at = base + p.offset;
      const value = BigInt(offsetIn(p.target));
      if (p.size === 4) image.writeUInt32LE(Number(value), at);
      else image.writeBigUInt64LE(value, at);
      commands.push(addPointer(file, fileOf(p.target), at, p.size));
    }
    for (const c of tb.checksums) {
      image[base + c.offset] = 0;
      checksums.push(addChecksum(file, base + c.offset, base + c.start, c.length));
    }
  }
  // Checksums last: they must cover the relocated pointer values.
  return { rsdp, tables, loader: Buffer.concat([...commands, ...checksums]) };
}

function entry(command: number): Buffer {
  const e = Buffer.alloc(LOADER_ENTRY_SIZE);
  e.writeUInt32LE(command, 0);
  return e;
}

function writeName(e: Buffer, off: number, name: string): void {
  if (name.length >= FILE_NAME_SIZE) throw new Error(`fw_cfg file name too long: ${name}`);
  e.write(name, off, FILE_NAME_SIZE, 'latin1');
}

function allocate(file: string, align: number, zone: number): Buffer {
  const e = entry(LoaderCommand.Allocate);
  writeName(e, 4, file);
  e.writeUInt32LE(align, 4 + FILE_NAME_SIZE);
  e.writeUInt8(zone, 8 + FILE_NAME_SIZE);
  return e;
}

function addPointer(dest: string, src: string, offset: number, size: number): Buffer {
  const e = entry(LoaderCommand.AddPointer);
  writeName(e, 4, dest);
  writeName(e, 4 + FILE_NAME_SIZE, src);
  e.writeUInt32LE(offset, 4 + 2 * FILE_NAME_SIZE);
  e.writeUInt8(size, 8 + 2 * FILE_NAME_SIZE);
  return e;
}

function addChecksum(file: string, offset: number, start: number, length: number): Buffer {
  const e = entry(LoaderCommand.AddChecksum);
  writeName(e, 4, file);
  e.writeUInt32LE(offset, 4 + FILE_NAME_SIZE);
  e.writeUInt32LE(start, 8 + FILE_NAME_SIZE);
  e.writeUInt32LE(length, 12 + FILE_NAME_SIZE);
  return e;
}
