// The test runner's pieces (scripts/test.ts): which files need KVM, where each runs for every kind of host
// (hardware KVM, kvm_pvm, none, and no QEMU either), the balancing of L1 batches, glob expansion, and the TAP
// merge with its counts. Also the /dev/kvm probe itself against stand-in device paths.
import test from 'tape';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kvmHostMeets, kvmHostStatus, type KvmHostStatus } from '../../src/vm/kvm-host.js';
import { expandGlobs } from './suite/files.js';
import { balance, declaredNeed, planSuite } from './suite/plan.js';
import { TapMerger } from './suite/tap.js';

test('needs: the marker comment near the top says kvm or linux; anything else boots no guest', (t) => {
  t.equal(declaredNeed('// test-needs: kvm\n// what the file tests\nimport test from "tape";'), 'kvm');
  t.equal(declaredNeed('// A header\n// test-needs: linux\n'), 'linux');
  t.equal(declaredNeed('// test-needs: kvm-ish\n'), undefined, 'only the two words');
  t.equal(declaredNeed('const s = "// test-needs: kvm";\n'), undefined, 'a string is not the marker');
  t.equal(declaredNeed(`${'\n'.repeat(60)}// test-needs: kvm\n`), undefined, 'too far down to be a header');
  t.end();
});

const hardware: KvmHostStatus = { level: 'hardware', reason: 'hardware KVM' };
const pvm: KvmHostStatus = { level: 'pvm', reason: 'kvm_pvm' };
const none: KvmHostStatus = { level: 'none', cause: 'absent', reason: '/dev/kvm is absent' };
const needs: Record<string, 'kvm' | 'linux' | undefined> = { 'a.test.ts': undefined, 'vm.test.ts': 'kvm', 'linux.test.ts': 'linux' };
const files = Object.keys(needs);
const needOf = (f: string) => needs[f];

test('plan: hardware KVM runs everything directly; kvm_pvm nests only Linux; no KVM nests every guest test', (t) => {
  t.deepEqual(planSuite({ files, needOf, host: hardware, l1Batches: 2 }), { host: files, l1: [], skipped: [] }, 'hardware: direct');
  t.deepEqual(planSuite({ files, needOf, host: pvm, l1Batches: 2 }), { host: ['a.test.ts', 'vm.test.ts'], l1: [['linux.test.ts']], skipped: [] }, 'kvm_pvm');
  const p = planSuite({ files, needOf, host: none, l1Batches: 2 });
  t.deepEqual(p.host, ['a.test.ts']);
  t.deepEqual(p.l1.flat().sort(), ['linux.test.ts', 'vm.test.ts'], 'both guest files in L1');
  t.equal(p.l1.length, 2, 'over two machines');
  const q = planSuite({ files, needOf, host: none, l1Batches: 2, l1Unavailable: 'no QEMU' });
  t.deepEqual(q.l1, [], 'no L1 without QEMU');
  t.deepEqual(q.skipped.map((s) => s.file), ['vm.test.ts', 'linux.test.ts'], 'so those skip');
  t.match(q.skipped[0]!.reason, /\/dev\/kvm is absent; and no QEMU/, 'saying why');
  t.end();
});

test('plan: batches balance by cost, longest first, and keep the tree order inside each', (t) => {
  const cost: Record<string, number> = { a: 100, b: 10, c: 60, d: 40, e: 5 };
  const batches = balance(['a', 'b', 'c', 'd', 'e'], 2, (f) => cost[f]!);
  t.deepEqual(batches, [['a', 'b'], ['c', 'd', 'e']], '110 against 105');
  t.deepEqual(balance(['a'], 3, () => 1), [['a']], 'no empty batches');
  t.deepEqual(balance([], 2, () => 1), []);
  t.end();
});

test('files: globs with ** and *, plain paths, sorted and unique', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'suite-files-'));
  try {
    for (const f of ['test/a.test.ts', 'test/x/b.test.ts', 'test/x/y/c.test.ts', 'test/x/helper.ts', 'test/node_modules/n.test.ts']) {
      mkdirSync(join(dir, f, '..'), { recursive: true });
      writeFileSync(join(dir, f), '');
    }
    t.deepEqual(expandGlobs(dir, ['test/**/*.test.ts']), ['test/a.test.ts', 'test/x/b.test.ts', 'test/x/y/c.test.ts'], '** spans zero or more folders');
    t.deepEqual(expandGlobs(dir, ['test/x/*.test.ts']), ['test/x/b.test.ts'], '* stays in one folder');
    t.deepEqual(expandGlobs(dir, ['test/x/y/c.test.ts', 'test/**/c.test.ts', 'missing.test.ts']), ['test/x/y/c.test.ts'], 'plain paths, once');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});

