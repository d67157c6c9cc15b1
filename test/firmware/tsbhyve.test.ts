// test-needs: kvm
// The same guest under tsbhyve's direct PVH boot: the platform it builds (bhyve-facts §4) must
// pass the suites, and each way of ending the VM must give bhyve's exit status. Skipped when
// the addon is not built or /dev/kvm is not usable (npm test then runs it inside the nested-KVM L1).
import test from 'tape';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBench, parseTestguestOutput, runTestguestInTsbhyve, tsbhyveSkipReason } from '../../firmware/testguest/index.js';

const skip = tsbhyveSkipReason();

const suites: Array<[string, string]> = [
  ['platform', 'cpus=2 mem=256 ecam=0xe0000000'],
  ['uart', ''],
  ['rtc', ''],
  ['pmtimer', ''],
  ['hpet', ''],
  ['irq', ''],
];

for (const [suite, extra] of suites) {
  test(`tsbhyve: test=${suite} passes and powers off with status 1`, { skip }, async (t) => {
    const r = await runTestguestInTsbhyve({ append: `test=${suite} ${extra}`.trim() });
    t.comment(`first_line=${r.firstLineMs}ms total=${r.elapsedMs}ms exit=${r.code}`);
    const out = parseTestguestOutput(r.output);
    t.ok(out.ready, 'guest printed TESTGUEST READY');
    t.equal(out.exception, null, 'no exception');
    t.ok(out.pass > 0, `${out.pass} checks passed`);
    for (const c of out.checks.filter((c) => c.status === 'FAIL')) t.fail(`FAIL ${c.details}`);
    t.deepEqual(out.done, { pass: out.pass, fail: 0 });
    t.equal(r.code, 1, 'exit status 1: powered off (S5)');
  });
}

test('tsbhyve: CMOS memory bytes with 4 GiB (1 GiB above 4 GiB)', { skip }, async (t) => {
  const r = await runTestguestInTsbhyve({ append: 'test=rtc', memMiB: 4096 });
  const out = parseTestguestOutput(r.output);
  t.deepEqual(out.done, { pass: out.pass, fail: 0 });
  t.ok(/0x5b-0x5d=0x004000/.test(r.output), 'highmem / 64 KiB = 0x4000');
  t.equal(r.code, 1);
});

test('tsbhyve: fw_cfg (lpc.fwcfg=qemu) with bootorder built from bootindex, lowest first', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-bootorder-'));
  const [a, b] = [join(dir, 'a.img'), join(dir, 'b.img')];
  for (const f of [a, b]) writeFileSync(f, Buffer.alloc(1 << 20));
  const r = await runTestguestInTsbhyve({
    append: 'test=platform fwcfg=1',
    extraArgs: ['-s', `4,virtio-blk,${a},bootindex=2`, '-s', `5:1,virtio-blk,${b},bootindex=1`, '-o', 'lpc.fwcfg=qemu'],
  });
  const out = parseTestguestOutput(r.output);
  t.deepEqual(out.done, { pass: out.pass, fail: 0 }, 'platform checks incl. fw_cfg signature, nb_cpus and etc/e820');
  const order = [...r.output.matchAll(/TESTGUEST platform INFO bootorder (\S+)/g)].map((m) => m[1]);
  t.deepEqual(order, ['/pci@i0cf8/pci@5,1', '/pci@i0cf8/pci@4,0']);
  t.equal(r.code, 1);
  rmSync(dir, { recursive: true, force: true });
});

// bhyve-facts §4.9: S5 -> 1, reset (0xCF9 or 8042) -> 0, triple fault -> 3.
const endings: Array<[string, number]> = [['s5', 1], ['reset', 0], ['kbc', 0], ['triplefault', 3]];
for (const [how, status] of endings) {
  test(`tsbhyve: test=power,how=${how} exits with status ${status}`, { skip }, async (t) => {
    const r = await runTestguestInTsbhyve({ append: `test=power,how=${how}` });
    const out = parseTestguestOutput(r.output);
    t.ok(out.ready, 'guest printed TESTGUEST READY');
    t.equal(out.fail, 0, 'the guest did not outlive the request');
    t.equal(r.timedOut, false);
    t.equal(r.code, status);
  });
}

test('tsbhyve: bench=pio prints a port-exit round trip', { skip }, async (t) => {
  const r = await runTestguestInTsbhyve({ append: 'bench=pio,n=5000' });
  const [b] = parseBench(r.output);
  t.ok(b, 'a TESTGUEST-BENCH line');
  if (!b) return;
  const ns = b.numbers.ns_per_exit;
  t.comment(`pio out port 0x80 under tsbhyve: ${ns} ns per exit`);
  t.ok(Number.isFinite(ns) && ns > 0, `ns_per_exit=${ns} is a measured, positive figure`);
  t.equal(r.code, 1);
});
