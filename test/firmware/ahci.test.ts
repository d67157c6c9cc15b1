// test-needs: kvm
// test=ahci under QEMU q35's built-in ICH9 AHCI (8086:2922 at 00:1f.2), the reference HBA, with a disk file on port 0
// and an ISO 9660 CD on port 1. The guest checks itself (HBA facts, IDENTIFY against the options, DMA and NCQ
// patterns with multi-entry PRDTs and several tags in flight, MSI completions, FLUSH, TRIM, errors past the end and
// the port's recovery, the ATAPI commands an OS sends); the host then checks the disk file (pattern, the CRC-32
// lines, the trimmed range as zeros) and every "cdfile" line against the file it put on the ISO. tsbhyve's AHCI
// (-s 4,ahci,hd:FILE[,opts],cd:ISO) runs the same suite with the same host checks, and a multi-port variant. The hostile
// suite (hostile=1, suites/ahci_hostile.c) runs on both: QEMU with lenient=1, tsbhyve held to the exact statuses.
import test, { type Test } from 'tape';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { SECTOR, directIoDir, makeDisk, patternMismatches } from '../../firmware/testguest/disk.js';
import { parseTestguestOutput, runTestguestInQemu, runTestguestInTsbhyve } from '../../firmware/testguest/index.js';
import { isoSkipReason, makeIso } from '../../firmware/testguest/iso.js';

const DISK_BYTES = 8 << 20;
const SECTORS = DISK_BYTES / SECTOR;
const dir = directIoDir('testguest-ahci-');
const cleanups: string[] = [dir];
test.onFinish(() => { for (const d of cleanups) rmSync(d, { recursive: true, force: true }); });

let n = 0;
function freshDisk(): string {
  const file = join(dir, `disk${n++}.img`);
  makeDisk(file, DISK_BYTES);
  return file;
}

const qemuDisk = (file: string, bus: string, extra = ''): string[] => [
  '-drive', `file=${file},if=none,id=d0,format=raw,cache=none,aio=native,discard=unmap`,
  '-device', `ide-hd,drive=d0,bus=${bus},serial=QEMUAHCI1${extra}`,
];
const qemuCd = (iso: string, bus: string): string[] => [
  '-drive', `file=${iso},if=none,id=c0,media=cdrom,readonly=on`,
  '-device', `ide-cd,drive=c0,bus=${bus}`,
];

/** `known`: guest FAILs that are known deviations, reported as comments and left out of the DONE count. */
function guestPassed(t: Test, output: string, known: RegExp[] = []): ReturnType<typeof parseTestguestOutput> {
  const out = parseTestguestOutput(output);
  t.ok(out.ready, 'guest printed TESTGUEST READY');
  t.equal(out.exception, null, 'no exception');
  let knownFails = 0;
  for (const c of out.checks) {
    if (c.status !== 'FAIL') continue;
    if (known.some((re) => re.test(c.details))) {
      knownFails++;
      t.comment(`known deviation: FAIL ${c.details}`);
    } else {
      t.fail(`guest: FAIL ${c.details}`);
    }
  }
  t.ok(out.pass > 10, `${out.pass} guest checks passed`);
  if (!out.done) t.comment(`no DONE line; the output ends: ${output.trimEnd().split('\n').slice(-3).join(' | ')}`);
  t.deepEqual(out.done, { pass: out.pass, fail: knownFails }, knownFails ? `DONE with no failures but the ${knownFails} known` : 'DONE with no failures');
  return out;
}

/** The hostile cases' checks that passed (not their good reads), and the good reads after them. */
function hostileCounts(out: ReturnType<typeof parseTestguestOutput>): { cases: number; goodReads: number } {
  const passed = out.checks.filter((c) => c.status === 'PASS' && /^hostile /.test(c.details));
  const goodReads = passed.filter((c) => /^hostile .*: good read status=0x0 correct afterwards$/.test(c.details)).length;
  return { cases: passed.length - goodReads, goodReads };
}

