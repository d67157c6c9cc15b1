// Hostile rings and control messages against the virtio-console worker: chains in the wrong direction or outside
// RAM, descriptor loops and index jumps, short and unknown control messages, control buffers too small for a
// name, and a driver repeating DEVICE_READY without giving buffers. Each is refused or bounded; the other ports and
// the host are untouched.
import test from 'tape';
import { VIRTIO_STATUS_NEEDS_RESET } from '../../../devices/virtio/constants.js';
import {
  bringUp,
  client,
  consoleRig,
  CTRL_RX,
  CTRL_TX,
  DEVICE_READY,
  PORT_NAME,
  PORT_OPEN,
  PORT_READY,
  postBuffers,
  readCtrl,
  rxQueue,
  sendCtrl,
  txQueue,
  until,
  type ConsoleRig,
} from './helpers.js';

async function needsReset(t: test.Test, r: ConsoleRig, queue: number, why: RegExp): Promise<void> {
  await until(() => (r.dev.status() & VIRTIO_STATUS_NEEDS_RESET) !== 0, 'NEEDS_RESET', 3000).catch(() => undefined);
  t.ok(r.dev.status() & VIRTIO_STATUS_NEEDS_RESET, 'NEEDS_RESET');
  t.ok(r.warnings.some((w) => new RegExp(`queue ${queue}: ${why.source}`).test(w)), `reported with queue ${queue}`);
}

test('transmit and receive chains in the wrong direction or outside RAM are returned empty and counted', async (t) => {
  const r = consoleRig({ ports: ['a'] });
  try {
    await bringUp(r, 1);
    const c = await client(r.path('a'));
    const buf = r.alloc.alloc(64);
    r.m.memory.write(buf, Buffer.from('secret'));
    const tx = r.q(txQueue(0));
    const bad: Array<[string, Array<{ addr: number; len: number; write: boolean }>]> = [
      ['a writable descriptor', [{ addr: buf, len: 6, write: true }]],
      ['outside guest RAM', [{ addr: 0x7fff_0000_0000, len: 16, write: false }]],
      ['a readable descriptor then a writable one', [{ addr: buf, len: 6, write: false }, { addr: buf, len: 6, write: true }]],
    ];
    for (const [what, segs] of bad) {
      tx.publish(tx.addChain(segs));
      r.dev.notify(txQueue(0));
      const [u] = await tx.waitUsed(1);
      t.equal(u!.len, 0, `transmit ${what}: returned`);
    }
    t.equal(r.stats().badChains, 3, 'counted');
    await new Promise((res) => setTimeout(res, 50));
    t.equal(c.received().length, 0, 'nothing reached the client');

    const rx = r.q(rxQueue(0));
    rx.publish(rx.addChain([{ addr: buf, len: 64, write: false }]));
    rx.publish(rx.addChain([{ addr: 0x7fff_0000_0000, len: 64, write: true }]));
    const good = r.alloc.alloc(64);
    rx.publish(rx.addChain([{ addr: good, len: 64, write: true }]));
    r.dev.notify(rxQueue(0));
    c.sock.write('payload');
    const used = await rx.waitUsed(3);
    t.deepEqual(used.map((u) => u.len), [0, 0, 7], 'unwritable receive chains skipped, the good one filled');
    t.equal(Buffer.from(r.m.memory.bytes.subarray(good, good + 7)).toString(), 'payload');
    t.equal(Buffer.from(r.m.memory.bytes.subarray(buf, buf + 6)).toString(), 'secret', 'a readable buffer is never written');
    c.sock.destroy();
  } finally {
    r.close();
  }
  t.end();
});

test('a descriptor loop on a transmit queue stops the device with NEEDS_RESET', async (t) => {
  const r = consoleRig({ ports: ['a'] });
  try {
    const q = r.q(txQueue(0));
    const d = r.alloc.alloc(64);
    q.writeDesc(0, d, 64, 1, 1);
    q.writeDesc(1, d, 64, 1, 0);
    q.publish(0);
    r.dev.notify(txQueue(0));
    await needsReset(t, r, 1, /descriptor chain longer than the table/);
  } finally {
    r.close();
  }
  t.end();
});

test('an avail index that jumps past the ring size on the control queue stops the device', async (t) => {
  const r = consoleRig({ ports: ['a'] });
  try {
    r.q(CTRL_TX).setAvailIdx(1000);
    r.dev.notify(CTRL_TX);
    await needsReset(t, r, CTRL_TX, /avail index moved by more than the queue size/);
  } finally {
    r.close();
  }
  t.end();
});

