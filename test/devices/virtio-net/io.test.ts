// virtio-net through the native worker without a VM: identity and configuration space, frames both ways with
// and without mergeable receive buffers, a frame that waits for buffers, the control queue's receive filter,
// reset, and bhyve's option checks.
import test from 'tape';
import { closeSync } from 'node:fs';
import { defaultMac, formatMac } from '../../../devices/net/options.js';
import { NET_CFG, VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS } from '../../../devices/virtio-net/device.js';
import { nativeNet } from '../../../devices/virtio-net/native.js';
import { bit, VIRTIO_STATUS_NEEDS_RESET } from '../../../devices/virtio/constants.js';
import { PCIR_CLASS, PCIR_DEVICE, PCIR_SUBDEV_0, PCIR_VENDOR } from '../../../src/platform/pci/regs.js';
import { virtioMachine } from '../../harness/virtio-driver.js';
import { BROADCAST, control, frame, HOST_MAC, macTable, netRig, postRxBuffers, receiveFromGuest, RX, sendToGuest, transmit } from './helpers.js';

const GUEST_MAC = Uint8Array.from([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01]);
const macOpt = `mac=${formatMac(GUEST_MAC)}`;

test('PCI identity, features and configuration space as bhyve presents a virtio-net function', (t) => {
  const r = netRig({ opts: `${macOpt},mtu=9000` });
  try {
    t.equal(r.dev.cfgRead(PCIR_VENDOR, 2), 0x1af4);
    t.equal(r.dev.cfgRead(PCIR_DEVICE, 2), 0x1000);
    t.equal(r.dev.cfgRead(PCIR_SUBDEV_0, 2), 1, 'subsystem = virtio type 1 (network)');
    t.equal(r.dev.cfgRead(PCIR_CLASS, 1), 0x02, 'class network');
    const f = r.dev.hostFeatures();
    for (const [name, b] of [['MAC', VIRTIO_NET_F_MAC], ['MTU', VIRTIO_NET_F_MTU], ['STATUS', VIRTIO_NET_F_STATUS], ['MRG_RXBUF', VIRTIO_NET_F_MRG_RXBUF], ['CTRL_VQ', VIRTIO_NET_F_CTRL_VQ], ['CTRL_RX', VIRTIO_NET_F_CTRL_RX]] as const)
      t.ok(f & bit(b), `offers ${name}`);
    const mac = [0, 1, 2, 3, 4, 5].map((i) => r.dev.config(NET_CFG.mac + i, 1));
    t.deepEqual(mac, [...GUEST_MAC], 'mac= in the configuration space');
    t.equal(r.dev.config(NET_CFG.status, 2), 1, 'link up');
    t.equal(r.dev.config(NET_CFG.mtu, 2), 9000, 'mtu');
    t.deepEqual([0, 1, 2].map((q) => r.dev.queueSize(q)), [1024, 1024, 1024], 'three queues of 1024 (VTNET_RINGSZ)');
  } finally {
    r.close();
  }
  t.end();
});

test("the default MAC is bhyve's: 00:a0:98 and MD5 of slot-func-vmname", (t) => {
  const r = netRig();
  try {
    const mac = Uint8Array.from([0, 1, 2, 3, 4, 5].map((i) => r.dev.config(NET_CFG.mac + i, 1)));
    t.equal(formatMac(mac), formatMac(defaultMac(3, 0, 'vm')));
    t.deepEqual([...mac.subarray(0, 3)], [0x00, 0xa0, 0x98]);
  } finally {
    r.close();
  }
  t.end();
});

test('transmit: header and frame reach the packet fd as one record; the chain comes back with length 0', async (t) => {
  const r = netRig({ opts: macOpt });
  try {
    for (const len of [46, 1500, 9000]) {
      const f = frame(HOST_MAC, GUEST_MAC, len, len);
      const u = await transmit(r, f);
      t.equal(u.len, 0, `${len}-byte payload: used length 0`);
      const rec = await receiveFromGuest(r);
      t.ok(rec, 'a record arrived');
      t.equal(rec!.length, r.hdrLen + f.length, `header (${r.hdrLen}) + frame`);
      t.ok(Buffer.from(rec!.subarray(r.hdrLen)).equals(Buffer.from(f)), 'frame bytes intact');
    }
    t.equal(r.stats()!.txFrames, 3);
  } finally {
    r.close();
  }
});

