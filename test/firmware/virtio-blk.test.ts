// test-needs: kvm
// test=virtio-blk against a disk file: first under QEMU's own legacy virtio-blk (the reference device), then under
// tsbhyve's (-s 3,virtio-blk,FILE). The guest checks itself; the host then checks the file: the LBA-stamped pattern
// in every sector, the guest's CRC-32 lines against the bytes, WRITE_ZEROES left zeros, and DISCARD gave the blocks
// back (st_blocks). tsbhyve cases skip, saying why, when its virtio-blk is not available.
import test, { type Test } from 'tape';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { SECTOR, directIoDir, makeDisk, patternMismatches, qemuVirtioBlkArgs } from '../../firmware/testguest/disk.js';
import { parseBench, parseTestguestOutput, runTestguestInQemu, runTestguestInTsbhyve, tsbhyveSkipReason } from '../../firmware/testguest/index.js';

const DISK_BYTES = 8 << 20;
const SECTORS = DISK_BYTES / SECTOR;
const dir = directIoDir('testguest-vblk-');
test.onFinish(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function freshDisk(fill?: number): string {
  const file = join(dir, `disk${n++}.img`);
  makeDisk(file, DISK_BYTES, fill);
  return file;
}

/** The guest's verdict: checks printed, none failed, DONE reached. */
function guestPassed(t: Test, output: string): ReturnType<typeof parseTestguestOutput> {
  const out = parseTestguestOutput(output);
  t.ok(out.ready, 'guest printed TESTGUEST READY');
  t.equal(out.exception, null, 'no exception');
  for (const c of out.checks) if (c.status === 'FAIL') t.fail(`guest: FAIL ${c.details}`);
  t.ok(out.pass > 5, `${out.pass} guest checks passed`);
  t.deepEqual(out.done, { pass: out.pass, fail: 0 }, 'DONE with no failures');
  return out;
}

/** What the file must hold after the default data-path run with `seed`. */
function checkFile(t: Test, file: string, output: string, seed: number): void {
  const image = readFileSync(file);
  const half = SECTORS / 2;
  t.deepEqual(patternMismatches(image, 0, half, seed).slice(0, 8), [], `sectors 0-${half - 1} hold the LBA-stamped pattern`);
  const sums = [...output.matchAll(/TESTGUEST virtio-blk INFO sum lba=(\d+) n=(\d+) crc32=([0-9a-f]{8})/g)];
  t.equal(sums.length, 4, 'four checksum lines');
  for (const [, lba, count, crc] of sums) {
    const bytes = image.subarray(Number(lba) * SECTOR, (Number(lba) + Number(count)) * SECTOR);
    t.equal(crc32(bytes).toString(16).padStart(8, '0'), crc, `crc32 of lba ${lba} n=${count} matches the file`);
  }
  const zeroed = /INFO zeroed lba=(\d+) n=(\d+)/.exec(output);
  if (zeroed) {
    const region = image.subarray(Number(zeroed[1]) * SECTOR, (Number(zeroed[1]) + Number(zeroed[2])) * SECTOR);
    t.ok(region.every((b) => b === 0), `WRITE_ZEROES region lba ${zeroed[1]} n=${zeroed[2]} is zeros in the file`);
  }
  const discarded = /INFO discarded lba=(\d+) n=(\d+)/.exec(output);
  t.ok(discarded, 'the device offered DISCARD and the guest used it');
  if (discarded) {
    const allocated = statSync(file).blocks * 512;
    const limit = DISK_BYTES - Number(discarded[2]) * SECTOR;
    t.ok(allocated <= limit, `allocated ${allocated} bytes <= ${limit} (the discarded ${Number(discarded[2]) * SECTOR} bytes were given back)`);
  }
}

// ---- QEMU: the reference device ----

test('QEMU virtio-blk: identify, patterns, sums, FLUSH, WRITE_ZEROES, DISCARD, reset (MSI-X)', async (t) => {
  const file = freshDisk();
  const seed = 0x1000 + Math.floor(Math.random() * 0xffff);
  const r = await runTestguestInQemu({
    append: `test=virtio-blk,ser=QEMUDISK7,seed=${seed},sectors=${SECTORS}`,
    extraArgs: qemuVirtioBlkArgs(file, { serial: 'QEMUDISK7' }),
  });
  t.comment(`elapsed ${r.elapsedMs} ms accel=${r.accel}`);
  const out = guestPassed(t, r.output);
  t.ok(out.checks.some((c) => /interrupt mode msix in use/.test(c.details)), 'MSI-X in use');
  checkFile(t, file, r.output, seed);
  t.equal(r.shutdownReason, 'guest-shutdown');
});

test('QEMU virtio-blk: INTx when told to (irq=intx, vectors=0)', async (t) => {
  const file = freshDisk();
  const r = await runTestguestInQemu({
    append: `test=virtio-blk,irq=intx,seed=3,span=4096`,
    extraArgs: qemuVirtioBlkArgs(file, { device: ',vectors=0' }),
  });
  const out = guestPassed(t, r.output);
  t.ok(out.checks.some((c) => /interrupt mode intx in use/.test(c.details)), 'INTx in use');
  t.ok(out.checks.some((c) => /read completion by intx interrupt/.test(c.details)), 'completion by INTx');
});

test('QEMU virtio-blk: without MSI-X (vectors=0) and no MSI capability the driver falls back to INTx', async (t) => {
  const file = freshDisk();
  const r = await runTestguestInQemu({ append: 'test=virtio-blk,seed=4,span=2048', extraArgs: qemuVirtioBlkArgs(file, { device: ',vectors=0' }) });
  const out = guestPassed(t, r.output);
  t.ok(out.checks.some((c) => /interrupt mode intx in use \(asked msix, not offered: fallback\)/.test(c.details)), 'fell back to INTx');
  t.ok(out.checks.some((c) => /read completion by intx interrupt/.test(c.details)), 'completion by INTx');
});

test('QEMU virtio-blk: a read-only disk refuses writes with IOERR', async (t) => {
  const file = freshDisk(0x3c);
  const r = await runTestguestInQemu({ append: 'test=virtio-blk,ro=1', extraArgs: qemuVirtioBlkArgs(file, { readonly: true }) });
  const out = guestPassed(t, r.output);
  t.ok(out.checks.some((c) => /refused with IOERR/.test(c.details)), 'write refused');
  t.ok(readFileSync(file).every((b) => b === 0x3c), 'the file is unchanged');
});

test('QEMU virtio-blk: hostile requests (legacy QEMU stops silently, so allow_silent=1)', async (t) => {
  const file = freshDisk();
  const r = await runTestguestInQemu({ append: 'test=virtio-blk,hostile=1,allow_silent=1,seed=11', extraArgs: qemuVirtioBlkArgs(file) });
  const out = guestPassed(t, r.output);
  t.ok(out.checks.filter((c) => /hostile .*good read .* correct afterwards/.test(c.details)).length >= 6, 'good reads after each case');
});

test('QEMU shell: disk write / disk read', async (t) => {
  const file = freshDisk();
  const r = await runTestguestInQemu({
    append: 'shell',
    extraArgs: qemuVirtioBlkArgs(file),
    shellInput: ['disk write 5 tsbhyve!', 'disk read 5', 'poweroff'],
  });
  const sector = readFileSync(file).subarray(5 * SECTOR, 6 * SECTOR);
  t.equal(sector.toString('latin1'), 'tsbhyve!'.repeat(64), 'sector 5 holds the pattern in the file');
  t.match(r.output, /disk write lba=5 status=0/, 'write status OK');
  const m = /disk read lba=5 status=0 crc32=([0-9a-f]{8})/.exec(r.output);
  t.ok(m, 'read status OK');
  if (m) t.equal(m[1], crc32(sector).toString(16).padStart(8, '0'), 'the crc32 the guest read matches the file');
});

test('QEMU bench=virtio-blk: each workload prints a result line', async (t) => {
  const file = freshDisk(0x11);
  for (const w of ['randread4k', 'randwrite4k', 'seqread128k', 'notify']) {
    const r = await runTestguestInQemu({ append: `bench=virtio-blk,${w},ms=150`, extraArgs: qemuVirtioBlkArgs(file) });
    const [b] = parseBench(r.output);
    t.ok(b && b.workload === w && b.numbers.ops! > 0 && b.numbers.errors === 0, `${w}: ${b ? `${b.numbers.iops} IOPS, ${b.numbers.ns_per_op} ns/op` : 'no line'}`);
  }
});

// ---- tsbhyve ----

async function tsbhyveSkip(t: Test): Promise<boolean> {
  const why = tsbhyveSkipReason();
  if (why) {
    t.comment(`skipped: ${why}`);
    t.skip(why);
    t.end();
    return true;
  }
  return false;
}

test('tsbhyve virtio-blk: identify, patterns, sums, FLUSH, WRITE_ZEROES, DISCARD, reset (MSI-X)', async (t) => {
  if (await tsbhyveSkip(t)) return;
  const file = freshDisk();
  const seed = 0x2000 + Math.floor(Math.random() * 0xffff);
  const r = await runTestguestInTsbhyve({
    append: `test=virtio-blk,ser=TSBDISK9,seed=${seed},sectors=${SECTORS}`,
    extraArgs: ['-s', `3,virtio-blk,${file},ser=TSBDISK9`],
  });
  t.comment(`elapsed ${r.elapsedMs} ms`);
  const out = guestPassed(t, r.stdout);
  t.ok(out.checks.some((c) => /interrupt mode msix in use/.test(c.details)), 'MSI-X in use');
  checkFile(t, file, r.stdout, seed);
  t.equal(r.code, 1, 'exit status 1 (S5)');
});

test('tsbhyve virtio-blk: nocache (O_DIRECT) gives the same data', async (t) => {
  if (await tsbhyveSkip(t)) return;
  const file = freshDisk();
  const r = await runTestguestInTsbhyve({
    append: `test=virtio-blk,seed=77,sectors=${SECTORS}`,
    extraArgs: ['-s', `3,virtio-blk,${file},nocache`],
  });
  guestPassed(t, r.stdout);
  checkFile(t, file, r.stdout, 77);
  t.equal(r.code, 1);
});

for (const flag of [['-W'], ['-o', 'virtio_msix=false']]) {
  test(`tsbhyve virtio-blk: MSI with ${flag.join(' ')}`, async (t) => {
    if (await tsbhyveSkip(t)) return;
    const file = freshDisk();
    const r = await runTestguestInTsbhyve({ append: 'test=virtio-blk,irq=msi,seed=5,span=4096', extraArgs: [...flag, '-s', `3,virtio-blk,${file}`] });
    const out = guestPassed(t, r.stdout);
    t.ok(out.checks.some((c) => /interrupt mode msi in use \(asked msi\)$/.test(c.details)), 'MSI in use');
    t.ok(out.checks.some((c) => /read completion by msi interrupt/.test(c.details)), 'completion by MSI');
    t.ok(/msix_entries=0 msi_cap=1/.test(r.stdout), 'the function offers MSI and no MSI-X');
  });
}

test('tsbhyve virtio-blk: INTx when told to (irq=intx)', async (t) => {
  if (await tsbhyveSkip(t)) return;
  const file = freshDisk();
  const r = await runTestguestInTsbhyve({ append: 'test=virtio-blk,irq=intx,seed=6,span=4096', extraArgs: ['-s', `3,virtio-blk,${file}`] });
  const out = guestPassed(t, r.stdout);
  t.ok(out.checks.some((c) => /interrupt mode intx in use/.test(c.details)), 'INTx in use');
  t.ok(out.checks.some((c) => /read completion by intx interrupt/.test(c.details)), 'completion by INTx');
});

test('tsbhyve virtio-blk: a read-only disk (ro) refuses writes with IOERR', async (t) => {
  if (await tsbhyveSkip(t)) return;
  const file = freshDisk(0x3c);
  const r = await runTestguestInTsbhyve({ append: 'test=virtio-blk,ro=1', extraArgs: ['-s', `3,virtio-blk,${file},ro`] });
  guestPassed(t, r.stdout);
  t.ok(readFileSync(file).every((b) => b === 0x3c), 'the file is unchanged');
  t.equal(r.code, 1);
});

test('tsbhyve virtio-blk: hostile requests, then good ones (strict: no silent stop)', async (t) => {
  if (await tsbhyveSkip(t)) return;
  const file = freshDisk();
  const r = await runTestguestInTsbhyve({ append: 'test=virtio-blk,hostile=1,seed=12', extraArgs: ['-s', `3,virtio-blk,${file}`] });
  const out = guestPassed(t, r.stdout);
  t.ok(out.checks.filter((c) => /hostile .*good read .* correct afterwards/.test(c.details)).length >= 6, 'good reads after each case');
  t.equal(r.code, 1, 'tsbhyve itself survived and the guest powered off');
  t.comment(`tsbhyve said: ${r.stderr.trim().split('\n').join(' | ')}`);
});

test('tsbhyve bench=virtio-blk: each workload prints a result line', async (t) => {
  if (await tsbhyveSkip(t)) return;
  const file = freshDisk(0x11);
  for (const w of ['randread4k', 'randwrite4k', 'seqread128k', 'notify']) {
    const r = await runTestguestInTsbhyve({ append: `bench=virtio-blk,${w},ms=150`, extraArgs: ['-s', `3,virtio-blk,${file}`] });
    const [b] = parseBench(r.stdout);
    t.ok(b && b.workload === w && b.numbers.ops! > 0 && b.numbers.errors === 0, `${w}: ${b ? `${b.numbers.iops} IOPS, ${b.numbers.ns_per_op} ns/op` : 'no line'}`);
    t.equal(r.code, 1);
  }
});
