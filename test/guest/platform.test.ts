// The platform under real guest code: firmware/testguest boots under tsbhyve on /dev/kvm and checks, like an OS
// would, ACPI tables, PCI through 0xCF8 and ECAM, the UARTs, CMOS, the PM timer, HPET and interrupts, then
// powers off (status 1); the power paths end the VM with bhyve's statuses.
import test from 'tape';
import { bootTestguest, buildTestguest, kvmMissing, suiteResult } from './run-guest.js';

const skip = kvmMissing();
if (skip) console.log(`# skipping guest tests: ${skip}`);
else buildTestguest();

const suites: Array<[suite: string, cmdline: string, args?: string[]]> = [
  ['platform', 'test=platform cpus=1'],
  ['platform', 'test=platform cpus=2', ['-c', '2', '-m', '512M']],
  ['uart', 'test=uart'],
  ['rtc', 'test=rtc', ['-c', '1', '-m', '4G']],
  ['pmtimer', 'test=pmtimer'],
  ['hpet', 'test=hpet'],
  ['irq', 'test=irq'],
];

for (const [suite, cmdline, args] of suites) {
  test(`guest: ${cmdline} ${args?.join(' ') ?? ''}`, { skip: !!skip }, async (t) => {
    const run = await bootTestguest(cmdline, { args });
    const r = suiteResult(run, suite);
    t.deepEqual(r.fail, [], 'no check failed');
    t.ok(r.done && r.done.fail === 0 && r.done.pass > 0, `suite ran: ${r.done?.pass} checks passed`);
    t.equal(run.status, 1, 'the guest powered off through S5 (status 1)');
    t.equal(run.stderr, '', 'tsbhyve printed nothing on stderr');
  });
}

const powerPaths: Array<[how: string, status: number]> = [
  ['s5', 1],
  ['reset', 0],
  ['kbc', 0],
];
for (const [how, status] of powerPaths) {
  test(`guest: power off through ${how} exits ${status}`, { skip: !!skip }, async (t) => {
    const run = await bootTestguest(`test=power,how=${how}`);
    t.equal(run.status, status);
    t.ok(run.lines.some((l) => l.startsWith('TESTGUEST power PASS')), 'the guest reached the power path');
  });
}