/** What the disk file must hold after a run with `seed` over the whole (8 MiB) disk. */
function checkDisk(t: Test, file: string, output: string, seed: number): void {
  const image = readFileSync(file);
  const half = SECTORS / 2;
  t.deepEqual(patternMismatches(image, 0, half, seed).slice(0, 8), [], `sectors 0-${half - 1} hold the LBA-stamped pattern`);
  t.deepEqual(patternMismatches(image, half + half / 2, half / 2, seed).slice(0, 8), [], 'so does the last quarter');
  const sums = [...output.matchAll(/TESTGUEST ahci INFO sum lba=(\d+) n=(\d+) crc32=([0-9a-f]{8})/g)];
  t.equal(sums.length, 4, 'four checksum lines');
  for (const [, lba, count, crc] of sums) {
    const bytes = image.subarray(Number(lba) * SECTOR, (Number(lba) + Number(count)) * SECTOR);
    t.equal(crc32(bytes).toString(16).padStart(8, '0'), crc, `crc32 of sectors ${lba}+${count} matches the file`);
  }
  const discarded = /INFO discarded lba=(\d+) n=(\d+)/.exec(output);
  t.ok(discarded, 'IDENTIFY offered TRIM (discard=unmap) and the guest trimmed');
  if (discarded) {
    const region = image.subarray(Number(discarded[1]) * SECTOR, (Number(discarded[1]) + Number(discarded[2])) * SECTOR);
    t.ok(region.every((b) => b === 0), `the trimmed range ${discarded[1]}+${discarded[2]} reads as zeros in the file`);
  }
}

/** The guest's "cdfile" lines against the files the host put on the ISO. */
function checkCd(t: Test, output: string, files: Record<string, Buffer>): void {
  t.ok(/INFO cd capacity blocks=\d+/.test(output), 'CD capacity reported');
  const cdfiles = new Map([...output.matchAll(/INFO cdfile name=(\S+) size=(\d+) crc32=([0-9a-f]{8})/g)].map((m) => [m[1], m.slice(2)]));
  for (const [name, data] of Object.entries(files)) {
    const got = cdfiles.get(name);
    t.deepEqual(got, [String(data.length), crc32(data).toString(16).padStart(8, '0')], `${name}: size and crc32 as read by the guest match the host file`);
  }
  t.equal(cdfiles.size, Object.keys(files).length, 'no other files on the CD');
  t.ok(/INFO cd write refused with (ILLEGAL REQUEST|DATA PROTECT)/.test(output), 'WRITE(10) refused');
}

/** Files of different sizes: one within a block, one of several PRDT entries, one over 64 KiB (ISO 9660 level-1 names). */
function discFiles(): Record<string, Buffer> {
  return {
    'SMALL.BIN': randomBytes(1500),
    'MIDDLE.TXT': randomBytes(40 * 1024 + 6),
    'LARGE.DAT': randomBytes(300 * 1024 + 123),
  };
}

/**
 * A run takes 1-5 s on KVM and up to a minute in the nested L1 while other L1s load the host: the limit only has to
 * catch a hang.
 */
const RUN_LIMIT_MS = 300_000;

const skip = isoSkipReason();
if (skip) test(`ahci: skipped (${skip})`, { skip: true }, () => {});

