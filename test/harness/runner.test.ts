// npm test's runner (scripts/test.ts) end to end, on two small fixture files: with the KVM probe overridden to
// "none", the file that needs KVM goes through a real nested-KVM L1 and its TAP comes back into the one stream;
// overridden to "hardware", both run on the host. The closing line counts them.
import test from 'tape';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freezeFlags } from './fixtures/freeze.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = ['test/harness/fixtures/needs-kvm.fixture.ts', 'test/harness/fixtures/plain.fixture.ts'];

function runner(hostKvm: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'scripts/test.ts', ...fixtures], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, TSBHYVE_HOST_KVM: hostKvm, TSBHYVE_L1_BATCHES: '1' },
    timeout: 600_000,
  });
}

const qemu = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0;

test('runner: no KVM here: the kvm file runs inside the L1, the plain one on the host, one merged stream', { skip: qemu ? undefined : 'qemu-system-x86_64 is not installed' }, (t) => {
  const r = runner('none');
  t.equal(r.status, 0, 'exit 0');
  const out = r.stdout;
  t.match(out, /^# KVM on this host: none \(TSBHYVE_HOST_KVM=none\)$/m, 'says what the probe found');
  t.match(out, /^# 1 files on the host; 1 in 1 nested-KVM L1 machine\(s\); 0 skipped$/m, 'and the plan');
  t.match(out, /# ---- test\/harness\/fixtures\/needs-kvm.fixture.ts \(inside nested-KVM L1 1 of 1\)\n# fixture: needs kvm\n# fixture ran inside the L1\nok \d+ inside the L1 there is a \/dev\/kvm/, 'the kvm file ran in L1, under its name');
  t.match(out, /# fixture ran on the host\nok \d+ plain file ran/, 'the plain one on the host');
  const numbers = [...out.matchAll(/^(?:not )?ok (\d+)/gm)].map((m) => Number(m[1]));
  t.deepEqual(numbers, numbers.map((_, i) => i + 1), 'one numbering across both');
  t.equal(out.trimEnd().split('\n').at(-1), '2 passed, 0 failed, 1 skipped', 'the closing line');
  t.end();
});

test('runner: hardware KVM: both files run on the host, no L1', (t) => {
  const r = runner('hardware');
  t.equal(r.status, 0, 'exit 0');
  t.match(r.stdout, /^# 2 files on the host; 0 in 0 nested-KVM L1 machine\(s\); 0 skipped$/m, 'the plan: all on the host');
  t.equal((r.stdout.match(/fixture ran on the host/g) ?? []).length, 2, 'both on the host');
  t.equal(r.stdout.trimEnd().split('\n').at(-1), '2 passed, 0 failed, 1 skipped', 'the closing line');
  t.end();
});

test('runner: an L1 that freezes is killed through its heartbeat; the file runs again once in a fresh L1, and fails if it freezes again', { skip: qemu ? undefined : 'qemu-system-x86_64 is not installed' }, (t) => {
  rmSync(freezeFlags, { recursive: true, force: true });
  // 40 s of silence means frozen here: long enough that an L1 booting on a host busy with other L1s is not taken
  // for a frozen one (15 s was, twice, in full runs), short enough to keep the test quick.
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'scripts/test.ts', 'test/harness/fixtures/freezes-once.fixture.ts', 'test/harness/fixtures/freezes-always.fixture.ts'],
    { cwd: root, encoding: 'utf8', env: { ...process.env, TSBHYVE_HOST_KVM: 'none', TSBHYVE_L1_BATCHES: '1', TSBHYVE_L1_SILENCE_S: '40' }, timeout: 600_000 },
  );
  const out = r.stdout;
  t.equal(r.status, 1, 'exit 1: one file failed');
  const once = out.slice(out.indexOf('# ---- test/harness/fixtures/freezes-once'));
  const always = out.slice(out.indexOf('# ---- test/harness/fixtures/freezes-always'));
  t.match(once, /^# L1 froze: no heartbeat for 40 s, so it was killed after \d+ lines of \S+freezes-once\S+; running it again in a fresh L1$/m, 'the freeze is named');
  t.match(once, /ok \d+ fixture passed on its second run/, 'the second run passed');
  t.equal((once.split('# ----')[1]!.match(/^ok \d+ the first assertion/gm) ?? []).length, 1, 'the frozen attempt does not count twice');
  t.match(always, /not ok \d+ the nested-KVM L1 stopped: L1 froze/, 'a file that freezes twice fails');
  t.doesNotMatch(out, /never reached/, 'nothing ran past a freeze');
  t.equal(out.trimEnd().split('\n').at(-1), '3 passed, 1 failed, 0 skipped', 'the closing line counts each file once');
  t.end();
});
