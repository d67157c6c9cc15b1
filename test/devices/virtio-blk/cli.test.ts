// `tsbhyve -s 3,virtio-blk,PATH` through the real binary: the test guest's platform suite still passes with
// the disk present (it enumerates PCI; it has no virtio-blk driver yet), and a missing disk stops start-up
// with bhyve's message and status 4. Skipped without KVM, the addon or the built CLI.
import test from 'tape';
import { accessSync, constants, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTestguestOutput, runTestguestInTsbhyve, testguestPath, tsbhyveBin } from '../../../firmware/testguest/index.js';
import { makeDisk } from './helpers.js';

function skipReason(): string | undefined {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return '/dev/kvm not usable';
  }
  if (!existsSync(tsbhyveBin()) || !existsSync(testguestPath())) return 'tsbhyve CLI or test guest not built';
  return undefined;
}
const skip = skipReason() !== undefined;

test('tsbhyve -s 3,virtio-blk,disk.img: the platform suite passes with the disk attached', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-vblk-cli-'));
  try {
    const disk = makeDisk(dir, 1 << 20);
    const r = await runTestguestInTsbhyve({ append: 'test=platform cpus=2 mem=256 ecam=0xe0000000', extraArgs: ['-s', `3,virtio-blk,${disk}`] });
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
      const r = await runTestguestInTsbhyve({ append, extraArgs: [...flags, '-s', `3,virtio-blk,${disk}`], timeoutMs: 120000 });
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
  const r = await runTestguestInTsbhyve({ append: 'test=platform', extraArgs: ['-s', '3,virtio-blk,/nonexistent/disk.img'] });
  t.equal(r.code, 4, 'exit status 4');
  t.match(r.output, /Could not open backing file: \/nonexistent\/disk\.img/, "bhyve's message");
});
