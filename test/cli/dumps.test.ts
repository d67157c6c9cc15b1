// Command lines from bhyve.8's EXAMPLES and the FreeBSD handbook's bhyve chapter, with the config dump bhyve 15
// prints for each. The expected dumps were written by hand from bhyve's rules (defaults first in their order,
// nodes appended when first created, a replaced value moved to the end of its parent, name last).
import test from 'tape';
import { cli, dumpOf } from './run-cli.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const head = ['acpi_tables=true', 'acpi_tables_in_memory=true'];

test('bhyve.8: 1 GB, two vCPUs, virtio-blk and a serial console', async (t) => {
  const argv = '-c 2 -s 0,hostbridge -s 1,lpc -s 2,virtio-blk,/my/image -l com1,stdio -H -P -m 1G vm1'.split(' ');
  t.deepEqual(await dumpOf(argv), [
    ...head,
    'memory.size=1G',
    'x86.strictmsr=true',
    'x86.verbosemsr=false',
    'x86.vmexit_on_hlt=true',
    'x86.vmexit_on_pause=true',
    'lpc.fwcfg=bhyve',
    'lpc.com1.path=stdio',
    'cpus=2',
    'pci.0.0.0.device=hostbridge',
    'pci.0.1.0.device=lpc',
    'pci.0.2.0.device=virtio-blk',
    'pci.0.2.0.path=/my/image',
    'config.dump=1',
    'name=vm1',
  ]);
});

test('bhyve.8: 24 GB with three network ports, one with a MAC', async (t) => {
  const argv = [
    ...'-s 0,hostbridge -s 1,lpc -s 2:0,virtio-net,tap0 -s 2:1,virtio-net,tap1'.split(' '),
    ...'-s 2:2,virtio-net,tap2,mac=00:be:fa:76:45:00 -s 3,virtio-blk,/my/image -l com1,stdio -H -P -m 24G bigvm'.split(' '),
  ];
  t.deepEqual(await dumpOf(argv), [
    ...head,
    'memory.size=24G',
    'x86.strictmsr=true',
    'x86.verbosemsr=false',
    'x86.vmexit_on_hlt=true',
    'x86.vmexit_on_pause=true',
    'lpc.fwcfg=bhyve',
    'lpc.com1.path=stdio',
    'pci.0.0.0.device=hostbridge',
    'pci.0.1.0.device=lpc',
    'pci.0.2.0.device=virtio-net',
    'pci.0.2.0.backend=tap0',
    'pci.0.2.1.device=virtio-net',
    'pci.0.2.1.backend=tap1',
    'pci.0.2.2.device=virtio-net',
    'pci.0.2.2.backend=tap2',
    'pci.0.2.2.mac=00:be:fa:76:45:00',
    'pci.0.3.0.device=virtio-blk',
    'pci.0.3.0.path=/my/image',
    'config.dump=1',
    'name=bigvm',
  ]);
});

const ahciDisks =
  'hd:/images/disk.1,hd:/images/disk.2,hd:/images/disk.3,hd:/images/disk.4,' +
  'hd:/images/disk.5,hd:/images/disk.6,hd:/images/disk.7,hd:/images/disk.8,cd:/images/install.iso';

test('bhyve.8: the 8-disk AHCI example fails as printed (slot 1 twice), exactly as bhyve does', async (t) => {
  const r = await cli(...`-c 4 -s 0,amd_hostbridge -s 1,lpc -s 1:0,ahci,${ahciDisks} -s 3,virtio-net,tap0 -l com1,/dev/nmdm0A -H -P -m 8G`.split(' '));
  t.equal(r.status, 4);
  t.equal(r.stderr, 'pci slot 0:1:0 already occupied!\n');
});

test('bhyve.8: the 8-disk AHCI example with the controller moved to slot 2', async (t) => {
  const argv = `-c 4 -s 0,amd_hostbridge -s 1,lpc -s 2,ahci,${ahciDisks} -s 3,virtio-net,tap0 -l com1,/dev/nmdm0A -H -P -m 8G vm`.split(' ');
  const ports: string[] = [];
  for (let i = 1; i <= 8; i++) ports.push(`pci.0.2.0.port.${i - 1}.type=hd`, `pci.0.2.0.port.${i - 1}.path=/images/disk.${i}`);
  t.deepEqual(await dumpOf(argv), [
    ...head,
    'memory.size=8G',
    'x86.strictmsr=true',
    'x86.verbosemsr=false',
    'x86.vmexit_on_hlt=true',
    'x86.vmexit_on_pause=true',
    'lpc.fwcfg=bhyve',
    'lpc.com1.path=/dev/nmdm0A',
    'cpus=4',
    'pci.0.0.0.device=hostbridge',
    'pci.0.0.0.pcireg.vendor=0x1022',
    'pci.0.0.0.pcireg.device=0x7432',
    'pci.0.1.0.device=lpc',
    'pci.0.2.0.device=ahci',
    ...ports,
    'pci.0.2.0.port.8.type=cd',
    'pci.0.2.0.port.8.path=/images/install.iso',
    'pci.0.3.0.device=virtio-net',
    'pci.0.3.0.backend=tap0',
    'config.dump=1',
    'name=vm',
  ]);
});

