// The MP table read back by an independent parser written from the MP spec 1.4 (§4.1-§4.3).
import test from 'tape';
import { buildMpTable, MpTableError, type MpTableInput } from '../../src/platform/mptable.js';
import { MPTABLE_BASE } from '../../src/vm/memmap.js';

interface Parsed {
  pointer: { physAddr: number; length: number; specRev: number; checksumOk: boolean; feature1: number };
  header: { signature: string; length: number; specRev: number; checksumOk: boolean; oem: string; product: string; count: number; lapic: number };
  processors: { apicId: number; flags: number }[];
  buses: { id: number; type: string }[];
  ioapics: { id: number; version: number; flags: number; addr: number }[];
  ioints: { type: number; flags: number; bus: number; irq: number; apic: number; pin: number }[];
  localints: { type: number; apic: number; lint: number }[];
}

function parse(b: Buffer, base: number): Parsed {
  const sum = (x: Buffer): number => x.reduce((s, v) => (s + v) & 0xff, 0);
  if (b.toString('latin1', 0, 4) !== '_MP_') throw new Error('no floating pointer');
  const fpLen = b[8]! * 16;
  const pointer = { physAddr: b.readUInt32LE(4), length: b[8]!, specRev: b[9]!, checksumOk: sum(b.subarray(0, fpLen)) === 0, feature1: b[11]! };
  const h = b.subarray(pointer.physAddr - base);
  const length = h.readUInt16LE(4);
  const header = {
    signature: h.toString('latin1', 0, 4),
    length,
    specRev: h[6]!,
    checksumOk: sum(h.subarray(0, length)) === 0,
    oem: h.toString('latin1', 8, 16),
    product: h.toString('latin1', 16, 28),
    count: h.readUInt16LE(34),
    lapic: h.readUInt32LE(36),
  };
  const p: Parsed = { pointer, header, processors: [], buses: [], ioapics: [], ioints: [], localints: [] };
  let o = 44;
  let lastType = -1;
  for (let i = 0; i < header.count; i++) {
    const type = h[o]!;
    if (type < lastType) throw new Error('entries not sorted by type');
    lastType = type;
    switch (type) {
      case 0:
        p.processors.push({ apicId: h[o + 1]!, flags: h[o + 3]! });
        o += 20;
        break;
      case 1:
        p.buses.push({ id: h[o + 1]!, type: h.toString('latin1', o + 2, o + 8) });
        o += 8;
        break;
      case 2:
        p.ioapics.push({ id: h[o + 1]!, version: h[o + 2]!, flags: h[o + 3]!, addr: h.readUInt32LE(o + 4) });
        o += 8;
        break;
      case 3:
        p.ioints.push({ type: h[o + 1]!, flags: h.readUInt16LE(o + 2), bus: h[o + 4]!, irq: h[o + 5]!, apic: h[o + 6]!, pin: h[o + 7]! });
        o += 8;
        break;
      case 4:
        p.localints.push({ type: h[o + 1]!, apic: h[o + 6]!, lint: h[o + 7]! });
        o += 8;
        break;
      default:
        throw new Error(`unknown entry type ${type}`);
    }
  }
  if (o !== length) throw new Error(`entries end at ${o}, header says ${length}`);
  return p;
}

const input = (ncpus: number): MpTableInput => ({
  ncpus,
  ioapicId: 0,
  pciBuses: [0],
  intx: [
    { bus: 0, slot: 4, pin: 2, gsi: 21 },
    { bus: 0, slot: 3, pin: 1, gsi: 16 },
  ],
  sciIrq: 9,
});

test('MP table: pointer, header and entries parse back with valid checksums', (t) => {
  for (const ncpus of [1, 2, 16]) {
    const p = parse(buildMpTable(input(ncpus)), MPTABLE_BASE);
    t.ok(p.pointer.checksumOk && p.header.checksumOk, `${ncpus} CPUs: both checksums`);
    t.equal(p.pointer.physAddr, MPTABLE_BASE + 16, 'config table right after the pointer');
    t.equal(p.pointer.specRev, 4, 'MP spec 1.4');
    t.equal(p.pointer.feature1, 0, 'no default configuration: the table is present');
    t.equal(p.header.signature, 'PCMP');
    t.equal(p.header.oem, 'BHyVe   ');
    t.equal(p.header.lapic, 0xfee0_0000);
    t.equal(p.processors.length, ncpus, 'one processor entry per vCPU');
    t.deepEqual(p.processors.map((x) => x.apicId), [...Array(ncpus).keys()], 'APIC IDs 0..n-1');
    t.deepEqual(p.processors.map((x) => x.flags), [3, ...Array(ncpus - 1).fill(1)], 'all enabled, vCPU 0 is the BSP');
    t.deepEqual(p.buses, [{ id: 0, type: 'PCI   ' }, { id: 1, type: 'ISA   ' }]);
    t.deepEqual(p.ioapics, [{ id: 0, version: 0x11, flags: 1, addr: 0xfec0_0000 }]);
    t.equal(p.ioints.length, 16 + 2, '16 ISA pins plus one per PCI INTx');
    t.deepEqual(p.ioints[0], { type: 3, flags: 0, bus: 1, irq: 0, apic: 0, pin: 0 }, 'pin 0 ExtINT');
    t.deepEqual(p.ioints[2], { type: 0, flags: 0, bus: 1, irq: 0, apic: 0, pin: 2 }, 'IRQ 0 on pin 2');
    t.deepEqual(p.ioints[9], { type: 0, flags: 0xf, bus: 1, irq: 9, apic: 0, pin: 9 }, 'SCI level, active-low');
    t.deepEqual(p.ioints[4], { type: 0, flags: 0, bus: 1, irq: 4, apic: 0, pin: 4 }, 'COM1 identity-mapped');
    t.deepEqual(p.ioints.slice(16), [
      { type: 0, flags: 0, bus: 0, irq: (3 << 2) | 0, apic: 0, pin: 16 },
      { type: 0, flags: 0, bus: 0, irq: (4 << 2) | 1, apic: 0, pin: 21 },
    ], 'PCI INTx: device in bits 6:2, pin in 1:0, sorted by slot');
    t.deepEqual(p.localints, [{ type: 3, apic: 0xff, lint: 0 }, { type: 1, apic: 0xff, lint: 1 }], 'LINT0 ExtINT, LINT1 NMI');
  }
  t.end();
});

test('MP table: refuses PCI buses other than 0 and bad vCPU counts', (t) => {
  t.throws(() => buildMpTable({ ...input(1), pciBuses: [0, 1] }), MpTableError);
  t.throws(() => buildMpTable({ ...input(1), intx: [{ bus: 2, slot: 0, pin: 1, gsi: 16 }] }), /x86\.mptable=false/);
  t.throws(() => buildMpTable(input(0)), MpTableError);
  t.end();
});
