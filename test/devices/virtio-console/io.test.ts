// virtio-console through the native worker without a VM: identity and configuration space, the MULTIPORT control
// protocol (ports announced with their names, console ports, open/close following the host client), bytes both
// ways with flow control, one client per port, the single-port mode without MULTIPORT, reset, the socket files'
// lifetime and the start-up errors.
import test from 'tape';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONSOLE_CFG } from '../../../devices/virtio-console/device.js';
import { bit, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_STATUS_ACKNOWLEDGE } from '../../../devices/virtio/constants.js';
import { BhyveError } from '../../../src/config/errors.js';
import { PCIR_CLASS, PCIR_DEVICE, PCIR_SUBCLASS, PCIR_SUBDEV_0, PCIR_VENDOR } from '../../../src/platform/pci/regs.js';
import { virtioMachine } from '../../harness/virtio-driver.js';
import {
  bringUp,
  client,
  CONSOLE_PORT,
  consoleRig,
  CTRL_RX,
  DEVICE_ADD,
  DEVICE_READY,
  F_MULTIPORT,
  F_SIZE,
  guestWrite,
  pattern,
  PORT_NAME,
  PORT_OPEN,
  PORT_READY,
  postBuffers,
  readCtrl,
  rxQueue,
  sendCtrl,
  until,
} from './helpers.js';

/** Bytes the device put in the used entries from `from` to the used index. */
function usedBytes(r: ReturnType<typeof consoleRig>, q: ReturnType<ReturnType<typeof consoleRig>['q']>, from: number): number {
  let n = 0;
  for (let i = from; i !== q.usedIdx(); i = (i + 1) & 0xffff) n += q.usedElem(i).len;
  return n;
}

test('PCI identity, features, configuration space and queues as bhyve presents a virtio-console function', (t) => {
  const r = consoleRig({ noStart: true });
  try {
    t.equal(r.dev.cfgRead(PCIR_VENDOR, 2), 0x1af4);
    t.equal(r.dev.cfgRead(PCIR_DEVICE, 2), 0x1003);
    t.equal(r.dev.cfgRead(PCIR_SUBDEV_0, 2), 3, 'subsystem = virtio type 3 (console)');
    t.equal(r.dev.cfgRead(PCIR_CLASS, 1), 0x07, 'class simple communications');
    t.equal(r.dev.cfgRead(PCIR_SUBCLASS, 1), 0x80, "subclass other (not a serial port, which Linux's 8250_pci would claim)");
    const f = r.dev.hostFeatures();
    t.ok(f & F_SIZE && f & F_MULTIPORT, 'offers SIZE and MULTIPORT (bhyve offers the value 3)');
    t.ok(f & bit(VIRTIO_RING_F_INDIRECT_DESC) && f & bit(VIRTIO_RING_F_EVENT_IDX), 'and the ring features');
    t.equal(r.dev.config(CONSOLE_CFG.cols, 2), 80, 'cols');
    t.equal(r.dev.config(CONSOLE_CFG.rows, 2), 25, 'rows');
    t.equal(r.dev.config(CONSOLE_CFG.maxNrPorts, 4), 16, 'max_nr_ports');
    const sizes = Array.from({ length: 35 }, (_, q) => r.dev.queueSize(q));
    t.deepEqual(sizes.slice(0, 34), new Array(34).fill(64), '34 queues of 64 (VTCON_RINGSZ)');
    t.equal(sizes[34], 0, 'no queue 34');
    t.ok(existsSync(r.path('p0')), 'the socket exists from device start');
  } finally {
    r.close();
  }
  t.ok(!existsSync(r.path('p0')), 'the socket file is removed when the VM closes');
  t.end();
});

