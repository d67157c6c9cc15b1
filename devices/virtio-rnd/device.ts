// virtio-rnd (`-s S,virtio-rnd`): bhyve's pci_virtio_rnd.c, a legacy virtio entropy device (1AF4:1005, subsystem 4,
// class 10/00) with one request queue of 64 entries and no features. The queue runs in a native worker
// (native/virtio/rnd_worker.cc) that fills the guest's buffers from getrandom(2), woken by an ioeventfd and
// completing by irqfd, rate-limited (1 MiB/s sustained, 64 KiB bursts) so a guest cannot keep a host core busy.
import { PCIC_CRYPTO } from '../../src/platform/pci/regs.js';
import type { DataPath } from '../../src/platform/machine.js';
import type { PciDeviceFactory } from '../device.js';
import { nativeErrorParts, nativeVirtio } from '../virtio-blk/native.js';
import { bit, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../virtio/constants.js';
import { VirtioPciTransport, type QueueConfig, type VirtioDevice } from '../virtio/pci-transport.js';
import { QueueWiring } from '../virtio/queue-wiring.js';

export const VIRTIO_DEV_RANDOM = 0x1005;
export const VIRTIO_TYPE_ENTROPY = 4;
/** bhyve's VTRND_RINGSZ */
export const VTRND_RINGSZ = 64;
/** The worker's rate limit. */
export const RND_BYTES_PER_SECOND = 1 << 20;
export const RND_BURST_BYTES = 64 << 10;

export interface RndWorkerStats {
  requests: number;
  bytes: number;
  badChains: number;
  interrupts: number;
  throttledMs: number;
  queueError: string | null;
}

interface NativeRndWorker {
  start(cfg: { size: number; pfn: number; notifyFd: number; interruptFd?: number; eventIdx?: boolean; indirect?: boolean; useIsr?: boolean; bytesPerSecond?: number; burstBytes?: number }): void;
  stop(): void;
  takeIsr(): number;
  stats(): RndWorkerStats;
}

export class VirtioRndDevice implements VirtioDevice {
  readonly pciDeviceId = VIRTIO_DEV_RANDOM;
  readonly virtioType = VIRTIO_TYPE_ENTROPY;
  readonly pciClass = PCIC_CRYPTO;
  readonly pciSubclass = 0; // bhyve sets the class only
  readonly queueSizes = [VTRND_RINGSZ];
  // bhyve offers nothing; the ring features cost nothing and Linux uses them when there.
  readonly hostFeatures = (bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_RING_F_EVENT_IDX)) >>> 0;
  readonly configSize = 0;
  private worker?: NativeRndWorker;
  private running = false;
  private wiring?: QueueWiring;
  private queue?: QueueConfig;
  private features = 0;
  private transport?: VirtioPciTransport;
  private closed = false;

  constructor(
    private readonly dataPath: DataPath | undefined,
    private readonly warn: (message: string) => void,
  ) {
    dataPath?.onClose(() => this.close());
  }

  configRead(): number {
    return 0xffffffff;
  }
  configWrite(): void {}

  activate(queues: readonly QueueConfig[], features: number, transport: VirtioPciTransport): void {
    this.queue = queues.find((q) => q.index === 0);
    this.features = features;
    this.transport = transport;
    this.startWorker();
  }
  deactivate(): void {
    this.stopWorker();
    this.queue = undefined;
  }
  notify(): void {
    this.wiring?.signal();
  }
  interruptsChanged(): void {
    if (!this.running) return;
    this.stopWorker();
    this.startWorker();
  }
  barMoved(): void {
    this.interruptsChanged();
  }
  takeIsr(): number {
    return this.worker?.takeIsr() ?? 0;
  }
  stats(): RndWorkerStats | undefined {
    return this.worker?.stats();
  }

  private startWorker(): void {
    const transport = this.transport;
    const q = this.queue;
    if (!transport || !q || this.closed) return;
    if (!this.dataPath) {
      this.warn(`${transport.fn.label}: no native data path on this machine; the queue cannot run`);
      transport.needsReset();
      return;
    }
    this.wiring ??= new QueueWiring(this.dataPath, 0);
    const { interruptFd, useIsr } = this.wiring.attach(transport);
    const addon = nativeVirtio() as unknown as { RndWorker: new (memory: object, onEvent: (kind: number) => void) => NativeRndWorker };
    this.worker ??= new addon.RndWorker(this.dataPath.memoryHandle, (kind) => {
      const t = this.transport;
      if (!this.running || !t) return;
      if (kind === 1) t.raiseQueue(0);
      else {
        this.warn(`${t.fn.label}: ${this.worker?.stats().queueError ?? 'queue error'}; device needs reset`);
        t.needsReset();
      }
    });
    try {
      this.worker.start({
        size: q.size,
        pfn: q.pfn,
        notifyFd: this.wiring.notifyFd,
        interruptFd,
        eventIdx: (this.features & bit(VIRTIO_RING_F_EVENT_IDX)) !== 0,
        indirect: (this.features & bit(VIRTIO_RING_F_INDIRECT_DESC)) !== 0,
        useIsr,
        bytesPerSecond: RND_BYTES_PER_SECOND,
        burstBytes: RND_BURST_BYTES,
      });
    } catch (e) {
      this.wiring.detach();
      this.warn(`${transport.fn.label}: ${nativeErrorParts(e).message}; device needs reset`);
      transport.needsReset();
      return;
    }
    this.running = true;
  }

  private stopWorker(): void {
    this.running = false;
    this.worker?.stop();
    this.wiring?.detach();
  }

  close(): void {
    if (this.closed) return;
    this.stopWorker();
    this.closed = true;
    this.wiring?.close();
  }
}

export const createVirtioRnd: PciDeviceFactory = (ctx) => {
  const device = new VirtioRndDevice(ctx.machine.dataPath, ctx.warn);
  const msix = ctx.tree.getBoolDefault('virtio_msix', true);
  return new VirtioPciTransport(ctx.fn, device, ctx, { msix });
};
