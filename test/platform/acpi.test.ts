// Every ACPI table is disassembled by iasl (no warnings allowed), data tables are recompiled from that
// disassembly and must come back byte-identical, and the DSDT is recompiled and executed in acpiexec.
import test from 'tape';
import { buildAcpiTables, acpiImage, type AcpiInput, type AcpiTables, type IntxRoute } from '../../src/platform/acpi/index.js';
import { ACPI_BASE } from '../../src/vm/memmap.js';
import { ACPICA_MISSING, Workdir, haveAcpica, problems } from './acpica.js';

const acpica = haveAcpica();

function input(ncpus: number, over: Partial<AcpiInput['dsdt']> = {}): AcpiInput {
  return {
    ncpus,
    ioapicId: 0,
    hpetCapabilities: 0x8086_a201,
    spcr: { iobase: 0x3f8, irq: 4 },
    dsdt: {
      fwcfg: 'bhyve',
      buses: [
        {
          bus: 0,
          windows: {
            io: { base: 0x2000, limit: 0x2080 },
            mem32: { base: 0xc000_0000, limit: 0xc020_0000 },
            mem64: { base: 0x8_0000_0000, limit: 0x8_2000_0000 },
          },
          intx: [
            { slot: 3, pin: 1, pirqLink: 1, gsi: 16 },
            { slot: 4, pin: 2, pirqLink: 6, gsi: 21 },
          ],
        },
      ],
      lpc: { slot: 31, func: 0, comPorts: [{ name: 'COM1', iobase: 0x3f8, irq: 4 }] },
      ...over,
    },
  };
}

const fileName = (sig: string): string => (sig === 'RSD PTR ' ? 'rsdp' : sig.toLowerCase());
const get = (t: AcpiTables, sig: string) => t.tables.find((x) => x.signature === sig)!;
const sum8 = (b: Uint8Array): number => b.reduce((s, x) => (s + x) & 0xff, 0);

/** A disassembled data-table field, e.g. field(dsl, 'SCI Interrupt') -> '0009'. */
function fields(dsl: string, label: string): string[] {
  const re = new RegExp(`^\\[[0-9A-F]+h [0-9]+ +[0-9]+\\] +${label.replace(/[()]/g, '\\$&')} : (.*)$`, 'gm');
  return [...dsl.matchAll(re)].map((m) => m[1]!.trim());
}

test('ACPI: layout from 0xF2400 in bhyve order, aligned, checksums valid', (t) => {
  const a = buildAcpiTables(input(2));
  t.deepEqual(a.tables.map((x) => x.signature), ['RSD PTR ', 'RSDT', 'XSDT', 'FACP', 'APIC', 'HPET', 'MCFG', 'FACS', 'SPCR', 'DSDT']);
  t.equal(a.rsdp, ACPI_BASE, 'RSDP at BHYVE_ACPI_BASE');
  for (const tb of a.tables) {
    t.equal(tb.gpa % (tb.signature === 'FACS' ? 64 : 16), 0, `${tb.signature} aligned`);
    if (tb.signature === 'RSD PTR ') {
      t.equal(sum8(tb.bytes.subarray(0, 20)), 0, 'RSDP v1 checksum');
      t.equal(sum8(tb.bytes), 0, 'RSDP extended checksum');
    } else if (tb.signature !== 'FACS') {
      t.equal(sum8(tb.bytes), 0, `${tb.signature} checksum`);
      t.equal(tb.bytes.readUInt32LE(4), tb.bytes.length, `${tb.signature} length field`);
    }
    for (const c of tb.checksums) t.equal(sum8(tb.bytes.subarray(c.start, c.start + c.length)), 0, `${tb.signature} checksum at ${c.offset} holds`);
    t.equal(tb.checksums.length, tb.signature === 'FACS' ? 0 : tb.signature === 'RSD PTR ' ? 2 : 1, `${tb.signature} checksum count`);
    for (const p of tb.pointers) {
      const v = p.size === 4 ? tb.bytes.readUInt32LE(p.offset) : Number(tb.bytes.readBigUInt64LE(p.offset));
      t.equal(v, get(a, p.target).gpa, `${tb.signature}+${p.offset} points at ${p.target}`);
    }
  }
  const img = acpiImage(a);
  t.ok(a.end <= 0x10_0000, 'ends below 1 MiB');
  t.deepEqual(img.subarray(get(a, 'DSDT').gpa - ACPI_BASE), get(a, 'DSDT').bytes, 'image holds the DSDT at its address');
  t.end();
});

