// test-needs: kvm
// The ACPI power button end to end (bhyve-facts §4.9; ACPI 6.5 §4.8.2.2.1): the guest enables ACPI, arms
// PWRBTN_EN and routes the SCI, then the host presses the button. Under tsbhyve that is SIGTERM, which only
// becomes a button press once the guest wrote ACPI_ENABLE to SMI_CMD (before that it kills the process, as in
// bhyve); under QEMU q35 it is QMP system_powerdown.
import test from 'tape';
import { parseTestguestOutput, runTestguestInQemu, runTestguestInTsbhyve, tsbhyveSkipReason } from '../../firmware/testguest/index.js';

const skipTsbhyve = tsbhyveSkipReason();

const ARMED = 'TESTGUEST pwrbtn INFO armed';

test('tsbhyve: SIGTERM after the guest enabled ACPI presses the power button', { skip: skipTsbhyve }, async (t) => {
  let sent = false;
  const r = await runTestguestInTsbhyve({
    append: 'test=pwrbtn',
    timeoutMs: 60000,
    onOutput: (output, child) => {
      if (!sent && output.includes(ARMED)) {
        sent = true;
        child.kill('SIGTERM');
      }
    },
  });
  const out = parseTestguestOutput(r.output);
  t.ok(sent, 'the guest printed the armed line and SIGTERM was sent');
  for (const c of out.checks) t.comment(`${c.status} ${c.details}`);
  t.ok(out.checks.some((c) => c.status === 'PASS' && /has PWRBTN_STS/.test(c.details)), 'PWRBTN_STS seen by the guest');
  t.ok(out.checks.some((c) => c.status === 'PASS' && /sci line dropped/.test(c.details)), 'SCI dropped after clearing');
  t.equal(out.fail, 0, 'no FAIL lines');
  t.deepEqual(out.done, { pass: out.pass, fail: 0 }, 'DONE line with no failures');
  t.equal(r.signal, null, 'not killed by the signal');
  t.equal(r.code, 1, 'exit status 1: the guest powered off through S5');
});

test('tsbhyve: SIGTERM before the guest enabled ACPI kills the process', { skip: skipTsbhyve }, async (t) => {
  let sent = false;
  const r = await runTestguestInTsbhyve({
    append: 'test=pwrbtn,delay_enable=5000',
    timeoutMs: 60000,
    onOutput: (output, child) => {
      if (!sent && output.includes('TESTGUEST pwrbtn INFO waiting')) {
        sent = true;
        child.kill('SIGTERM');
      }
    },
  });
  t.ok(sent, 'SIGTERM sent while ACPI was still off');
  t.equal(r.signal, 'SIGTERM', 'tsbhyve ended by SIGTERM (default action, as bhyve)');
  t.equal(r.code, null, 'no exit status');
  t.notOk(r.output.includes(ARMED), 'the guest never got to arm the button');
});

test('tsbhyve: SIGTERM at the shell prompt (ACPI never enabled) kills the process', { skip: skipTsbhyve }, async (t) => {
  let sent = false;
  const r = await runTestguestInTsbhyve({
    append: 'shell',
    timeoutMs: 60000,
    onOutput: (output, child) => {
      if (!sent && output.includes('testguest> ')) {
        sent = true;
        child.kill('SIGTERM');
      }
    },
  });
  t.ok(sent, 'SIGTERM sent at the prompt');
  t.equal(r.signal, 'SIGTERM');
  t.equal(r.code, null);
});

test('QEMU q35: QMP system_powerdown raises the SCI with PWRBTN_STS', async (t) => {
  let sent = false;
  const r = await runTestguestInQemu({
    append: 'test=pwrbtn',
    timeoutMs: 60000,
    onOutput: (output, qmp) => {
      if (!sent && output.includes(ARMED)) {
        sent = true;
        qmp('{"execute":"system_powerdown"}');
      }
    },
  });
  const out = parseTestguestOutput(r.output);
  t.comment(`accel=${r.accel} elapsed=${r.elapsedMs}ms`);
  for (const c of out.checks) t.comment(`${c.status} ${c.details}`);
  t.ok(sent, 'system_powerdown sent');
  t.ok(out.checks.some((c) => c.status === 'PASS' && /has PWRBTN_STS/.test(c.details)), 'PWRBTN_STS seen by the guest');
  t.equal(out.fail, 0, 'no FAIL lines');
  t.deepEqual(out.done, { pass: out.pass, fail: 0 });
  t.equal(r.shutdownReason, 'guest-shutdown', 'the guest powered off through S5');
});