test('QEMU ICH9 AHCI: HBA, IDENTIFY, DMA and NCQ patterns, sums, FLUSH, TRIM, errors and recovery; ATAPI CD and ISO files', { skip: !!skip }, async (t) => {
  const files = discFiles();
  const iso = makeIso(files, { volume: 'AHCITEST' });
  cleanups.push(dirname(iso));
  const disk = freshDisk();
  const seed = 0x5000 + Math.floor(Math.random() * 0xffff);
  const r = await runTestguestInQemu({
    timeoutMs: RUN_LIMIT_MS,
    append: `test=ahci,ser=QEMUAHCI1,sectors=${SECTORS},seed=${seed},ssd=1`,
    extraArgs: [...qemuDisk(disk, 'ide.0', ',rotation_rate=1'), ...qemuCd(iso, 'ide.1')],
  });
  t.comment(`elapsed ${r.elapsedMs} ms accel=${r.accel}${r.signal ? `, QEMU ended by ${r.signal}` : ''}`);
  const out = guestPassed(t, r.output);
  t.ok(out.checks.some((c) => /^00:1f\.2 8086:2922 bring-up/.test(c.details)), 'the ICH9 AHCI at 00:1f.2');
  t.ok(out.checks.some((c) => /completions signalled by MSI/.test(c.details)), 'completions by MSI');
  t.comment(/INFO (ncq tags outstanding together[^\n]*)/.exec(r.output)?.[1] ?? 'no NCQ report');
  t.ok(out.checks.some((c) => /READ FPDMA QUEUED back and verified: 0 failed, 0 wrong/.test(c.details)), 'NCQ (8 tags) wrote and read back the data');
  t.ok(out.checks.some((c) => /rotation rate 1 \(word 217\)/.test(c.details)), 'ssd=1: rotation rate 1');
  checkDisk(t, disk, r.output, seed);
  checkCd(t, r.output, files);
});

test('QEMU ICH9 AHCI: a disk on port 3 named by port=, polled (irq=poll, a second HBA reset), no CD: the CD checks are left out', async (t) => {
  const disk = freshDisk();
  const r = await runTestguestInQemu({ timeoutMs: RUN_LIMIT_MS, append: `test=ahci,port=3,sectors=${SECTORS},seed=77,span=4096,irq=poll`, extraArgs: qemuDisk(disk, 'ide.3') });
  const out = guestPassed(t, r.output);
  t.ok(out.checks.some((c) => /^port 3: link up .* signature 0x00000101/.test(c.details)), 'port 3 holds the disk');
  t.ok(/no ATAPI port: CD checks not run/.test(r.output), 'no CD checks');
  t.ok(/INFO cap2=\S+ irq=poll /.test(r.output) && /completions polled/.test(r.output), 'completions polled');
  t.deepEqual(patternMismatches(readFileSync(disk), 0, 2048, 77).slice(0, 8), [], 'span=4096: the first half holds the pattern');
});

