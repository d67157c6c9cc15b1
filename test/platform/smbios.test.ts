// SMBIOS read back by an independent parser written from DSP0134 (§5.2.1 entry point, §6.1 structure
// layout), and, where dmidecode is installed (Debian package dmidecode), decoded by it as well.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'tape';
import {
  buildSmbios,
  smbiosUuidFromName,
  uuidToSmbiosBytes,
  SmbiosError,
  SMBIOS_MAX_LENGTH,
  type SmbiosInput,
} from '../../src/platform/smbios.js';
import { GiB, MiB, SMBIOS_BASE, memoryLayout } from '../../src/vm/memmap.js';

interface Struct {
  type: number;
  handle: number;
  data: Buffer;
  strings: string[];
}

function parse(b: Buffer, base: number) {
  const sum = (x: Buffer): number => x.reduce((s, v) => (s + v) & 0xff, 0);
  const epLen = b[5]!;
  const ep = {
    anchor: b.toString('latin1', 0, 4),
    checksumOk: sum(b.subarray(0, epLen)) === 0,
    intermediateOk: b.toString('latin1', 0x10, 0x15) === '_DMI_' && sum(b.subarray(0x10, 0x1f)) === 0,
    version: `${b[6]}.${b[7]}`,
    maxStruct: b.readUInt16LE(8),
    tableLength: b.readUInt16LE(0x16),
    tableAddr: b.readUInt32LE(0x18),
    count: b.readUInt16LE(0x1c),
    bcd: b[0x1e]!,
  };
  const structs: Struct[] = [];
  let o = ep.tableAddr - base;
  const end = o + ep.tableLength;
  let maxSeen = 0;
  while (o < end) {
    const start = o;
    const len = b[o + 1]!;
    const s: Struct = { type: b[o]!, handle: b.readUInt16LE(o + 2), data: b.subarray(o, o + len), strings: [] };
    o += len;
    if (b[o] === 0 && b[o + 1] === 0) o += 2;
    else {
      while (b[o] !== 0) {
        const z = b.indexOf(0, o);
        s.strings.push(b.toString('latin1', o, z));
        o = z + 1;
      }
      o += 1;
    }
    maxSeen = Math.max(maxSeen, o - start);
    structs.push(s);
  }
  return { ep, structs, consumed: o, maxSeen };
}

const str = (s: Struct, off: number): string | undefined => {
  const i = s.data[off]!;
  return i === 0 ? undefined : s.strings[i - 1];
};

const input = (size: number, over: Partial<SmbiosInput> = {}): SmbiosInput => ({
  memory: memoryLayout(size),
  sockets: 2,
  cores: 2,
  threads: 2,
  uuid: '6ba7b810-9dad-11d1-80b4-00c04fd430c8',
  ...over,
});

test('SMBIOS: entry point and structure table parse back', (t) => {
  const b = buildSmbios(input(8 * GiB));
  const { ep, structs, consumed, maxSeen } = parse(b, SMBIOS_BASE);
  t.equal(ep.anchor, '_SM_');
  t.ok(ep.checksumOk, 'entry point checksum');
  t.ok(ep.intermediateOk, '_DMI_ checksum');
  t.equal(ep.version, '2.6');
  t.equal(ep.bcd, 0x26);
  t.equal(ep.tableAddr, SMBIOS_BASE + 0x1f, 'table follows the entry point');
  t.equal(consumed, b.length, 'table length covers every structure');
  t.equal(ep.count, structs.length, 'structure count');
  t.equal(ep.maxStruct, maxSeen, 'largest structure size');
  t.deepEqual(structs.map((s) => s.type), [0, 1, 2, 3, 4, 4, 16, 17, 19, 19, 32, 127], 'types in bhyve order, type 4 per socket, 19 per RAM range');
  t.equal(new Set(structs.map((s) => s.handle)).size, structs.length, 'handles unique');
  const [bios, sys, board, chassis] = structs;
  t.deepEqual([str(bios!, 4), str(bios!, 5), str(bios!, 8)], ['BHYVE', '14.0', '10/17/2021'], 'BIOS defaults');
  t.equal(bios!.data.readBigUInt64LE(10) & 0x80n, 0x80n, 'PCI supported');
  t.equal(bios!.data[19]! & 0x10, 0x10, 'virtual machine bit');
  t.deepEqual([str(sys!, 4), str(sys!, 5), str(sys!, 6), str(sys!, 7), str(sys!, 25), str(sys!, 26)], ['FreeBSD', 'BHYVE', '1.0', 'None', 'None', 'Virtual Machine']);
  t.deepEqual(sys!.data.subarray(8, 24), uuidToSmbiosBytes('6ba7b810-9dad-11d1-80b4-00c04fd430c8'));
  t.equal(sys!.data.subarray(8, 12).toString('hex'), '10b8a76b', 'time_low stored little-endian');
  t.deepEqual([str(board!, 4), str(board!, 5), str(board!, 10)], ['FreeBSD', 'BHYVE', 'None']);
  t.equal(board!.data.readUInt16LE(11), chassis!.handle, 'baseboard points at the chassis');
  t.equal(str(chassis!, 4), 'FreeBSD');
  const cpus = structs.filter((s) => s.type === 4);
  t.deepEqual(cpus.map((c) => str(c, 4)), ['CPU #0', 'CPU #1'], 'socket designations');
  t.deepEqual(cpus.map((c) => [c.data[35], c.data[37]]), [[2, 4], [2, 4]], 'cores and threads per socket');
  const arr = structs.find((s) => s.type === 16)!;
  t.equal(arr.data.readBigUInt64LE(15), BigInt(8 * GiB), 'array capacity = guest RAM');
  const dev = structs.find((s) => s.type === 17)!;
  t.equal(dev.data.readUInt16LE(4), arr.handle, 'memory device belongs to the array');
  t.equal(dev.data.readUInt16LE(12), 8192, '8 GiB in the MiB size form');
  const maps = structs.filter((s) => s.type === 19);
  t.deepEqual(maps.map((m) => [Number(m.data.readBigUInt64LE(15)), Number(m.data.readBigUInt64LE(23))]), [
    [0, 3 * GiB - 1],
    [4 * GiB, 9 * GiB - 1],
  ], 'lowmem and highmem ranges, inclusive end');
  t.ok(maps.every((m) => m.data.readUInt16LE(12) === arr.handle), 'ranges belong to the array');
  t.end();
});

