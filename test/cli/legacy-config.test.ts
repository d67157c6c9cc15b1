// Each device's legacy `-s` option syntax and the keys it produces under pci.B.S.F.
import test from 'tape';
import { parseCommandLine } from '../../src/cli/parse.js';

const slotKeys = (spec: string): string[] => {
  const { tree } = parseCommandLine(['-s', spec, 'vm'], () => {});
  return tree
    .leaves()
    .filter(([k]) => k.startsWith('pci.'))
    .map(([k, v]) => `${k.replace(/^pci\.\d+\.\d+\.\d+\./, '')}=${v}`);
};

test('slot forms: S, S:F, B:S:F and sscanf leniency', (t) => {
  const node = (spec: string) =>
    parseCommandLine(['-s', spec, 'vm'], () => {}).tree.leaves().find(([k]) => k.startsWith('pci.'))![0];
  t.equal(node('3,virtio-rnd'), 'pci.0.3.0.device');
  t.equal(node('3:5,virtio-rnd'), 'pci.0.3.5.device');
  t.equal(node('2:3:5,virtio-rnd'), 'pci.2.3.5.device');
  t.equal(node('3x,virtio-rnd'), 'pci.0.3.0.device', 'trailing garbage is ignored');
  t.equal(node('1:2:3:4,virtio-rnd'), 'pci.1.2.3.device');
  t.equal(node('255:31:7,virtio-rnd'), 'pci.255.31.7.device');
  t.end();
});

test('block devices: PATH then generic options', (t) => {
  t.deepEqual(slotKeys('4,virtio-blk,/d.img,nocache,direct,sync,ro,nodelete,sectorsize=512/4096,ser=ABC,bootindex=1'), [
    'device=virtio-blk',
    'path=/d.img',
    'nocache=true',
    'direct=true',
    'sync=true',
    'ro=true',
    'nodelete=true',
    'sectorsize=512/4096',
    'ser=ABC',
    'bootindex=1',
  ]);
  t.deepEqual(slotKeys('4,virtio-blk'), ['device=virtio-blk'], 'no options, no path key');
  t.end();
});

test('ahci: multi-port hd:/cd: with per-port options', (t) => {
  t.deepEqual(slotKeys('5,ahci,hd:/a.img,nmrr=1,ser=X,cd:/b.iso,ro,hd:/c.img'), [
    'device=ahci',
    'port.0.type=hd',
    'port.0.path=/a.img',
    'port.0.nmrr=1',
    'port.0.ser=X',
    'port.1.type=cd',
    'port.1.path=/b.iso',
    'port.1.ro=true',
    'port.2.type=hd',
    'port.2.path=/c.img',
  ]);
  t.deepEqual(slotKeys('5,ahci-hd,/a.img,ro'), ['device=ahci', 'port.0.type=hd', 'port.0.path=/a.img', 'port.0.ro=true']);
  t.deepEqual(slotKeys('5,ahci-cd'), ['device=ahci', 'port.0.type=cd'], 'ahci-cd without a path');
  const many = Array.from({ length: 34 }, (_, i) => `hd:/d${i}`).join(',');
  const keys = slotKeys(`6,ahci,${many}`);
  t.ok(keys.includes('port.31.path=/d31') && !keys.some((k) => k.startsWith('port.32.')), 'at most 32 ports');
  t.end();
});

test('nvme: ram= or a path, then NVMe and block options', (t) => {
  t.deepEqual(slotKeys('6,nvme,ram=1024,maxq=4,qsz=256'), ['device=nvme', 'ram=1024', 'maxq=4', 'qsz=256']);
  t.deepEqual(slotKeys('6,nvme,/n.img,ioslots=16,sectsz=4096,ser=S,eui64=0x1234,dsm=enable'), [
    'device=nvme',
    'path=/n.img',
    'ioslots=16',
    'sectsz=4096',
    'ser=S',
    'eui64=0x1234',
    'dsm=enable',
  ]);
  t.end();
});

