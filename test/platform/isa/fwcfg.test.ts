// fw_cfg as firmware reads it: select an item with a 16-bit OUT to 0x510, stream it with byte INs from 0x511.
import test from 'tape';
import { TestMachine } from '../../harness/machine.js';
import { FwCfg, parseFwCfgDirectory, FwCfgError } from '../../../src/platform/isa/fwcfg.js';

function readItem(m: TestMachine, selector: number, len: number): Uint8Array {
  m.outw(0x510, selector);
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = m.inb(0x511);
  return out;
}

function readDirectory(m: TestMachine): ReturnType<typeof parseFwCfgDirectory> {
  const head = readItem(m, 0x19, 4);
  const count = new DataView(head.buffer).getUint32(0, false);
  return parseFwCfgDirectory(readItem(m, 0x19, 4 + 64 * count));
}

test('fw_cfg: signature, ID without DMA, CPU counts', (t) => {
  const m = new TestMachine();
  new FwCfg(m, { ncpus: 6 });
  t.equal(Buffer.from(readItem(m, 0x00, 4)).toString(), 'QEMU', 'signature');
  t.deepEqual([...readItem(m, 0x01, 4)], [1, 0, 0, 0], 'ID: traditional interface only');
  t.deepEqual([...readItem(m, 0x05, 2)], [6, 0], 'NB_CPUS');
  t.deepEqual([...readItem(m, 0x0f, 2)], [6, 0], 'MAX_CPUS');
  t.deepEqual([...readItem(m, 0x00, 6)].slice(4), [0, 0], 'reads past the end return 0');
  t.deepEqual([...readItem(m, 0x1234, 3)], [0, 0, 0], 'unknown item reads 0');
  t.equal(m.inw(0x510), 0x1234, 'selector reads back');
  t.end();
});

test('fw_cfg: the directory is sorted, big-endian, and each file reads back', (t) => {
  const m = new TestMachine();
  const fw = new FwCfg(m, { ncpus: 2 });
  const files: Record<string, Uint8Array> = {
    'opt/bhyve/hw.ncpu': Uint8Array.of(2, 0, 0, 0),
    'etc/e820': new Uint8Array(40).map((_, i) => i),
    bootorder: new TextEncoder().encode('/pci@i0cf8/pci@3,0\n'),
    'opt/user/blob': new Uint8Array(1000).map((_, i) => (i * 13) & 0xff),
    'etc/acpi/tables': new Uint8Array(300).fill(0xaa),
  };
  for (const [name, data] of Object.entries(files)) fw.addFile(name, data);
  const dir = readDirectory(m);
  const names = dir.map((e) => e.name);
  t.deepEqual(names, [...names].sort(), 'names in sorted order');
  t.deepEqual(names, ['bootorder', 'etc/acpi/tables', 'etc/e820', 'opt/bhyve/hw.ncpu', 'opt/user/blob']);
  t.deepEqual(dir.map((e) => e.select), [0x20, 0x21, 0x22, 0x23, 0x24], 'selectors from 0x20 in name order');
  for (const e of dir) {
    t.equal(e.size, files[e.name]!.length, `${e.name} size`);
    t.deepEqual(readItem(m, e.select, e.size), files[e.name], `${e.name} contents`);
  }
  t.deepEqual(fw.list(), dir, 'list() matches what the guest parsed');
  // Re-selecting rewinds.
  m.outw(0x510, 0x22);
  m.inb(0x511);
  t.deepEqual(readItem(m, 0x22, 2), Uint8Array.of(0, 1), 'a new selector write starts at offset 0');
  // Replacing a file keeps one entry.
  fw.addFile('etc/e820', Uint8Array.of(9));
  t.equal(readDirectory(m).length, 5);
  t.deepEqual([...readItem(m, 0x22, 2)], [9, 0]);
  t.end();
});

test('fw_cfg: bad names are refused; malformed accesses are harmless', (t) => {
  const m = new TestMachine();
  const fw = new FwCfg(m, { ncpus: 1 });
  t.throws(() => fw.addFile('', new Uint8Array()), FwCfgError);
  t.throws(() => fw.addFile('x'.repeat(56), new Uint8Array()), FwCfgError, '56 bytes is too long');
  fw.addFile('x'.repeat(55), Uint8Array.of(1));
  t.throws(() => new FwCfg(new TestMachine(), { ncpus: 0 }), FwCfgError);
  t.doesNotThrow(() => {
    m.outb(0x510, 0x01); // byte write to the 16-bit selector: ignored
    t.equal(Buffer.from(readItem(m, 0x00, 4)).toString(), 'QEMU');
    m.outw(0x510, 0x00);
    m.outb(0x511, 0x55); // data writes are not supported
    t.equal(m.inw(0x511), 0xffff, 'wide data read refused');
    t.equal(m.inl(0x510), 0xffff_ffff);
    t.equal(m.inb(0x511), 0x51, 'stream position unaffected: first byte "Q"');
    m.outw(0x510, 0xffff); // selector with the write and arch bits
    t.equal(m.inb(0x511), 0, 'an item that does not exist reads 0');
  });
  t.end();
});
