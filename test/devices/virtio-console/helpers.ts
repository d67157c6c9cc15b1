// Shared set-up for the virtio-console tests without a VM: the device in slot 3 with ports on unix sockets in a
// fresh directory, and a guest driver that lays the queues out as Linux's virtio_console does (all 34 with
// MULTIPORT, a pair without) and speaks the control protocol (virtio 1.2 §5.3.6.2).
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VIRTIO_STATUS_ACKNOWLEDGE, VIRTIO_STATUS_DRIVER, VIRTIO_STATUS_DRIVER_OK } from '../../../devices/virtio/constants.js';
import type { VirtioConsoleDevice } from '../../../devices/virtio-console/device.js';
import type { ConsoleStats } from '../../../devices/virtio-console/native.js';
import { GuestAlloc, virtioMachine, type LegacyVirtioPci, type SplitQueueDriver, type VirtioTestMachine } from '../../harness/virtio-driver.js';

export const F_SIZE = 1 << 0;
export const F_MULTIPORT = 1 << 1;
export const CTRL_RX = 2;
export const CTRL_TX = 3;
export const rxQueue = (port: number): number => (port === 0 ? 0 : 2 * port + 2);
export const txQueue = (port: number): number => (port === 0 ? 1 : 2 * port + 3);

export const DEVICE_READY = 0;
export const DEVICE_ADD = 1;
export const PORT_READY = 3;
export const CONSOLE_PORT = 4;
export const PORT_OPEN = 6;
export const PORT_NAME = 7;

export interface CtrlMsg {
  id: number;
  event: number;
  value: number;
  /** the bytes after the header (PORT_NAME's name) */
  payload: string;
}

export interface ConsoleRig {
  m: VirtioTestMachine;
  dev: LegacyVirtioPci;
  dir: string;
  queues: Map<number, SplitQueueDriver>;
  alloc: GuestAlloc;
  features: number;
  warnings: string[];
  path(name: string): string;
  q(i: number): SplitQueueDriver;
  device(): VirtioConsoleDevice;
  stats(): ConsoleStats;
  close(): void;
}

export interface ConsoleRigOptions {
  /** port names; each gets a socket `<dir>/<name>.sock` (`port<i>.sock` for long names) */
  ports?: string[];
  /** extra `-o` settings relative to the device node, e.g. ['port.0.console=true'] */
  set?: string[];
  multiport?: boolean;
  msix?: boolean;
  /** skip driver bring-up (identity tests) */
  noStart?: boolean;
  dir?: string;
}

