// The fw_cfg table-loader script run by a small firmware model written from QEMU's linker/loader command
// format: allocate the two files, apply ADD_POINTER, then ADD_CHECKSUM. Placed where the in-memory tables
// are, the result must equal them byte for byte; placed anywhere else, every pointer and checksum must hold.
import test from 'tape';
import { acpiImage, buildAcpiTables } from '../../src/platform/acpi/index.js';
import { FWCFG_LOADER_FILE, FWCFG_RSDP_FILE, FWCFG_TABLES_FILE, buildFwCfgAcpi } from '../../src/platform/acpi/loader.js';
import { buildFirmwareTables } from '../../src/platform/tables.js';
import { platform } from './fixtures.js';

const cstr = (b: Buffer, off: number): string => b.toString('latin1', off, b.indexOf(0, off));

function runLoader(files: Map<string, Buffer>, script: Buffer, place: (file: string, zone: number, align: number) => number): Map<string, number> {
  const addr = new Map<string, number>();
  for (let o = 0; o < script.length; o += 128) {
    const e = script.subarray(o, o + 128);
    const cmd = e.readUInt32LE(0);
    if (cmd === 1) {
      const file = cstr(e, 4);
      const a = place(file, e[64]!, e.readUInt32LE(60));
      if (a % e.readUInt32LE(60) !== 0) throw new Error('misaligned allocation');
      addr.set(file, a);
    } else if (cmd === 2) {
      const dest = files.get(cstr(e, 4))!;
      const src = addr.get(cstr(e, 60))!;
      const off = e.readUInt32LE(116);
      const size = e[120]!;
      if (size === 4) dest.writeUInt32LE(dest.readUInt32LE(off) + src, off);
      else if (size === 8) dest.writeBigUInt64LE(dest.readBigUInt64LE(off) + BigInt(src), off);
      else throw new Error(`pointer size ${size}`);
    } else if (cmd === 3) {
      const f = files.get(cstr(e, 4))!;
      const off = e.readUInt32LE(60);
      const start = e.readUInt32LE(64);
      const len = e.readUInt32LE(68);
      const sum = f.subarray(start, start + len).reduce((s, v) => (s + v) & 0xff, 0);
      f[off] = (f[off]! - sum) & 0xff;
    } else throw new Error(`unknown loader command ${cmd}`);
  }
  return addr;
}

test('table loader: reproduces the in-memory tables, and relocates anywhere', (t) => {
  const a = buildAcpiTables({
    ncpus: 4,
    ioapicId: 0,
    hpetCapabilities: 0x8086_a201,
    spcr: { iobase: 0x3f8, irq: 4 },
    dsdt: { fwcfg: 'qemu', buses: [{ bus: 0, intx: [] }], lpc: { slot: 31, func: 0, comPorts: [] } },
  });
  const fw = buildFwCfgAcpi(a);
  t.equal(fw.loader.length % 128, 0, 'whole 128-byte commands');
  const img = acpiImage(a);
  const rsdt = a.tables[1]!.gpa;
  const blobBase = Math.floor(rsdt / 64) * 64;

  const same = new Map([[FWCFG_RSDP_FILE, Buffer.from(fw.rsdp)], [FWCFG_TABLES_FILE, Buffer.from(fw.tables)]]);
  const zones = new Map<string, number>();
  runLoader(same, fw.loader, (file, zone) => {
    zones.set(file, zone);
    return file === FWCFG_RSDP_FILE ? a.rsdp : blobBase;
  });
  t.deepEqual(zones.get(FWCFG_RSDP_FILE), 2, 'RSDP in the F-segment');
  t.deepEqual(zones.get(FWCFG_TABLES_FILE), 1, 'tables anywhere (high)');
  t.deepEqual(same.get(FWCFG_RSDP_FILE), a.tables[0]!.bytes, 'RSDP identical to the in-memory one');
  t.deepEqual(same.get(FWCFG_TABLES_FILE)!.subarray(rsdt - blobBase), img.subarray(rsdt - a.rsdp), 'tables identical to the in-memory image');

  const moved = new Map([[FWCFG_RSDP_FILE, Buffer.from(fw.rsdp)], [FWCFG_TABLES_FILE, Buffer.from(fw.tables)]]);
  const at = runLoader(moved, fw.loader, (file) => (file === FWCFG_RSDP_FILE ? 0xe_0010 : 0x7ff0_0000));
  const tb = moved.get(FWCFG_TABLES_FILE)!;
  const rs = moved.get(FWCFG_RSDP_FILE)!;
  const sum = (b: Buffer): number => b.reduce((s, v) => (s + v) & 0xff, 0);
  t.equal(sum(rs.subarray(0, 20)), 0, 'RSDP checksum after relocation');
  t.equal(sum(rs), 0, 'RSDP extended checksum after relocation');
  t.equal(Number(rs.readBigUInt64LE(24)), at.get(FWCFG_TABLES_FILE)! + (a.tables[2]!.gpa - blobBase), 'RSDP points at the relocated XSDT');
  for (const x of a.tables.slice(1)) {
    const off = x.gpa - blobBase;
    const bytes = tb.subarray(off, off + x.bytes.length);
    if (x.signature !== 'FACS') t.equal(sum(bytes), 0, `${x.signature} checksum after relocation`);
    for (const p of x.pointers) {
      const target = a.tables.find((y) => y.signature === p.target)!;
      const v = p.size === 4 ? bytes.readUInt32LE(p.offset) : Number(bytes.readBigUInt64LE(p.offset));
      t.equal(v, 0x7ff0_0000 + (target.gpa - blobBase), `${x.signature}+${p.offset} -> relocated ${p.target}`);
    }
  }
  t.equal(FWCFG_LOADER_FILE, 'etc/table-loader');
  t.end();
});

test('table loader: offered by the top-level builder', (t) => {
  const f = buildFirmwareTables(platform({ fwcfg: 'qemu', acpiTablesInMemory: false }));
  t.equal(f.acpiFwCfg.rsdp.toString('latin1', 0, 8), 'RSD PTR ');
  t.equal(f.acpiFwCfg.tables.toString('latin1', f.acpi.tables[1]!.gpa % 64, (f.acpi.tables[1]!.gpa % 64) + 4), 'RSDT', 'the RSDT keeps its offset from the 64-byte boundary');
  t.ok(f.acpi.tables.filter((x) => x.signature === 'FACS').every((x) => (x.gpa - Math.floor(f.acpi.tables[1]!.gpa / 64) * 64) % 64 === 0), 'FACS 64-byte aligned inside the blob');
  t.ok(f.acpiFwCfg.loader.length >= 128 * 2, 'allocations at least');
  t.end();
});
