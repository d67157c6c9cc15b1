// Unit tests of the Linux image builder's parts: cpio archives (checked with GNU cpio), ELF reading,
// the bzImage/LZ4 unpacker, and module load order against a real Debian kernel package.
import test from 'tape';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bzImagePayload, lz4LegacyDecompress } from '../../firmware/linux/bzimage.js';
import { appendTo, cpioArchive } from '../../firmware/linux/cpio.js';
import { newestKernelPackage, unpackPackage } from '../../firmware/linux/debian.js';
import { ElfError, modinfo, neededLibraries } from '../../firmware/linux/elf.js';
import { publish } from '../../firmware/linux/image.js';
import { moduleTree, planModules, ModuleError } from '../../firmware/linux/modules.js';

test('cpio: GNU cpio unpacks our newc archive with files, modes, directories and symlinks', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cpio-'));
  try {
    const archive = cpioArchive([
      { kind: 'dir', path: 'bin' },
      { kind: 'file', path: 'bin/hello', data: '#!/bin/sh\necho hi\n', mode: 0o755 },
      { kind: 'symlink', path: 'bin/hi', target: 'hello' },
      { kind: 'file', path: '/etc-file', data: Buffer.from([0, 1, 2, 3, 4]) },
    ]);
    t.equal(archive.length % 4, 0, 'the archive is padded to 4 bytes');
    writeFileSync(join(dir, 'a.cpio'), archive);
    const list = execFileSync('cpio', ['-it', '--quiet', '-F', join(dir, 'a.cpio')], { encoding: 'utf8' });
    t.deepEqual(list.trim().split('\n'), ['bin', 'bin/hello', 'bin/hi', 'etc-file'], 'names, leading slash dropped');
    const out = join(dir, 'out');
    execFileSync('sh', ['-c', `mkdir ${out} && cd ${out} && cpio -idm --quiet -F ../a.cpio`]);
    t.equal(readFileSync(join(out, 'bin/hello'), 'utf8'), '#!/bin/sh\necho hi\n', 'file content');
    t.equal(statSync(join(out, 'bin/hello')).mode & 0o777, 0o755, 'file mode');
    t.equal(readlinkSync(join(out, 'bin/hi')), 'hello', 'symlink target');
    t.deepEqual([...readFileSync(join(out, 'etc-file'))], [0, 1, 2, 3, 4], 'binary content');

    appendTo(join(dir, 'a.cpio'), [{ kind: 'file', path: 'test.sh', data: 'exit 0\n' }], join(dir, 'b.cpio'));
    const both = readFileSync(join(dir, 'b.cpio'));
    t.ok(both.subarray(0, archive.length).equals(archive), 'appendTo keeps the base archive intact');
    writeFileSync(join(dir, 'tail.cpio'), both.subarray(archive.length));
    const tail = execFileSync('cpio', ['-it', '--quiet', '-F', join(dir, 'tail.cpio')], { encoding: 'utf8' });
    t.equal(tail.trim(), 'test.sh', 'the appended archive follows it');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});

test('elf: DT_NEEDED of a host program, and non-ELF input is refused', (t) => {
  const needed = neededLibraries(readFileSync('/usr/bin/ls'));
  t.ok(needed.includes('libc.so.6'), `ls needs libc.so.6 (${needed.join(' ')})`);
  t.throws(() => neededLibraries(Buffer.from('#!/bin/sh\n'.padEnd(128))), ElfError, 'a script is not ELF');
  t.end();
});

test('lz4: the legacy frame decoder handles literals, overlapping matches and several blocks', (t) => {
  // Block 1: literals "abc", then a match of offset 3, length 9 ("abcabcabc"), then literals "x".
  const block1 = Buffer.from([0x35, 0x61, 0x62, 0x63, 0x03, 0x00, 0x10, 0x78]);
  // Block 2: 20 literal "z" (length extension: 15 + 5).
  const block2 = Buffer.concat([Buffer.from([0xf0, 5]), Buffer.alloc(20, 'z')]);
  const frame = Buffer.alloc(4 + 4 + block1.length + 4 + block2.length);
  let at = frame.writeUInt32LE(0x184c2102, 0);
  at = frame.writeUInt32LE(block1.length, at);
  at += block1.copy(frame, at);
  at = frame.writeUInt32LE(block2.length, at);
  block2.copy(frame, at);
  const expected = 'abcabcabcabcx' + 'z'.repeat(20);
  t.equal(lz4LegacyDecompress(frame, expected.length).toString(), expected);
  t.throws(() => lz4LegacyDecompress(frame, expected.length + 1), /expected/, 'a size mismatch is an error');
  const bad = Buffer.from(frame);
  bad[8 + 4] = 0x09; // match offset 9 before only 3 bytes of output
  t.throws(() => lz4LegacyDecompress(bad, expected.length), /offset/, 'a match before the output start is refused');
  t.end();
});

test('modules: load order from .modinfo of the Debian cloud kernel; bzImage payload found', (t) => {
  const pkg = unpackPackage(newestKernelPackage('6.1.0', 'cloud-amd64'));
  const tree = moduleTree(pkg.root);
  const plan = planModules(tree, ['virtio_blk', 'virtio-net', 'nvme'], ['no_such_module']);
  const names = plan.loadOrder.map((p) => p.slice(p.lastIndexOf('/') + 1));
  t.ok(names.indexOf('virtio_ring.ko') < names.indexOf('virtio_blk.ko'), 'virtio_ring before virtio_blk');
  t.ok(names.indexOf('virtio.ko') < names.indexOf('virtio_net.ko'), 'virtio before virtio_net');
  t.ok(names.indexOf('failover.ko') < names.indexOf('net_failover.ko'), 'failover before net_failover');
  t.equal(new Set(names).size, names.length, 'each module once');
  t.deepEqual(plan.builtin, ['nvme'], 'nvme is built into the cloud kernel');
  t.throws(() => planModules(tree, ['no_such_module']), ModuleError, 'a missing required module is an error');
  const info = modinfo(readFileSync(join(tree.dir, plan.loadOrder.at(-1)!)));
  t.ok(info.some(([k]) => k === 'depends'), '.modinfo has a depends= entry');

  const bz = readFileSync(join(pkg.root, 'boot', `vmlinuz-${tree.release}`));
  const payload = bzImagePayload(bz);
  t.ok(payload.size > bz.length, `payload decompresses to ${payload.size} bytes`);
  t.end();
});

test('publish: the first finished build wins, a later one is dropped', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'publish-'));
  try {
    for (const n of ['a', 'b']) {
      mkdirSync(join(dir, n));
      writeFileSync(join(dir, n, 'who'), n);
    }
    t.equal(publish(join(dir, 'a'), join(dir, 'image')), true, 'the first build is moved into place');
    t.equal(publish(join(dir, 'b'), join(dir, 'image')), false, 'the second finds it there');
    t.equal(readFileSync(join(dir, 'image', 'who'), 'utf8'), 'a', 'the first build is kept');
    t.notOk(existsSync(join(dir, 'b')), 'the second build is removed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});