test('bhyve.8: UEFI guest with fbuf, xhci tablet and a TCP serial console (-w moves x86.strictmsr)', async (t) => {
  const argv = [
    ...'-c 2 -m 4G -w -H -s 0,hostbridge -s 3,ahci-cd,/path/to/uefi-OS-install.iso -s 4,ahci-hd,disk.img'.split(' '),
    ...'-s 5,virtio-net,tap0 -s 29,fbuf,tcp=0.0.0.0:5900,w=800,h=600,wait -s 30,xhci,tablet'.split(' '),
    ...'-s 31,lpc -l com1,tcp=127.0.0.1:1234 -l bootrom,/usr/local/share/uefi-firmware/BHYVE_UEFI.fd uefivm'.split(' '),
  ];
  t.deepEqual(await dumpOf(argv), [
    ...head,
    'memory.size=4G',
    'x86.verbosemsr=false',
    'x86.strictmsr=false',
    'x86.vmexit_on_hlt=true',
    'lpc.fwcfg=bhyve',
    'lpc.com1.path=tcp=127.0.0.1:1234',
    'cpus=2',
    'pci.0.0.0.device=hostbridge',
    'pci.0.3.0.device=ahci',
    'pci.0.3.0.port.0.type=cd',
    'pci.0.3.0.port.0.path=/path/to/uefi-OS-install.iso',
    'pci.0.4.0.device=ahci',
    'pci.0.4.0.port.0.type=hd',
    'pci.0.4.0.port.0.path=disk.img',
    'pci.0.5.0.device=virtio-net',
    'pci.0.5.0.backend=tap0',
    'pci.0.29.0.device=fbuf',
    'pci.0.29.0.tcp=0.0.0.0:5900',
    'pci.0.29.0.w=800',
    'pci.0.29.0.h=600',
    'pci.0.29.0.wait=true',
    'pci.0.30.0.device=xhci',
    'pci.0.30.0.slot.1.device=tablet',
    'pci.0.31.0.device=lpc',
    'bootrom=/usr/local/share/uefi-firmware/BHYVE_UEFI.fd',
    'config.dump=1',
    'name=uefivm',
  ]);
});

test('bhyve.8: UEFI with a VARS file and IPv6 listeners', async (t) => {
  const argv = [
    ...'-c 2 -m 4g -w -H -s 0,hostbridge -s 4,ahci-hd,disk.img -s 29,fbuf,tcp=[::]:5900,w=800,h=600'.split(' '),
    ...'-s 31,lpc -l com1,tcp=[::1]:1234 -l bootrom,/usr/local/share/uefi-firmware/BHYVE_UEFI_CODE.fd,BHYVE_UEFI_VARS.fd uefivm'.split(' '),
  ];
  const dump = await dumpOf(argv);
  t.deepEqual(dump.slice(-5), [
    'pci.0.31.0.device=lpc',
    'bootrom=/usr/local/share/uefi-firmware/BHYVE_UEFI_CODE.fd',
    'bootvars=BHYVE_UEFI_VARS.fd',
    'config.dump=1',
    'name=uefivm',
  ]);
  t.ok(dump.includes('pci.0.29.0.tcp=[::]:5900'));
  t.ok(dump.includes('lpc.com1.path=tcp=[::1]:1234'));
  t.ok(dump.includes('memory.size=4g'), 'the size is stored as written');
});

test('bhyve.8: the config.dump then -k workflow round-trips, with the moves bhyve makes', async (t) => {
  const argv = '-c 2 -m 256 -H -P -s 0:0,hostbridge -s 1:0,virtio-net,tap0 -s 2:0,ahci-hd,./vm0.img -s 31,lpc -l com1,stdio vm0'.split(' ');
  const dump = await dumpOf(argv);
  const body = [
    'x86.strictmsr=true',
    'x86.verbosemsr=false',
    'x86.vmexit_on_hlt=true',
    'x86.vmexit_on_pause=true',
    'lpc.fwcfg=bhyve',
    'lpc.com1.path=stdio',
  ];
  const devices = [
    'cpus=2',
    'pci.0.0.0.device=hostbridge',
    'pci.0.1.0.device=virtio-net',
    'pci.0.1.0.backend=tap0',
    'pci.0.2.0.device=ahci',
    'pci.0.2.0.port.0.type=hd',
    'pci.0.2.0.port.0.path=./vm0.img',
    'pci.0.31.0.device=lpc',
  ];
  t.deepEqual(dump, [...head, 'memory.size=256', ...body, ...devices, 'config.dump=1', 'name=vm0']);

  // "remove the line config.dump=1 from the newly generated configfile", then bhyve -k configfile vm0.
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-k-'));
  const file = join(dir, 'configfile');
  writeFileSync(file, dump.filter((l) => l !== 'config.dump=1').join('\n') + '\n');
  const again = await dumpOf(['-k', file, 'vm0']);
  // Re-setting acpi_tables* moves them after the nodes that were created before them.
  t.deepEqual(again, ['memory.size=256', ...body, ...head, ...devices, 'config.dump=1', 'name=vm0']);
});