export function consoleRig(o: ConsoleRigOptions = {}): ConsoleRig {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'vtcon-'));
  const ports = o.ports ?? ['p0'];
  const sockName = (n: string): string => (n.length > 40 ? `port${ports.indexOf(n)}` : n) + '.sock';
  const spec = `3,virtio-console,${ports.map((n) => `${n}=${join(dir, sockName(n))}`).join(',')}`;
  const extra = (o.set ?? []).flatMap((s) => ['-o', `pci.0.3.0.${s}`]);
  const { m, dev, warnings } = virtioMachine(['-s', spec, ...extra], 3);
  const alloc = new GuestAlloc(0x100000, m.memory.size);
  const queues = new Map<number, SplitQueueDriver>();
  const offered = dev.hostFeatures();
  const features = o.multiport === false ? offered & ~F_MULTIPORT : offered;
  const device = (): VirtioConsoleDevice => (dev.fn.model as unknown as { device: VirtioConsoleDevice }).device;
  const rig: ConsoleRig = {
    m, dev, dir, queues, alloc, features, warnings,
    path: (name) => join(dir, sockName(name)),
    q: (i) => {
      const d = queues.get(i);
      if (!d) throw new Error(`queue ${i} not set up`);
      return d;
    },
    device,
    stats: () => device().stats(),
    close() {
      m.close();
      if (!o.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
  if (o.noStart) return rig;
  if (o.msix) dev.enableMsix(35);
  dev.setStatus(0);
  dev.setStatus(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
  dev.setGuestFeatures(features);
  const nq = features & F_MULTIPORT ? 34 : 2;
  for (let i = 0; i < nq; i++) queues.set(i, dev.setupQueue(i, 0x10000 + i * 0x2000));
  if (o.msix) {
    dev.setConfigVector(0);
    for (let i = 0; i < nq; i++) dev.setQueueVector(i, i + 1);
  }
  dev.setStatus(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
  return rig;
}

/** Posts `count` writable buffers of `len` bytes on queue `qi` and kicks; returns their addresses. */
export function postBuffers(r: ConsoleRig, qi: number, count: number, len: number): number[] {
  const q = r.q(qi);
  const addrs: number[] = [];
  for (let i = 0; i < count; i++) {
    const a = r.alloc.alloc(len);
    addrs.push(a);
    q.publish(q.addChain([{ addr: a, len, write: true }]));
  }
  r.dev.notify(qi);
  return addrs;
}

/** Sends one control message from the driver (8 bytes: le32 id, le16 event, le16 value). */
export async function sendCtrl(r: ConsoleRig, id: number, event: number, value: number): Promise<void> {
  const a = r.alloc.alloc(8);
  const v = r.m.memory.view;
  v.setUint32(a, id, true);
  v.setUint16(a + 4, event, true);
  v.setUint16(a + 6, value, true);
  const q = r.q(CTRL_TX);
  q.publish(q.addChain([{ addr: a, len: 8, write: false }]));
  r.dev.notify(CTRL_TX);
  await q.waitUsed(1);
}

/**
 * Reads the device's control messages as they arrive in buffers posted with postBuffers(r, CTRL_RX, ...):
 * `addrs` is that list, consumed in order.
 */
export async function readCtrl(r: ConsoleRig, addrs: number[], count: number): Promise<CtrlMsg[]> {
  const used = await r.q(CTRL_RX).waitUsed(count);
  return used.map((u) => {
    const a = addrs.shift()!;
    const v = r.m.memory.view;
    return {
      id: v.getUint32(a, true),
      event: v.getUint16(a + 4, true),
      value: v.getUint16(a + 6, true),
      payload: Buffer.from(r.m.memory.bytes.subarray(a + 8, a + u.len)).toString('latin1'),
    };
  });
}

/** Transmits `data` on port `port` from the guest (one readable descriptor) and waits for the used entry. */
export async function guestWrite(r: ConsoleRig, port: number, data: Uint8Array): Promise<void> {
  const a = r.alloc.alloc(Math.max(1, data.length));
  r.m.memory.write(a, data);
  const q = r.q(txQueue(port));
  q.publish(q.addChain([{ addr: a, len: data.length, write: false }]));
  r.dev.notify(txQueue(port));
  await q.waitUsed(1);
}

/**
 * Brings multiport up as Linux does: control buffers, DEVICE_READY, PORT_READY for each announced port, and (as a
 * guest program opening every port) PORT_OPEN.
 */
export async function bringUp(r: ConsoleRig, nports: number, open = true): Promise<{ msgs: CtrlMsg[]; ctrlAddrs: number[] }> {
  const ctrlAddrs = postBuffers(r, CTRL_RX, 32, 512);
  await sendCtrl(r, 0xffffffff, DEVICE_READY, 1);
  const adds = await readCtrl(r, ctrlAddrs, nports);
  const msgs = [...adds];
  for (const a of adds) await sendCtrl(r, a.id, PORT_READY, 1);
  if (open) for (const a of adds) await sendCtrl(r, a.id, PORT_OPEN, 1);
  return { msgs, ctrlAddrs };
}

/** A connected client on a port's socket, collecting what it receives. */
export interface Client {
  sock: Socket;
  received(): Buffer;
  waitFor(bytes: number, timeoutMs?: number): Promise<Buffer>;
  closed: Promise<void>;
}

export function client(path: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let closedResolve!: () => void;
    const closed = new Promise<void>((res) => (closedResolve = res));
    const sock = connect(path);
    sock.on('data', (d) => {
      chunks.push(d);
      total += d.length;
    });
    sock.on('close', () => closedResolve());
    sock.once('error', reject);
    sock.once('connect', () =>
      resolve({
        sock,
        closed,
        received: () => Buffer.concat(chunks),
        async waitFor(bytes, timeoutMs = 5000) {
          const deadline = Date.now() + timeoutMs;
          while (total < bytes) {
            if (Date.now() > deadline) throw new Error(`client got ${total} of ${bytes} bytes`);
            await new Promise((r) => setTimeout(r, 2));
          }
          return Buffer.concat(chunks);
        },
      }),
    );
  });
}

export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export function pattern(len: number, seed = 7): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 131 + seed + (i >> 8)) & 0xff;
  return b;
}
