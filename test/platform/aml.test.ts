// The AML encoder against the byte forms of ACPI 6.4 §20, and against iasl: a table built from encoder
// output must disassemble to the ASL it stands for.
import test from 'tape';
import * as A from '../../src/platform/acpi/aml.js';
import * as R from '../../src/platform/acpi/resources.js';
import { SDT_HEADER_SIZE, TableWriter, sealSdt } from '../../src/platform/acpi/sdt.js';
import { ACPICA_MISSING, Workdir, haveAcpica, problems } from './acpica.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('AML: PkgLength picks the smallest encoding that also counts itself', (t) => {
  t.equal(hex(A.pkgLength(0)), '01');
  t.equal(hex(A.pkgLength(62)), '3f', '62 + 1 = 63 fits one byte');
  t.equal(hex(A.pkgLength(63)), '4104', '63 + 2 = 65 = 0x41 needs two bytes: low nibble 1, then 0x04');
  t.equal(hex(A.pkgLength(0xffd)), '4fff', 'largest two-byte value 0xFFF');
  t.equal(hex(A.pkgLength(0xffe)), '810001', '0xFFE + 3 = 0x1001 needs three bytes');
  t.equal(hex(A.pkgLength(0xffffc)), '8fffff');
  t.equal(hex(A.pkgLength(0xffffd)), 'c1000001', '0xFFFFD + 4 = 0x100001 needs four bytes');
  t.throws(() => A.pkgLength(0x0fff_fffd), A.AmlError, 'beyond 28 bits is refused');
  t.end();
});

test('AML: names, integers, strings and EISA IDs', (t) => {
  t.equal(hex(A.nameString('_SB')), '5f53425f', 'short names are padded with _');
  t.equal(hex(A.nameString('\\_SB.PC00')), '5c2e5f53425f50433030', 'root + DualNamePrefix');
  t.equal(hex(A.nameString('\\_SB.PC00.ISA.LNKA')), '5c2f045f53425f504330304953415f4c4e4b41', 'MultiNamePrefix with count');
  t.equal(hex(A.nameString('^^FOO')), '5e5e464f4f5f', 'parent prefixes');
  t.throws(() => A.nameSeg('toolong'), A.AmlError);
  t.throws(() => A.nameSeg('1ABC'), A.AmlError, 'a segment cannot start with a digit');
  t.equal(hex(A.integer(0)), '00');
  t.equal(hex(A.integer(1)), '01');
  t.equal(hex(A.integer(0xffff_ffff_ffff_ffffn)), 'ff', 'Ones');
  t.equal(hex(A.integer(2)), '0a02');
  t.equal(hex(A.integer(0x1234)), '0b3412');
  t.equal(hex(A.integer(0x12345678)), '0c78563412');
  t.equal(hex(A.integer(0x8_0000_0000)), '0e0000000008000000');
  t.throws(() => A.integer(-1), A.AmlError);
  t.equal(hex(A.string('AB')), '0d414200');
  t.throws(() => A.string('é'), A.AmlError);
  t.equal(hex(A.eisaId('PNP0A03')), '0c41d00a03', 'EisaId("PNP0A03") = 0x030AD041');
  t.equal(hex(A.eisaId('PNP0C0F')), '0c41d00c0f');
  t.end();
});

test('AML: resource descriptors and the End Tag checksum', (t) => {
  t.equal(hex(R.fixedPorts(0x3f8, 8)), '4701f803f8030108', 'IO (Decode16, 0x3F8, 0x3F8, 1, 8)');
  t.equal(hex(R.irqNoFlags([4])), '221000');
  t.equal(hex(R.irq({ level: true, activeLow: true, shared: true }, [5, 11])), '23200818');
  t.equal(hex(R.memory32Fixed(0xfed0_0000, 0x400)), '8609000100 00d0fe00040000'.replace(/ /g, ''));
  t.equal(R.wordBusNumber({ base: 0, limit: 1 }).length, 16, 'Word address descriptor is 3 + 13 bytes');
  t.equal(R.dwordMemory({ base: 0xc000_0000, limit: 0xe000_0000 }).length, 26);
  t.equal(R.qwordMemory({ base: 2 ** 35, limit: 2 ** 36 }).length, 46);
  t.equal(hex(R.extendedInterrupt({ level: true, activeLow: true, shared: false }, [16])), '890600050110000000', 'consumer, level, active-low, one GSI');
  t.throws(() => R.wordIo({ base: 0x10, limit: 0x10 }), A.AmlError, 'empty windows are refused');
  const tpl = R.resourceTemplate([R.fixedPorts(0x70, 2), R.irqNoFlags([8])]);
  // Buffer: 0x11, PkgLength, size, bytes...; the bytes end 0x79 <checksum> and sum to zero.
  const body = tpl.subarray(3 + 1);
  t.equal(tpl[0], 0x11, 'a Buffer');
  t.equal(body[body.length - 2], 0x79, 'End Tag');
  t.equal(body.reduce((s, x) => (s + x) & 0xff, 0), 0, 'template sums to zero');
  t.end();
});

test('AML: encoder output disassembles to the intended ASL', (t) => {
  if (!haveAcpica()) {
    t.fail(ACPICA_MISSING);
    t.end();
    return;
  }
  const body = A.concat([
    A.name('VAL0', A.integer(0x1234_5678_9abcn)),
    A.name('STR0', A.string('bhyve')),
    A.method('M001', 2, true, [
      A.ifThen(A.lEqual(A.arg(0), A.arg(1)), [A.ret(A.ones)]),
      A.elseDo([A.ret(A.shiftLeft(A.one, A.arg(0)))]),
    ]),
    A.scope('\\_SB', [
      A.device('DEV0', [
        A.name('_HID', A.eisaId('PNP0C02')),
        A.name(
          '_CRS',
          R.resourceTemplate([
            R.extendedInterrupt({ level: true, activeLow: true, shared: true }, [20, 21]),
            R.dwordIo({ base: 0x4000, limit: 0x4100 }),
            R.fixedIo(0x80, 1),
          ]),
        ),
      ]),
    ]),
  ]);
  const w0 = new TableWriter(SDT_HEADER_SIZE + body.length);
  w0.bytes.set(body, SDT_HEADER_SIZE);
  const table = sealSdt(w0, 'SSDT', 2);
  const w = new Workdir();
  try {
    const { dsl, run } = w.disassemble('ssdt', table);
    t.deepEqual(problems(run.output), [], 'iasl -d is clean');
    t.ok(/Name \(VAL0, 0x0000123456789ABC\)/.test(dsl), 'QWord integer');
    t.ok(/Name \(STR0, "bhyve"\)/.test(dsl), 'string');
    t.ok(/Method \(M001, 2, Serialized\)/.test(dsl), 'serialized method with 2 args');
    t.ok(/If \(\(Arg0 == Arg1\)\)[\s\S]*Return \(Ones\)[\s\S]*Else[\s\S]*Return \(\(One << Arg0\)\)/.test(dsl), 'If/Else and expressions');
    t.ok(/Interrupt \(ResourceConsumer, Level, ActiveLow, Shared, ,, \)\s*\{\s*0x00000014,\s*0x00000015,?\s*\}/.test(dsl), 'extended interrupt');
    t.ok(/DWordIO \(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,/.test(dsl), 'DWordIO');
    t.ok(/FixedIO \(\s*0x0080,/.test(dsl), 'FixedIO');
    t.deepEqual(problems(w.compile('ssdt.dsl').output), [], 'recompiles clean');
  } finally {
    w.remove();
  }
  t.end();
});
