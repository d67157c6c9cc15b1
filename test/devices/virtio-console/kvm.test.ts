// test-needs: kvm
// `tsbhyve -s 3,virtio-console,alpha=...,beta=...`: the test guest's virtio-console suite brings MULTIPORT up
// (DEVICE_READY, DEVICE_ADD, PORT_READY, names, PORT_OPEN) while a host client sits on each port's socket, and
// exchanges a line each way per port. The socket files are gone after tsbhyve exits. The same suite passes on
// QEMU's virtio-serial-pci (legacy) with two virtserialports on unix sockets, the reference for the protocol.
import test from 'tape';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTestguestOutput, runTestguestInQemu, runTestguestInTsbhyve, tsbhyveSkipReason } from '../../../firmware/testguest/index.js';
import { spawnSync } from 'node:child_process';

const skip = tsbhyveSkipReason();

/** Connects to `path` once it exists, sends "ping NAME\n" and collects what comes back until the VM closes it. */
async function hostClient(path: string, name: string): Promise<string> {
  for (let i = 0; i < 1200 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 50));
  return new Promise((resolve) => {
    let got = '';
    const s = connect(path, () => s.write(`ping ${name}\n`));
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', () => resolve(got));
    s.on('close', () => resolve(got));
  });
}

test('tsbhyve -s 3,virtio-console: the test guest talks to a host client on each of two ports', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vtcon-kvm-'));
  try {
    const a = join(dir, 'a.sock');
    const b = join(dir, 'b.sock');
    const clients = [hostClient(a, 'org.test.alpha'), hostClient(b, 'beta')];
    const r = await runTestguestInTsbhyve({
      append: 'test=virtio-console,ports=2',
      extraArgs: ['-s', `3,virtio-console,org.test.alpha=${a},beta=${b}`],
    });
    const out = parseTestguestOutput(r.output);
    for (const c of out.checks.filter((c) => c.status === 'FAIL')) t.fail(`FAIL ${c.details}`);
    t.ok(out.pass >= 10, `${out.pass} checks passed`);
    t.deepEqual(out.done, { pass: out.pass, fail: 0 });
    t.equal(r.code, 1, 'powered off');
    const [ga, gb] = await Promise.all(clients);
    t.equal(ga, 'pong org.test.alpha\n', 'the alpha client got its answer');
    t.equal(gb, 'pong beta\n', 'the beta client got its answer');
    t.notOk(existsSync(a) || existsSync(b), 'the socket files are removed at exit');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const noQemu = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0 ? undefined : 'qemu-system-x86_64 is not installed';

test("QEMU's virtio-serial-pci: the same suite with two virtserialports", { skip: skip ?? noQemu }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vtcon-qemu-'));
  try {
    const a = join(dir, 'a.sock');
    const b = join(dir, 'b.sock');
    const clients = [hostClient(a, 'org.test.alpha'), hostClient(b, 'beta')];
    const r = await runTestguestInQemu({
      append: 'test=virtio-console,ports=2',
      extraArgs: [
        '-device', 'virtio-serial-pci,disable-modern=on,disable-legacy=off,max_ports=16',
        '-chardev', `socket,id=ca,path=${a},server=on,wait=off`, '-device', 'virtserialport,chardev=ca,name=org.test.alpha',
        '-chardev', `socket,id=cb,path=${b},server=on,wait=off`, '-device', 'virtserialport,chardev=cb,name=beta',
      ],
    });
    const out = parseTestguestOutput(r.output);
    for (const c of out.checks.filter((c) => c.status === 'FAIL')) t.fail(`FAIL ${c.details}`);
    t.ok(out.pass >= 10, `${out.pass} checks passed`);
    t.deepEqual(out.done, { pass: out.pass, fail: 0 });
    const [ga, gb] = await Promise.all(clients);
    t.equal(ga, 'pong org.test.alpha\n');
    t.equal(gb, 'pong beta\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
