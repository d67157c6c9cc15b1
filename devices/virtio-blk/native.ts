// Typed surface of the addon's `virtio` export (native/virtio/virtio_napi.cc): the block backend, the
// virtio-blk queue worker and the anonymous guest RAM used to drive workers without a VM.
import { loadAddon } from '../../src/native.js';

export interface BackendOptions {
  path: string;
  readOnly?: boolean;
  noCache?: boolean;
  sync?: boolean;
  noDelete?: boolean;
  logicalSector?: number;
  physicalSector?: number;
  /** an anonymous in-memory disk of this many bytes instead of the file at `path` (which then only names it) */
  memoryBytes?: number;
}

export interface BackendInfo {
  /** bytes */
  size: number;
  logicalSector: number;
  physicalSector: number;
  /** true when opened read-only (asked for, or the read-write open failed) */
  readOnly: boolean;
  /** hole punching works (discard / write-zeroes can deallocate) */
  canDelete: boolean;
}

export interface NativeBlockBackend {
  info(): BackendInfo;
  /** Re-reads the size after a resize; returns it in bytes (range checks use it from then on). */
  refresh(): number;
  close(): void;
}

export interface NativeGuestRam {
  /** the RAM itself: byte i is guest-physical base + i */
  buffer(): ArrayBuffer;
}

/** One split queue's geometry: the legacy page frame (`pfn`), or the three ring addresses. */
export type QueueGeometry = { size: number; pfn: number } | { size: number; desc: number; avail: number; used: number };

export type BlkWorkerConfig = QueueGeometry & {
  eventIdx?: boolean;
  indirect?: boolean;
  /** set ISR bit 0 natively before each interrupt (MSI through irqfd) */
  useIsr?: boolean;
  discard?: boolean;
  writeZeroes?: boolean;
  maxDiscardSectors?: number;
  maxDiscardSegments?: number;
  maxWriteZeroesSectors?: number;
  maxWriteZeroesSegments?: number;
  /** data descriptors per request (seg_max), 0 = unbounded */
  maxSegments?: number;
  /** GET_ID answer */
  id?: string;
  /** I/O threads: 1 runs requests on the queue thread in ring order; more complete out of order (1..64) */
  ioThreads?: number;
  /** 'auto' (default): io_uring when the kernel allows it, else ioThreads; 'threads': never io_uring */
  engine?: 'auto' | 'threads';
  /** io_uring engine: microseconds an idle worker watches the ring before sleeping (0..1000, default 32) */
  pollMicros?: number;
  /** eventfd the worker sleeps on */
  notifyFd: number;
  /** eventfd to signal for a queue interrupt (irqfd); absent: onEvent(WORKER_EVENT_INTERRUPT) */
  interruptFd?: number;
};

export interface BlkWorkerStats {
  requests: number;
  interrupts: number;
  /** counts per error name (native/virtio/blk_request.cc BlkErrorName) */
  errors: Record<string, number>;
  /** why the queue stopped (DEVICE_NEEDS_RESET), or null */
  queueError: string | null;
  /** the backend path of the last started worker: 'io_uring', 'threads' (a pool) or 'inline' (the queue thread) */
  engine?: 'io_uring' | 'threads' | 'inline';
  /** why io_uring is not in use (e.g. "io_uring_setup: Operation not permitted"), when it was wanted */
  engineNote?: string;
}

export interface NativeBlkWorker {
  start(): void;
  /** Joins the worker thread; no request runs after it returns. */
  stop(): void;
  takeIsr(): number;
  stats(): BlkWorkerStats;
}

export const WORKER_EVENT_INTERRUPT = 1;
export const WORKER_EVENT_NEEDS_RESET = 2;

interface VirtioAddon {
  GuestRam: new (size: number, base?: number) => NativeGuestRam;
  BlockBackend: new (opts: BackendOptions) => NativeBlockBackend;
  BlkWorker: new (memory: object, backend: NativeBlockBackend, cfg: BlkWorkerConfig, onEvent: (kind: number) => void) => NativeBlkWorker;
}

export function nativeVirtio(): VirtioAddon {
  const v = loadAddon()['virtio'] as VirtioAddon | undefined;
  if (!v) throw new Error('tsbhyve: the native addon has no virtio module; rebuild with npm run build:native');
  return v;
}

/** An error thrown by the addon, "E<errno>: message", split into its parts. */
export function nativeErrorParts(e: unknown): { errno: number; message: string } {
  const msg = e instanceof Error ? e.message : String(e);
  const m = /^E(\d+): (.*)$/s.exec(msg);
  return m ? { errno: Number(m[1]), message: m[2]! } : { errno: 0, message: msg };
}
