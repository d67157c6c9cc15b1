// test-needs: kvm
// `tsbhyve -s 3,virtio-net,tap0` on a real tap in a network namespace the test creates: the test guest's
// virtio-net suite resolves the host by ARP, sends it a datagram, answers busybox ping and echoes UDP datagrams
// of several sizes with checked checksums; a tap that cannot be had (not a tap, no permission) stops start-up
// with a one-line message and status 4. Traffic never leaves the namespace.
import test from 'tape';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseTestguestOutput, testguestPath, tsbhyveBin, tsbhyveSkipReason } from '../../../firmware/testguest/index.js';
import { makeNetNs, netnsSkipReason, type NetNs } from '../../harness/netns.js';

const skip = tsbhyveSkipReason() ?? netnsSkipReason();
const root = fileURLToPath(new URL('../../../', import.meta.url));

let runs = 0;
function run(argv: string[], timeoutMs: number): Promise<{ output: string; stdout: string; code: number | null }> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], cwd: root });
  let output = '';
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => ((stdout += c.toString('latin1')), (output += c.toString('latin1'))));
  child.stderr.on('data', (c: Buffer) => (output += c.toString('latin1')));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => child.on('close', (code) => (clearTimeout(timer), resolve({ output, stdout, code }))));
}

function tsbhyve(ns: NetNs | undefined, append: string, extra: string[], prefix: string[] = []) {
  const argv = [
    ...prefix, process.execPath, tsbhyveBin(), '-c', '1', '-m', '256M', '-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio',
    '-o', `boot.kernel=${testguestPath()}`, '-o', `boot.cmdline=${append}`, ...extra, `vnet-${process.pid}-${runs++}`,
  ];
  return run(ns ? ns.exec(argv) : argv, 180_000);
}

test('tsbhyve -s 3,virtio-net,tap0: ARP, ping and UDP echo with the host inside a network namespace', { skip }, async (t) => {
  const ns = makeNetNs('tsbhyve-net');
  try {
    ns.addTap('tap0', '10.77.0.1/24');
    const mac = '02:54:42:00:00:07';
    const guest = tsbhyve(ns, `test=virtio-net,ip=10.77.0.2,peer=10.77.0.1,mac=${mac},mtu=1500,secs=120`, ['-s', `3,virtio-net,tap0,mac=${mac}`]);
    const peer = run(ns.exec([process.execPath, '--import', 'tsx', 'test/harness/net-peer.ts', '10.77.0.2', '10.77.0.1']), 180_000);
    const [g, p] = await Promise.all([guest, peer]);
    const res = JSON.parse(p.stdout.trim().split('\n').pop() || '{}') as {
      hello?: string; helloFrom?: string; ping?: { status: number; received: string }; echoes?: Array<{ size: number; ok: boolean }>; quitEchoed?: boolean;
    };
    t.equal(res.hello, 'TESTGUEST-HELLO', 'the guest reached the host by UDP (after resolving it by ARP)');
    t.equal(res.helloFrom, '10.77.0.2', 'from its address');
    t.equal(res.ping?.status, 0, 'busybox ping succeeded');
    t.equal(res.ping?.received, '3', 'three echo replies');
    for (const e of res.echoes ?? []) t.ok(e.ok, `UDP echo of ${e.size} bytes came back intact`);
    t.equal(res.echoes?.length, 4);
    t.ok(res.quitEchoed, 'the guest echoed the final datagram');
    const out = parseTestguestOutput(g.output);
    for (const c of out.checks.filter((c) => c.status === 'FAIL')) t.fail(`FAIL ${c.details}`);
    t.ok(out.pass >= 10, `${out.pass} guest checks passed`);
    t.equal(out.done?.fail, 0, 'the guest suite ended without failures');
    t.equal(g.code, 1, 'powered off with status 1');
    t.match(ns.ip('-s', 'link', 'show', 'tap0'), /tap0/, 'the persistent tap is still there after the VM');
  } finally {
    ns.delete();
  }
});

test('a backend that is not a tap, or a tap of another user without CAP_NET_ADMIN: one line and status 4', { skip }, async (t) => {
  const ns = makeNetNs('tsbhyve-net');
  try {
    ns.ip('tuntap', 'add', 'dev', 'taptun', 'mode', 'tun'); // a layer-3 tun, not a tap
    let r = await tsbhyve(ns, 'test=platform', ['-s', '3,virtio-net,taptun']);
    t.equal(r.code, 4, 'status 4');
    t.match(r.output, /could not open backend device taptun: tap device taptun: taptun exists and is not a tap device/, 'says why');
    t.doesNotMatch(r.output, /\n\s+at /, 'no stack trace');
    // A tap that belongs to another user, opened without CAP_NET_ADMIN (what a non-root bhyve user meets).
    ns.ip('tuntap', 'add', 'dev', 'tap1', 'mode', 'tap', 'vnet_hdr', 'user', '65534');
    r = await tsbhyve(ns, 'test=platform', ['-s', '3,virtio-net,tap1'], ['setpriv', '--bounding-set=-net_admin', '--inh-caps=-net_admin']);
    t.equal(r.code, 4, 'without CAP_NET_ADMIN: status 4');
    t.match(r.output, /could not open backend device tap1: tap device tap1: permission denied/, 'permission denied, one line');
    t.doesNotMatch(r.output, /\n\s+at /, 'no stack trace');
  } finally {
    ns.delete();
  }
});