test('MULTIPORT bring-up: each port announced, named, marked console, opened when a client connects', async (t) => {
  const r = consoleRig({ ports: ['org.test.zero', 'one', 'two'], set: ['port.1.console=true'] });
  try {
    const ctrlAddrs = postBuffers(r, CTRL_RX, 32, 512);
    await sendCtrl(r, 0xffffffff, DEVICE_READY, 1);
    const adds = await readCtrl(r, ctrlAddrs, 3);
    t.deepEqual(adds.map((m) => [m.id, m.event, m.value]), [[0, DEVICE_ADD, 1], [1, DEVICE_ADD, 1], [2, DEVICE_ADD, 1]], 'DEVICE_ADD for ports 0, 1, 2');
    await sendCtrl(r, 0, PORT_READY, 1);
    const m0 = await readCtrl(r, ctrlAddrs, 1);
    t.deepEqual([m0[0]!.id, m0[0]!.event, m0[0]!.payload], [0, PORT_NAME, 'org.test.zero'], 'PORT_NAME after PORT_READY');
    await sendCtrl(r, 1, PORT_READY, 1);
    const m1 = await readCtrl(r, ctrlAddrs, 2);
    t.deepEqual(m1.map((m) => [m.id, m.event, m.value]), [[1, CONSOLE_PORT, 1], [1, PORT_NAME, 0]], 'a console port: CONSOLE_PORT, then its name');
    t.equal(m1[1]!.payload, 'one');

    const c = await client(r.path('org.test.zero'));
    const open = await readCtrl(r, ctrlAddrs, 1);
    t.deepEqual([open[0]!.id, open[0]!.event, open[0]!.value], [0, PORT_OPEN, 1], 'PORT_OPEN(1) when the host client connects');
    await sendCtrl(r, 0, PORT_OPEN, 1);
    await until(() => r.stats().ports[0]!.guestOpen, 'guest open recorded');

    // host -> guest
    const rx = postBuffers(r, rxQueue(0), 4, 256);
    c.sock.write('hello guest');
    const [u] = await r.q(rxQueue(0)).waitUsed(1);
    t.equal(Buffer.from(r.m.memory.bytes.subarray(rx[0]!, rx[0]! + u!.len)).toString(), 'hello guest', 'client bytes in the receive buffer');
    // guest -> host
    await guestWrite(r, 0, Buffer.from('hello host'));
    t.equal((await c.waitFor(10)).toString(), 'hello host', 'guest bytes reach the client');

    c.sock.destroy();
    const closed = await readCtrl(r, ctrlAddrs, 1);
    t.deepEqual([closed[0]!.id, closed[0]!.event, closed[0]!.value], [0, PORT_OPEN, 0], 'PORT_OPEN(0) when the client goes');
    t.ok(r.m.irq.events.length > 0 && r.stats().interrupts > 0, 'interrupts raised');
  } finally {
    r.close();
  }
  t.end();
});

test('client bytes wait in the socket until a guest program opens the port (Linux drops them before)', async (t) => {
  const r = consoleRig({ ports: ['w'] });
  try {
    const { ctrlAddrs } = await bringUp(r, 1, false);
    await readCtrl(r, ctrlAddrs, 1); // PORT_NAME
    const c = await client(r.path('w'));
    await readCtrl(r, ctrlAddrs, 1); // PORT_OPEN 1
    const rx = postBuffers(r, rxQueue(0), 2, 64);
    c.sock.write('early');
    t.ok(await r.q(rxQueue(0)).idleFor(100), 'nothing delivered while the port is closed in the guest');
    await sendCtrl(r, 0, PORT_OPEN, 1);
    const [u] = await r.q(rxQueue(0)).waitUsed(1);
    t.equal(Buffer.from(r.m.memory.bytes.subarray(rx[0]!, rx[0]! + u!.len)).toString(), 'early', 'delivered once it is open');
    await sendCtrl(r, 0, PORT_OPEN, 0);
    c.sock.write('later');
    t.ok(await r.q(rxQueue(0)).idleFor(100), 'held again after the guest closes it');
    await sendCtrl(r, 0, PORT_OPEN, 1);
    const [u2] = await r.q(rxQueue(0)).waitUsed(1);
    t.equal(Buffer.from(r.m.memory.bytes.subarray(rx[1]!, rx[1]! + u2!.len)).toString(), 'later', 'and delivered on the next open');
    c.sock.destroy();
  } finally {
    r.close();
  }
  t.end();
});

test('a client connected before the driver is announced as open at PORT_READY', async (t) => {
  const r = consoleRig({ ports: ['early'] });
  try {
    const c = await client(r.path('early'));
    await until(() => r.stats().ports[0]!.connected, 'accepted');
    const { ctrlAddrs } = await bringUp(r, 1);
    const msgs = await readCtrl(r, ctrlAddrs, 2);
    t.deepEqual(msgs.map((m) => [m.event, m.value]), [[PORT_NAME, 0], [PORT_OPEN, 1]], 'name, then open');
    c.sock.destroy();
  } finally {
    r.close();
  }
  t.end();
});

test('one client per port: a second connection is closed at once and the first keeps working', async (t) => {
  const r = consoleRig({ ports: ['solo'] });
  try {
    const { ctrlAddrs } = await bringUp(r, 1);
    await readCtrl(r, ctrlAddrs, 1); // PORT_NAME
    const a = await client(r.path('solo'));
    await readCtrl(r, ctrlAddrs, 1); // PORT_OPEN 1
    const b = await client(r.path('solo'));
    await b.closed;
    t.pass('the second client was hung up on');
    await until(() => r.stats().refused === 1, 'refusal counted');
    await guestWrite(r, 0, Buffer.from('still here'));
    t.equal((await a.waitFor(10)).toString(), 'still here', 'the first client still gets output');
    a.sock.destroy();
  } finally {
    r.close();
  }
  t.end();
});

