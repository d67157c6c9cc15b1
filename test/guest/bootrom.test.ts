// test-needs: kvm
// -l bootrom,FILE: the ROM is mapped at the top of the 4 GiB space and the BSP starts at the reset vector in real
// mode (CS base 0xFFFF0000, IP 0xFFF0), as on hardware and in bhyve. The ROM here is 4 KiB of 16-bit code written
// in the test: it prints "ROM OK" on COM1, checks that it cannot write itself, and powers off through ACPI S5.
import test from 'tape';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tsbhyveSkipReason } from '../../firmware/testguest/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const skip = tsbhyveSkipReason();
if (skip) console.log(`# skipping boot ROM tests: ${skip}`);

/** A 4 KiB ROM; code at offset 0 (linear 0xFFFFF000 = CS:0xF000 with CS base 0xFFFF0000). */
function buildRom(): Uint8Array {
  const code: number[] = [];
  const emit = (...b: number[]) => code.push(...b);
  // Print "ROM OK\n" on COM1 (0x3F8): mov dx,0x3f8; then mov al,c; out dx,al for each byte.
  emit(0xba, 0xf8, 0x03);
  for (const c of Buffer.from('ROM OK\n')) emit(0xb0, c, 0xee);
  // The ROM must be read-only to the guest: mov byte [cs:0xF100], 0x55, then read it back (cs: prefix 0x2e).
  emit(0x2e, 0xc6, 0x06, 0x00, 0xf1, 0x55); // mov byte cs:[0xf100], 0x55
  emit(0x2e, 0xa0, 0x00, 0xf1); // mov al, cs:[0xf100]
  emit(0x3c, 0xf4); // cmp al, 0xf4 (the padding byte that is really there)
  emit(0x75, 0x06); // jne +6 -> skip the "RO" message
  emit(0xb0, 0x52, 0xee, 0xb0, 0x4f, 0xee); // out 'R', 'O'
  emit(0xb0, 0x0a, 0xee); // newline
  // S5: PM1a_CNT (0x404) <- SLP_TYP 5 << 10 | SLP_EN (1 << 13)
  emit(0xba, 0x04, 0x04); // mov dx, 0x404
  emit(0xb8, 0x00, 0x34); // mov ax, 0x3400
  emit(0xef); // out dx, ax
  emit(0xf4, 0xeb, 0xfd); // hlt; jmp $-1
  return romOf(code);
}

/** A 4 KiB ROM (hlt padding) with `code` at offset 0 and a reset vector that jumps to it. */
function romOf(code: number[]): Uint8Array {
  const rom = new Uint8Array(4096).fill(0xf4);
  rom.set(code, 0);
  // The reset vector at 0xFFFFFFF0 (ROM offset 0xFF0) jumps near to the code at offset 0: a far jump would reload
  // CS and drop the 0xFFFF0000 base the CPU comes out of reset with.
  const at = 0xff0;
  const rel = 0 - (at + 3);
  rom.set([0xe9, rel & 0xff, (rel >> 8) & 0xff], at);
  return rom;
}

test('bootrom: the BSP starts at the reset vector of a ROM mapped below 4 GiB; the ROM is read-only', { skip }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-rom-'));
  const rom = join(dir, 'test.rom');
  writeFileSync(rom, buildRom());
  const r = spawnSync(
    process.execPath,
    [`${root}bin/tsbhyve.js`, '-c', '1', '-m', '64M', '-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio', '-l', `bootrom,${rom}`, 'romvm'],
    { encoding: 'latin1', timeout: 120_000 },
  );
  t.equal(r.stdout, 'ROM OK\nRO\n', 'the ROM ran from the reset vector and saw its own bytes unchanged after a write');
  t.equal(r.status, 1, 'powered off through S5');
  t.equal(r.stderr, '', 'no messages');
  t.end();
});

test('bootrom: a ROM whose size is not a whole number of pages is refused with status 4', { skip }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-rom-'));
  const rom = join(dir, 'bad.rom');
  writeFileSync(rom, new Uint8Array(1000));
  const r = spawnSync(process.execPath, [`${root}bin/tsbhyve.js`, '-l', `bootrom,${rom}`, 'romvm2'], { encoding: 'utf8' });
  t.equal(r.status, 4);
  t.match(r.stderr, /^tsbhyve: ROM size 1000 is not a multiple of the page size\n$/);
  t.end();
});

