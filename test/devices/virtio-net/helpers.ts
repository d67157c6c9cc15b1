// Shared set-up for the virtio-net tests without a VM: the device in slot 3 on an `fd:N` backend whose other end
// (a SOCK_SEQPACKET socket, one record per frame with its virtio header, as a tap carries them) the test holds,
// and a guest driver for the receive, transmit and control queues laid out as Linux's virtio_net lays them out.
import { closeSync, readSync, writeSync } from 'node:fs';
import { nativeNet, type NetWorkerStats } from '../../../devices/virtio-net/native.js';
import { VIRTIO_STATUS_ACKNOWLEDGE, VIRTIO_STATUS_DRIVER, VIRTIO_STATUS_DRIVER_OK } from '../../../devices/virtio/constants.js';
import { VirtioPciTransport } from '../../../devices/virtio/pci-transport.js';
import type { VirtioNetDevice } from '../../../devices/virtio-net/device.js';
import { GuestAlloc, virtioMachine, type LegacyVirtioPci, type SplitQueueDriver, type VirtioTestMachine } from '../../harness/virtio-driver.js';

export const RX = 0;
export const TX = 1;
export const CTRL = 2;

export interface NetRig {
  m: VirtioTestMachine;
  dev: LegacyVirtioPci;
  rx: SplitQueueDriver;
  tx: SplitQueueDriver;
  ctrl: SplitQueueDriver;
  alloc: GuestAlloc;
  features: number;
  /** 12 with MRG_RXBUF, else 10 */
  hdrLen: number;
  /** the test's end of the packet socket */
  peer: number;
  warnings: string[];
  stats(): NetWorkerStats | undefined;
  device(): VirtioNetDevice;
  close(): void;
}

export interface NetRigOptions {
  /** extra `-s` options after the backend, e.g. 'mac=02:00:00:00:00:01' */
  opts?: string;
  flags?: string[];
  accept?: (offered: number) => number;
  msix?: boolean;
  /** a backend other than the test's socket pair (e.g. 'slirp'); `peer` is then -1 */
  backend?: string;
}

export function netRig(o: NetRigOptions = {}): NetRig {
  const [devFd, peer] = o.backend ? [-1, -1] : nativeNet().packetPair();
  const spec = `3,virtio-net,${o.backend ?? `fd:${devFd}`}${o.opts ? ',' + o.opts : ''}`;
  const { m, dev, warnings } = virtioMachine([...(o.flags ?? []), '-s', spec], 3);
  if (o.msix) dev.enableMsix(4);
  const offered = dev.hostFeatures();
  const features = o.accept ? o.accept(offered) : offered;
  dev.setStatus(0);
  dev.setStatus(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
  dev.setGuestFeatures(features);
  const rx = dev.setupQueue(RX, 0x10000);
  const tx = dev.setupQueue(TX, 0x20000);
  const ctrl = dev.setupQueue(CTRL, 0x30000);
  if (o.msix) {
    dev.setConfigVector(0);
    for (const q of [RX, TX, CTRL]) dev.setQueueVector(q, q + 1);
  }
  dev.setStatus(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
  const alloc = new GuestAlloc(0x40000, m.memory.size);
  const device = (): VirtioNetDevice => (dev.fn.model as unknown as { device: VirtioNetDevice }).device;
  return {
    m, dev, rx, tx, ctrl, alloc, features, peer, warnings,
    hdrLen: features & (1 << 15) ? 12 : 10,
    stats: () => device().stats(),
    device,
    close() {
      m.close();
      if (peer >= 0) closeSync(peer);
    },
  };
}

/** An Ethernet frame: destination, source, EtherType 0x88b5 (local experimental), then `payload` bytes. */
export function frame(dst: Uint8Array, src: Uint8Array, payloadLen: number, seed = 1): Uint8Array {
  const f = new Uint8Array(14 + payloadLen);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  for (let i = 0; i < payloadLen; i++) f[14 + i] = (i * 31 + seed) & 0xff;
  return f;
}

export const BROADCAST = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
export const HOST_MAC = Uint8Array.from([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);

/** Sends `frame` to the guest with an all-zero virtio header of `hdrLen` bytes. */
export function sendToGuest(r: NetRig, f: Uint8Array): void {
  const rec = new Uint8Array(r.hdrLen + f.length);
  rec.set(f, r.hdrLen);
  writeSync(r.peer, rec);
}

/** The next record the device wrote to the packet socket, or undefined after `timeoutMs`. */
export async function receiveFromGuest(r: NetRig, timeoutMs = 3000): Promise<Uint8Array | undefined> {
  const buf = Buffer.alloc(70000);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const n = readSync(r.peer, buf);
      return new Uint8Array(buf.subarray(0, n));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
    if (Date.now() > deadline) return undefined;
    await new Promise((res) => setTimeout(res, 2));
  }
}

/** Posts `count` receive buffers of `len` bytes each (one writable descriptor per chain) and kicks. */
export function postRxBuffers(r: NetRig, count: number, len: number): number[] {
  const addrs: number[] = [];
  for (let i = 0; i < count; i++) {
    const a = r.alloc.alloc(len);
    addrs.push(a);
    r.rx.publish(r.rx.addChain([{ addr: a, len, write: true }]));
  }
  r.dev.notify(RX);
  return addrs;
}

/** Transmits `f` with a zero header in its own descriptor (as a legacy driver does) and waits for the used entry. */
export async function transmit(r: NetRig, f: Uint8Array): Promise<{ id: number; len: number }> {
  const h = r.alloc.alloc(r.hdrLen);
  r.m.memory.bytes.fill(0, h, h + r.hdrLen);
  const d = r.alloc.alloc(f.length);
  r.m.memory.write(d, f);
  r.tx.publish(r.tx.addChain([{ addr: h, len: r.hdrLen, write: false }, { addr: d, len: f.length, write: false }]));
  r.dev.notify(TX);
  return (await r.tx.waitUsed(1))[0]!;
}

/** Sends one control command (class, command, data) and returns the ack byte. */
export async function control(r: NetRig, cls: number, cmd: number, data: Uint8Array): Promise<number> {
  const h = r.alloc.alloc(2);
  r.m.memory.write(h, Uint8Array.from([cls, cmd]));
  const d = r.alloc.alloc(Math.max(1, data.length));
  r.m.memory.write(d, data);
  const ack = r.alloc.alloc(1);
  r.m.memory.write(ack, Uint8Array.from([0xee]));
  const segs = [{ addr: h, len: 2, write: false }];
  if (data.length) segs.push({ addr: d, len: data.length, write: false });
  segs.push({ addr: ack, len: 1, write: true });
  r.ctrl.publish(r.ctrl.addChain(segs));
  r.dev.notify(CTRL);
  const [u] = await r.ctrl.waitUsed(1);
  if (u!.len !== 1) throw new Error(`control command returned ${u!.len} bytes`);
  return r.m.memory.bytes[ack]!;
}

/** The MAC table command's data: unicast entries, then multicast entries. */
export function macTable(uni: Uint8Array[], multi: Uint8Array[]): Uint8Array {
  const out: number[] = [];
  for (const t of [uni, multi]) {
    out.push(t.length & 0xff, (t.length >> 8) & 0xff, 0, 0);
    for (const m of t) out.push(...m);
  }
  return Uint8Array.from(out);
}

export { VirtioPciTransport };