test('flow control: nothing is lost when the guest is slow to give buffers or the client slow to read', async (t) => {
  const r = consoleRig({ ports: ['bulk'] });
  try {
    const { ctrlAddrs } = await bringUp(r, 1);
    await readCtrl(r, ctrlAddrs, 1);
    const c = await client(r.path('bulk'));
    // host -> guest: 200 KiB written at once, received through a few buffers at a time.
    const up = pattern(200 << 10, 3);
    c.sock.write(up);
    const got: Buffer[] = [];
    let total = 0;
    const rxq = r.q(rxQueue(0));
    let seen = rxq.usedIdx();
    while (total < up.length) {
      const addrs = postBuffers(r, rxQueue(0), 8, 4096);
      // Take what the device used of these eight (the last round fills fewer).
      await until(() => rxq.usedIdx() - seen === 8 || total + usedBytes(r, rxq, seen) >= up.length, 'receive buffers used', 10000);
      const n = rxq.usedIdx() - seen;
      for (let i = 0; i < n; i++) {
        const u = rxq.usedElem(seen + i);
        got.push(Buffer.from(r.m.memory.bytes.subarray(addrs[i]!, addrs[i]! + u.len)));
        total += u.len;
      }
      seen += n;
      await rxq.waitUsed(n);
      if (n < 8) break;
    }
    t.equal(total, up.length, 'every byte from the client reached the guest');
    t.ok(Buffer.concat(got).equals(Buffer.from(up)), 'in order');

    // guest -> host: 8 MiB in 64 KiB chains while the client is paused (its socket fills), then resumed.
    c.sock.pause();
    const down = pattern(8 << 20, 9);
    const q = r.q(1);
    const chunk = 256 << 10; // 32 chains: half the ring
    const base = r.alloc.alloc(down.length, 4096);
    r.m.memory.write(base, down);
    for (let off = 0; off < down.length; off += chunk) q.publish(q.addChain([{ addr: base + off, len: chunk, write: false }]));
    r.dev.notify(1);
    await new Promise((res) => setTimeout(res, 100));
    t.ok(q.usedIdx() < down.length / chunk, `the device holds chains while the client does not read (${q.usedIdx()} of ${down.length / chunk} done)`);
    c.sock.resume();
    const all = await c.waitFor(down.length, 20000);
    t.ok(all.equals(Buffer.from(down)), '8 MiB arrived complete and in order');
    await until(() => q.usedIdx() === down.length / chunk, 'all chains used');
    t.equal(r.stats().txDiscarded, 0, 'nothing discarded');
    c.sock.destroy();
  } finally {
    r.close();
  }
  t.end();
});

test('output without a client is discarded (as bhyve does) and counted', async (t) => {
  const r = consoleRig({ ports: ['nobody'] });
  try {
    await bringUp(r, 1);
    await guestWrite(r, 0, Buffer.from('into the void'));
    t.equal(r.stats().txDiscarded, 13);
  } finally {
    r.close();
  }
  t.end();
});

test('without MULTIPORT port 0 is a plain console on queues 0 and 1', async (t) => {
  const r = consoleRig({ ports: ['only', 'ignored'], multiport: false });
  try {
    t.equal(r.features & F_MULTIPORT, 0);
    const c = await client(r.path('only'));
    const rx = postBuffers(r, 0, 2, 128);
    c.sock.write('abc');
    const [u] = await r.q(0).waitUsed(1);
    t.equal(Buffer.from(r.m.memory.bytes.subarray(rx[0]!, rx[0]! + u!.len)).toString(), 'abc', 'input');
    await guestWrite(r, 0, Buffer.from('xyz'));
    t.equal((await c.waitFor(3)).toString(), 'xyz', 'output');
    t.equal(r.stats().ctrlOut, 0, 'no control traffic');
    c.sock.destroy();
  } finally {
    r.close();
  }
  t.end();
});