/**
 * A 4 KiB ROM that uses an 8 KiB variable store below it (linear 0xFFFFD000, CS:0xD000): it prints byte 0 of
 * the store, programs byte 0x10 with 'X' (CFI byte program), reads it back, reads the status (0) and byte 0
 * again, then powers off. COM1 shows "VX0V".
 */
function buildVarsRom(): Uint8Array {
  // prettier-ignore
  const code = [
    0xba, 0xf8, 0x03,                   // mov dx, 0x3f8
    0x2e, 0xa0, 0x00, 0xd0, 0xee,       // mov al, cs:[0xd000]; out dx, al
    0x2e, 0xc6, 0x06, 0x10, 0xd0, 0x10, // mov byte cs:[0xd010], 0x10 (byte program)
    0x2e, 0xc6, 0x06, 0x10, 0xd0, 0x58, // mov byte cs:[0xd010], 'X'
    0x2e, 0xa0, 0x10, 0xd0, 0xee,       // mov al, cs:[0xd010]; out dx, al
    0x2e, 0xc6, 0x06, 0x00, 0xd0, 0x70, // mov byte cs:[0xd000], 0x70 (read status)
    0x2e, 0xa0, 0x00, 0xd0,             // mov al, cs:[0xd000]
    0x04, 0x30, 0xee,                   // add al, '0'; out dx, al
    0x2e, 0xa0, 0x00, 0xd0, 0xee,       // mov al, cs:[0xd000]; out dx, al (array mode again)
    0xb0, 0x0a, 0xee,                   // newline
    0xba, 0x04, 0x04, 0xb8, 0x00, 0x34, 0xef, // S5
    0xf4, 0xeb, 0xfd,
  ];
  return romOf(code);
}

test('bootrom: the VARS file is flash below the ROM; a programmed byte lands in the file', { skip }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-rom-'));
  const rom = join(dir, 'code.rom');
  const vars = join(dir, 'vars.fd');
  writeFileSync(rom, buildVarsRom());
  writeFileSync(vars, new Uint8Array(8192).fill(0x56)); // 'V'
  const r = spawnSync(
    process.execPath,
    [`${root}bin/tsbhyve.js`, '-m', '64M', '-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio', '-l', `bootrom,${rom},${vars}`, 'varsvm'],
    { encoding: 'latin1', timeout: 120_000 },
  );
  t.equal(r.stdout, 'VX0V\n', 'read, program, read back, status, read again');
  t.equal(r.status, 1, 'powered off through S5');
  t.equal(r.stderr, '', 'no messages');
  const after = readFileSync(vars);
  t.equal(after[0x10], 0x58, 'the programmed byte is in the VARS file');
  t.equal(after.length, 8192, 'the file keeps its size');
  t.ok(after.every((b, i) => i === 0x10 || b === 0x56), 'nothing else changed');
  t.end();
});

test('bootrom: an unusable VARS file is refused with status 4 in bhyve\'s words', { skip }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-rom-'));
  const rom = join(dir, 'code.rom');
  writeFileSync(rom, buildVarsRom());
  const missing = join(dir, 'missing.fd');
  let r = spawnSync(process.execPath, [`${root}bin/tsbhyve.js`, '-l', `bootrom,${rom},${missing}`, 'varsvm2'], { encoding: 'utf8' });
  t.equal(r.status, 4);
  t.equal(r.stderr, `tsbhyve: Error opening bootrom variable file "${missing}": No such file or directory\n`);
  const tiny = join(dir, 'tiny.fd');
  writeFileSync(tiny, new Uint8Array(512));
  r = spawnSync(process.execPath, [`${root}bin/tsbhyve.js`, '-l', `bootrom,${rom},${tiny}`, 'varsvm3'], { encoding: 'utf8' });
  t.equal(r.status, 4);
  t.equal(r.stderr, 'tsbhyve: Invalid bootrom variable size 512\n');
  t.end();
});
