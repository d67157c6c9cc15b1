// virtio-blk block options from the configuration tree: required path, sector sizes, serial, flags, and the
// errors bhyve reports.
import test from 'tape';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommandLine } from '../../../src/cli/parse.js';
import { BhyveError } from '../../../src/config/errors.js';
import { defaultSerial, readBlockOptions } from '../../../devices/virtio-blk/options.js';
import { virtioMachine } from '../../harness/virtio-driver.js';
import { VIRTIO_BLK_F_RO } from '../../../devices/virtio-blk/config-space.js';
import { bit } from '../../../devices/virtio/constants.js';

function opts(spec: string) {
  const { tree } = parseCommandLine(['-s', spec, 'vm'], () => {});
  return readBlockOptions(tree, tree.findNode('pci.0.3.0')!);
}

function throwsBhyve(t: test.Test, f: () => unknown, re: RegExp, what: string): void {
  try {
    f();
    t.fail(`${what}: no error`);
  } catch (e) {
    t.ok(e instanceof BhyveError && re.test(e.message) && e.status === 4, `${what}: ${(e as Error).message}`);
  }
}

test('options: flags, sector sizes, serial', (t) => {
  const o = opts('3,virtio-blk,/x/disk.img,nocache,direct,ro,nodelete,sectorsize=4096/8192,ser=S1,bootindex=2');
  t.deepEqual(
    { ...o },
    { ioThreads: 1, engine: 'auto', path: '/x/disk.img', readOnly: true, noCache: true, sync: true, noDelete: true, logicalSector: 4096, physicalSector: 8192, serial: 'S1', bootindex: 2 },
    'every option parsed',
  );
  t.equal(opts('3,virtio-blk,/x/d,sectorsize=512').physicalSector, 512, 'P defaults to L');
  t.equal(opts('3,virtio-blk,/x/d,sync').sync, true, 'sync is O_SYNC');
  t.equal(opts('3,virtio-blk,/x/d').serial, defaultSerial('/x/d'), 'default serial from the path');
  t.notEqual(defaultSerial('/a'), defaultSerial('/b'), 'different paths, different serials');
  t.end();
});

test('options: errors with bhyve wording', (t) => {
  const { tree } = parseCommandLine(['-s', '3,virtio-blk', 'vm'], () => {});
  throwsBhyve(t, () => readBlockOptions(tree, tree.findNode('pci.0.3.0')!), /^Missing "path" for block device/, 'no path');
  throwsBhyve(t, () => opts('3,virtio-blk,/x,sectorsize=1000'), /Invalid sector size/, 'not a power of two');
  throwsBhyve(t, () => opts('3,virtio-blk,/x,sectorsize=256'), /Invalid sector size/, 'below 512');
  throwsBhyve(t, () => opts('3,virtio-blk,/x,sectorsize=4096/512'), /Invalid sector size/, 'L > P');
  throwsBhyve(t, () => opts('3,virtio-blk,/x,sectorsize=abc'), /Invalid sector size/, 'not a number');
  throwsBhyve(t, () => opts('3,virtio-blk,/x,ser=123456789012345678901'), /serial/, 'serial over 20 bytes');
  throwsBhyve(t, () => opts('3,virtio-blk,/x,iothreads=0'), /iothreads/, 'iothreads=0');
  t.equal(opts('3,virtio-blk,/x,iothreads=8').ioThreads, 8, 'iothreads=8');
  t.equal(opts('3,virtio-blk,/x').engine, 'auto', 'io_uring where available by default');
  t.equal(opts('3,virtio-blk,/x,aio=io_uring').engine, 'auto', 'aio=io_uring');
  t.equal(opts('3,virtio-blk,/x,aio=threads').engine, 'threads', 'aio=threads');
  throwsBhyve(t, () => opts('3,virtio-blk,/x,aio=native'), /aio/, 'aio=native refused');
  t.end();
});

test('opening: a missing file is an error; an unwritable file falls back to read-only', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-vblk-'));
  try {
    throwsBhyve(t, () => virtioMachine(['-s', `3,virtio-blk,${join(dir, 'nope.img')}`], 3), /Could not open backing file/, 'missing file');
    const path = join(dir, 'ro.img');
    writeFileSync(path, Buffer.alloc(65536));
    chmodSync(path, 0o444);
    if (process.getuid?.() === 0) {
      t.comment('running as root: file permissions do not stop a read-write open; checking the ro option instead');
      const { m, dev } = virtioMachine(['-s', `3,virtio-blk,${path},ro`], 3);
      t.ok(dev.hostFeatures() & bit(VIRTIO_BLK_F_RO), 'RO offered');
      m.close();
    } else {
      const { m, dev } = virtioMachine(['-s', `3,virtio-blk,${path}`], 3);
      t.ok(dev.hostFeatures() & bit(VIRTIO_BLK_F_RO), 'read-write open failed, so the disk is read-only');
      m.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});
