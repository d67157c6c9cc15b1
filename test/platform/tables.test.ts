// The top-level builder: which blobs land where, what the switches change, and refusals.
import test from 'tape';
import { buildFirmwareTables, FirmwareTablesError } from '../../src/platform/tables.js';
import { E820Type } from '../../src/platform/e820.js';
import { ACPI_BASE, GiB, MPTABLE_BASE, SMBIOS_BASE, memoryLayout } from '../../src/vm/memmap.js';
import { platform } from './fixtures.js';

test('firmware tables: blobs at 0xF0000, 0xF1000, 0xF2400 without overlap', (t) => {
  const f = buildFirmwareTables(platform());
  t.deepEqual(f.blobs.map((b) => [b.name, b.gpa]), [
    ['mptable', MPTABLE_BASE],
    ['smbios', SMBIOS_BASE],
    ['acpi', ACPI_BASE],
  ]);
  const acpi = f.blobs.find((b) => b.name === 'acpi')!;
  t.equal(acpi.bytes.toString('latin1', 0, 8), 'RSD PTR ', 'the ACPI blob starts with the RSDP');
  t.equal(acpi.gpa + acpi.bytes.length, f.acpi.end, 'and ends with the last table');
  t.ok(f.blobs.every((b) => b.gpa + b.bytes.length <= 0x10_0000), 'all below 1 MiB');
  t.deepEqual(f.e820Bytes.length, f.e820.length * 20, 'packed E820 matches the entries');
  t.equal(f.acpi.tables.length, 10, 'every ACPI table is offered for fw_cfg');
  t.end();
});

test('firmware tables: x86.mptable=false, acpi_tables_in_memory=false, reservations', (t) => {
  const f = buildFirmwareTables(
    platform({
      mptable: false,
      acpiTablesInMemory: false,
      e820Reservations: [{ base: 0x7000_0000, length: 0x1000, type: E820Type.Reserved }],
    }),
  );
  t.deepEqual(f.blobs.map((b) => b.name), ['smbios'], 'only SMBIOS goes to memory');
  t.equal(f.acpi.tables[0]!.signature, 'RSD PTR ', 'ACPI still built for fw_cfg');
  t.ok(f.e820.some((e) => e.base === 0x7000_0000 && e.type === E820Type.Reserved), 'device reservation in the map');
  t.end();
});

test('firmware tables: UUID from config or derived; refusals', (t) => {
  const given = buildFirmwareTables(platform({ uuid: '01234567-89ab-cdef-0123-456789abcdef' }));
  t.equal(given.uuid, '01234567-89ab-cdef-0123-456789abcdef');
  const derived = buildFirmwareTables(platform());
  t.equal(derived.uuid, buildFirmwareTables(platform()).uuid, 'derived UUID is stable');
  t.notEqual(derived.uuid, buildFirmwareTables(platform({ vmName: 'other' })).uuid, 'and depends on the VM name');
  t.throws(() => buildFirmwareTables(platform({ ncpus: 3, topology: { sockets: 1, cores: 2, threads: 1 } })), FirmwareTablesError, 'topology must multiply to ncpus');
  // With many vCPUs the MP table outgrows its 4 KiB before SMBIOS: refused rather than overwritten.
  const many = platform({ ncpus: 200, topology: { sockets: 1, cores: 200, threads: 1 } });
  t.throws(() => buildFirmwareTables(many), /mptable .* overlaps smbios/);
  t.doesNotThrow(() => buildFirmwareTables({ ...many, mptable: false }), 'fine without the MP table');
  const twoBuses = platform();
  const bus1 = { ...twoBuses.pciBuses[0]!, bus: 1 };
  t.throws(() => buildFirmwareTables({ ...twoBuses, pciBuses: [...twoBuses.pciBuses, bus1] }), /multiple PCI hierarchies/);
  t.equal(buildFirmwareTables({ ...twoBuses, memory: memoryLayout(8 * GiB), pciBuses: [...twoBuses.pciBuses, bus1], mptable: false }).blobs.length, 2);
  t.end();
});
