// nvme options from the configuration tree as pci_nvme.c reads them: defaults, clamping, the RAM namespace,
// the block options, serial and EUI-64, dsm, and the errors bhyve reports (status 4, one line).
import test from 'tape';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommandLine } from '../../../src/cli/parse.js';
import { BhyveError } from '../../../src/config/errors.js';
import { crc16, defaultEui64, readNvmeOptions } from '../../../devices/nvme/options.js';
import { nvmeMachine } from '../../harness/nvme-driver.js';

function opts(spec: string, warnings: string[] = []) {
  const { tree } = parseCommandLine(['-s', `4,nvme,${spec}`, 'vm'], () => {});
  return readNvmeOptions(tree, tree.findNode('pci.0.4.0')!, { slot: 4, func: 0 }, (w) => warnings.push(w));
}

function throwsBhyve(t: test.Test, f: () => unknown, re: RegExp, what: string): void {
  try {
    f();
    t.fail(`${what}: no error`);
  } catch (e) {
    t.ok(e instanceof BhyveError && re.test(e.message) && e.status === 4 && !e.message.includes('\n'), `${what}: ${(e as Error).message}`);
  }
}

test('defaults and clamping follow bhyve', async (t) => {
  const o = opts('/x/disk.img');
  t.deepEqual(
    { maxq: o.maxQueues, qsz: o.queueEntries, ioslots: o.ioSlots, ser: o.serial, eui: o.eui64, dsm: o.dsm, ss: o.sectorSize, path: o.block?.path },
    { maxq: 16, qsz: 2048, ioslots: 32, ser: 'NVME-4-0', eui: undefined, dsm: 'auto', ss: undefined, path: '/x/disk.img' },
    'maxq 16, qsz 2048, ioslots 32 (bhyve: 8), serial NVME-<slot>-<func>, dsm auto, the disk\'s sector size',
  );
  t.equal(opts('/x,maxq=0').maxQueues, 16, 'maxq=0 is clamped to 16');
  t.equal(opts('/x,maxq=17').maxQueues, 16, 'maxq=17 is clamped to 16');
  t.equal(opts('/x,maxq=4').maxQueues, 4, 'maxq=4');
  t.equal(opts('/x,qsz=256').queueEntries, 256, 'qsz=256');
  const w: string[] = [];
  t.equal(opts('/x,qsz=100000', w).queueEntries, 65536, 'qsz beyond what CAP.MQES can say is capped');
  t.equal(opts('/x,sectsz=4096').sectorSize, 4096, 'sectsz=4096');
  t.equal(opts('/x,sectsz=8192').sectorSize, 8192, 'sectsz=8192');
  t.equal(opts('/x,sectsz=1024', w).sectorSize, undefined, 'sectsz=1024 is ignored (bhyve keeps the disk\'s)');
  t.equal(opts('/x,ioslots=5000', w).ioSlots, 1024, 'ioslots beyond what the worker keeps in flight is capped at 1024');
  t.equal(w.length, 3, 'every adjustment is reported');
  t.equal(opts('/x,eui64=0x1122334455667788').eui64, 0x1122334455667788n, 'eui64 in hex');
  t.equal(opts('/x,eui64=012').eui64, 10n, 'eui64 is strtoull base 0 (octal)');
  t.equal(opts('/x,dsm=enable').dsm, 'enable', 'dsm=enable');
  t.equal(opts('/x,ser=ABC').serial, 'ABC', 'ser=ABC');
  t.ok(opts('/x,ro,nocache').block?.readOnly && opts('/x,nocache').block?.noCache, 'block options (ro, nocache) are read');
  const ram = opts('ram=64');
  t.equal(ram.ramBytes, 64 << 20, 'ram=64 is 64 MiB');
  t.equal(ram.block, undefined, '... with no file');
  t.equal(ram.sectorSize, 4096, '... and 4096-byte LBAs');
  t.equal(opts('ram=64,sectsz=512').sectorSize, 512, 'a RAM namespace takes sectsz too');
});

test('errors with bhyve wording and status 4', async (t) => {
  throwsBhyve(t, () => opts('/x,qsz=0'), /^nvme: Invalid qsz option 0$/, 'qsz=0');
  throwsBhyve(t, () => opts('/x,qsz=-3'), /^nvme: Invalid qsz option -3$/, 'qsz=-3');
  throwsBhyve(t, () => opts('/x,ioslots=0'), /^Invalid ioslots option 0$/, 'ioslots=0');
  throwsBhyve(t, () => opts('/x,dsm=maybe'), /dsm/, 'dsm=maybe');
  throwsBhyve(t, () => opts('/x,ser=123456789012345678901'), /^nvme: serial .* longer than 20/, 'a serial over 20 characters');
  throwsBhyve(t, () => opts('ram=0'), /^backing store not specified$/, 'ram=0');
  throwsBhyve(t, () => opts('ram=lots'), /^backing store not specified$/, 'ram=lots');
  const { tree } = parseCommandLine(['-s', '4,nvme', 'vm'], () => {});
  throwsBhyve(t, () => readNvmeOptions(tree, tree.findNode('pci.0.4.0')!, { slot: 4, func: 0 }, () => {}), /^backing store not specified$/, 'no path');
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-nvme-'));
  try {
    throwsBhyve(t, () => nvmeMachine(['-s', `4,nvme,${join(dir, 'nope.img')}`], 4), /Could not open backing file/, 'a missing file');
    writeFileSync(join(dir, 'empty.img'), '');
    throwsBhyve(t, () => nvmeMachine(['-s', `4,nvme,${join(dir, 'empty.img')}`], 4), /^backing store not specified$/, 'an empty file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the derived EUI-64: FreeBSD OUI, a CRC-16 of the VM name and PCI address, the NSID', async (t) => {
  t.equal(crc16(Buffer.from('123456789')), 0xbb3d, 'crc16 is CRC-16/ARC (check value of "123456789")');
  const a = defaultEui64('vm', 0, 4, 0);
  t.equal(a >> 40n, 0x589cfcn, 'OUI 58-9C-FC');
  t.equal(a & 0xffffn, 1n, 'NSID 1');
  t.notEqual(defaultEui64('vm', 0, 5, 0), a, 'another slot, another EUI-64');
  t.notEqual(defaultEui64('other', 0, 4, 0), a, 'another VM, another EUI-64');
});

test('-o config.dump style keys: ram= and the block syntax land under pci.0.4.0', async (t) => {
  const { tree } = parseCommandLine(['-s', '4,nvme,ram=16,maxq=2,ser=Z', 'vm'], () => {});
  const n = tree.findNode('pci.0.4.0')!;
  t.deepEqual(['device', 'ram', 'maxq', 'ser'].map((k) => tree.getIn(n, k)), ['nvme', '16', '2', 'Z'], 'device, ram, maxq, ser');
  const b = parseCommandLine(['-s', '4,nvme,/d.img,nocache,qsz=64', 'vm'], () => {}).tree;
  const bn = b.findNode('pci.0.4.0')!;
  t.deepEqual(['path', 'nocache', 'qsz'].map((k) => b.getIn(bn, k)), ['/d.img', 'true', '64'], 'path, nocache, qsz');
});
