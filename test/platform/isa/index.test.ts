// createIsaDevices from the config tree: which ranges get claimed, COM backends from lpc.comN.path, fw_cfg mode
// and files, -u, errors with bhyve's wording, and close().
import test from 'tape';
import { connect } from 'node:net';
import { TestMachine } from '../../harness/machine.js';
import { createIsaDevices, IsaConfigError, TcpBackend, parseFwCfgDirectory } from '../../../src/platform/isa/index.js';
import { defaultConfigTree } from '../../../src/config/defaults.js';
import { memoryLayout, GiB, HPET_BASE } from '../../../src/vm/memmap.js';
import { e820FromLayout, encodeE820 } from '../../../src/platform/e820.js';

const layout = memoryLayout(4 * GiB);

function quietTree(): ReturnType<typeof defaultConfigTree> {
  const tree = defaultConfigTree();
  tree.warn = () => undefined;
  return tree;
}

test('isa: default tree: every device present, fw_cfg ports left alone in bhyve mode', (t) => {
  const m = new TestMachine();
  const dev = createIsaDevices(m, quietTree(), { layout, ncpus: 2, sigtermPowerButton: false });
  t.deepEqual(
    m.io.portRanges(),
    [
      [0x60, 1], [0x64, 1], [0x70, 2], [0x72, 2], [0x80, 1], [0xb2, 1],
      [0x2e8, 8], [0x2f8, 8], [0x3e8, 8], [0x3f8, 8],
      [0x400, 4], [0x404, 2], [0x408, 4], [0x40c, 2], [0xcf9, 1],
    ],
    'claimed ports',
  );
  t.notOk(m.io.claimsPort(0x61), 'port 0x61 stays with KVM');
  t.notOk(m.io.claimsPort(0x510), 'lpc.fwcfg=bhyve without a boot ROM: no fwctl, ports unclaimed');
  t.deepEqual(m.io.mmio.map((c) => [c.base, c.len]), [[HPET_BASE, 0x400]], 'HPET MMIO');
  t.equal(dev.uarts.length, 4);
  t.deepEqual(dev.backends, [undefined, undefined, undefined, undefined], 'no backends configured');
  t.equal(dev.fwcfg, undefined);
  m.outb(0x70, 0x35);
  t.equal(m.inb(0x71), 0xbf, 'CMOS memory bytes set from the layout');
  dev.pressPowerButton();
  t.equal(m.inw(0x400) & 0x100, 0x100, 'pressPowerButton reaches PM1_STS');
  dev.close();
  dev.close();
  t.pass('close twice is fine');
  t.end();
});

