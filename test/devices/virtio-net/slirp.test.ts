// virtio-net on the slirp backend (Debian's libslirp) without a VM: the guest-driver harness plays the guest on
// bhyve's slirp network (10.0.2.0/24): ARP for the gateway, DHCP (offer of 10.0.2.15 with router and DNS), ping
// of the gateway, and a hostfwd rule turning a host TCP connection on loopback into a SYN to the guest's port.
// Also bhyve's rule syntax and errors, and that the device offers no offloads on slirp.
import test from 'tape';
import { createServer, connect } from 'node:net';
import { parseHostfwd } from '../../../devices/net/options.js';
import { VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_TSO4 } from '../../../devices/virtio-net/device.js';
import { bit } from '../../../devices/virtio/constants.js';
import { BhyveError } from '../../../src/config/errors.js';
import { netRig, postRxBuffers, RX, transmit, type NetRig } from './helpers.js';

const GUEST_MAC = [0x02, 0x00, 0x00, 0x00, 0x0f, 0x01];
const GUEST_IP = [10, 0, 2, 15];
const GW_IP = [10, 0, 2, 2];

function csum(bytes: number[], from = 0, to = bytes.length): number {
  let s = 0;
  for (let i = from; i < to; i += 2) s += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

function ipv4(proto: number, src: number[], dst: number[], payload: number[]): number[] {
  const len = 20 + payload.length;
  const h = [0x45, 0, len >> 8, len & 0xff, 0, 1, 0x40, 0, 64, proto, 0, 0, ...src, ...dst];
  const c = csum(h);
  h[10] = c >> 8;
  h[11] = c & 0xff;
  return [...h, ...payload];
}

function ether(dst: number[], type: number, body: number[]): Uint8Array {
  return Uint8Array.from([...dst, ...GUEST_MAC, type >> 8, type & 0xff, ...body]);
}

async function frames(r: NetRig, addrs: number[], want: (f: Uint8Array) => boolean, timeoutMs = 5000): Promise<Uint8Array> {
  const deadline = Date.now() + timeoutMs;
  let seen = 0;
  for (;;) {
    while (seen < r.rx.usedIdx()) {
      const u = r.rx.usedElem(seen);
      const a = addrs[u.id % addrs.length]!;
      seen++;
      const f = r.m.memory.bytes.slice(a + r.hdrLen, a + u.len);
      if (want(f)) return f;
    }
    if (Date.now() > deadline) throw new Error('no such frame from slirp');
    await new Promise((res) => setTimeout(res, 5));
  }
}

async function dhcpOffer(r: NetRig, addrs: number[]): Promise<Map<number, number[]> & { yiaddr?: number[] }> {
  // DHCPDISCOVER from 0.0.0.0:68 to 255.255.255.255:67.
  const bootp = new Array<number>(240).fill(0);
  bootp[0] = 1; bootp[1] = 1; bootp[2] = 6;
  bootp[4] = 0x12; bootp[5] = 0x34; bootp[6] = 0x56; bootp[7] = 0x78;
  GUEST_MAC.forEach((b, i) => (bootp[28 + i] = b));
  bootp.splice(236, 4, 99, 130, 83, 99);
  const dhcp = [...bootp, 53, 1, 1, 55, 3, 1, 3, 6, 255]; // DISCOVER asking for netmask, router, DNS
  const udp = [0, 68, 0, 67, (8 + dhcp.length) >> 8, (8 + dhcp.length) & 0xff, 0, 0, ...dhcp];
  await transmit(r, ether([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0x0800, ipv4(17, [0, 0, 0, 0], [255, 255, 255, 255], udp)));
  const offer = await frames(r, addrs, (f) => f[12] === 0x08 && f[13] === 0 && f[23] === 17 && f[36] === 0 && f[37] === 68);
  const b = offer.subarray(42);
  const opts: Map<number, number[]> & { yiaddr?: number[] } = new Map<number, number[]>();
  opts.yiaddr = [...b.subarray(16, 20)];
  for (let i = 240; i < b.length && b[i] !== 255; ) {
    if (b[i] === 0) { i++; continue; }
    opts.set(b[i]!, [...b.subarray(i + 2, i + 2 + b[i + 1]!)]);
    i += 2 + b[i + 1]!;
  }
  return opts;
}

test('slirp restricted (bhyve\'s default): DHCP gives an address but no route out', async (t) => {
  const r = netRig({ backend: 'slirp', opts: 'mac=02:00:00:00:0f:01' });
  try {
    const addrs = postRxBuffers(r, 64, 2048);
    const opts = await dhcpOffer(r, addrs);
    t.deepEqual(opts.yiaddr, GUEST_IP, 'DHCPOFFER of 10.0.2.15');
    t.equal(opts.get(3), undefined, 'no router: the guest reaches only what hostfwd brings in');
  } finally {
    r.close();
  }
  t.end();
});

test('slirp open: the device offers no offloads; ARP, DHCP and ping on bhyve\'s 10.0.2.0/24', async (t) => {
  const r = netRig({ backend: 'slirp', opts: 'mac=02:00:00:00:0f:01,open' });
  try {
    t.equal(r.dev.hostFeatures() & (bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_GUEST_TSO4)), 0, 'no CSUM or TSO on slirp');
    const addrs = postRxBuffers(r, 64, 2048);
    // ARP: who has 10.0.2.2?
    await transmit(r, ether([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0x0806, [0, 1, 8, 0, 6, 4, 0, 1, ...GUEST_MAC, ...GUEST_IP, 0, 0, 0, 0, 0, 0, ...GW_IP]));
    const arp = await frames(r, addrs, (f) => f[12] === 0x08 && f[13] === 0x06 && f[21] === 2);
    t.deepEqual([...arp.subarray(28, 32)], GW_IP, 'an ARP reply for the gateway');
    const gwMac = [...arp.subarray(22, 28)];
    t.deepEqual([...arp.subarray(0, 6)], GUEST_MAC, 'addressed to the guest');

    const opts = await dhcpOffer(r, addrs);
    t.deepEqual(opts.yiaddr, GUEST_IP, 'DHCPOFFER of 10.0.2.15');
    t.deepEqual(opts.get(53), [2], 'message type OFFER');
    t.deepEqual(opts.get(3), GW_IP, 'router 10.0.2.2');
    t.deepEqual(opts.get(6), [10, 0, 2, 3], 'DNS 10.0.2.3');

    // ICMP echo to the gateway.
    const icmp = [8, 0, 0, 0, 0x42, 0x42, 0, 1, ...Array.from({ length: 32 }, (_, i) => i)];
    const c = csum(icmp);
    icmp[2] = c >> 8;
    icmp[3] = c & 0xff;
    await transmit(r, ether(gwMac, 0x0800, ipv4(1, GUEST_IP, GW_IP, icmp)));
    const reply = await frames(r, addrs, (f) => f[23] === 1 && f[34] === 0);
    t.deepEqual([...reply.subarray(26, 30)], GW_IP, 'an echo reply from the gateway');
    t.equal(reply[38], 0x42, 'with our identifier');
  } finally {
    r.close();
  }
  t.end();
});

test('slirp hostfwd: a host connection to the forwarded loopback port reaches the guest as a SYN', async (t) => {
  // A free port on loopback.
  const s = createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((res) => s.close(() => res()));
  const r = netRig({ backend: 'slirp', opts: `mac=02:00:00:00:0f:01,hostfwd=tcp:127.0.0.1:${port}-:8080` });
  try {
    const addrs = postRxBuffers(r, 64, 2048);
    // Let slirp learn the guest's address (an ARP request from it).
    await transmit(r, ether([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0x0806, [0, 1, 8, 0, 6, 4, 0, 1, ...GUEST_MAC, ...GUEST_IP, 0, 0, 0, 0, 0, 0, ...GW_IP]));
    const sock = connect(port, '127.0.0.1');
    sock.on('error', () => undefined);
    const syn = await frames(r, addrs, (f) => f[23] === 6 && ((f[36]! << 8) | f[37]!) === 8080);
    t.deepEqual([...syn.subarray(30, 34)], GUEST_IP, 'to 10.0.2.15');
    t.equal(syn[47]! & 0x12, 0x02, 'a SYN');
    sock.destroy();
    t.ok(r.m.irq.events.length >= 0 && r.rx.usedIdx() > 0, 'delivered into the receive ring');
    void RX;
  } finally {
    r.close();
  }
  t.end();
});

test("slirp: bhyve's hostfwd syntax and errors", (t) => {
  t.deepEqual(parseHostfwd('tcp:127.0.0.1:2222-:22;udp::5353-10.0.2.15:53'), [
    { udp: false, hostAddr: '127.0.0.1', hostPort: 2222, guestAddr: '', guestPort: 22 },
    { udp: true, hostAddr: '', hostPort: 5353, guestAddr: '10.0.2.15', guestPort: 53 },
  ]);
  const err = (opts: string, re: RegExp, what: string): void => {
    t.throws(() => netRig({ backend: 'slirp', opts }), (e: unknown) => e instanceof BhyveError && e.status === 4 && re.test(e.message), what);
  };
  err('hostfwd=tcp', /unable to parse hostfwd rule 'tcp'/, 'no addresses');
  err('hostfwd=tcp:1.2.3.4:5', /unable to parse hostfwd rule/, 'no guest side');
  err('hostfwd=tcp:host.example:5-:6', /Protocol family not supported/, 'a name instead of an address');
  t.end();
});

test('slirp: a forward whose port is taken is a start-up error naming it', async (t) => {
  const s = createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as { port: number }).port;
  try {
    t.throws(() => netRig({ backend: 'slirp', opts: `hostfwd=tcp:127.0.0.1:${port}-:80` }), new RegExp(`backend slirp: cannot forward tcp 127.0.0.1:${port}`));
  } finally {
    await new Promise<void>((res) => s.close(() => res()));
  }
  t.end();
});
