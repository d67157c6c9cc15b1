// Bad command lines: each gets one line in bhyve's wording (or the usage text) and bhyve's exit status.
import test from 'tape';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-err-'));
const badK = join(dir, 'bad.conf');
writeFileSync(badK, '# a comment\n\nmemory.size=1G\nnovalue\n');

type Case = [argv: string[], status: number, message: RegExp | string];
const s = (line: string): string[] => line.split(' ');
const USAGE = /^Usage: tsbhyve /m;

const cases: Case[] = [
  // -s (status 4, lines printed without the program prefix as bhyve's EPRINTLN does)
  [s('-s 3 vm'), 4, 'Invalid PCI slot info field "3"\n'],
  [s('-s 32,virtio-blk,x vm'), 4, 'Invalid PCI slot info field "32,virtio-blk,x"\n'],
  [s('-s 0:8,hostbridge vm'), 4, 'Invalid PCI slot info field "0:8,hostbridge"\n'],
  [s('-s 256:0:0,hostbridge vm'), 4, 'Invalid PCI slot info field "256:0:0,hostbridge"\n'],
  [s('-s -1,hostbridge vm'), 4, 'Invalid PCI slot info field "-1,hostbridge"\n'],
  [s('-s x,hostbridge vm'), 4, 'Invalid PCI slot info field "x,hostbridge"\n'],
  [s('-s 3,floppy vm'), 4, 'pci slot 0:3:0: unknown device "floppy"\n'],
  [s('-s 1:3:0, vm'), 4, 'pci slot 1:3:0: unknown device ""\n'],
  [s('-s 3,virtio-blk,a -s 3:0,virtio-blk,b vm'), 4, 'pci slot 0:3:0 already occupied!\n'],
  [s('-o pci.0.3.0.device=virtio-blk -s 3,virtio-blk,a vm'), 4, 'pci slot 0:3:0 already occupied!\n'],
  [s('-s 3,ahci,disk.img vm'), 4, 'Missing or invalid type for port 0: "disk.img"\n'],
  // "xd:b.img" is not a port prefix, so it is a (dotted, hence invalid) option of port 0, as in bhyve.
  [s('-s 3,ahci,hd:a.img,xd:b.img vm'), 4, 'tsbhyve: Invalid config node name xd:b.img\n'],
  [s('-s 3,virtio-console,foo vm'), 4, 'vtcon: port foo requires a path\n'],
  [s('-s 3,passthru,bogus vm'), 4, 'passthru: invalid options\n'],
  [s('-s 3,virtio-blk,disk.img,a.b=1 vm'), 4, 'tsbhyve: Invalid config node name a.b\n'],
  // -c (64 for the syntax, 4 for the values)
  [s('-c cpus=2,foo=3 vm'), 64, "tsbhyve: invalid cpu topology 'cpus=2,foo=3'\n"],
  [s('-c 0 vm'), 4, "tsbhyve: Invalid value for cpus: '0'\n"],
  [s('-c 65536 vm'), 4, "tsbhyve: Invalid value for cpus: '65536'\n"],
  [s('-c abc vm'), 4, "tsbhyve: Invalid value for cpus: 'abc'\n"],
  [s('-c ,, vm'), 4, "tsbhyve: Invalid value for cpus: ''\n"],
  [s('-c cpus=4,sockets=3 vm'), 4, 'tsbhyve: Topology (3 sockets, 1 cores, 1 threads) does not match 4 vCPUs\n'],
  [s('-c sockets=256,cores=256,threads=2 vm'), 4, 'tsbhyve: Computed number of vCPUs too high: 131072\n'],
  // -p and cpusets
  [s('-p 0 vm'), 64, /^tsbhyve: invalid vcpu pinning configuration '0' \(invalid format: 0\)\n$/],
  [s('-p -1:0 vm'), 64, /invalid vcpu pinning configuration '-1:0' \(invalid vcpu '-1'\)/],
  [s('-p 0:1024 vm'), 64, /hostcpu '1024' outside valid range from 0 to 1023/],
  [s('-o vcpu.0.cpuset=3-1 vm'), 4, 'tsbhyve: Invalid hostcpu range 3-1\n'],
  [s('-o vcpu.0.cpuset=a vm'), 4, "tsbhyve: invalid cpuset for vcpu 0: 'a'\n"],
  [s('-o vcpu.0.cpuset=1-2-3 vm'), 4, "tsbhyve: invalid cpuset for vcpu 0: '1-2-3'\n"],
  // -m
  [s('-m 1X vm'), 64, "tsbhyve: invalid memsize '1X'\n"],
  [['-m', '', 'vm'], 64, "tsbhyve: invalid memsize ''\n"],
  [s('-m 99999999T vm'), 64, "tsbhyve: invalid memsize '99999999T'\n"],
  [s('-m 1.5G vm'), 64, "tsbhyve: invalid memsize '1.5G'\n"],
  // -o, -k and the tree rules
  [s('-o foo vm'), 64, "tsbhyve: invalid configuration option 'foo'\n"],
  [s('-o foo= vm'), 64, "tsbhyve: invalid configuration option 'foo='\n"],
  [s('-o a=1 -o a.b=2 vm'), 4, 'tsbhyve: Configuration node a is a child of existing variable a\n'],
  [s('-o a.b=1 -o a=2 vm'), 4, 'tsbhyve: Attempting to add value 2 to existing node a\n'],
  [s('-o a..b=1 vm'), 4, 'tsbhyve: Invalid configuration node: a.\n'],
  [s('-o config.dump=maybe vm'), 4, 'tsbhyve: Invalid value maybe for boolean variable config.dump\n'],
  [['-k', join(dir, 'missing.conf'), 'vm'], 4, `tsbhyve: Failed to open configuration file ${join(dir, 'missing.conf')}: No such file or directory\n`],
  [['-k', badK, 'vm'], 4, `tsbhyve: ${badK} line 4: invalid config option 'novalue'\n`],
  // -l
  [s('-l com5,stdio vm'), 64, "tsbhyve: invalid lpc device configuration 'com5,stdio'\n"],
  [s('-l com1 vm'), 64, "tsbhyve: invalid lpc device configuration 'com1'\n"],
  [s('-l bootrom vm'), 4, 'tsbhyve: invalid bootrom option "bootrom"\n'],
  [s('-l tpm vm'), 4, 'tsbhyve: invalid tpm type "tpm"\n'],
  [s('-l tpm,swtpm vm'), 4, 'tsbhyve: invalid tpm path "tpm,swtpm"\n'],
  [s('-l fwcfg,qemu vm'), 64, "tsbhyve: invalid lpc device configuration 'fwcfg,qemu'\n"],
  // -f
  [s('-f foo vm'), 64, /^tsbhyve: invalid fwcfg item 'foo'/],
  [['-f', `${'n'.repeat(56)},string=x`, 'vm'], 64, /fwcfg name too long \(56 >= 56\)/],
  [['-f', `opt/x,file=${join(dir, 'nope')}`, 'vm'], 64, /Can't open fwcfg file/],
  [s('-f opt/x,bogus=1 vm'), 64, /invalid fwcfg item 'opt\/x,bogus=1'/],
  // -n
  [s('-n size=1G vm'), 64, /invalid NUMA configuration 'size=1G'/],
  [s('-o acpi_tables=false -n id=0,size=1G vm'), 64, 'tsbhyve: NUMA emulation requires ACPI\n'],
  [s('-n id=300 vm'), 4, "tsbhyve: Invalid value for id: '300'\n"],
  // usage (status 1, the same as power-off, as in bhyve)
  [s('-z vm'), 1, USAGE],
  [s('-r file vm'), 1, USAGE],
  [s('-b vm'), 1, USAGE],
  [s('vm1 vm2'), 1, USAGE],
  [[], 1, USAGE],
  [s('-c'), 1, /option requires an argument -- c/],
  [s('-m 1G'), 1, USAGE],
  // the start of a run
  [s('vm'), 4, 'tsbhyve: no bootrom was configured\n'],
  [s('-m 1G -c 2 vm'), 4, 'tsbhyve: no bootrom was configured\n'],
];

for (const [argv, status, message] of cases) {
  test(`bad input: tsbhyve ${argv.join(' ')}`, async (t) => {
    const r = await cli(...argv);
    t.equal(r.status, status, `exit status ${status}`);
    if (typeof message === 'string') t.equal(r.stderr, message, 'bhyve wording, one line');
    else t.match(r.stderr, message);
    t.equal(r.stdout, '', 'nothing on stdout');
    t.notOk(/\n\s+at /.test(r.stderr), 'no stack trace');
  });
}

test('the list of bad inputs is long enough to mean something', (t) => {
  t.ok(cases.length >= 40, `${cases.length} bad inputs`);
  t.end();
});