test('short, unknown and out-of-range control messages are counted and ignored', async (t) => {
  const r = consoleRig({ ports: ['a'] });
  try {
    const ctrlAddrs = postBuffers(r, CTRL_RX, 16, 512);
    // PORT_READY before DEVICE_READY: nothing announced.
    await sendCtrl(r, 0, PORT_READY, 1);
    // A 4-byte message.
    const a = r.alloc.alloc(8);
    const q = r.q(CTRL_TX);
    q.publish(q.addChain([{ addr: a, len: 4, write: false }]));
    r.dev.notify(CTRL_TX);
    await q.waitUsed(1);
    // A writable control message.
    q.publish(q.addChain([{ addr: a, len: 8, write: true }]));
    r.dev.notify(CTRL_TX);
    await q.waitUsed(1);
    await sendCtrl(r, 0xffffffff, DEVICE_READY, 1);
    await readCtrl(r, ctrlAddrs, 1); // DEVICE_ADD 0
    await sendCtrl(r, 5, PORT_READY, 1); // no port 5
    await sendCtrl(r, 0x8000_0000, PORT_OPEN, 1);
    await sendCtrl(r, 0, 99, 1); // unknown event
    await until(() => r.stats().ctrlErrors >= 6, 'errors counted');
    t.equal(r.stats().ctrlErrors, 6, 'six malformed messages counted');
    t.ok(await r.q(CTRL_RX).idleFor(50), 'no announcement for any of them');
    await sendCtrl(r, 0, PORT_READY, 1);
    const [name] = await readCtrl(r, ctrlAddrs, 1);
    t.deepEqual([name!.event, name!.payload], [PORT_NAME, 'a'], 'the real port still comes up');
  } finally {
    r.close();
  }
  t.end();
});

test('a control buffer too small for the message is returned empty; the message goes to the next', async (t) => {
  const name = 'n'.repeat(200);
  const r = consoleRig({ ports: [name] });
  try {
    const big = postBuffers(r, CTRL_RX, 1, 512);
    await sendCtrl(r, 0xffffffff, DEVICE_READY, 1);
    await readCtrl(r, big, 1);
    const small = postBuffers(r, CTRL_RX, 1, 64);
    await sendCtrl(r, 0, PORT_READY, 1);
    const [u] = await r.q(CTRL_RX).waitUsed(1);
    t.equal(u!.len, 0, 'the 64-byte buffer came back empty');
    t.equal(small.length, 1);
    const next = postBuffers(r, CTRL_RX, 1, 512);
    const [m] = await readCtrl(r, next, 1);
    t.deepEqual([m!.event, m!.payload], [PORT_NAME, name], 'the whole name in the next buffer');
  } finally {
    r.close();
  }
  t.end();
});

test('DEVICE_READY repeated without control buffers: the queued announcements are bounded', async (t) => {
  const r = consoleRig({ ports: Array.from({ length: 16 }, (_, i) => `p${i}`) });
  try {
    for (let i = 0; i < 20; i++) await sendCtrl(r, 0xffffffff, DEVICE_READY, 1);
    await until(() => r.stats().ctrlDropped > 0, 'drops counted');
    t.ok(r.stats().ctrlDropped >= 20 * 16 - 80, `announcements beyond the bound dropped (${r.stats().ctrlDropped})`);
    const addrs = postBuffers(r, CTRL_RX, 60, 128);
    const msgs = await readCtrl(r, addrs, 60);
    t.ok(msgs.every((m) => m.event === 1 && m.id < 16), 'what was kept is well-formed DEVICE_ADDs');
    t.equal(r.dev.status() & VIRTIO_STATUS_NEEDS_RESET, 0, 'the device carries on');
  } finally {
    r.close();
  }
  t.end();
});

test('queues placed outside guest RAM: the device asks for a reset instead of starting', async (t) => {
  const r = consoleRig({ ports: ['a'], noStart: true });
  try {
    r.dev.setStatus(0);
    r.dev.setStatus(3);
    r.dev.setGuestFeatures(r.dev.hostFeatures());
    r.dev.setReg(0x0e, 2, 0); // QUEUE_SEL
    r.dev.setReg(0x08, 4, 0x7fff_0000); // QUEUE_PFN far above RAM
    r.dev.setStatus(7);
    await until(() => (r.dev.status() & VIRTIO_STATUS_NEEDS_RESET) !== 0, 'NEEDS_RESET', 3000).catch(() => undefined);
    t.ok(r.dev.status() & VIRTIO_STATUS_NEEDS_RESET, 'NEEDS_RESET');
    t.ok(r.warnings.some((w) => /rings outside guest RAM/.test(w)), 'reported');
  } finally {
    r.close();
  }
  t.end();
});

test('a guest cannot hold the host: a client that never reads only stalls its own port', async (t) => {
  const r = consoleRig({ ports: ['slow', 'fast'] });
  try {
    const { ctrlAddrs } = await bringUp(r, 2);
    await readCtrl(r, ctrlAddrs, 2);
    const slow = await client(r.path('slow'));
    const fast = await client(r.path('fast'));
    await readCtrl(r, ctrlAddrs, 2);
    slow.sock.pause();
    const big = r.alloc.alloc(8 << 20, 4096);
    const q = r.q(txQueue(0));
    for (let i = 0; i < 8; i++) q.publish(q.addChain([{ addr: big + i * (1 << 20), len: 1 << 20, write: false }]));
    r.dev.notify(txQueue(0));
    const fq = r.q(txQueue(1));
    const msg = r.alloc.alloc(4);
    r.m.memory.write(msg, Buffer.from('ping'));
    fq.publish(fq.addChain([{ addr: msg, len: 4, write: false }]));
    r.dev.notify(txQueue(1));
    t.equal((await fast.waitFor(4)).toString(), 'ping', 'the other port flows while one client is stuck');
    slow.sock.destroy();
    fast.sock.destroy();
  } finally {
    r.close();
  }
  t.end();
});