test('network backends: tap, vmnet, netgraph, netmap, slirp', (t) => {
  t.deepEqual(slotKeys('7,virtio-net,tap0,mac=00:a0:98:01:02:03,mtu=9000'), [
    'device=virtio-net',
    'backend=tap0',
    'mac=00:a0:98:01:02:03',
    'mtu=9000',
  ]);
  t.deepEqual(slotKeys('7,virtio-net,vmnet3'), ['device=virtio-net', 'backend=vmnet3']);
  t.deepEqual(slotKeys('7,virtio-net,netgraph,path=vmbridge:,peerhook=link2,socket=vm1'), [
    'device=virtio-net',
    'backend=netgraph',
    'path=vmbridge:',
    'peerhook=link2',
    'socket=vm1',
  ]);
  t.deepEqual(slotKeys('7,virtio-net,netmap:igb0'), ['device=virtio-net', 'backend=netmap:igb0']);
  t.deepEqual(slotKeys('7,e1000,slirp,hostfwd=tcp:127.0.0.1:2222-:22'), [
    'device=e1000',
    'backend=slirp',
    'hostfwd=tcp:127.0.0.1:2222-:22',
  ]);
  t.end();
});

test('xhci slots, virtio-console ports, passthru, uart, hostbridges, fbuf, lpc', (t) => {
  t.deepEqual(slotKeys('30,xhci,tablet'), ['device=xhci', 'slot.1.device=tablet']);
  t.deepEqual(slotKeys('30,xhci,tablet,tablet=opt'), ['device=xhci', 'slot.1.device=tablet', 'slot.2.device=tablet', 'slot.2.opt=true']);
  t.deepEqual(slotKeys('8,virtio-console,org.c=/tmp/c0,b=/tmp/c1'), [
    'device=virtio-console',
    'port.0.name=org.c',
    'port.0.path=/tmp/c0',
    'port.1.name=b',
    'port.1.path=/tmp/c1',
  ]);
  t.deepEqual(slotKeys('9,passthru,ppt0,rom=/r.bin'), ['device=passthru', 'pptdev=ppt0', 'rom=/r.bin']);
  t.deepEqual(slotKeys('9,passthru,2/0/1'), ['device=passthru', 'bus=2', 'slot=0', 'func=1']);
  t.deepEqual(slotKeys('9,passthru,pci0:3:4:5,bootindex=2'), ['device=passthru', 'bus=3', 'slot=4', 'func=5', 'bootindex=2']);
  t.deepEqual(slotKeys('9,passthru,pci7:0:0'), ['device=passthru', 'bus=7', 'slot=0', 'func=0']);
  t.deepEqual(slotKeys('10,uart,tcp=127.0.0.1:9,x'), ['device=uart', 'path=tcp=127.0.0.1:9,x']);
  t.throws(() => slotKeys('0,hostbridge,pcireg.vendor=0x8086'), /Invalid config node name pcireg\.vendor/, 'dotted keys are refused, as in bhyve');
  t.deepEqual(slotKeys('0,amd_hostbridge,ignored'), ['device=hostbridge', 'pcireg.vendor=0x1022', 'pcireg.device=0x7432']);
  t.deepEqual(slotKeys('29,fbuf,rfb=0.0.0.0:5901,vga=off,password=secret'), [
    'device=fbuf',
    'rfb=0.0.0.0:5901',
    'vga=off',
    'password=secret',
  ]);
  t.deepEqual(slotKeys('11,virtio-9p,share=/srv,ro'), ['device=virtio-9p', 'sharename=share', 'path=/srv', 'ro=true']);
  t.deepEqual(slotKeys('12,virtio-input,/dev/input/event0'), ['device=virtio-input', 'path=/dev/input/event0']);
  t.deepEqual(slotKeys('13,virtio-scsi,/dev/cam/ctl1.1,iid=3'), ['device=virtio-scsi', 'dev=/dev/cam/ctl1.1', 'iid=3']);
  t.end();
});

test('hostbridge pcireg.* keys come through -o (the generic parser cannot express dotted keys)', (t) => {
  const { tree } = parseCommandLine(['-s', '0,hostbridge', '-o', 'pci.0.0.0.pcireg.vendor=0x8086', 'vm'], () => {});
  t.equal(tree.getRaw('pci.0.0.0.pcireg.vendor'), '0x8086');
  t.end();
});
