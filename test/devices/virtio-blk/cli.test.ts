// test-needs: kvm
// `tsbhyve -s 3,virtio-blk,PATH` through the real binary: the test guest's platform suite still passes with
// the disk present (it enumerates PCI; it has no virtio-blk driver yet), and a missing disk stops start-up
// with bhyve's message and status 4. Skipped without KVM, the addon or the built CLI.
import test from 'tape';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTestguestOutput, testguestPath, tsbhyveBin, tsbhyveSkipReason } from '../../../firmware/testguest/index.js';
import { makeDisk } from './helpers.js';

const skip = tsbhyveSkipReason() ?? (existsSync(testguestPath()) ? undefined : 'the test guest is not built');

let runs = 0;
/**
 * Boots the test guest as firmware/testguest's runTestguestInTsbhyve does, but under a VM name of its own so
 * that it never collides with another test guest run on the same host (VM names are locked host-wide).
 */
function runGuest(append: string, extraArgs: string[], timeoutMs = 120000): Promise<{ output: string; code: number | null }> {
  const name = `vblk-${process.pid}-${runs++}`;
  const args = [
    tsbhyveBin(), '-c', '2', '-m', '256M', '-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio',
    '-o', `boot.kernel=${testguestPath()}`, '-o', `boot.cmdline=${append}`, ...extraArgs, name,
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString('latin1')));
  child.stderr.on('data', (c: Buffer) => (output += c.toString('latin1')));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ output, code });
    });
  });
}

test('tsbhyve -s 3,virtio-blk,disk.img: the platform suite passes with the disk attached', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-vblk-cli-'));
  try {
    const disk = makeDisk(dir, 1 << 20);
    const r = await runGuest('test=platform cpus=2 mem=256 ecam=0xe0000000', ['-s', `3,virtio-blk,${disk}`]);
    const out = parseTestguestOutput(r.output);
    t.ok(out.ready, 'guest started');
    for (const c of out.checks.filter((c) => c.status === 'FAIL')) t.fail(`FAIL ${c.details}`);
    t.ok(out.pass > 0, `${out.pass} checks passed`);
    t.equal(r.code, 1, 'powered off with status 1');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The test guest's own virtio-blk driver (firmware/testguest/src/drivers/virtio_blk.c) against this device,
// in each interrupt mode, and its hostile sub-suite.
const guestRuns: Array<[string, string[], string]> = [
  ['MSI-X', [], 'test=virtio-blk,sectors=8192,irq=msix'],
  ['MSI (-W)', ['-W'], 'test=virtio-blk,sectors=8192,irq=msi'],
  ['INTx (-W)', ['-W'], 'test=virtio-blk,sectors=8192,irq=intx'],
  ['hostile', [], 'test=virtio-blk,hostile=1'],
];
for (const [what, flags, append] of guestRuns) {
  test(`tsbhyve: the test guest's virtio-blk suite passes (${what})`, { skip }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-vblk-cli-'));
    try {
      const disk = makeDisk(dir, 4 << 20, true);
      const r = await runGuest(append, [...flags, '-s', `3,virtio-blk,${disk}`]);
      const out = parseTestguestOutput(r.output);
      for (const c of out.checks.filter((c) => c.status === 'FAIL')) t.fail(`FAIL ${c.details}`);
      t.ok(out.pass > 0, `${out.pass} checks passed`);
      // The device's NEEDS_RESET warnings go to stderr and can split a console line, so the guest's own
      // DONE totals are the reference.
      t.equal(out.done?.fail, 0, `suite done without failures (${out.done?.pass} passed)`);
      t.equal(r.code, 1, 'powered off with status 1');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('tsbhyve -s 3,virtio-blk,missing.img: start-up fails with status 4', { skip }, async (t) => {
  const r = await runGuest('test=platform', ['-s', '3,virtio-blk,/nonexistent/disk.img']);
  t.equal(r.code, 4, 'exit status 4');
  t.match(r.output, /Could not open backing file: \/nonexistent\/disk\.img/, "bhyve's message");
});