test('isa: COM backends from lpc.comN.path, a TCP console end to end', async (t) => {
  const m = new TestMachine();
  const tree = quietTree();
  tree.set('lpc.com1.path', 'tcp=127.0.0.1:0');
  const dev = createIsaDevices(m, tree, { layout, ncpus: 1, sigtermPowerButton: false });
  await dev.ready;
  const tcp = dev.backends[0];
  t.ok(tcp instanceof TcpBackend, 'COM1 has a TCP backend');
  const port = (tcp as TcpBackend).address()!.port;
  const sock = connect({ host: '127.0.0.1', port });
  const got: Buffer[] = [];
  sock.on('data', (d: Buffer) => got.push(d));
  await new Promise((r) => sock.once('connect', r));
  for (let i = 0; i < 50 && !(tcp as TcpBackend).connected; i++) await new Promise((r) => setTimeout(r, 10));
  for (const c of Buffer.from('login: ')) m.outb(0x3f8, c);
  for (let i = 0; i < 100 && Buffer.concat(got).toString() !== 'login: '; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(Buffer.concat(got).toString(), 'login: ', 'COM1 output reached the TCP client');
  sock.destroy();
  dev.close();
  t.end();
});

test('isa: a backend that cannot be opened fails with bhyve wording', (t) => {
  const tree = quietTree();
  tree.set('lpc.com2.path', '/nonexistent/tty');
  t.throws(
    () => createIsaDevices(new TestMachine(), tree, { layout, ncpus: 1, sigtermPowerButton: false }),
    (e: unknown) => e instanceof IsaConfigError && /Unable to initialize backend '\/nonexistent\/tty' for LPC device com2/.test(e.message),
  );
  const bad = quietTree();
  bad.set('lpc.fwcfg', 'seabios');
  t.throws(() => createIsaDevices(new TestMachine(), bad, { layout, ncpus: 1, sigtermPowerButton: false }), /invalid fwcfg type/);
  t.end();
});

test('isa: lpc.fwcfg=qemu publishes hw.ncpu, etc/e820, bootorder and -f files', (t) => {
  const m = new TestMachine();
  const tree = quietTree();
  tree.set('lpc.fwcfg', 'qemu');
  const e820 = e820FromLayout(layout);
  const dev = createIsaDevices(m, tree, {
    layout,
    ncpus: 3,
    e820,
    bootorder: '/pci@i0cf8/pci@4,0\n',
    fwcfgFiles: [{ name: 'opt/test/greeting', data: new TextEncoder().encode('hi\0') }],
    sigtermPowerButton: false,
  });
  const read = (sel: number, len: number): Uint8Array => {
    m.outw(0x510, sel);
    return Uint8Array.from({ length: len }, () => m.inb(0x511));
  };
  const count = new DataView(read(0x19, 4).buffer).getUint32(0, false);
  const dir = parseFwCfgDirectory(read(0x19, 4 + 64 * count));
  t.deepEqual(dir.map((e) => e.name), ['bootorder', 'etc/e820', 'opt/bhyve/hw.ncpu', 'opt/test/greeting']);
  const file = (name: string): Uint8Array => {
    const e = dir.find((d) => d.name === name)!;
    return read(e.select, e.size);
  };
  t.deepEqual([...file('opt/bhyve/hw.ncpu')], [3, 0, 0, 0], 'hw.ncpu as a native int');
  t.ok(Buffer.from(file('etc/e820')).equals(encodeE820(e820)), 'etc/e820 as given');
  t.equal(Buffer.from(file('bootorder')).toString(), '/pci@i0cf8/pci@4,0\n');
  t.equal(Buffer.from(file('opt/test/greeting')).toString(), 'hi\0');
  dev.fwcfg!.addFile('etc/table-loader', new Uint8Array(128));
  t.equal(dev.fwcfg!.list().length, 5, 'ACPI loader files can be added later');
  dev.close();
  t.end();
});

test('isa: rtc.use_localtime=false gives UTC', (t) => {
  const saved = process.env.TZ;
  process.env.TZ = 'Pacific/Kiritimati'; // UTC+14: local and UTC hours always differ
  try {
    const m = new TestMachine();
    const tree = quietTree();
    tree.set('rtc.use_localtime', 'false');
    const dev = createIsaDevices(m, tree, { layout, ncpus: 1, sigtermPowerButton: false });
    const hourNow = new Date().getUTCHours();
    m.outb(0x70, 0x0b);
    m.outb(0x71, 0x06); // binary
    m.outb(0x70, 0x04);
    const h = m.inb(0x71);
    t.ok(h === hourNow || h === (hourNow + 1) % 24, `RTC hour ${h} is the UTC hour ${hourNow}`);
    dev.close();
  } finally {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  }
  t.end();
});

test('isa: close() releases every range; a failed build leaves nothing claimed', (t) => {
  const m = new TestMachine();
  const dev = createIsaDevices(m, quietTree(), { layout, ncpus: 1, sigtermPowerButton: false });
  dev.close();
  t.deepEqual(m.io.portRanges(), [], 'no ports left');
  t.deepEqual(m.io.mmio, [], 'no MMIO left');
  const again = createIsaDevices(m, quietTree(), { layout, ncpus: 1, sigtermPowerButton: false });
  t.ok(m.io.claimsPort(0x3f8), 'the same machine can be populated again');
  again.close();
  m.io.registerPort(0xcf9, 1, () => 0); // someone else holds the reset register
  t.throws(() => createIsaDevices(m, quietTree(), { layout, ncpus: 1, sigtermPowerButton: false }), /overlaps/);
  t.deepEqual(m.io.portRanges(), [[0xcf9, 1]], 'the half-built devices released their ranges');
  t.end();
});
