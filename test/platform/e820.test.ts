// The E820 map for the sizes bhyve users pick most, compared with bhyve's e820.c result, plus device
// reservations and the packed 20-byte encoding.
import test from 'tape';
import { E820Error, E820Type, e820AllocHighest, e820FromLayout, e820Reserve, encodeE820 } from '../../src/platform/e820.js';
import { GiB, MiB, memoryLayout } from '../../src/vm/memmap.js';

const RAM = E820Type.Ram;

test('E820: maps for 256 MiB, 3 GiB, 4 GiB and 8 GiB', (t) => {
  t.deepEqual(e820FromLayout(memoryLayout(256 * MiB)), [
    { base: 0, length: 0xa0000, type: RAM },
    { base: 0x100000, length: 256 * MiB - 0x100000, type: RAM },
  ], '256 MiB: low RAM only, VGA and ROM holes removed');
  t.deepEqual(e820FromLayout(memoryLayout(3 * GiB)), [
    { base: 0, length: 0xa0000, type: RAM },
    { base: 0x100000, length: 3 * GiB - 0x100000, type: RAM },
  ], '3 GiB: exactly the lowmem limit, no highmem');
  t.deepEqual(e820FromLayout(memoryLayout(4 * GiB)), [
    { base: 0, length: 0xa0000, type: RAM },
    { base: 0x100000, length: 3 * GiB - 0x100000, type: RAM },
    { base: 4 * GiB, length: 1 * GiB, type: RAM },
  ], '4 GiB: 1 GiB above 4 GiB');
  t.deepEqual(e820FromLayout(memoryLayout(8 * GiB)), [
    { base: 0, length: 0xa0000, type: RAM },
    { base: 0x100000, length: 3 * GiB - 0x100000, type: RAM },
    { base: 4 * GiB, length: 5 * GiB, type: RAM },
  ], '8 GiB: 5 GiB above 4 GiB');
  for (const size of [256 * MiB, 3 * GiB, 4 * GiB, 8 * GiB]) {
    const m = e820FromLayout(memoryLayout(size));
    t.equal(m.reduce((s, e) => s + e.length, 0), size - 0x60000, `${size / MiB} MiB: RAM total is the size less the 384 KiB hole`);
    t.ok(m.every((e, i) => i === 0 || m[i - 1]!.base + m[i - 1]!.length <= e.base), 'sorted, no overlap');
    t.ok(m.every((e) => e.base + e.length <= 0xf0000 || e.base >= 0x100000), 'the BIOS-area tables are outside RAM');
  }
  t.throws(() => e820FromLayout(memoryLayout(MiB)), E820Error, '1 MiB guests are refused');
  t.end();
});

test('E820: reservations split RAM; encoding is 20 bytes per entry', (t) => {
  const base = e820FromLayout(memoryLayout(2 * GiB));
  const m = e820Reserve(base, 0x4000_0000, 0x1000, E820Type.Reserved);
  t.deepEqual(m.slice(1), [
    { base: 0x100000, length: 0x4000_0000 - 0x100000, type: RAM },
    { base: 0x4000_0000, length: 0x1000, type: E820Type.Reserved },
    { base: 0x4000_1000, length: 2 * GiB - 0x4000_1000, type: RAM },
  ], 'inside a RAM entry: split in three');
  t.equal(base.length, 2, 'the input map is untouched');
  t.deepEqual(e820Reserve(base, 0, 0x1000, E820Type.Nvs).slice(0, 2), [
    { base: 0, length: 0x1000, type: E820Type.Nvs },
    { base: 0x1000, length: 0xa0000 - 0x1000, type: RAM },
  ], 'at the start of a RAM entry');
  t.throws(() => e820Reserve(base, 0x9f000, 0x2000, E820Type.Reserved), E820Error, 'crossing into the VGA hole');
  t.throws(() => e820Reserve(base, 0xc0000, 0x1000, E820Type.Reserved), E820Error, 'inside a hole');
  const hi = e820AllocHighest(base, 2 * GiB, 0x1000, 0x1000, E820Type.Acpi);
  t.equal(hi.base, 2 * GiB - 0x1000, 'highest allocation sits at the top of lowmem');
  t.deepEqual(hi.map.at(-1), { base: 2 * GiB - 0x1000, length: 0x1000, type: E820Type.Acpi });
  t.throws(() => e820AllocHighest(base, 0x1000, 0x2000, 0x1000, E820Type.Reserved), E820Error, 'no room');

  const bytes = encodeE820(e820FromLayout(memoryLayout(8 * GiB)));
  t.equal(bytes.length, 3 * 20);
  t.equal(bytes.readBigUInt64LE(40), BigInt(4 * GiB), 'third entry base');
  t.equal(bytes.readBigUInt64LE(48), BigInt(5 * GiB), 'third entry length');
  t.equal(bytes.readUInt32LE(56), 1, 'type RAM');
  t.end();
});