test('receive with mergeable buffers: num_buffers counts the chains a frame fills', async (t) => {
  const r = netRig({ opts: macOpt, msix: true });
  try {
    t.equal(r.hdrLen, 12);
    const bufs = postRxBuffers(r, 8, 1526);
    const small = frame(GUEST_MAC, HOST_MAC, 1000);
    sendToGuest(r, small);
    let used = await r.rx.waitUsed(1);
    t.equal(used[0]!.len, 12 + small.length, 'one buffer: header + frame');
    const v = r.m.memory.view;
    t.equal(v.getUint16(bufs[0]! + 10, true), 1, 'num_buffers = 1');
    t.ok(Buffer.from(r.m.memory.read(bufs[0]! + 12, small.length)).equals(Buffer.from(small)), 'frame in the buffer');

    const big = frame(GUEST_MAC, HOST_MAC, 4000, 7);
    sendToGuest(r, big);
    used = await r.rx.waitUsed(3);
    t.deepEqual(used.map((u) => u.len), [1526, 1526, 12 + big.length - 2 * 1526], 'three buffers, the last partly filled');
    t.equal(v.getUint16(bufs[1]! + 10, true), 3, 'num_buffers = 3 in the first');
    const got = Buffer.concat([r.m.memory.read(bufs[1]!, 1526), r.m.memory.read(bufs[2]!, 1526), r.m.memory.read(bufs[3]!, used[2]!.len)]);
    t.ok(got.subarray(12).equals(Buffer.from(big)), 'the frame continues across the buffers');
    // The interrupt reaches JavaScript through a queued callback, after the used ring is visible.
    const fired = () => r.m.irq.events.some((e) => e.kind === 'msi' && e.data === 0x40 + 1);
    for (let i = 0; i < 200 && !fired(); i++) await new Promise((res) => setTimeout(res, 10));
    t.ok(fired(), 'the receive queue vector fired');
  } finally {
    r.close();
  }
});

test('receive without MRG_RXBUF: a 10-byte header, one chain per frame, a frame larger than the buffer dropped', async (t) => {
  const r = netRig({ opts: macOpt, accept: (f) => f & ~bit(VIRTIO_NET_F_MRG_RXBUF) });
  try {
    t.equal(r.hdrLen, 10);
    const bufs = postRxBuffers(r, 2, 1524);
    sendToGuest(r, frame(GUEST_MAC, HOST_MAC, 3000));
    const f = frame(GUEST_MAC, HOST_MAC, 1500);
    sendToGuest(r, f);
    const [u] = await r.rx.waitUsed(1);
    t.equal(u!.id !== undefined && u!.len, 10 + f.length, 'the fitting frame, header 10 bytes');
    t.ok(Buffer.from(r.m.memory.read(bufs[0]! + 10, f.length)).equals(Buffer.from(f)), 'delivered into the first buffer (the big frame did not consume it)');
    t.equal(r.stats()!.rxNoBuffer, 1, 'the oversized frame counted as dropped');
  } finally {
    r.close();
  }
});

test('a frame that arrives before any receive buffer waits for one', async (t) => {
  const r = netRig({ opts: macOpt });
  try {
    const f = frame(GUEST_MAC, HOST_MAC, 200, 9);
    sendToGuest(r, f);
    t.ok(await r.rx.idleFor(50), 'nothing used while the ring is empty');
    t.equal(r.stats()!.rxNoBuffer, 0, 'and nothing dropped');
    const [b] = postRxBuffers(r, 1, 2048);
    const [u] = await r.rx.waitUsed(1);
    t.equal(u!.len, r.hdrLen + f.length);
    t.ok(Buffer.from(r.m.memory.read(b! + r.hdrLen, f.length)).equals(Buffer.from(f)), 'the waiting frame');
  } finally {
    r.close();
  }
});

