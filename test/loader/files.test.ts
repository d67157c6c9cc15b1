// boot.kernel / boot.initrd paths: read as bytes, or a LoaderError naming the key.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'tape';
import { LoaderError, readBootFiles } from '../../src/loader/index.js';

function errorOf(fn: () => void): LoaderError | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof LoaderError) return e;
    throw e;
  }
  return undefined;
}

test('readBootFiles', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-files-'));
  try {
    writeFileSync(join(dir, 'k'), Buffer.from([1, 2, 3]));
    writeFileSync(join(dir, 'i'), Buffer.from([4, 5]));
    const both = readBootFiles(join(dir, 'k'), join(dir, 'i'));
    t.deepEqual([...both.kernel], [1, 2, 3], 'kernel bytes');
    t.deepEqual([...(both.initrd ?? [])], [4, 5], 'initrd bytes');
    t.equal(readBootFiles(join(dir, 'k')).initrd, undefined, 'no initrd when none is named');
    const missing = errorOf(() => readBootFiles(join(dir, 'nope')));
    t.equal(missing?.code, 'bad-input', 'missing kernel: bad-input');
    t.match(missing?.message ?? '', /^boot\.kernel: cannot open .*nope: ENOENT$/, `"${missing?.message}"`);
    const isDir = errorOf(() => readBootFiles(join(dir, 'k'), dir));
    t.match(isDir?.message ?? '', /^boot\.initrd: .* is not a regular file$/, `"${isDir?.message}"`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});
