// The L1 runner on its own: one boot runs a command that checks what the nested harness relies on
// (/dev/kvm, the host's /usr, the project shared read-write at its own path, the host's node), and a
// tiny time limit shows that a stuck L1 is killed.
import test from 'tape';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from '../../firmware/linux/paths.js';
import { L1Error, runInL1 } from './nested/l1.js';

test('L1: runs one command with /dev/kvm, the host /usr and the project directory, returns its status', async (t) => {
  t.timeoutAfter(150_000);
  const marker = join(cacheRoot, 'nested', `l1-test-${process.pid}`);
  rmSync(marker, { force: true });
  const seen: string[] = [];
  const r = await runInL1(
    [
      'test -c /dev/kvm && echo "kvm: yes"',
      'echo "qemu: $(qemu-system-x86_64 -version | head -1)"',
      'echo "node: $(node -p process.version)"',
      'echo "cwd: $(pwd) env: $GREETING"',
      `echo written-in-l1 > ${marker}`,
      'exit 5',
    ].join('\n'),
    { timeoutMs: 140_000, env: { GREETING: "it's shared" }, onLine: (l) => seen.push(l.text) },
  );
  t.comment(`L1 ready in ${(r.readyMs / 1000).toFixed(2)} s, command done in ${(r.totalMs / 1000).toFixed(2)} s`);
  t.equal(r.status, 5, 'the command exit status comes back');
  t.match(r.output, /^kvm: yes$/m, '/dev/kvm exists in L1');
  t.match(r.output, /^qemu: QEMU emulator version/m, "the host's QEMU runs from the shared /usr");
  t.match(r.output, new RegExp(`^node: ${process.version.replaceAll('.', '\\.')}$`, 'm'), "the host's node runs");
  t.match(r.output, new RegExp(`^cwd: ${process.cwd()} env: it's shared$`, 'm'), 'cwd and environment are passed');
  t.equal(existsSync(marker) && readFileSync(marker, 'utf8'), 'written-in-l1\n', 'the project share is writable');
  t.deepEqual(seen, r.lines.map((l) => l.text), 'every output line was streamed');
  rmSync(marker, { force: true });
});

test('L1: the time limit kills QEMU and says so', async (t) => {
  const started = performance.now();
  try {
    await runInL1('sleep 600', { timeoutMs: 2_000 });
    t.fail('a 2 s limit cannot be met');
  } catch (e) {
    t.ok(e instanceof L1Error && /timed out after 2000 ms/.test(e.message), `rejected: ${(e as Error).message}`);
  }
  t.ok(performance.now() - started < 300_000, 'long before the 600 s sleep would have ended');
});