test('QEMU ICH9 AHCI: hostile commands and register writes (lenient=1: what QEMU 7.2 does instead), the port serving good reads after each', { skip: !!skip }, async (t) => {
  const iso = makeIso(discFiles(), { volume: 'HOSTILE' });
  cleanups.push(dirname(iso));
  const r = await runTestguestInQemu({
    timeoutMs: RUN_LIMIT_MS,
    append: 'test=ahci,hostile=1,lenient=1,seed=31',
    extraArgs: [...qemuDisk(freshDisk(), 'ide.0'), ...qemuCd(iso, 'ide.1')],
  });
  t.comment(`elapsed ${r.elapsedMs} ms accel=${r.accel}${r.signal ? `, QEMU ended by ${r.signal}` : ''}`);
  t.equal(r.signal, null, 'QEMU survived');
  const out = guestPassed(t, r.output);
  const { cases, goodReads } = hostileCounts(out);
  t.ok(cases >= 30, `${cases} hostile checks passed`);
  t.ok(goodReads >= 30, `good reads after each case: ${goodReads}`);
  t.ok(out.checks.some((c) => /^hostile cd READ\(12\) of FFFFFFFFh blocks: .*sense 5\/21\/00 \(CHECK/.test(c.details)), 'the CD cases ran');
});

// ---- tsbhyve ----

test('tsbhyve ahci: hd and cd ports; IDENTIFY against ser= and nmrr=; DMA and NCQ patterns, sums, FLUSH, TRIM, errors; ATAPI and the ISO files', { skip: !!skip }, async (t) => {
  const files = discFiles();
  const iso = makeIso(files, { volume: 'TSBAHCI' });
  cleanups.push(dirname(iso));
  const disk = freshDisk();
  const seed = 0x6000 + Math.floor(Math.random() * 0xffff);
  const r = await runTestguestInTsbhyve({
    timeoutMs: RUN_LIMIT_MS,
    append: `test=ahci,ser=TSBAHCI1,model=TSBHYVE-TEST-DISK,sectors=${SECTORS},seed=${seed},ssd=1`,
    extraArgs: ['-s', `4,ahci,hd:${disk},ser=TSBAHCI1,nmrr=1,model=TSBHYVE-TEST-DISK,cd:${iso}`],
  });
  t.comment(`elapsed ${r.elapsedMs} ms`);
  const out = guestPassed(t, r.stdout);
  t.ok(out.checks.some((c) => /^00:04\.0 8086:2821 bring-up/.test(c.details)), '8086:2821 at slot 4');
  t.ok(out.checks.some((c) => /completions signalled by MSI/.test(c.details)), 'completions by MSI');
  t.comment(/INFO (ncq tags outstanding together[^\n]*)/.exec(r.output)?.[1] ?? 'no NCQ report');
  t.ok(out.checks.some((c) => /READ FPDMA QUEUED back and verified: 0 failed, 0 wrong/.test(c.details)), 'NCQ (8 tags) wrote and read back the data');
  t.ok(out.checks.some((c) => /rotation rate 1 \(word 217\)/.test(c.details)), 'nmrr=1: rotation rate 1');
  checkDisk(t, disk, r.stdout, seed);
  checkCd(t, r.stdout, files);
  t.equal(r.code, 1, 'powered off: status 1');
});

test('tsbhyve ahci: three ports, the checked disk on port 1 with nocache, polled; port 0 untouched', async (t) => {
  const other = freshDisk();
  const disk = freshDisk();
  const before = readFileSync(other);
  const r = await runTestguestInTsbhyve({
    timeoutMs: RUN_LIMIT_MS,
    append: `test=ahci,port=1,sectors=${SECTORS},seed=91,span=4096,irq=poll`,
    extraArgs: ['-s', `4,ahci,hd:${other},hd:${disk},nocache,hd:${freshDisk()}`],
  });
  const out = guestPassed(t, r.stdout);
  t.ok(out.checks.some((c) => /^port 1: link up .* signature 0x00000101/.test(c.details)), 'port 1 holds the checked disk');
  t.ok(/completions polled/.test(r.stdout), 'completions polled');
  t.deepEqual(patternMismatches(readFileSync(disk), 0, 2048, 91).slice(0, 8), [], 'port 1\'s file holds the pattern');
  t.ok(readFileSync(other).equals(before), 'port 0\'s file is unchanged');
});

// What tsbhyve answers to each hostile case (AHCI 1.3.1, ACS-3, SPC-4, MMC-6; devices/ahci/README.md).
const TSBHYVE_HOSTILE: Array<[string, RegExp]> = [
  ['command table in the MMIO hole', /PxIS 0x20000000 HBFS/],
  ['command table at 1 TiB (CTBAU)', /PxIS 0x20000000 HBFS/],
  ['command list (PxCLB) in the MMIO hole', /PxIS 0x20000000 HBFS/],
  ['PRD buffer in the MMIO hole', /ERR 0x04 .*TFES/],
  ['PRD buffer at 1 TiB', /ERR 0x04 .*TFES/],
  ['PRD running off the end of RAM (write)', /ERR 0x04 .*TFES/],
  ['PRDT of 2 KiB for 8 sectors', /ERR 0x04 .*TFES/],
  ['PRDTL 0 with READ DMA EXT', /ERR 0x04 .*TFES/],
  ['CFL 0', /ERR 0x04 .*TFES/],
  ['CFL 17', /ERR 0x04 .*TFES/],
  ['FIS type 34h (device to host)', /ERR 0x04 .*TFES/],
  ['C bit and SRST clear, READ DMA EXT in the FIS', /completed, PRDBC 0 /],
  ['READ DMA EXT count 0 (65536 sectors) at 0 of 16384', /ERR 0x14 .*TFES/],
  ['READ DMA EXT at LBA 2^47', /ERR 0x14 .*TFES/],
  ['READ DMA EXT at LBA 16384 (the capacity)', /ERR 0x14 .*TFES/],
  ['NCQ READ FPDMA QUEUED in slot 3 without its PxSACT bit', /completed, PRDBC 4096, data correct, PxSACT 0x0/],
  ['NCQ read of 8 sectors at the last LBA, tag 5', /ERR 0x14 .*TFES/],
  ['READ LOG EXT 10h after it', /status=0x0, tag 5 NQ 0, STS 0x41 ERR 0x14, checksum ok/],
  ['DATA SET MANAGEMENT TRIM of 0 blocks', /ERR 0x04 .*TFES/],
  ['DATA SET MANAGEMENT TRIM of 65535 blocks (a 512-byte PRDT)', /ERR 0x04 .*TFES/],
  ['DATA SET MANAGEMENT without the TRIM bit', /ERR 0x04 .*TFES/],
  ['DATA SET MANAGEMENT TRIM of 16 sectors at 16380', /ERR 0x14 .*TFES/],
  ['READ LOG EXT of 0 pages (the directory)', /ERR 0x04 .*TFES/],
  ['READ LOG EXT of log 30h (not in the directory)', /ERR 0x04 .*TFES/],
  ['4 rounds of 32 slots of random headers and FISes', /0 time-outs/],
  ['byte write to PxIE and word write to PxIE+2', /\(unchanged\)$/],
  ['cd READ(12) of FFFFFFFFh blocks', /sense 5\/21\/00 \(CHECK CONDITION/],
  ['cd READ(10) of 4 blocks into a 2 KiB PRDT', /sense 5\/24\/00 \(CHECK CONDITION/],
  ['cd INQUIRY with allocation length 0', /completed, PRDBC 0, data untouched/],
  ['cd WRITE(10)', /sense 7\/27\/00 \(CHECK CONDITION/],
  ['cd opcode D9h', /sense 5\/20\/00 \(CHECK CONDITION/],
];
// A port PI leaves out keeps its reset values whatever is written (AHCI 1.3.1 §3.1.4).
const ABSENT_PORT = /^hostile writes to port \d+ \(not in PI .*PxCI 0x0 PxSACT 0x0 PxCMD 0x0 /;

test('tsbhyve ahci: hostile commands and register writes get the errors AHCI, ACS-3 and MMC give, then good ones work (strict)', { skip: !!skip }, async (t) => {
  const iso = makeIso(discFiles(), { volume: 'HOSTILE' });
  cleanups.push(dirname(iso));
  const r = await runTestguestInTsbhyve({ timeoutMs: RUN_LIMIT_MS, append: 'test=ahci,hostile=1,seed=32', extraArgs: ['-s', `4,ahci,hd:${freshDisk()},cd:${iso}`] });
  t.comment(`elapsed ${r.elapsedMs} ms`);
  const out = guestPassed(t, r.stdout);
  const { cases, goodReads } = hostileCounts(out);
  t.ok(cases >= 30, `${cases} hostile checks passed`);
  t.ok(goodReads >= 32, `good reads after each case: ${goodReads}`);
  t.equal(out.checks.filter((c) => /\(lenient/.test(c.details)).length, 0, 'nothing passed only by leniency');
  for (const [what, want] of TSBHYVE_HOSTILE) {
    const c = out.checks.find((x) => x.details.startsWith(`hostile ${what}: `));
    t.ok(c && c.status === 'PASS' && want.test(c.details), `${what}: ${c ? c.details.slice(`hostile ${what}: `.length) : 'not run'}`);
  }
  const absent = out.checks.find((x) => /^hostile writes to port \d+ \(not in PI/.test(x.details));
  t.ok(absent && absent.status === 'PASS' && ABSENT_PORT.test(absent.details), `a port without a device ignores writes: ${absent?.details ?? 'not run'}`);
  t.equal(r.code, 1, 'tsbhyve survived and the guest powered off');
});

