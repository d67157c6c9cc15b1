// Shared set-up for the virtio-blk tests: a disk file in a temporary directory, a machine with the device in
// slot 3, a started queue, and request builders that lay requests out as Linux's virtio_blk does
// (header, data, status in separate descriptors) unless a test builds its own chain.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlkWorkerStats } from '../../../devices/virtio-blk/native.js';
import { GuestAlloc, virtioMachine, type LegacyVirtioPci, type RecordedKvm, type Seg, type SplitQueueDriver, type VirtioTestMachine } from '../../harness/virtio-driver.js';

export const T_IN = 0;
export const T_OUT = 1;
export const T_FLUSH = 4;
export const T_GET_ID = 8;
export const T_DISCARD = 11;
export const T_WRITE_ZEROES = 13;
export const S_OK = 0;
export const S_IOERR = 1;
export const S_UNSUPP = 2;

export interface BlkRig {
  m: VirtioTestMachine;
  dev: LegacyVirtioPci;
  q: SplitQueueDriver;
  alloc: GuestAlloc;
  disk: string;
  dir: string;
  features: number;
  warnings: string[];
  /** the device's worker counters (engine in use, requests, errors), undefined while no worker runs */
  stats(): BlkWorkerStats | undefined;
  close(): void;
}

export interface RigOptions {
  /** an existing disk (e.g. a block device) instead of a new file */
  diskPath?: string;
  /** disk size in bytes (default 1 MiB), filled with a pattern unless `sparse` */
  size?: number;
  sparse?: boolean;
  /** extra `-s` options after the path, e.g. 'ro' or 'sectorsize=4096' */
  opts?: string;
  /** extra command-line flags such as '-W' */
  flags?: string[];
  /** features the driver accepts (default: everything offered) */
  accept?: (offered: number) => number;
  msix?: boolean;
  /** record the device's KVM wiring (ioeventfd, irqfd, MSI routes) */
  kvm?: RecordedKvm;
}

/** The byte at `off` of the initial disk pattern. */
export const pattern = (off: number): number => (off * 7 + (off >> 9)) & 0xff;

export function makeDisk(dir: string, size: number, sparse = false): string {
  const path = join(dir, 'disk.img');
  const b = Buffer.alloc(size);
  if (!sparse) for (let i = 0; i < size; i++) b[i] = pattern(i);
  writeFileSync(path, b);
  return path;
}

export function rig(o: RigOptions = {}): BlkRig {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-vblk-'));
  const disk = o.diskPath ?? makeDisk(dir, o.size ?? 1 << 20, o.sparse);
  const spec = `3,virtio-blk,${disk}${o.opts ? ',' + o.opts : ''}`;
  const { m, dev, warnings, bus } = virtioMachine([...(o.flags ?? []), '-s', spec], 3, { kvm: o.kvm });
  if (o.msix) {
    dev.enableMsix(2);
  }
  const offered = dev.hostFeatures();
  const features = o.accept ? o.accept(offered) : offered;
  const q = dev.start(features);
  if (o.msix) {
    dev.setConfigVector(0);
    dev.setQueueVector(0, 1);
  }
  const alloc = new GuestAlloc(0x40000, m.memory.size);
  return {
    m, dev, q, alloc, disk, dir, features, warnings,
    stats() {
      // The function's model is the virtio PCI transport; the block device sits behind it.
      const transport = bus.find(0, 3, 0)?.model as unknown as { device?: { stats?: () => BlkWorkerStats | undefined } } | undefined;
      return transport?.device?.stats?.();
    },
    close() {
      m.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Reply {
  status: number;
  /** used.len */
  len: number;
  /** the data buffer after completion */
  data: Uint8Array;
}

/** Header bytes: type, reserved, sector (§5.2.6). */
export function header(r: BlkRig, type: number, sector: number | bigint): number {
  const h = r.alloc.alloc(16);
  r.m.memory.view.setUint32(h, type, true);
  r.m.memory.view.setUint32(h + 4, 0, true);
  r.m.memory.view.setBigUint64(h + 8, BigInt(sector), true);
  return h;
}

/** Submits a standard three-part request and waits for it. `data` is written out or `len` bytes read in. */
export async function request(r: BlkRig, type: number, sector: number | bigint, data?: Uint8Array | number, opts: { indirect?: boolean } = {}): Promise<Reply> {
  const h = header(r, type, sector);
  const segs: Seg[] = [{ addr: h, len: 16, write: false }];
  let buf = 0;
  let blen = 0;
  if (data !== undefined) {
    blen = typeof data === 'number' ? data : data.length;
    buf = r.alloc.alloc(blen, 512);
    if (typeof data !== 'number') r.m.memory.bytes.set(data, buf);
    else r.m.memory.bytes.fill(0xcc, buf, buf + blen);
    segs.push({ addr: buf, len: blen, write: typeof data === 'number' });
  }
  const st = r.alloc.alloc(1);
  r.m.memory.bytes[st] = 0xee;
  segs.push({ addr: st, len: 1, write: true });
  const head = opts.indirect ? r.q.addIndirect(r.alloc.alloc(16 * segs.length), segs) : r.q.addChain(segs);
  r.q.publish(head);
  r.dev.notify(0);
  const [u] = await r.q.waitUsed(1);
  if (u!.id !== head) throw new Error(`used id ${u!.id}, expected ${head}`);
  return { status: r.m.memory.bytes[st]!, len: u!.len, data: r.m.memory.bytes.slice(buf, buf + blen) };
}

/** A discard / write-zeroes range segment (§5.2.6). */
export function rangeSegment(sector: number, count: number, flags = 0): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, count, true);
  v.setUint32(12, flags, true);
  return b;
}
