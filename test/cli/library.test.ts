// The library builds the same tree as the equivalent command line.
import test from 'tape';
import { buildConfigTree } from '../../src/config/spec.js';
import { parseCommandLine } from '../../src/cli/parse.js';

test('buildConfigTree matches the command line it describes', (t) => {
  const lib = buildConfigTree({
    name: 'g',
    cpus: 2,
    memory: '1G',
    pci: [
      { slot: 0, device: 'hostbridge' },
      { slot: '3:0', device: 'virtio-blk', options: '/disk.img,ro' },
      { slot: 31, device: 'lpc' },
    ],
    com: { com1: 'stdio' },
    vmexitOnHlt: true,
    strictMsr: false,
  });
  const cmd = parseCommandLine(
    '-c 2 -m 1G -s 0,hostbridge -s 3:0,virtio-blk,/disk.img,ro -s 31,lpc -l com1,stdio -H -w g'.split(' '),
    () => {},
  );
  t.equal(lib.tree.dump(), cmd.tree.dump());
  t.end();
});

test('buildConfigTree: keyed device options, direct boot keys, topology objects and raw options', (t) => {
  const { tree, fwcfgFiles } = buildConfigTree({
    name: 'k',
    cpus: { sockets: 2, cores: 2 },
    pci: [{ slot: '0:4:0', device: 'ahci', options: { 'port.0.type': 'hd', 'port.0.path': '/a.img', 'port.0.ro': true } }],
    boot: { kernel: '/vmlinuz', initrd: '/initrd', cmdline: 'console=ttyS0' },
    fwcfg: ['opt/x,string=1'],
    options: { 'bios.vendor': 'Acme' },
  });
  t.equal(tree.getRaw('sockets'), '2');
  t.equal(tree.getRaw('cores'), '2');
  t.equal(tree.getRaw('pci.0.4.0.device'), 'ahci');
  t.equal(tree.getRaw('pci.0.4.0.port.0.ro'), 'true');
  t.equal(tree.getRaw('boot.cmdline'), 'console=ttyS0');
  t.equal(tree.getRaw('bios.vendor'), 'Acme');
  t.equal(tree.getRaw('name'), 'k');
  t.equal(fwcfgFiles[0]?.name, 'opt/x');
  t.throws(() => buildConfigTree({ name: 'x', pci: [{ slot: 3, device: 'nope' }] }), /unknown device "nope"/);
  t.end();
});
