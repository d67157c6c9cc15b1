// test-needs: kvm
// `tsbhyve -s 3,virtio-rnd`: the test guest's virtio-rng suite (the same one QEMU's virtio-rng-pci passes) brings the
// device up on MSI-X and reads random bytes with a completion interrupt.
import test from 'tape';
import { parseTestguestOutput, runTestguestInTsbhyve, tsbhyveSkipReason } from '../../../firmware/testguest/index.js';

const skip = tsbhyveSkipReason();

test('tsbhyve -s 3,virtio-rnd: the test guest reads random bytes by MSI-X', { skip }, async (t) => {
  const r = await runTestguestInTsbhyve({ append: 'test=virtio-rng', extraArgs: ['-s', '3,virtio-rnd'] });
  const out = parseTestguestOutput(r.output);
  for (const c of out.checks.filter((c) => c.status === 'FAIL')) t.fail(`FAIL ${c.details}`);
  t.ok(out.pass >= 3, `${out.pass} checks passed`);
  t.deepEqual(out.done, { pass: out.pass, fail: 0 });
  t.equal(r.code, 1, 'powered off');
});
