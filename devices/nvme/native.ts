// Typed surface of the addon's `nvme` export (native/nvme/nvme_napi.cc): one controller's I/O queues, run by a
// native worker, and the PRP-checked copies the admin path uses.
import { loadAddon } from '../../src/native.js';
import type { NativeBlockBackend } from '../virtio-blk/native.js';

/** A completion status: SCT << 8 | SC (NVMe 1.4 §4.6.1.2). */
export type NvmeStatus = number;

export interface IoQueuesConfig {
  /** log2 of the LBA data size */
  lbaShift: number;
  /** MDTS in bytes */
  mdtsBytes: number;
  /** Dataset Management advertised */
  dsm: boolean;
  /** I/O queue ids 1..maxQueues */
  maxQueues: number;
  /** interrupt vectors (MSI-X table size) */
  vectors: number;
  /** commands in flight on io_uring at most (the `ioslots` option; default 32) */
  ioSlots?: number;
  /** 'auto' (default): io_uring where the kernel allows it; 'sync': commands run one at a time on the worker */
  engine?: 'auto' | 'sync';
}

export interface IoQueuesStats {
  commands: number;
  errors: number;
  interrupts: number;
  doorbells: number;
  shadowReads: number;
  bytesRead: number;
  bytesWritten: number;
  readCommands: number;
  writeCommands: number;
  /** 'io_uring' or 'sync' */
  engine: 'io_uring' | 'sync';
  /** why io_uring is not in use, when it was wanted */
  engineNote?: string;
}

export interface NativeIoQueues {
  start(): void;
  /** Joins the worker; nothing touches guest memory or the disk after it returns. */
  stop(): void;
  createCq(qid: number, gpa: bigint, entries: number, vector: number, ien: boolean): NvmeStatus;
  createSq(qid: number, gpa: bigint, entries: number, cqid: number): NvmeStatus;
  deleteSq(qid: number): NvmeStatus;
  deleteCq(qid: number): NvmeStatus;
  cqExists(qid: number): boolean;
  sqExists(qid: number): boolean;
  reset(): void;
  setPageSize(bytes: number): void;
  setDoorbellBuffer(shadow: bigint, eventIdx: bigint): NvmeStatus;
  /** Vector `v` signals this eventfd (irqfd), or -1: reported as IO_EVENT_INTERRUPT. */
  setVectorFd(v: number, fd: number): void;
  /** INTx mode: the worker reports IO_EVENT_CQ_DRAINED when a CQ head doorbell consumes its last entry. */
  setIntxLevel(on: boolean): void;
  /** An I/O queue doorbell write at BAR0 offset `offset`. */
  doorbell(offset: number, value: number): void;
  anyPending(): boolean;
  dmaRead(prp1: bigint, prp2: bigint, len: number): Uint8Array | NvmeStatus;
  dmaWrite(prp1: bigint, prp2: bigint, data: Uint8Array): NvmeStatus;
  /** Serves doorbell writes to [gpa, gpa+len) on the VM's vCPU threads; offsets are taken from barBase. */
  attachDoorbells(vm: object, gpa: number, len: number, barBase: number): void;
  detachDoorbells(vm: object, gpa: number): void;
  stats(): IoQueuesStats;
  /** Volatile Write Cache: off makes every write stable before it completes. */
  setWriteCache(enabled: boolean): void;
  /** Flushes the disk once the command in hand is done; 0 or an errno. */
  flush(): number;
  /** The eventfd the worker sleeps on (after start): a KVM ioeventfd may signal it once shadow doorbells are on. */
  wakeFd(): number;
  /** Zeroes (or deallocates) the whole namespace; 0 or an errno. */
  eraseAll(): number;
}

export const IO_EVENT_INTERRUPT = 1;
export const IO_EVENT_DOORBELL_ERROR = 2;
export const IO_EVENT_CQ_DRAINED = 3;

interface NvmeAddon {
  IoQueues: new (memory: object, backend: NativeBlockBackend, cfg: IoQueuesConfig, onEvent: (kind: number, arg: number) => void) => NativeIoQueues;
}

export function nativeNvme(): NvmeAddon {
  const v = loadAddon()['nvme'] as NvmeAddon | undefined;
  if (!v) throw new Error('tsbhyve: the native addon has no nvme module; rebuild with npm run build:native');
  return v;
}
