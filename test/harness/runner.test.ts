// npm test's runner (scripts/test.ts) end to end, on two small fixture files: with the KVM probe overridden to
// "none", the file that needs KVM goes through a real nested-KVM L1 and its TAP comes back into the one stream;
// overridden to "hardware", both run on the host. The closing line counts them.
import test from 'tape';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