test('tap: streams print one at a time, renumbered, counted; a held stream prints whole on its turn', (t) => {
  const out: string[] = [];
  const m = new TapMerger((l) => out.push(l));
  const host = m.stream('host');
  const l1 = m.stream('l1');
  l1.line('TAP version 13');
  l1.line('# in L1');
  l1.line('ok 1 held');
  l1.line('1..1');
  l1.end(0);
  host.line('TAP version 13');
  host.line('# on host');
  host.line('ok 1 first');
  host.line('not ok 2 second');
  host.line('  ---');
  host.line('  ...');
  host.line('ok 3 skipped assert # SKIP');
  host.line("ok 4 a message quoting 'x # SKIP\\n# tests 3' passes");
  host.line('# SKIP a whole test');
  host.line('not ok 5 expected # TODO');
  host.line('');
  host.line('1..4');
  host.line('# tests 4');
  host.line('# pass  3');
  host.line('# fail  1');
  t.notOk(out.some((l) => l.endsWith(' held')), 'the L1 stream waits while the host owns the output');
  host.end(1);
  m.finish();
  t.deepEqual(out, [
    'TAP version 13', '# ---- host', '# on host', 'ok 1 first', 'not ok 2 second', '  ---', '  ...', 'ok 3 skipped assert # SKIP',
    "ok 4 a message quoting 'x # SKIP\\n# tests 3' passes", '# SKIP a whole test', 'not ok 5 expected # TODO', '# ---- l1', '# in L1',
    'ok 6 held', '', '1..6', '# tests 6', '# pass  4', '# skip  2', '# fail  1', '', '4 passed, 1 failed, 2 skipped',
  ]);
  t.end();
});

test('tap: a run that ends without its plan, or fails with no failing assertion, counts as a failure', (t) => {
  const out: string[] = [];
  const m = new TapMerger((l) => out.push(l));
  const crashed = m.stream('crashed');
  crashed.line('ok 1 before the crash');
  crashed.end(null, 'signal SIGSEGV');
  const quiet = m.stream('exit 1');
  quiet.line('ok 1 fine');
  quiet.line('1..1');
  quiet.end(1);
  const l1 = m.stream('broken L1');
  l1.fail('the nested-KVM L1 stopped: timed out', 'last console line');
  l1.end(null, 'timed out');
  m.finish();
  t.ok(out.includes('not ok 2 crashed ended abnormally (signal SIGSEGV)'), 'no plan: abnormal end');
  t.ok(out.includes('not ok 4 exit 1 ended abnormally (exit 1)'), 'non-zero exit without a failure');
  t.ok(out.includes('not ok 5 the nested-KVM L1 stopped: timed out') && out.includes('    last console line'), 'with the detail');
  t.equal(out.filter((l) => /^not ok/.test(l)).length, 3, 'and no second failure for a stream that reported its own');
  t.equal(out.at(-1), '2 passed, 3 failed, 0 skipped');
  t.end();
});

test('kvm probe: absent, absent on a PVM host, no permission, kvm_pvm, hardware, inside L1, overrides', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kvm-probe-'));
  try {
    const device = join(dir, 'kvm');
    const sysModule = join(dir, 'module');
    mkdirSync(sysModule);
    const probe = (env: NodeJS.ProcessEnv = {}) => kvmHostStatus({ env, device, sysModule });
    t.deepEqual([probe().level, probe().cause], ['none', 'absent'], 'no device');
    mkdirSync(join(sysModule, 'kvm_pvm'));
    t.equal(probe().cause, 'pvm-unbound', 'no device, kvm_pvm loaded: a PVM host whose kvm_pvm did not bind');
    t.match(probe().reason, /itself a PVM guest/, 'said so');
    writeFileSync(device, '');
    t.equal(probe().level, 'pvm', 'a device from kvm_pvm: small guests only');
    t.notOk(kvmHostMeets(probe(), 'linux'), 'no unmodified Linux under kvm_pvm');
    t.ok(kvmHostMeets(probe(), 'kvm'), 'but tsbhyve runs');
    t.equal(probe({ TSBHYVE_IN_L1: '1' }).level, 'hardware', "inside the L1, kvm_amd on emulated SVM");
    rmSync(join(sysModule, 'kvm_pvm'), { recursive: true });
    t.equal(probe().level, 'hardware', 'a device and no kvm_pvm');
    if (process.getuid?.() !== 0) {
      chmodSync(device, 0);
      t.equal(probe().cause, 'permission', 'a device this user cannot open');
    } else {
      t.comment('running as root: the permission case cannot be seen here (root opens any device)');
    }
    t.equal(probe({ TSBHYVE_HOST_KVM: 'none' }).level, 'none', 'override: none');
    t.equal(probe({ TSBHYVE_HOST_KVM: 'pvm' }).level, 'pvm', 'override: pvm');
    t.equal(probe({ TSBHYVE_HOST_KVM: 'hardware' }).level, 'hardware', 'override: hardware');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});