test('ACPI: a DSDT too large for the BIOS area is rejected', (t) => {
  const intx: IntxRoute[] = [];
  for (let slot = 0; slot < 32; slot++) for (let pin = 1; pin <= 4; pin++) intx.push({ slot, pin, pirqLink: 1 + ((slot + pin) % 8), gsi: 16 + ((slot + pin) % 8) });
  const w = { io: { base: 0x2000, limit: 0x3000 }, mem32: { base: 0xc000_0000, limit: 0xc100_0000 }, mem64: { base: 0x8_0000_0000, limit: 0x9_0000_0000 } };
  const buses = Array.from({ length: 200 }, (_, bus) => ({ bus, windows: w, intx }));
  t.throws(() => buildAcpiTables(input(2, { buses })), /past 0x100000/);
  t.end();
});

test('ACPI: iasl disassembles every table without warnings; data tables recompile byte-identical', { skip: false }, (t) => {
  if (!acpica) {
    t.fail(ACPICA_MISSING);
    t.end();
    return;
  }
  for (const ncpus of [1, 2, 16]) {
    const a = buildAcpiTables(input(ncpus));
    const w = new Workdir();
    try {
      for (const tb of a.tables) {
        const name = fileName(tb.signature);
        if (name === 'rsdp') continue; // iasl 2020 cannot disassemble a lone RSDP; checked by compiling below
        const { dsl, run } = w.disassemble(name, tb.bytes);
        t.deepEqual(problems(run.output), [], `${ncpus} CPUs: iasl -d ${tb.signature} is clean`);
        t.ok(dsl.length > 0, `${tb.signature} disassembled`);
        t.deepEqual(problems(dsl), [], `${tb.signature} disassembly carries no warning comments`);
        if (name === 'dsdt') continue;
        // Recompiling the disassembly must give back our bytes (iasl rewrites only the creator fields
        // and, with them, the checksum).
        const c = w.compile(`${name}.dsl`);
        t.deepEqual(problems(c.output), [], `${tb.signature} recompiles cleanly`);
        const back = w.readBytes(`${name}.aml`);
        t.equal(back.length, tb.bytes.length, `${tb.signature} recompiled length`);
        const strip = (b: Buffer): Buffer => {
          const c2 = Buffer.from(b);
          if (tb.signature !== 'FACS') {
            c2.fill(0, 28, 36);
            c2[9] = 0;
          }
          return c2;
        };
        t.deepEqual(strip(back), strip(tb.bytes), `${tb.signature} recompiles to the same bytes`);
      }
      if (ncpus === 2) {
        const fadt = w.read('facp.dsl');
        t.deepEqual(fields(fadt, 'PM1A Event Block Address'), ['00000400']);
        t.deepEqual(fields(fadt, 'PM1A Control Block Address'), ['00000404']);
        t.deepEqual(fields(fadt, 'PM Timer Block Address'), ['00000408']);
        t.deepEqual(fields(fadt, 'GPE0 Block Address'), ['0000040C']);
        t.deepEqual(fields(fadt, 'SCI Interrupt'), ['0009']);
        t.deepEqual(fields(fadt, 'SMI Command Port'), ['000000B2']);
        t.deepEqual(fields(fadt, 'ACPI Enable Value'), ['A0']);
        t.deepEqual(fields(fadt, 'ACPI Disable Value'), ['A1']);
        t.deepEqual(fields(fadt, 'RTC Century Index'), ['32']);
        t.deepEqual(fields(fadt, 'Value to cause reset'), ['06']);
        t.ok(/Reset Register[\s\S]*?Space ID : 01 \[SystemIO\][\s\S]*?Address : 0000000000000CF9/.test(fadt), 'reset register is I/O port 0xCF9');
        t.ok(/Headless - No Video \(V3\) : 1/.test(fadt), 'headless');
        t.ok(/Use APIC Physical Destination Mode \(V4\) : 1/.test(fadt), 'physical APIC destination mode');
        t.ok(/VGA Not Present \(V4\) : 1/.test(fadt) && /PCIe ASPM Not Supported \(V4\) : 1/.test(fadt), 'no VGA, no ASPM');
        t.ok(/32-bit PM Timer \(V1\) : 1/.test(fadt), '32-bit PM timer');
        t.deepEqual(fields(w.read('hpet.dsl'), 'Address'), ['00000000FED00000']);
        t.deepEqual(fields(w.read('mcfg.dsl'), 'Base Address'), ['00000000E0000000']);
        t.deepEqual(fields(w.read('mcfg.dsl'), 'End Bus Number'), ['FF']);
        t.deepEqual(fields(w.read('spcr.dsl'), 'PCAT-compatible IRQ'), ['04']);
        t.deepEqual(fields(w.read('spcr.dsl'), 'Baud Rate'), ['07']);
        t.deepEqual(fields(w.read('xsdt.dsl'), 'ACPI Table Address   0'), [`00000000000${get(a, 'FACP').gpa.toString(16).toUpperCase()}`], 'FADT first in the XSDT');
      }
      const madt = w.read('apic.dsl');
      t.equal((madt.match(/Subtable Type : 00 \[Processor Local APIC\]/g) ?? []).length, ncpus, `MADT has ${ncpus} local APICs`);
      t.equal((madt.match(/Subtable Type : 01 \[I\/O APIC\]/g) ?? []).length, 1, 'one I/O APIC');
      t.deepEqual(fields(madt, 'Address'), ['FEC00000']);
      t.deepEqual(fields(madt, 'Interrupt'), ['00000000', '00000002', '00000009'], 'IOAPIC GSI base 0, IRQ0->GSI2, SCI GSI 9');
      t.deepEqual(fields(madt, 'Flags (decoded below)').slice(-3), ['0005', '000F', '0005'], 'IRQ0 edge/high, SCI level/low, NMI edge/high');
      t.deepEqual(fields(madt, 'Interrupt Input LINT'), ['01'], 'NMI on LINT1');

      // The RSDP: recompile a data-table source of its disassembled fields and compare.
      const rsdp = get(a, 'RSD PTR ').bytes;
      w.write(
        'rsdp.dsl',
        Buffer.from(
          [
            '[0008] Signature : "RSD PTR "',
            '[0001] Checksum : 00',
            '[0006] Oem ID : "BHYVE "',
            '[0001] Revision : 02',
            `[0004] RSDT Address : ${rsdp.readUInt32LE(16).toString(16).padStart(8, '0')}`,
            '[0004] Length : 00000024',
            `[0008] XSDT Address : ${rsdp.readBigUInt64LE(24).toString(16).padStart(16, '0')}`,
            '[0001] Extended Checksum : 00',
            '[0003] Reserved : 000000',
            '',
          ].join('\n'),
        ),
      );
      const rc = w.compile('rsdp.dsl');
      t.deepEqual(problems(rc.output), [], 'RSDP source compiles');
      t.deepEqual(w.readBytes('rsdp.aml'), rsdp, 'iasl computes the same RSDP bytes and both checksums');
    } finally {
      w.remove();
    }
  }
  t.end();
});

