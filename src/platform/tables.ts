// The firmware tables of a bhyve platform, built from one typed description: the MP table (0xF0000),
// SMBIOS (0xF1000), the ACPI tables (0xF2400) and the E820 map. Pure data in, bytes out; nothing here
// touches a VM. The caller writes `blobs` into guest memory and hands `acpi`/`e820Bytes` to fw_cfg.
import { MPTABLE_BASE, SMBIOS_BASE, ACPI_BASE, type MemoryLayout } from '../vm/memmap.js';
import { acpiImage, buildAcpiTables, type AcpiTables, type ComPort, type PciRootBridge } from './acpi/index.js';
import { PM } from './acpi/fadt.js';
import { buildFwCfgAcpi, type FwCfgAcpi } from './acpi/loader.js';
import { e820FromLayout, e820Reserve, encodeE820, type E820Entry, type E820Type } from './e820.js';
import { buildMpTable } from './mptable.js';
import { buildSmbios, smbiosUuidFromName, type SmbiosStrings } from './smbios.js';

export type { PciRootBridge, IntxRoute, ComPort } from './acpi/index.js';
export type { SmbiosStrings } from './smbios.js';

export interface PlatformDescription {
  ncpus: number;
  topology: { sockets: number; cores: number; threads: number };
  memory: MemoryLayout;
  /** Every PCI root bridge; bus 0 is always present (bhyve describes it even when empty). */
  pciBuses: readonly PciRootBridge[];
  /** The LPC bridge's location on bus 0 and its COM ports; absent when no `lpc` device is configured. */
  lpc?: { slot: number; func: number; comPorts: readonly ComPort[] };
  /** Low 32 bits of the HPET capabilities register (vm_get_hpet_capabilities). */
  hpetCapabilities: number;
  /** I/O APIC ID in the MADT and MP table; current bhyve uses 0 in both. */
  ioapicId?: number;
  smbios?: SmbiosStrings;
  /** The `uuid` config value; when absent one is derived from `vmName` and `hostname` as bhyve does. */
  uuid?: string;
  vmName: string;
  hostname: string;
  /** x86.mptable (default true in bhyve). */
  mptable: boolean;
  /** lpc.fwcfg */
  fwcfg: 'bhyve' | 'qemu';
  /** acpi_tables_in_memory: place the ACPI tables at 0xF2400 as well as offering them to fw_cfg. */
  acpiTablesInMemory: boolean;
  /** Extra E820 ranges devices reserve out of RAM (e.g. a VM generation ID buffer). */
  e820Reservations?: readonly { base: number; length: number; type: E820Type }[];
}

/** A byte image to copy into guest memory at `gpa`. */
export interface GuestBlob {
  name: 'mptable' | 'smbios' | 'acpi';
  gpa: number;
  bytes: Buffer;
}

export interface FirmwareTables {
  blobs: GuestBlob[];
  e820: E820Entry[];
  /** The E820 map in the packed 20-byte-per-entry form of boot_params and fw_cfg etc/e820. */
  e820Bytes: Buffer;
  /** Every ACPI table with its address and pointer fields, for fw_cfg (etc/acpi/tables, table-loader). */
  acpi: AcpiTables;
  /** The same tables as fw_cfg files: etc/acpi/rsdp, etc/acpi/tables and the etc/table-loader script. */
  acpiFwCfg: FwCfgAcpi;
  /** The UUID placed in SMBIOS type 1. */
  uuid: string;
}

export class FirmwareTablesError extends Error {
  override name = 'FirmwareTablesError';
}

/** bhyve's COM1 console, the one the SPCR always names. */
const SPCR_CONSOLE = { iobase: 0x3f8, irq: 4 };

export function buildFirmwareTables(d: PlatformDescription): FirmwareTables {
  const { sockets, cores, threads } = d.topology;
  if (sockets * cores * threads !== d.ncpus) {
    throw new FirmwareTablesError(`topology ${sockets}x${cores}x${threads} does not match ${d.ncpus} vCPUs`);
  }
  const ioapicId = d.ioapicId ?? 0;
  const uuid = d.uuid ?? smbiosUuidFromName(d.vmName, d.hostname);
  const blobs: GuestBlob[] = [];

  if (d.mptable) {
    const bytes = buildMpTable({
      ncpus: d.ncpus,
      ioapicId,
      pciBuses: d.pciBuses.filter((b) => b.windows !== undefined).map((b) => b.bus),
      intx: d.pciBuses.flatMap((b) => b.intx.map((r) => ({ bus: b.bus, slot: r.slot, pin: r.pin, gsi: r.gsi }))),
      sciIrq: PM.sciIrq,
    });
    blobs.push({ name: 'mptable', gpa: MPTABLE_BASE, bytes });
  }
  blobs.push({
    name: 'smbios',
    gpa: SMBIOS_BASE,
    bytes: buildSmbios({ memory: d.memory, sockets, cores, threads, strings: d.smbios, uuid }),
  });
  const acpi = buildAcpiTables({
    ncpus: d.ncpus,
    ioapicId,
    hpetCapabilities: d.hpetCapabilities,
    spcr: SPCR_CONSOLE,
    dsdt: { buses: d.pciBuses, lpc: d.lpc, fwcfg: d.fwcfg },
  }, ACPI_BASE);
  if (d.acpiTablesInMemory) blobs.push({ name: 'acpi', gpa: ACPI_BASE, bytes: acpiImage(acpi) });
  checkNoOverlap(blobs);

  let e820 = e820FromLayout(d.memory);
  for (const r of d.e820Reservations ?? []) e820 = e820Reserve(e820, r.base, r.length, r.type);
  return { blobs, e820, e820Bytes: encodeE820(e820), acpi, acpiFwCfg: buildFwCfgAcpi(acpi), uuid };
}

/** The MP table may grow into SMBIOS with many vCPUs; refuse instead of overwriting. */
function checkNoOverlap(blobs: readonly GuestBlob[]): void {
  const sorted = [...blobs].sort((a, b) => a.gpa - b.gpa);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (prev.gpa + prev.bytes.length > cur.gpa) {
      throw new FirmwareTablesError(`${prev.name} (${prev.bytes.length} bytes at 0x${prev.gpa.toString(16)}) overlaps ${cur.name} at 0x${cur.gpa.toString(16)}`);
    }
  }
}
