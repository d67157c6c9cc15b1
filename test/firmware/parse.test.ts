// The host-side parsers of the test guest's console output, on captured text (no VM).
import test from 'tape';
import { parseBench, parseTestguestOutput } from '../../firmware/testguest/index.js';

const sample = [
  '\x1bc\x1b[?7lSeaBIOS (version 1.16.2)',
  'Booting from ROM..TESTGUEST READY start_info=ok cmdline="test=uart uarts=1"\r',
  'TESTGUEST-INFO tsc_hz=2500000000 tsc_ref=pmtimer setup_ms=80 acpi=1 cpus=2 pci_functions=5 access=ecam\r',
  'TESTGUEST uart PASS com1 at 0x3f8 scratch register holds 0x5a and 0xa5\r',
  'TESTGUEST uart FAIL com1 loopback sent 0x55 got -1\r',
  'TESTGUEST uart INFO context only\r',
  'TESTGUEST uart DONE pass=1 fail=1\r',
  '',
].join('\n');

test('parseTestguestOutput: checks, summary, platform line, firmware noise before READY', (t) => {
  const r = parseTestguestOutput(sample);
  t.equal(r.suite, 'uart');
  t.equal(r.ready, true);
  t.equal(r.pass, 1);
  t.equal(r.fail, 1);
  t.deepEqual(r.done, { pass: 1, fail: 1 });
  t.deepEqual(r.checks[1], { suite: 'uart', status: 'FAIL', details: 'com1 loopback sent 0x55 got -1' });
  t.deepEqual(r.info, ['context only']);
  t.equal(r.platform.tsc_hz, '2500000000');
  t.equal(r.platform.access, 'ecam');
  t.equal(r.exception, null);
  t.end();
});

test('parseTestguestOutput: a crash report and a missing DONE line', (t) => {
  const r = parseTestguestOutput(
    'TESTGUEST READY start_info=ok cmdline=""\nTESTGUEST rtc PASS x\n' +
      'TESTGUEST EXCEPTION vector=13 (#GP general protection) error=0x0 rip=0x10283b cs=0x2b\n',
  );
  t.equal(r.done, null);
  t.equal(r.pass, 1);
  t.match(r.exception ?? '', /^vector=13 /);
  t.end();
});

test('parseTestguestOutput: nothing from the guest', (t) => {
  const r = parseTestguestOutput('qemu: could not load kernel\n');
  t.equal(r.ready, false);
  t.equal(r.suite, '');
  t.equal(r.checks.length, 0);
  t.end();
});

test('parseBench: key=value pairs, numbers and hex', (t) => {
  const b = parseBench(
    'noise\r\nTESTGUEST-BENCH device=pio workload=out port=0x80 iterations=20000 total_ns=1554386098 ns_per_exit=77719.30 tsc_hz=2499297950\r\n' +
      'TESTGUEST-BENCH device=pio error=unknown-workload\r\n',
  );
  t.equal(b.length, 2);
  t.equal(b[0].device, 'pio');
  t.equal(b[0].workload, 'out');
  t.equal(b[0].numbers.port, 0x80);
  t.equal(b[0].numbers.ns_per_exit, 77719.3);
  t.equal(b[0].numbers.iterations, 20000);
  t.equal(b[1].values.error, 'unknown-workload');
  t.equal(b[1].workload, '');
  t.end();
});
