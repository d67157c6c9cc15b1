// Builds bhyve's ACPI table set and lays it out in guest memory from ACPI_BASE (0xF2400) in bhyve's order:
// RSDP, RSDT, XSDT, FADT, MADT, HPET, MCFG, FACS, SPCR, DSDT (bhyve-facts §4.7). Each table starts on a
// 16-byte boundary, the FACS on a 64-byte one (ACPI 6.4 §5.2.10).
import { ACPI_BASE } from '../../vm/memmap.js';
import { buildDsdt, type DsdtInput } from './dsdt.js';
import { FACS_ALIGN, FACS_SIZE, buildFacs } from './facs.js';
import { FADT_POINTERS, FADT_SIZE, buildFadt } from './fadt.js';
import { buildHpet } from './hpet.js';
import { buildMadt } from './madt.js';
import { buildMcfg } from './mcfg.js';
import { RSDP_SIZE, buildRsdp, buildRsdt, buildXsdt } from './root.js';
import { buildSpcr, type SpcrInput } from './spcr.js';

export type { DsdtInput, PciRootBridge, IntxRoute, ComPort } from './dsdt.js';
export type { SpcrInput } from './spcr.js';

/** The tables must end below 1 MiB: the guest's view of [0xF0000, 0x100000) is the BIOS area. */
export const ACPI_LIMIT = 0x10_0000;
const TABLE_ALIGN = 16;

export interface AcpiInput {
  ncpus: number;
  ioapicId: number;
  /** Low 32 bits of the HPET General Capabilities and ID register. */
  hpetCapabilities: number;
  /** The console port the SPCR names (bhyve: COM1, 0x3F8, IRQ 4). */
  spcr: SpcrInput;
  dsdt: DsdtInput;
}

/** A field in one table that holds the address of another, for the QEMU fw_cfg table loader. */
export interface TablePointer {
  offset: number;
  size: 4 | 8;
  target: string;
}

/** A checksum byte at `offset` covering [start, start + length) of the table, for the table loader. */
export interface TableChecksum {
  offset: number;
  start: number;
  length: number;
}

export interface AcpiTable {
  /** 'RSD PTR ' for the RSDP, else the 4-character signature (FACP for the FADT, APIC for the MADT). */
  signature: string;
  gpa: number;
  bytes: Buffer;
  pointers: TablePointer[];
  /** Empty for the FACS, which has none. */
  checksums: TableChecksum[];
}

export interface AcpiTables {
  /** Tables in placement order; the first is the RSDP. */
  tables: AcpiTable[];
  rsdp: number;
  /** First byte after the last table. */
  end: number;
}

export class AcpiLayoutError extends Error {
  override name = 'AcpiLayoutError';
}

const alignUp = (v: number, a: number): number => Math.ceil(v / a) * a;

export function buildAcpiTables(input: AcpiInput, base = ACPI_BASE): AcpiTables {
  // Tables without pointers are built first; their sizes fix every address.
  const madt = buildMadt({ ncpus: input.ncpus, ioapicId: input.ioapicId });
  const hpet = buildHpet(input.hpetCapabilities);
  const mcfg = buildMcfg();
  const facs = buildFacs();
  const spcr = buildSpcr(input.spcr);
  const dsdt = buildDsdt(input.dsdt);
  // The FADT comes first in the RSDT/XSDT (UEFI 2.x requirement bhyve follows).
  const listed = ['FACP', 'APIC', 'HPET', 'MCFG', 'SPCR'];

  const sizes: [string, number, number][] = [
    ['RSD PTR ', RSDP_SIZE, TABLE_ALIGN],
    ['RSDT', 36 + 4 * listed.length, TABLE_ALIGN],
    ['XSDT', 36 + 8 * listed.length, TABLE_ALIGN],
    ['FACP', FADT_SIZE, TABLE_ALIGN],
    ['APIC', madt.length, TABLE_ALIGN],
    ['HPET', hpet.length, TABLE_ALIGN],
    ['MCFG', mcfg.length, TABLE_ALIGN],
    ['FACS', FACS_SIZE, FACS_ALIGN],
    ['SPCR', spcr.length, TABLE_ALIGN],
    ['DSDT', dsdt.length, TABLE_ALIGN],
  ];
  const at = new Map<string, number>();
  let cursor = base;
  for (const [sig, size, align] of sizes) {
    cursor = alignUp(cursor, align);
    at.set(sig, cursor);
    cursor += size;
  }
  if (cursor > ACPI_LIMIT) {
    throw new AcpiLayoutError(`ACPI tables need ${cursor - base} bytes from 0x${base.toString(16)}, past 0x${ACPI_LIMIT.toString(16)}`);
  }
  const gpa = (sig: string): number => at.get(sig)!;
  const listedAddrs = listed.map(gpa);

  const table = (signature: string, bytes: Buffer, pointers: TablePointer[] = []): AcpiTable => ({
    signature,
    gpa: gpa(signature),
    bytes,
    pointers,
    checksums: checksumsOf(signature, bytes.length),
  });
  const tables: AcpiTable[] = [
    table('RSD PTR ', buildRsdp(gpa('RSDT'), gpa('XSDT')), [
      { offset: 16, size: 4, target: 'RSDT' },
      { offset: 24, size: 8, target: 'XSDT' },
    ]),
    table('RSDT', buildRsdt(listedAddrs), listed.map((target, i) => ({ offset: 36 + 4 * i, size: 4 as const, target }))),
    table('XSDT', buildXsdt(listedAddrs), listed.map((target, i) => ({ offset: 36 + 8 * i, size: 8 as const, target }))),
    table('FACP', buildFadt({ facs: gpa('FACS'), dsdt: gpa('DSDT') }), FADT_POINTERS.map((p) => ({ ...p }))),
    table('APIC', madt),
    table('HPET', hpet),
    table('MCFG', mcfg),
    table('FACS', facs),
    table('SPCR', spcr),
    table('DSDT', dsdt),
  ];
  return { tables, rsdp: gpa('RSD PTR '), end: cursor };
}

function checksumsOf(signature: string, length: number): TableChecksum[] {
  if (signature === 'FACS') return [];
  if (signature === 'RSD PTR ') {
    return [
      { offset: 8, start: 0, length: 20 },
      { offset: 32, start: 0, length },
    ];
  }
  return [{ offset: 9, start: 0, length }];
}

/** The whole ACPI area as one image starting at `tables.tables[0].gpa`, padding zero-filled. */
export function acpiImage(t: AcpiTables): Buffer {
  const start = t.tables[0]!.gpa;
  const img = Buffer.alloc(t.end - start);
  for (const tb of t.tables) tb.bytes.copy(img, tb.gpa - start);
  return img;
}