test('a device reset keeps the host client; the driver announces itself again', async (t) => {
  const r = consoleRig({ ports: ['keep'] });
  try {
    let { ctrlAddrs } = await bringUp(r, 1);
    await readCtrl(r, ctrlAddrs, 1);
    const c = await client(r.path('keep'));
    await readCtrl(r, ctrlAddrs, 1);
    r.dev.setStatus(0);
    t.notOk(r.stats().ports[0]!.ready, 'port state cleared by the reset');
    // The driver starts over (new rings at the same places).
    r.dev.setStatus(VIRTIO_STATUS_ACKNOWLEDGE | 2);
    r.dev.setGuestFeatures(r.features);
    for (let i = 0; i < 34; i++) r.queues.set(i, r.dev.setupQueue(i, 0x10000 + i * 0x2000));
    r.dev.setStatus(VIRTIO_STATUS_ACKNOWLEDGE | 2 | 4);
    ({ ctrlAddrs } = await bringUp(r, 1));
    const msgs = await readCtrl(r, ctrlAddrs, 2);
    t.deepEqual(msgs.map((m) => [m.event, m.value]), [[PORT_NAME, 0], [PORT_OPEN, 1]], 'the connected client is announced again');
    await guestWrite(r, 0, Buffer.from('after reset'));
    t.equal((await c.waitFor(11)).toString(), 'after reset');
    c.sock.destroy();
  } finally {
    r.close();
  }
  t.end();
});

test('MSI-X: each queue on its own vector, and a vector change mid-stream loses nothing', async (t) => {
  const r = consoleRig({ ports: ['v'], msix: true });
  try {
    const { ctrlAddrs } = await bringUp(r, 1);
    await readCtrl(r, ctrlAddrs, 1);
    const c = await client(r.path('v'));
    await readCtrl(r, ctrlAddrs, 1);
    await guestWrite(r, 0, Buffer.from('one '));
    r.dev.setQueueVector(1, 5); // the worker restarts on the new route
    await guestWrite(r, 0, Buffer.from('two'));
    t.equal((await c.waitFor(7)).toString(), 'one two');
    const vectors = new Set(r.m.irq.events.flatMap((e) => (e.kind === 'msi' ? [e.data] : [])));
    t.ok(vectors.size >= 2, `interrupts on several vectors (${[...vectors].join(',')})`);
    c.sock.destroy();
  } finally {
    r.close();
  }
  t.end();
});

test('socket files: a stale one is replaced, anything else at the path is a start-up error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vtcon-paths-'));
  try {
    // A socket left by a dead process: bind it, then close without unlinking.
    const stale = join(dir, 'stale.sock');
    execFileSync('python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', stale]);
    t.ok(existsSync(stale), 'a socket file with nobody behind it');
    const r = consoleRig({ ports: ['stale'], dir, noStart: true });
    t.ok(r.stats().ports[0], 'started over a stale socket');
    const c = await client(stale);
    t.pass('and it listens');
    c.sock.destroy();
    r.close();
    t.notOk(existsSync(stale), 'removed at close');

    writeFileSync(join(dir, 'file.sock'), 'not a socket');
    t.throws(() => consoleRig({ ports: ['file'], dir, noStart: true }), (e: unknown) => e instanceof BhyveError && e.status === 4 && /cannot create port file: Address already in use/.test(e.message), 'a regular file: cannot create port (status 4)');
    t.ok(existsSync(join(dir, 'file.sock')), 'and the file is left alone');

    t.throws(() => virtioMachine(['-s', `3,virtio-console,x=${join(dir, 'missing', 'x.sock')}`], 3), /cannot create port x: No such file or directory/, 'a missing directory');
    const live = join(dir, 'live.sock');
    const r1 = consoleRig({ ports: ['live'], dir, noStart: true });
    t.throws(() => consoleRig({ ports: ['live'], dir, noStart: true }), /cannot create port live: Address already in use/, 'a socket another VM listens on');
    t.ok(existsSync(live), "the other VM's socket is untouched");
    r1.close();
    t.throws(() => virtioMachine(['-s', `3,virtio-console,long=${dir}/${'x'.repeat(120)}`], 3), /cannot create port long: path too long/, 'a path longer than sun_path');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});

test("bhyve's option syntax: NAME=PATH tokens, at most 16 ports", (t) => {
  t.throws(() => virtioMachine(['-s', '3,virtio-console,nopath'], 3), /vtcon: port nopath requires a path/);
  const many = Array.from({ length: 17 }, (_, i) => `p${i}=/tmp/p${i}`).join(',');
  t.throws(() => virtioMachine(['-s', `3,virtio-console,${many}`], 3), /too many ports/);
  const dir = mkdtempSync(join(tmpdir(), 'vtcon-16-'));
  try {
    const sixteen = Array.from({ length: 16 }, (_, i) => `p${i}`);
    const r = consoleRig({ ports: sixteen, dir, noStart: true });
    t.equal(r.stats().ports.length, 16, 'sixteen ports start');
    r.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});
