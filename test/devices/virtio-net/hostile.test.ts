// Hostile rings against the virtio-net worker: transmit chains with writable or non-RAM descriptors, records too
// short or too long, receive chains the device cannot write, a descriptor loop and malformed control commands.
// Each is refused as the spec lets the device refuse it; the worker keeps going and the host is untouched.
import test from 'tape';
import { formatMac } from '../../../devices/net/options.js';
import { VIRTIO_STATUS_NEEDS_RESET } from '../../../devices/virtio/constants.js';
import { CTRL, frame, HOST_MAC, netRig, postRxBuffers, receiveFromGuest, RX, sendToGuest, transmit, TX } from './helpers.js';

const GUEST_MAC = Uint8Array.from([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x02]);
const opts = `mac=${formatMac(GUEST_MAC)}`;

test('transmit chains that break the rules are returned unsent and counted', async (t) => {
  const r = netRig({ opts });
  try {
    const h = r.alloc.alloc(64);
    const d = r.alloc.alloc(2048);
    const cases: Array<[string, Array<{ addr: number; len: number; write: boolean }>]> = [
      ['a writable descriptor', [{ addr: h, len: r.hdrLen, write: false }, { addr: d, len: 100, write: true }]],
      ['shorter than header + Ethernet header', [{ addr: h, len: r.hdrLen + 5, write: false }]],
      ['longer than any frame', [{ addr: h, len: r.hdrLen, write: false }, { addr: d, len: 0xffff, write: false }, { addr: d, len: 0xffff, write: false }]],
      ['outside guest RAM', [{ addr: h, len: r.hdrLen, write: false }, { addr: 0x7fff_0000_0000, len: 100, write: false }]],
      ['wrapping the address space', [{ addr: h, len: r.hdrLen, write: false }, { addr: Number(0xffff_ffff_ffff_f000n & 0x1f_ffff_ffff_ffffn), len: 0x2000, write: false }]],
    ];
    for (const [what, segs] of cases) {
      r.tx.publish(r.tx.addChain(segs));
      r.dev.notify(TX);
      const [u] = await r.tx.waitUsed(1);
      t.equal(u!.len, 0, `${what}: returned`);
    }
    t.equal(await receiveFromGuest(r, 100), undefined, 'nothing reached the wire');
    t.equal(r.stats()!.txBadChain, cases.length, 'each counted');
    const f = frame(HOST_MAC, GUEST_MAC, 100);
    await transmit(r, f);
    const rec = await receiveFromGuest(r);
    t.equal(rec?.length, r.hdrLen + f.length, 'a good frame still goes out afterwards');
  } finally {
    r.close();
  }
});

test('receive chains the device cannot write come back empty; the frame goes to the next good buffer', async (t) => {
  const r = netRig({ opts });
  try {
    const a = r.alloc.alloc(2048);
    r.rx.publish(r.rx.addChain([{ addr: a, len: 2048, write: false }])); // readable
    r.rx.publish(r.rx.addChain([{ addr: 0x7fff_0000_0000, len: 2048, write: true }])); // not RAM
    const [good] = postRxBuffers(r, 1, 2048);
    const f = frame(GUEST_MAC, HOST_MAC, 300);
    sendToGuest(r, f);
    const used = await r.rx.waitUsed(3);
    t.deepEqual(used.map((u) => u.len), [0, 0, r.hdrLen + f.length], 'two empty returns, then the frame');
    t.ok(Buffer.from(r.m.memory.read(good! + r.hdrLen, f.length)).equals(Buffer.from(f)), 'frame intact');
    t.equal(r.stats()!.rxBadChain, 2);
  } finally {
    r.close();
  }
});

test('a frame too big for the whole receive ring is dropped, not waited for forever', async (t) => {
  const r = netRig({ opts });
  try {
    // 1024 chains of 16 bytes hold 16 KiB; a 20000-byte frame cannot fit.
    for (let i = 0; i < 1024; i++) {
      const a = r.alloc.alloc(16);
      r.rx.publish(r.rx.addChain([{ addr: a, len: 16, write: true }]));
    }
    r.dev.notify(RX);
    sendToGuest(r, frame(GUEST_MAC, HOST_MAC, 20000));
    const small = frame(GUEST_MAC, HOST_MAC, 2);
    sendToGuest(r, small);
    const used = await r.rx.waitUsed(2);
    t.equal(used[0]!.len + used[1]!.len, r.hdrLen + small.length, 'the next frame is delivered in two 16-byte buffers');
    t.equal(r.stats()!.rxNoBuffer, 1, 'the big one dropped');
  } finally {
    r.close();
  }
});

test('a descriptor loop on the transmit queue stops that queue with NEEDS_RESET', async (t) => {
  const r = netRig({ opts });
  try {
    const d = r.alloc.alloc(64);
    r.tx.writeDesc(0, d, 64, 1, 1);
    r.tx.writeDesc(1, d, 64, 1, 0);
    r.tx.publish(0);
    r.dev.notify(TX);
    const deadline = Date.now() + 3000;
    while (!(r.dev.status() & VIRTIO_STATUS_NEEDS_RESET) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    t.ok(r.dev.status() & VIRTIO_STATUS_NEEDS_RESET, 'NEEDS_RESET');
    t.ok(r.warnings.some((w) => /queue 1: descriptor chain longer than the table/.test(w)), 'reported with the queue');
  } finally {
    r.close();
  }
});

test('control commands without an ack byte, with data after the ack, or oversized are refused without harm', async (t) => {
  const r = netRig({ opts });
  try {
    const h = r.alloc.alloc(16);
    r.m.memory.write(h, Uint8Array.from([0, 0, 0]));
    const ack = r.alloc.alloc(4);
    const big = r.alloc.alloc(16384);
    const cases: Array<[string, Array<{ addr: number; len: number; write: boolean }>, number]> = [
      ['no writable byte', [{ addr: h, len: 3, write: false }], 0],
      ['only one readable byte', [{ addr: h, len: 1, write: false }, { addr: ack, len: 1, write: true }], 1],
      ['more than 8 KiB of command', [{ addr: h, len: 2, write: false }, { addr: big, len: 16384, write: false }, { addr: ack, len: 1, write: true }], 1],
      ['readable after the ack', [{ addr: h, len: 3, write: false }, { addr: ack, len: 1, write: true }, { addr: h, len: 3, write: false }], 1],
    ];
    for (const [what, segs, len] of cases) {
      r.m.memory.bytes[ack] = 0xee;
      r.ctrl.publish(r.ctrl.addChain(segs));
      r.dev.notify(CTRL);
      const [u] = await r.ctrl.waitUsed(1);
      t.equal(u!.len, len, `${what}: used length ${len}`);
      if (len) t.equal(r.m.memory.bytes[ack], 1, 'ack = VIRTIO_NET_ERR');
    }
    t.equal(r.stats()!.promisc, true, 'the filter did not change');
    t.equal(r.dev.status() & VIRTIO_STATUS_NEEDS_RESET, 0, 'the device did not give up');
  } finally {
    r.close();
  }
});
