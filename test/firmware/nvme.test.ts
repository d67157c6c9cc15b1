// test-needs: kvm
// test=nvme against a disk file: first under QEMU's nvme device (the reference controller), then under tsbhyve's
// (-s 4,nvme,FILE[,opts]). The guest checks itself (identify data against the options, queues on their own MSI-X
// vectors, PRP lists, Flush, Write Zeroes, DSM, Compare, shadow doorbells, a reset with I/O in flight); the host then
// checks the file: the LBA-stamped pattern, the guest's CRC-32 lines against the bytes, zeroed and deallocated
// ranges. The hostile suite holds tsbhyve to the exact NVMe status codes. Also ram=, sectsz=4096, nocache, MSI, the
// bench lines, and bad options refused with bhyve's message and status 4.
import test, { type Test } from 'tape';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { SECTOR, directIoDir, makeDisk, patternMismatches } from '../../firmware/testguest/disk.js';
import { parseBench, parseTestguestOutput, runTestguestInQemu, runTestguestInTsbhyve, testguestPath, tsbhyveBin } from '../../firmware/testguest/index.js';

const DISK_BYTES = 8 << 20;
const SECTORS = DISK_BYTES / SECTOR;
const dir = directIoDir('testguest-nvme-');
test.onFinish(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function freshDisk(fill?: number, bytes = DISK_BYTES): string {
  const file = join(dir, `disk${n++}.img`);
  makeDisk(file, bytes, fill);
  return file;
}

const qemuNvme = (file: string, serial = 'QEMUNVME1', extra = ''): string[] => [
  '-drive', `file=${file},if=none,id=n0,format=raw,cache=none,aio=native,discard=unmap`,
  '-device', `nvme,drive=n0,serial=${serial}${extra}`,
];

function guestPassed(t: Test, output: string): ReturnType<typeof parseTestguestOutput> {
  const out = parseTestguestOutput(output);
  t.ok(out.ready, 'guest printed TESTGUEST READY');
  t.equal(out.exception, null, 'no exception');
  for (const c of out.checks) if (c.status === 'FAIL') t.fail(`guest: FAIL ${c.details}`);
  t.ok(out.pass > 10, `${out.pass} guest checks passed`);
  if (!out.done) t.comment(`no DONE line; the output ends: ${output.trimEnd().split('\n').slice(-3).join(' | ')}`);
  t.deepEqual(out.done, { pass: out.pass, fail: 0 }, 'DONE with no failures');
  return out;
}

/** What the file must hold after the default run with `seed`. */
function checkFile(t: Test, file: string, output: string, seed: number): void {
  const image = readFileSync(file);
  const half = SECTORS / 2;
  t.deepEqual(patternMismatches(image, 0, half, seed).slice(0, 8), [], `sectors 0-${half - 1} hold the LBA-stamped pattern`);
  const sums = [...output.matchAll(/TESTGUEST nvme INFO sum lba=(\d+) n=(\d+) crc32=([0-9a-f]{8})/g)];
  t.equal(sums.length, 4, 'four checksum lines');
  for (const [, lba, count, crc] of sums) {
    const bytes = image.subarray(Number(lba) * SECTOR, (Number(lba) + Number(count)) * SECTOR);
    t.equal(crc32(bytes).toString(16).padStart(8, '0'), crc, `crc32 of sectors ${lba}+${count} matches the file`);
  }
  const zeroed = /INFO zeroed lba=(\d+) n=(\d+)/.exec(output);
  t.ok(zeroed, 'Write Zeroes ran');
  if (zeroed) {
    const region = image.subarray(Number(zeroed[1]) * SECTOR, (Number(zeroed[1]) + Number(zeroed[2])) * SECTOR);
    t.ok(region.every((b) => b === 0), `Write Zeroes region ${zeroed[1]}+${zeroed[2]} is zeros in the file`);
  }
  const discarded = /INFO discarded lba=(\d+) n=(\d+)/.exec(output);
  t.ok(discarded, 'the controller offered Dataset Management and the guest deallocated');
  if (discarded) {
    const region = image.subarray(Number(discarded[1]) * SECTOR, (Number(discarded[1]) + Number(discarded[2])) * SECTOR);
    t.ok(region.every((b) => b === 0), 'the deallocated range reads as zeros in the file');
    const allocated = statSync(file).blocks * 512;
    const limit = DISK_BYTES - Number(discarded[2]) * SECTOR;
    t.ok(allocated <= limit, `allocated ${allocated} bytes <= ${limit}: the deallocated blocks were given back`);
  }
}

// ---- QEMU: the reference controller ----

// QEMU 7.2's nvme (Debian 12) dies of SIGSEGV in about one run in eight when the controller is disabled with writes
// in flight, so the reference run leaves the reset out (reset=0); tsbhyve's runs below keep it.
test('QEMU nvme: identify, queues on MSI-X, patterns, sums, Flush, Write Zeroes, DSM, shadow doorbells', async (t) => {
  const file = freshDisk();
  const seed = 0x3000 + Math.floor(Math.random() * 0xffff);
  const r = await runTestguestInQemu({ append: `test=nvme,ser=QEMUNVME1,seed=${seed},sectors=${SECTORS},reset=0`, extraArgs: qemuNvme(file) });
  t.comment(`elapsed ${r.elapsedMs} ms accel=${r.accel}${r.signal ? `, QEMU ended by ${r.signal}` : ''}`);
  const out = guestPassed(t, r.output);
  t.ok(out.checks.filter((c) => /queue \d: read completion by msix vector/.test(c.details)).length === 4, 'four queues, four MSI-X vectors');
  checkFile(t, file, r.output, seed);
});

test('QEMU nvme: hostile commands (lenient: QEMU completes DMA to non-RAM addresses)', async (t) => {
  const r = await runTestguestInQemu({ append: 'test=nvme,hostile=1,lenient=1,seed=21', extraArgs: qemuNvme(freshDisk()) });
  const out = guestPassed(t, r.output);
  t.ok(out.checks.filter((c) => /hostile .*good read .* correct afterwards/.test(c.details)).length >= 12, 'good reads after each case');
});

// ---- tsbhyve ----

test('tsbhyve nvme: identify matches the options; queues on MSI-X; data, sums, Flush, Write Zeroes, DSM, shadow doorbells, reset', async (t) => {
  const file = freshDisk();
  const seed = 0x4000 + Math.floor(Math.random() * 0xffff);
  const r = await runTestguestInTsbhyve({
    append: `test=nvme,ser=TSBNVME7,eui64=0x0011223344556677,seed=${seed},sectors=${SECTORS},sectsz=512,queues=8`,
    extraArgs: ['-s', `4,nvme,${file},ser=TSBNVME7,eui64=0x0011223344556677,maxq=8`],
  });
  t.comment(`elapsed ${r.elapsedMs} ms`);
  const out = guestPassed(t, r.stdout);
  t.ok(out.checks.some((c) => /^00:04\.0 fb5d:0a0a bring-up/.test(c.details)), 'FB5D:0A0A at slot 4');
  t.ok(out.checks.some((c) => /8 of 8 queue pairs created \(Number of Queues granted 8\)/.test(c.details)), 'maxq=8 queue pairs granted and created');
  t.equal(out.checks.filter((c) => /queue \d: read completion by msix vector/.test(c.details)).length, 8, 'eight queues, eight MSI-X vectors');
  t.ok(/msix_entries=9 /.test(r.stdout), 'maxq + 1 MSI-X vectors');
  t.ok(out.checks.some((c) => /shadow doorbells: \d+ commands/.test(c.details)), 'shadow doorbells exercised');
  checkFile(t, file, r.stdout, seed);
  t.equal(r.code, 1, 'exit status 1 (S5)');
});

test('tsbhyve nvme: sectsz=4096 and nocache (O_DIRECT) give 4 KiB LBAs and the same data', async (t) => {
  const file = freshDisk();
  const r = await runTestguestInTsbhyve({
    append: `test=nvme,seed=91,sectors=${SECTORS},sectsz=4096`,
    extraArgs: ['-s', `4,nvme,${file},sectsz=4096,nocache`],
  });
  const out = guestPassed(t, r.stdout);
  t.ok(out.checks.some((c) => /2048 LBAs of 4096 bytes/.test(c.details)), '2048 LBAs of 4 KiB');
  checkFile(t, file, r.stdout, 91);
});

test('tsbhyve nvme: ram=16 is a 16 MiB namespace of 4 KiB LBAs that holds data', async (t) => {
  const r = await runTestguestInTsbhyve({ append: 'test=nvme,seed=5,sectors=32768,sectsz=4096,span=8192', extraArgs: ['-s', '4,nvme,ram=16'] });
  const out = guestPassed(t, r.stdout);
  t.ok(out.checks.some((c) => /read back and verified every sector: 0 failed, 0 wrong/.test(c.details)), 'data verified');
});

test('tsbhyve nvme: MSI (one message) carries completions when the guest does not enable MSI-X', async (t) => {
  const r = await runTestguestInTsbhyve({ append: 'test=nvme,irq=msi,seed=6,span=4096,queues=2', extraArgs: ['-s', `4,nvme,${freshDisk()}`] });
  const out = guestPassed(t, r.stdout);
  t.ok(out.checks.some((c) => /setup with 2 I\/O queue pairs, msi \(asked msi\)/.test(c.details)), 'MSI in use');
  t.equal(out.checks.filter((c) => /read completion by msi vector/.test(c.details)).length, 2, 'completions by MSI on both queues');
});

test('tsbhyve nvme: hostile commands get the spec\'s status codes, then good ones work (strict)', async (t) => {
  const r = await runTestguestInTsbhyve({ append: 'test=nvme,hostile=1,seed=22', extraArgs: ['-s', `4,nvme,${freshDisk()}`] });
  const out = guestPassed(t, r.stdout);
  const status = (what: string): string | undefined => out.checks.find((c) => c.details.startsWith(`hostile ${what}: refused`))?.details.match(/status=(0x[0-9a-f]+)/)?.[1];
  const want: Array<[string, string]> = [
    ['PRP1 outside RAM', '0x4'], ['PRP1 not dword aligned', '0x13'], ['PRP list pointer outside RAM', '0x4'],
    ['PRP list entry with an offset', '0x13'], ['PRP list entry outside RAM (write)', '0x4'], ['transfer beyond MDTS', '0x2'],
    ['LBA past the end', '0x80'], ['LBA near 2^64 (no wrap)', '0x80'], ['namespace 0', '0xb'], ['namespace 7', '0xb'],
    ['unknown opcode 0x7f', '0x1'],
  ];
  for (const [what, st] of want) t.equal(status(what), st, `${what}: status ${st}`);
  t.ok(out.checks.some((c) => /AER completed=1 type=0 info=0 log=0x1/.test(c.details)), 'the bad doorbell raised an error AER pointing at the error log');
  t.equal(r.code, 1, 'tsbhyve survived and the guest powered off');
});

test('tsbhyve bench=nvme: each workload prints a result line', async (t) => {
  const file = freshDisk(0x11);
  for (const w of ['randread4k', 'randwrite4k', 'seqread128k', 'doorbell', 'doorbell,dbbuf=1']) {
    const r = await runTestguestInTsbhyve({ append: `bench=nvme,${w},ms=150`, extraArgs: ['-s', `4,nvme,${file}`] });
    const [b] = parseBench(r.stdout);
    t.ok(b && b.workload === w.split(',')[0] && b.numbers.ops! > 0 && b.numbers.errors === 0, `${w}: ${b ? `${b.numbers.iops} IOPS, ${b.numbers.ns_per_op} ns/op, shadow=${b.values.shadow}` : 'no line'}`);
    t.equal(r.code, 1);
  }
});

test('tsbhyve -s nvme: bad options stop start-up with bhyve\'s one-line message and status 4', async (t) => {
  const cases: Array<[string, RegExp]> = [
    [`4,nvme,${freshDisk()},qsz=0`, /nvme: Invalid qsz option 0/],
    [`4,nvme,${freshDisk()},ioslots=0`, /Invalid ioslots option 0/],
    ['4,nvme,ram=0', /backing store not specified/],
    [`4,nvme,${join(dir, 'missing.img')}`, /Could not open backing file/],
    [`4,nvme,${freshDisk()},dsm=sometimes`, /Invalid dsm option/],
  ];
  for (const [spec, re] of cases) {
    const r = spawnSync(process.execPath, [tsbhyveBin(), '-m', '64M', '-s', '0,hostbridge', '-s', spec, '-o', `boot.kernel=${testguestPath()}`, `nvme-bad-${process.pid}`], { encoding: 'utf8' });
    const lines = r.stderr.trim().split('\n');
    t.equal(r.status, 4, `${spec.replace(dir, '…')}: status 4`);
    t.ok(re.test(r.stderr) && lines.length === 1 && !/\bat \S+:\d+/.test(r.stderr), `one line: ${lines[0]}`);
  }
});
