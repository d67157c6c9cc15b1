// The installed `tsbhyve` binary itself (bin/tsbhyve.js over the compiled dist/), as a user runs it.
import test from 'tape';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/tsbhyve.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

test('binary: config.dump prints the tree on stdout and exits 1', (t) => {
  const r = run('-c', '2', '-s', '0,hostbridge', '-o', 'config.dump=1', 'vm');
  t.equal(r.status, 1);
  t.equal(r.stdout.split('\n').at(-2), 'name=vm');
  t.ok(r.stdout.includes('pci.0.0.0.device=hostbridge\n'));
  t.equal(r.stderr, '');
  t.end();
});

test('binary: bad input is one line and bhyve status, help exits 0', (t) => {
  const bad = run('-s', '3,floppy', 'vm');
  t.equal(bad.status, 4);
  t.equal(bad.stderr, 'pci slot 0:3:0: unknown device "floppy"\n');
  const usage = run();
  t.equal(usage.status, 1);
  t.match(usage.stderr, /^Usage: tsbhyve/);
  const help = run('-s', 'help');
  t.equal(help.status, 0);
  t.ok(help.stdout.includes('virtio-blk\n'));
  t.end();
});
