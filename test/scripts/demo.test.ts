// npm run demo as a user runs it: the test guest's shell comes up (under tsbhyve directly on a KVM host, inside
// the nested-KVM L1 otherwise), answers a command, and `poweroff` ends it with tsbhyve's status 1.
import test from 'tape';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { kvmHostStatus } from '../../src/vm/kvm-host.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const nested = kvmHostStatus().level === 'none';
const skip = nested && spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status !== 0 ? 'no KVM and no QEMU for the L1' : undefined;

test(`demo: the shell answers and poweroff exits 1 (${nested ? 'inside the nested-KVM L1' : 'directly'})`, { skip, timeout: 600_000 }, async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const sent = new Set<string>();
  const send = (after: RegExp, keys: string) => {
    if (!sent.has(keys) && after.test(out)) {
      sent.add(keys);
      child.stdin.write(keys);
    }
  };
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
    send(/testguest> $/, 'lspci\r');
    send(/1af4:1001[\s\S]*testguest> $/, 'poweroff\r');
  });
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.ok(out.includes('testguest shell'), 'the shell came up');
  t.match(out, /00:03\.0 1af4:1001 .*virtio-blk/, 'lspci lists the demo disk');
  t.equal(status, 1, "the demo returned tsbhyve's status: 1, powered off");
  t.match(err, /tsbhyve exited with status 1 \(powered off\)/, 'and said so');
  if (nested) t.match(err, /booting it inside a nested-KVM L1/, 'after one line saying why it is nested');
  t.end();
});
