// test-needs: kvm
// test=xhci: the test guest's xHCI driver enumerates the first USB device, first under QEMU's qemu-xhci with its
// usb-tablet (the reference controller), then under tsbhyve's `-s 30,xhci,tablet` (bhyve's IDs FB5D:0001, the
// 6-byte report). Also an unknown USB device refused at start-up with bhyve's message and status 4.
import test from 'tape';
import { spawnSync } from 'node:child_process';
import { parseTestguestOutput, runTestguestInQemu, runTestguestInTsbhyve, testguestPath, tsbhyveBin, tsbhyveSkipReason } from '../../firmware/testguest/index.js';

const skip = tsbhyveSkipReason();

function guestPassed(t: test.Test, output: string, min: number): void {
  const out = parseTestguestOutput(output);
  t.ok(out.ready, 'guest printed TESTGUEST READY');
  t.equal(out.exception, null, 'no exception');
  for (const c of out.checks) if (c.status === 'FAIL') t.fail(`FAIL ${c.details}`);
  t.ok(out.pass >= min, `${out.pass} checks passed`);
  t.deepEqual(out.done, { pass: out.pass, fail: 0 }, 'suite done without failures');
}

test('QEMU qemu-xhci + usb-tablet: the driver enumerates the tablet', async (t) => {
  const r = await runTestguestInQemu({ append: 'test=xhci', extraArgs: ['-device', 'qemu-xhci,id=xhci', '-device', 'usb-tablet,bus=xhci.0'] });
  t.comment(`elapsed ${r.elapsedMs} ms accel=${r.accel}`);
  guestPassed(t, r.output, 18);
  t.match(r.output, /QEMU USB Tablet/, 'the product string came through');
});

test('tsbhyve -s 30,xhci,tablet: the driver enumerates bhyve\'s tablet', { skip }, async (t) => {
  const r = await runTestguestInTsbhyve({ append: 'test=xhci,vendor=0xfb5d,product=1,report=6', extraArgs: ['-s', '30,xhci,tablet'] });
  t.comment(`first_line=${r.firstLineMs}ms total=${r.elapsedMs}ms exit=${r.code}`);
  guestPassed(t, r.output, 18);
  t.match(r.output, /product string 2: "HID Tablet"/, 'product string "HID Tablet"');
  t.match(r.output, /8086:1e31/, 'bhyve\'s PCI IDs');
  t.match(r.output, /events arrived by MSI on vector/, 'events by MSI');
  t.equal(r.code, 1, 'powered off: status 1');
});

test('tsbhyve -s 30,xhci,mouse: one line, status 4', { skip }, (t) => {
  const r = spawnSync(process.execPath, [
    tsbhyveBin(), '-s', '0,hostbridge', '-s', '30,xhci,mouse', '-s', '31,lpc', '-o', `boot.kernel=${testguestPath()}`, `xhci-bad-${process.pid}`,
  ], { encoding: 'utf8', timeout: 30000 });
  t.equal(r.status, 4, 'exit status 4');
  t.equal(r.stderr, 'Invalid USB emulation "mouse"\n', 'bhyve\'s message, one line');
  t.end();
});