test('SMBIOS: strings from the config keys; memory size forms; UUID derivation', (t) => {
  const b = buildSmbios(input(256 * MiB, { sockets: 1, strings: { 'bios.vendor': 'ACME', 'system.serial_number': 'SN-42', 'chassis.sku': 'X1' } }));
  const { structs } = parse(b, SMBIOS_BASE);
  t.equal(str(structs[0]!, 4), 'ACME');
  t.equal(str(structs[1]!, 7), 'SN-42');
  t.equal(str(structs[3]!, 21), 'X1');
  t.equal(structs.find((s) => s.type === 17)!.data.readUInt16LE(12), 256, '256 MiB');
  t.equal(structs.filter((s) => s.type === 19).length, 1, 'no highmem range');
  const big = parse(buildSmbios(input(40 * GiB)), SMBIOS_BASE).structs.find((s) => s.type === 17)!;
  t.equal(big.data.readUInt16LE(12), 0x7fff, 'over 32 GiB: size says "see extended size"');
  t.equal(big.data.readUInt32LE(28), 40 * 1024, 'extended size in MiB');

  const u1 = smbiosUuidFromName('vm1', 'host');
  t.equal(u1, smbiosUuidFromName('vm1', 'host'), 'derived UUID is reproducible');
  t.notEqual(u1, smbiosUuidFromName('vm2', 'host'), 'and differs per VM name');
  const raw = uuidToSmbiosBytes(u1);
  t.equal(raw[6]! >> 4, 3, 'version 3 nibble in the stored bytes, as bhyve sets it');
  t.equal(raw[8]! & 0xc0, 0x80, 'RFC 4122 variant');
  t.throws(() => buildSmbios(input(GiB, { uuid: 'not-a-uuid' })), SmbiosError);
  t.throws(() => buildSmbios(input(GiB, { strings: { 'board.asset_tag': '' } })), SmbiosError, 'empty strings refused');
  t.end();
});

test('SMBIOS: tables that would reach the ACPI area are rejected', (t) => {
  const long = 'x'.repeat(200);
  t.throws(() => buildSmbios(input(GiB, { sockets: 64, cores: 1, threads: 1, strings: { 'system.family_name': long } })), /only 5120 fit below the ACPI tables/);
  t.equal(SMBIOS_MAX_LENGTH, 0x1400);
  t.end();
});

test('SMBIOS: dmidecode decodes the tables (when installed)', (t) => {
  const probe = spawnSync('dmidecode', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    t.skip('dmidecode not installed (Debian package dmidecode); the parser above still checks the bytes');
    t.end();
    return;
  }
  const b = buildSmbios(input(4 * GiB, { sockets: 1 }));
  // dmidecode --from-dump treats the file as memory from address 0: move the table to 0x20 as its own
  // --dump-bin does, and fix both checksums for the new address.
  const ep = Buffer.from(b.subarray(0, 0x1f));
  ep.writeUInt32LE(0x20, 0x18);
  ep[0x15] = 0;
  ep[0x15] = (0x100 - ep.subarray(0x10, 0x1f).reduce((s, v) => (s + v) & 0xff, 0)) & 0xff;
  ep[4] = 0;
  ep[4] = (0x100 - ep.reduce((s, v) => (s + v) & 0xff, 0)) & 0xff;
  const dump = Buffer.concat([ep, Buffer.alloc(1), b.subarray(0x1f)]);
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-smbios-'));
  try {
    writeFileSync(join(dir, 'dump.bin'), dump);
    const r = spawnSync('dmidecode', ['--from-dump', join(dir, 'dump.bin')], { encoding: 'utf8' });
    const out = `${r.stdout}${r.stderr}`;
    t.equal(r.status, 0, 'dmidecode exits 0');
    t.notOk(/invalid|corrupt|wrong|truncated|bad/i.test(out), 'no complaints');
    t.ok(/SMBIOS 2\.6 present/.test(out), 'version');
    t.ok(/Vendor: BHYVE/.test(out) && /Release Date: 10\/17\/2021/.test(out), 'BIOS information');
    t.ok(/UUID: 6ba7b810-9dad-11d1-80b4-00c04fd430c8/i.test(out), 'UUID decodes to the configured one');
    t.ok(/Product Name: BHYVE/.test(out) && /Family: Virtual Machine/.test(out), 'system information');
    t.ok(/Socket Designation: CPU #0/.test(out) && /Core Count: 2/.test(out) && /Thread Count: 4/.test(out), 'processor');
    t.ok(/Size: 4 GB/.test(out), 'memory device size');
    t.ok(/Ending Address: 0x000000013FFFFFFF[\s\S]*?Range Size: 1 GB/.test(out), 'highmem range [4 GiB, 5 GiB)');
    t.ok(/End Of Table/.test(out), 'end of table');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});