test('ACPI: the DSDT disassembles, recompiles and runs in acpiexec', (t) => {
  if (!acpica) {
    t.fail(ACPICA_MISSING);
    t.end();
    return;
  }
  for (const fwcfg of ['bhyve', 'qemu'] as const) {
    const a = buildAcpiTables(input(2, { fwcfg }));
    const w = new Workdir();
    try {
      const { dsl: raw, run } = w.disassemble('dsdt', get(a, 'DSDT').bytes);
      t.deepEqual(problems(run.output), [], `${fwcfg}: iasl -d DSDT is clean`);
      const dsl = raw.replace(/\/\/[^\n]*/g, ''); // drop iasl's explanatory comments
      const c = w.compile('dsdt.dsl');
      t.deepEqual(problems(c.output), [], 'the disassembly recompiles without errors, warnings or remarks');
      t.ok(/0 Errors, 0 Warnings, 0 Remarks/.test(c.output), 'iasl reports a clean compile');

      t.ok(/Name \(_S5, Package \(0x02\)\s*\{\s*0x05,\s*Zero\s*\}\)/.test(dsl), '_S5 is {5, 0}');
      t.ok(/Device \(PC00\)[\s\S]*?_HID, EisaId \("PNP0A03"\)/.test(dsl), 'PC00 is a PNP0A03 root bridge');
      const crs = /Device \(PC00\)[\s\S]*?Name \(_CRS, ResourceTemplate \(\)[^]*?\}\)/.exec(dsl)?.[0] ?? '';
      t.ok(/IO \(Decode16,\s*0x0CF8,\s*0x0CF8,\s*0x01,\s*0x08,/.test(crs), '_CRS claims 0xCF8-0xCFF');
      t.ok(/WordIO [^\n]*\n\s*0x0000,[^\n]*\n\s*0x0D00,[^\n]*\n\s*0x1FFF,/.test(crs), '_CRS has the ISA window 0x0D00-0x1FFF');
      t.ok(/WordIO [^\n]*\n\s*0x0000,[^\n]*\n\s*0x2000,[^\n]*\n\s*0x207F,/.test(crs), '_CRS has the bus I/O window');
      t.ok(/DWordMemory [^\n]*\n[^\n]*\n\s*0xC0000000,[^\n]*\n\s*0xC01FFFFF,/.test(crs), '_CRS has the 32-bit window');
      t.ok(/QWordMemory [^\n]*\n[^\n]*\n\s*0x0000000800000000,[^\n]*\n\s*0x000000081FFFFFFF,/.test(crs), '_CRS has the 64-bit window');
      t.ok(/WordBusNumber [^\n]*\n[^\n]*\n\s*0x0000,[^\n]*\n\s*0x0000,/.test(crs), '_CRS has bus range 0-0');
      for (const hid of ['PNP0000', 'PNP0100', 'PNP0B00', 'PNP0501', 'PNP0C02', 'PNP0C0F', 'PNP0103', 'PNP0303']) {
        t.ok(dsl.includes(`EisaId ("${hid}")`), `${hid} present`);
      }
      t.equal((dsl.match(/Device \(LNK[A-H]\)/g) ?? []).length, 8, 'eight PIRQ links');
      t.ok(/Memory32Fixed \(ReadWrite,\s*0xE0000000,\s*0x10000000,/.test(dsl), 'SIO reserves ECAM');
      t.ok(/IO \(Decode16,\s*0x0400,\s*0x0400,\s*0x01,\s*0x10,/.test(dsl), 'SIO reserves 0x400-0x40F');
      t.equal(dsl.includes('"QEMU0002"'), fwcfg === 'qemu', 'fw_cfg device only with lpc.fwcfg=qemu');

      // Execute it: _PRT in both interrupt models, the link devices and the validity helper.
      w.write('dsdt.aml.bin', get(a, 'DSDT').bytes);
      const x = w.acpiexec(
        [
          'evaluate \\_S5',
          'evaluate \\_SB.PC00._PRT',
          'evaluate \\_PIC 1',
          'evaluate \\_SB.PC00._PRT',
          'evaluate \\_SB.PC00.ISA.PIRV 0x0B',
          'evaluate \\_SB.PC00.ISA.PIRV 0x8B',
          'evaluate \\_SB.PC00.ISA.PIRV 0x0D',
          'evaluate \\_SB.PC00.ISA.LNKA._STA',
          'evaluate \\_SB.PC00.ISA.LNKA._CRS',
          'evaluate \\_SB.PC00.ISA.LNKA._PRS',
          'evaluate \\_SB.PC00.ISA.COM1._CRS',
        ],
        ['dsdt.aml.bin'],
      );
      const out = x.output;
      t.ok(/DSDT.*BHYVE.*BVDSDT/.test(out), 'acpiexec loads the table');
      t.notOk(/AE_[A-Z_]+/.test(out.replace(/AE_OK/g, '')), 'no ACPICA exception while loading or evaluating');
      const prts = out.split('Evaluation of \\_SB.PC00._PRT').slice(1);
      t.equal(prts.length, 2, '_PRT evaluated twice');
      t.ok(/Name LNKA Device/.test(prts[0]!) && /Name LNKF Device/.test(prts[0]!), 'PIC mode routes through LNKA and LNKF');
      t.ok(/0000000000000015/.test(prts[1]!) && !/LNKA/.test(prts[1]!.split('Evaluating')[0]!), 'APIC mode names GSI 21 directly');
      const ints = [...out.matchAll(/Evaluation of \\_SB\.PC00\.ISA\.PIRV returned[^\n]*\n\s*\[Integer\] = ([0-9A-F]+)/g)].map((m) => Number.parseInt(m[1]!, 16));
      t.deepEqual(ints, [1, 0, 0], 'PIRV: IRQ 11 valid, disabled link invalid, IRQ 13 invalid');
      t.ok(/LNKA\._STA returned[^\n]*\n\s*\[Integer\] = 0000000000000009/.test(out), 'an unrouted link reports present but disabled');
    } finally {
      w.remove();
    }
  }
  t.end();
});

test('ACPI: an empty bus 0 and a second root bridge', (t) => {
  const a = buildAcpiTables(
    input(1, {
      lpc: undefined,
      buses: [
        { bus: 0, intx: [] },
        {
          bus: 1,
          windows: { io: { base: 0x3000, limit: 0x3020 }, mem32: { base: 0xc100_0000, limit: 0xc110_0000 }, mem64: { base: 0x8_4000_0000, limit: 0x8_6000_0000 } },
          intx: [{ slot: 0, pin: 1, pirqLink: 3, gsi: 18 }],
        },
      ],
    }),
  );
  if (!acpica) {
    t.fail(ACPICA_MISSING);
    t.end();
    return;
  }
  const w = new Workdir();
  try {
    const { dsl, run } = w.disassemble('dsdt', get(a, 'DSDT').bytes);
    t.deepEqual(problems(run.output), [], 'iasl -d clean');
    // bhyve's empty PIC-mode table draws iasl's remark 2095 ("package length is zero"); nothing else may.
    const c = w.compile('dsdt.dsl');
    t.ok(/0 Errors, 0 Warnings, 1 Remarks/.test(c.output), 'recompiles without errors or warnings');
    t.deepEqual(
      problems(c.output)
        .filter((l) => !/Remarks/.test(l))
        .map((l) => l.replace(/\s+/g, ' ')),
      ['Remark 2095 - ^ Effective AML package length is zero'],
      'the one remark is the empty PPRT',
    );
    t.ok(/Device \(PC01\)[\s\S]*?Return \(0x00000001\)/.test(dsl), 'PC01 has _BBN 1');
    t.notOk(/Device \(ISA\)/.test(dsl), 'no LPC: no ISA devices');
    t.ok(/Name \(PPRT, Package \(0x00\) \{\}\)/.test(dsl), 'no links: empty PIC-mode table');
  } finally {
    w.remove();
  }
  t.end();
});

test('ACPI: a large DSDT (multi-byte PkgLengths) still disassembles and runs', (t) => {
  if (!acpica) {
    t.fail(ACPICA_MISSING);
    t.end();
    return;
  }
  const buses = Array.from({ length: 6 }, (_, bus) => ({
    bus,
    windows: {
      io: { base: 0x2000 + bus * 0x1000, limit: 0x3000 + bus * 0x1000 },
      mem32: { base: 0xc000_0000 + bus * 0x100_0000, limit: 0xc100_0000 + bus * 0x100_0000 },
      mem64: { base: 0x8_0000_0000 + bus * 0x2000_0000, limit: 0x8_2000_0000 + bus * 0x2000_0000 },
    },
    intx: Array.from({ length: 32 }, (_, slot) => ({ slot, pin: 1 + (slot % 4), pirqLink: 1 + ((slot + bus) % 8), gsi: 16 + ((slot + bus) % 8) })),
  }));
  const a = buildAcpiTables(input(4, { buses }));
  const dsdt = get(a, 'DSDT').bytes;
  t.ok(dsdt.length > 0x1000, `DSDT is ${dsdt.length} bytes, past the 2-byte PkgLength range for _SB`);
  const w = new Workdir();
  try {
    const { dsl, run } = w.disassemble('dsdt', dsdt);
    t.deepEqual(problems(run.output), [], 'iasl -d clean');
    t.deepEqual(problems(w.compile('dsdt.dsl').output), [], 'recompiles clean');
    t.equal((dsl.match(/Device \(PC0[0-5]\)/g) ?? []).length, 6, 'six root bridges');
    w.write('big.aml.bin', dsdt);
    const x = w.acpiexec(['evaluate \\_PIC 1', 'evaluate \\_SB.PC05._PRT'], ['big.aml.bin']);
    t.ok(/\\_SB\.PC05\._PRT returned[^\n]*\n\s*\[Package\] Contains 32 Elements/.test(x.output), 'PC05._PRT has 32 entries');
  } finally {
    w.remove();
  }
  t.end();
});