test('control queue: promiscuous off filters by MAC; broadcast, MAC table and allmulti pass what they name', async (t) => {
  const r = netRig({ opts: macOpt });
  try {
    const other = Uint8Array.from([0x02, 0, 0, 0, 0, 0x99]);
    const mcast = Uint8Array.from([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
    const mcast2 = Uint8Array.from([0x33, 0x33, 0, 0, 0, 1]);
    t.equal(await control(r, 0, 0, Uint8Array.from([0])), 0, 'PROMISC off: OK');
    t.equal(await control(r, 1, 0, macTable([], [mcast])), 0, 'MAC_TABLE_SET: OK');
    t.equal(r.stats()!.promisc, false);
    t.equal(r.stats()!.multicastFilters, 1);
    postRxBuffers(r, 16, 2048);
    const send = (dst: Uint8Array, seed: number) => sendToGuest(r, frame(dst, HOST_MAC, 60, seed));
    send(other, 1); // filtered
    send(GUEST_MAC, 2);
    send(BROADCAST, 3);
    send(mcast, 4);
    send(mcast2, 5); // filtered
    const used = await r.rx.waitUsed(3);
    t.equal(used.length, 3, 'own MAC, broadcast and the listed multicast address');
    t.ok(await r.rx.idleFor(50), 'and nothing more');
    t.equal(r.stats()!.rxFiltered, 2, 'the other unicast and the unlisted multicast were filtered');
    t.equal(await control(r, 0, 1, Uint8Array.from([1])), 0, 'ALLMULTI on: OK');
    send(mcast2, 6);
    await r.rx.waitUsed(1);
    t.pass('an unlisted multicast passes with allmulti');
    t.equal(await control(r, 0, 0, Uint8Array.from([0, 0])), 1, 'PROMISC with two data bytes: ERR');
    t.equal(await control(r, 9, 0, Uint8Array.from([1])), 1, 'unknown class: ERR');
    t.equal(await control(r, 1, 0, Uint8Array.from([5, 0, 0, 0, 1, 2])), 1, 'MAC table shorter than its count: ERR');
  } finally {
    r.close();
  }
});

test('a legacy driver may rewrite the MAC in the configuration space; reset restores it and the filter', async (t) => {
  const r = netRig({ opts: macOpt });
  try {
    const base = r.dev.configBase();
    const newMac = [0x02, 1, 2, 3, 4, 5];
    newMac.forEach((b, i) => r.dev.setReg(base + NET_CFG.mac + i, 1, b));
    t.deepEqual([0, 1, 2, 3, 4, 5].map((i) => r.dev.config(NET_CFG.mac + i, 1)), newMac, 'the new MAC reads back');
    t.equal(await control(r, 0, 0, Uint8Array.from([0])), 0, 'promiscuous off');
    postRxBuffers(r, 4, 2048);
    sendToGuest(r, frame(GUEST_MAC, HOST_MAC, 60)); // the old address: filtered now
    sendToGuest(r, frame(Uint8Array.from(newMac), HOST_MAC, 60));
    const [u] = await r.rx.waitUsed(1);
    t.equal(u!.len, r.hdrLen + 74, 'the frame to the new MAC');
    t.equal(r.stats()!.rxFiltered, 1, 'the frame to the old MAC was filtered');
    r.dev.setStatus(0);
    t.deepEqual([0, 1, 2, 3, 4, 5].map((i) => r.dev.config(NET_CFG.mac + i, 1)), [...GUEST_MAC], 'reset restores mac=');
    t.equal(r.stats()!.promisc, true, 'and the filter defaults');
  } finally {
    r.close();
  }
});

test('a broken receive ring sets DEVICE_NEEDS_RESET and the warning says why', async (t) => {
  const r = netRig({ opts: macOpt });
  try {
    r.rx.setAvailIdx(5000); // more than the queue size ahead
    r.dev.notify(RX);
    sendToGuest(r, frame(GUEST_MAC, HOST_MAC, 60));
    const deadline = Date.now() + 3000;
    while (!(r.dev.status() & VIRTIO_STATUS_NEEDS_RESET) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    t.ok(r.dev.status() & VIRTIO_STATUS_NEEDS_RESET, 'NEEDS_RESET set');
    t.ok(r.warnings.some((w) => /avail index moved/.test(w)), 'and reported');
  } finally {
    r.close();
  }
});

test("option checks with bhyve's wording (status 4)", (t) => {
  const [a, b] = nativeNet().packetPair();
  const cases: Array<[string, RegExp]> = [
    [`3,virtio-net,fd:${a},mac=01:00:5e:00:00:01`, /^Invalid MAC 01:00:5e:00:00:01$/],
    [`3,virtio-net,fd:${a},mac=00:00:00:00:00:00`, /^Invalid MAC/],
    [`3,virtio-net,fd:${a},mac=zz`, /^Invalid MAC zz$/],
    [`3,virtio-net,fd:${a},mtu=20`, /^invalid MTU '20'/],
    [`3,virtio-net,fd:${a},mtu=70000`, /^invalid MTU/],
    ['3,virtio-net,netgraph,path=a:,peerhook=b', /only on FreeBSD/],
    ['3,virtio-net,valeA:1', /only on FreeBSD/],
    ['3,virtio-net,fd:987', /descriptor 987 is not open/],
    ['3,virtio-net,eth0', /^backend device eth0 not found$/],
  ];
  for (const [spec, re] of cases) {
    try {
      virtioMachine(['-s', spec], 3);
      t.fail(`${spec}: accepted`);
    } catch (e) {
      const err = e as Error & { status?: number };
      t.ok(re.test(err.message), `${spec}: ${err.message}`);
      t.equal(err.status, 4, 'status 4');
    }
  }
  for (const fd of [a, b]) closeSync(fd);
  t.end();
});
