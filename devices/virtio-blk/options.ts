// The block options of a virtio-blk function, read from its config node (bhyve_config(5) keys, the ones
// block_if.c's blockif_open and pci_virtio_block.c read), checked with bhyve's wording.
import { createHash } from 'node:crypto';
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import type { ConfigNode, ConfigTree } from '../../src/config/tree.js';

export interface BlockOptions {
  path: string;
  readOnly: boolean;
  /** `nocache`: O_DIRECT */
  noCache: boolean;
  /** `sync` or `direct`: O_SYNC */
  sync: boolean;
  noDelete: boolean;
  /** `sectorsize=L[/P]`, 0 when not given */
  logicalSector: number;
  physicalSector: number;
  /** GET_ID answer: `ser`, or bhyve's default derived from the path */
  serial: string;
  bootindex?: number;
  /** `iothreads=N` (tsbhyve only): threads doing the disk I/O of the queue when io_uring is not used */
  ioThreads: number;
  /**
   * `aio=io_uring|threads` (tsbhyve only): io_uring (the default; falls back to threads where the kernel
   * refuses it) or synchronous calls on `ioThreads` threads.
   */
  engine: 'auto' | 'threads';
}

/** Default I/O threads per queue (see bench/virtio-blk/README.md for the measurement behind it). */
export const DEFAULT_IO_THREADS = 1;

/** VIRTIO_BLK_ID_BYTES: the serial the guest can read is at most 20 bytes. */
export const BLK_ID_BYTES = 20;

const fail = (message: string): BhyveError => new BhyveError(ExitStatus.ERROR, message, false);

const isPow2 = (n: number): boolean => Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;

/**
 * pci_vtblk_init's default serial: "BHYVE-XXXX-XXXX-XXXX" from the first six bytes of the MD5 digest of the
 * path, in upper-case hex.
 */
export function defaultSerial(path: string): string {
  const d = createHash('md5').update(path).digest();
  const h = (i: number): string => d[i]!.toString(16).toUpperCase().padStart(2, '0');
  return `BHYVE-${h(0)}${h(1)}-${h(2)}${h(3)}-${h(4)}${h(5)}`;
}

/** `device` names the emulation in messages (nvme reuses these keys). */
export function readBlockOptions(tree: ConfigTree, node: ConfigNode, device = 'virtio-blk'): BlockOptions {
  const path = tree.getIn(node, 'path');
  if (path === undefined) throw fail('Missing "path" for block device.');
  const flag = (key: string): boolean => tree.getBoolInDefault(node, key, false);
  let logicalSector = 0;
  let physicalSector = 0;
  const ss = tree.getIn(node, 'sectorsize');
  if (ss !== undefined) {
    const m = /^(\d+)(?:\/(\d+))?$/.exec(ss);
    if (!m) throw fail(`Invalid sector size "${ss}"`);
    logicalSector = Number(m[1]);
    physicalSector = m[2] !== undefined ? Number(m[2]) : logicalSector;
    if (!isPow2(logicalSector) || !isPow2(physicalSector) || logicalSector < 512 || logicalSector > physicalSector) {
      throw fail(`Invalid sector size ${logicalSector}/${physicalSector}`);
    }
  }
  const ser = tree.getIn(node, 'ser');
  if (ser !== undefined && Buffer.byteLength(ser) > BLK_ID_BYTES) {
    throw fail(`${device}: serial "${ser}" is longer than ${BLK_ID_BYTES} characters`);
  }
  let bootindex: number | undefined;
  const bi = tree.getIn(node, 'bootindex');
  if (bi !== undefined) {
    if (!/^\d+$/.test(bi)) throw fail(`Invalid bootindex "${bi}"`);
    bootindex = Number(bi);
  }
  let ioThreads = DEFAULT_IO_THREADS;
  const it = tree.getIn(node, 'iothreads');
  if (it !== undefined) {
    if (!/^\d+$/.test(it) || Number(it) < 1 || Number(it) > 64) throw fail(`Invalid iothreads "${it}" (1 to 64)`);
    ioThreads = Number(it);
  }
  let engine: 'auto' | 'threads' = 'auto';
  const aio = tree.getIn(node, 'aio');
  if (aio !== undefined) {
    if (aio !== 'io_uring' && aio !== 'threads') throw fail(`Invalid aio "${aio}" (io_uring or threads)`);
    engine = aio === 'threads' ? 'threads' : 'auto';
  }
  return {
    ioThreads,
    engine,
    path,
    readOnly: flag('ro'),
    noCache: flag('nocache'),
    sync: flag('sync') || flag('direct'),
    noDelete: flag('nodelete'),
    logicalSector,
    physicalSector,
    serial: ser ?? defaultSerial(path),
    bootindex,
  };
}
