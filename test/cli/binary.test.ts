// The installed `tsbhyve` binary itself (bin/tsbhyve.js over the compiled dist/), as a user runs it.
import test from 'tape';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { kvmHostStatus } from '../../src/vm/kvm-host.js';

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

test('binary: without a usable /dev/kvm, one line naming the cause and status 4', (t) => {
  // On a host with KVM the override stands in for the missing device; here it may be the real thing.
  const real = kvmHostStatus();
  const env = real.level === 'none' ? process.env : { ...process.env, TSBHYVE_HOST_KVM: 'none' };
  const expected = kvmHostStatus({ env });
  const r = spawnSync(process.execPath, [bin, '-s', '0,hostbridge', '-s', '31,lpc', '-o', 'boot.kernel=/nonexistent', 'vm'], { encoding: 'utf8', env });
  t.equal(r.status, 4, 'bhyve exit status 4');
  t.equal(r.stderr, `tsbhyve: vm_openf: ${expected.reason}\n`, `one line: ${r.stderr.trim()}`);
  t.end();
});