test('handbook: a Linux guest with virtio-net, virtio-blk and an install ISO', async (t) => {
  const argv = '-A -H -P -s 0:0,hostbridge -s 1:0,lpc -s 2:0,virtio-net,tap0 -s 3:0,virtio-blk,./linux.img -s 4:0,ahci-cd,./somelinux.iso -l com1,stdio -c 4 -m 1024M linuxguest'.split(' ');
  t.deepEqual(await dumpOf(argv), [
    ...head,
    'memory.size=1024M',
    'x86.strictmsr=true',
    'x86.verbosemsr=false',
    'x86.vmexit_on_hlt=true',
    'x86.vmexit_on_pause=true',
    'lpc.fwcfg=bhyve',
    'lpc.com1.path=stdio',
    'pci.0.0.0.device=hostbridge',
    'pci.0.1.0.device=lpc',
    'pci.0.2.0.device=virtio-net',
    'pci.0.2.0.backend=tap0',
    'pci.0.3.0.device=virtio-blk',
    'pci.0.3.0.path=./linux.img',
    'pci.0.4.0.device=ahci',
    'pci.0.4.0.port.0.type=cd',
    'pci.0.4.0.port.0.path=./somelinux.iso',
    'cpus=4',
    'config.dump=1',
    'name=linuxguest',
  ]);
});

test('handbook: a UEFI FreeBSD guest with grouped flags -AHP', async (t) => {
  const argv = [
    ...'-AHP -s 0:0,hostbridge -s 3:0,ahci-cd,../Downloads/FreeBSD-14.0-RELEASE-amd64-bootonly.iso -s 4:0,ahci-hd,../freebsd.img'.split(' '),
    ...'-s 5:0,virtio-net,tap1 -s 29,fbuf,tcp=0.0.0.0:5900,w=800,h=600,wait -s 30,xhci,tablet -s 31:0,lpc -l com1,stdio'.split(' '),
    ...'-l bootrom,/usr/local/share/uefi-firmware/BHYVE_UEFI.fd -c 4 -m 1024M guest'.split(' '),
  ];
  const dump = await dumpOf(argv);
  t.deepEqual(dump.slice(0, 9), [
    ...head,
    'memory.size=1024M',
    'x86.strictmsr=true',
    'x86.verbosemsr=false',
    'x86.vmexit_on_hlt=true',
    'x86.vmexit_on_pause=true',
    'lpc.fwcfg=bhyve',
    'lpc.com1.path=stdio',
  ]);
  t.deepEqual(dump.slice(-4), ['bootrom=/usr/local/share/uefi-firmware/BHYVE_UEFI.fd', 'cpus=4', 'config.dump=1', 'name=guest']);
});

test('vm-bhyve: devices before options, -AHPw, -U and -u', async (t) => {
  const argv = [
    ...'-s 0,hostbridge -s 31,lpc -s 4:0,virtio-blk,/vm/g/disk0.img -s 5:0,virtio-net,tap0,mac=58:9c:fc:0a:0b:0c'.split(' '),
    ...'-s 6:0,virtio-rnd -l com1,/dev/nmdm-g.1A -c 2 -m 512M -AHPw -U 3a7f2c2e-1111-4c2d-9e77-0123456789ab -u g'.split(' '),
  ];
  t.deepEqual(await dumpOf(argv), [
    ...head,
    'memory.size=512M',
    'x86.verbosemsr=false',
    'x86.vmexit_on_hlt=true',
    'x86.vmexit_on_pause=true',
    'x86.strictmsr=false',
    'lpc.fwcfg=bhyve',
    'lpc.com1.path=/dev/nmdm-g.1A',
    'pci.0.0.0.device=hostbridge',
    'pci.0.31.0.device=lpc',
    'pci.0.4.0.device=virtio-blk',
    'pci.0.4.0.path=/vm/g/disk0.img',
    'pci.0.5.0.device=virtio-net',
    'pci.0.5.0.backend=tap0',
    'pci.0.5.0.mac=58:9c:fc:0a:0b:0c',
    'pci.0.6.0.device=virtio-rnd',
    'cpus=2',
    'uuid=3a7f2c2e-1111-4c2d-9e77-0123456789ab',
    'rtc.use_localtime=false',
    'config.dump=1',
    'name=g',
  ]);
});
