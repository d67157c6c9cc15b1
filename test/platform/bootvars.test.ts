// The boot ROM variable store: bhyve's CFI subset (byte program, status reads, array reads), writes reaching
// the VARS file at once, and the size rules with bhyve's messages.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'tape';

import { BootVars, BootVarsError, PAGE_SIZE } from '../../src/platform/bootvars.js';
import type { IoSpace, MmioHandler } from '../../src/platform/machine.js';

function varsFile(size: number): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-vars-'));
  const path = join(dir, 'VARS.fd');
  writeFileSync(path, Uint8Array.from({ length: size }, (_, i) => i & 0xff));
  return { dir, path };
}

test('bootvars: placed right below the ROM; array reads return the file', (t) => {
  const { dir, path } = varsFile(2 * PAGE_SIZE);
  const v = BootVars.open(path, 0xffff_f000, 0xff_f000);
  try {
    t.equal(v.gpa, 0xffff_f000 - 2 * PAGE_SIZE, 'ends where the ROM starts');
    t.equal(v.size, 2 * PAGE_SIZE);
    let claimed: [number, number, MmioHandler] | undefined;
    const io = { registerMmio: (b: number, l: number, h: MmioHandler) => void (claimed = [b, l, h]) } as unknown as IoSpace;
    v.attach(io);
    t.deepEqual(claimed?.slice(0, 2), [v.gpa, 2 * PAGE_SIZE], 'claims exactly the store');
    t.equal(claimed![2](false, v.gpa + 0x10, 4, 0), 0x13121110, 'a dword read is the file bytes, little-endian');
    t.equal(v.access(false, 0x1fff, 1, 0), 0xff, 'the last byte');
    t.equal(v.access(false, 0x1fff, 2, 0), 0xffffffff, 'an access past the end reads all ones');
  } finally {
    v.close();
    rmSync(dir, { recursive: true });
  }
  t.end();
});

test('bootvars: byte program writes through to the file; status reads return 0 once', (t) => {
  const { dir, path } = varsFile(PAGE_SIZE);
  const v = BootVars.open(path, 0x1_0000_0000, 0x100_0000);
  try {
    v.access(true, 0x20, 1, 0x55); // not armed: a command byte, the array is unchanged
    t.equal(v.access(false, 0x20, 1, 0), 0x20, 'a write without byte program changes no data');
    v.access(true, 0x20, 1, 0x10); // byte program
    v.access(true, 0x20, 1, 0xab); // the data
    t.equal(v.access(false, 0x20, 1, 0), 0xab, 'programmed byte reads back');
    t.equal(readFileSync(path)[0x20], 0xab, 'and is in the file already');
    v.access(true, 0x30, 1, 0x10);
    v.access(true, 0x30, 4, 0xdeadbeef);
    t.equal(readFileSync(path).readUInt32LE(0x30), 0xdeadbeef, 'a wider program writes every byte');
    t.equal(v.access(false, 0x31, 1, 0), 0xbe, 'then array mode again');
    v.access(true, 0, 1, 0x70); // read status
    t.equal(v.access(false, 0x30, 4, 0), 0, 'status reads 0 (ready)');
    t.equal(v.access(false, 0x30, 4, 0), 0xdeadbeef, 'and the next read is array data');
    v.access(true, 0, 1, 0x50); // clear status
    t.equal(v.access(false, 0x40, 1, 0), 0, 'clear status also answers 0 once');
    t.equal(v.access(false, 0x40, 1, 0), 0x40, 'then array data');
    v.access(true, 0, 1, 0xff);
    t.equal(v.access(false, 0x41, 1, 0), 0x41, 'read array');
    v.access(true, 0x1000, 1, 0x10); // out of range: ignored
    t.equal(readFileSync(path).length, PAGE_SIZE, 'an access past the end never grows the file');
  } finally {
    v.close();
    rmSync(dir, { recursive: true });
  }
  t.end();
});

test('bootvars: bhyve\'s size rules and messages', (t) => {
  const small = varsFile(100);
  t.throws(() => BootVars.open(small.path, 0x1_0000_0000, 0x100_0000), (e: unknown) => e instanceof BootVarsError && e.message === 'Invalid bootrom variable size 100');
  rmSync(small.dir, { recursive: true });
  const big = varsFile(3 * PAGE_SIZE);
  t.throws(
    () => BootVars.open(big.path, 0x1_0000_0000, 2 * PAGE_SIZE),
    (e: unknown) => e instanceof BootVarsError && e.message === `Invalid bootrom and variable aggregate size ${3 * PAGE_SIZE}`,
    'ROM and VARS together must fit the 16 MiB region',
  );
  rmSync(big.dir, { recursive: true });
  t.throws(
    () => BootVars.open('/nonexistent/VARS.fd', 0x1_0000_0000, 0x100_0000),
    (e: unknown) => e instanceof BootVarsError && e.message === 'Error opening bootrom variable file "/nonexistent/VARS.fd": No such file or directory',
  );
  t.end();
});
