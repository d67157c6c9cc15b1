// virtio-blk (`-s S,virtio-blk,PATH[,opts]`): bhyve's pci_virtio_block.c on the legacy virtio PCI transport.
// TypeScript owns identity, features, configuration space and the queue hand-over; requests run in a
// native worker (native/virtio/blk_worker.cc) that takes notifications from an ioeventfd on the notify
// register and raises interrupts through an irqfd, so no JavaScript runs per request. Without KVM (the
// device harness) the same worker is woken by an eventfd the transport signals and reports interrupts back
// through a callback.
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import { PCIC_STORAGE } from '../../src/platform/pci/regs.js';
import type { DataPath } from '../../src/platform/machine.js';
import { watchDiskResize } from '../block/resize-watch.js';
import type { PciDeviceFactory } from '../device.js';
import { bit, VIRTIO_DEV_BLOCK, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_TYPE_BLOCK } from '../virtio/constants.js';
import { VirtioPciTransport, type QueueConfig, type VirtioDevice } from '../virtio/pci-transport.js';
import { QueueWiring } from '../virtio/queue-wiring.js';
import {
  BLK_CFG,
  BLK_CONFIG_SIZE,
  blkConfigBytes,
  blkFeatures,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VTBLK_MAX_DISCARD_SECT,
  VTBLK_MAX_DISCARD_SEG,
  VTBLK_MAXSEGS,
  VTBLK_RINGSZ,
  type BlkGeometry,
} from './config-space.js';
import { nativeErrorParts, nativeVirtio, WORKER_EVENT_INTERRUPT, WORKER_EVENT_NEEDS_RESET, type NativeBlkWorker, type NativeBlockBackend } from './native.js';
import { readBlockOptions, type BlockOptions } from './options.js';


export class VirtioBlkDevice implements VirtioDevice {
  readonly pciDeviceId = VIRTIO_DEV_BLOCK;
  readonly virtioType = VIRTIO_TYPE_BLOCK;
  readonly pciClass = PCIC_STORAGE;
  readonly pciSubclass = 0;
  readonly queueSizes = [VTBLK_RINGSZ];
  readonly hostFeatures: number;
  readonly configSize = BLK_CONFIG_SIZE;
  private readonly config: Uint8Array;
  private readonly configView: DataView;

  private worker?: NativeBlkWorker;
  /** the queue's notification eventfd and KVM wiring */
  private wiring?: QueueWiring;
  /** bumped on every (de)activation so that late callbacks of a stopped worker are ignored */
  private generation = 0;
  private activeQueues: readonly QueueConfig[] = [];
  private features = 0;
  private transport?: VirtioPciTransport;
  private closed = false;
  private stopResizeWatch?: () => void;

  constructor(
    private readonly backend: NativeBlockBackend,
    /** `size` follows resizes of the disk */
    readonly geometry: BlkGeometry,
    readonly options: BlockOptions,
    private readonly dataPath: DataPath | undefined,
    private readonly warn: (message: string) => void,
  ) {
    this.hostFeatures = blkFeatures(geometry);
    this.config = blkConfigBytes(geometry);
    this.configView = new DataView(this.config.buffer);
    dataPath?.onClose(() => this.close());
  }

  /** Connects the transport (for configuration-change interrupts) and starts watching the disk for resizes. */
  attach(transport: VirtioPciTransport): void {
    this.transport = transport;
    this.stopResizeWatch = watchDiskResize(() => this.checkResize());
  }

  /** Re-reads the disk size; a change updates `capacity` and raises the configuration interrupt. */
  checkResize(): boolean {
    if (this.closed) return false;
    let size: number;
    try {
      size = this.backend.refresh();
    } catch {
      return false;
    }
    if (size === this.geometry.size) return false;
    this.geometry.size = size;
    this.configView.setBigUint64(BLK_CFG.capacity, BigInt(Math.floor(size / 512)), true);
    this.warn(`${this.transport?.fn.label ?? 'virtio-blk'}: disk resized to ${size} bytes`);
    this.transport?.configChanged();
    return true;
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    if (size === 1) return this.config[offset]!;
    if (size === 2) return this.configView.getUint16(offset, true);
    return this.configView.getUint32(offset, true);
  }

  /** The configuration is read-only for this device (no CONFIG_WCE): writes are dropped, as in bhyve. */
  configWrite(): void {}

  activate(queues: readonly QueueConfig[], features: number, transport: VirtioPciTransport): void {
    this.activeQueues = queues;
    this.features = features;
    this.transport = transport;
    this.startWorker();
  }

  deactivate(): void {
    this.stopWorker();
    this.activeQueues = [];
  }

  notify(): void {
    this.wiring?.signal();
  }

  interruptsChanged(): void {
    if (!this.worker) return;
    // The interrupt route is part of the worker's configuration: restart it (the queue position survives
    // in the used ring, see SplitQueue::Attach).
    this.stopWorker();
    this.startWorker();
  }

  takeIsr(): number {
    return this.worker?.takeIsr() ?? 0;
  }

  /** Worker counters, for tests and diagnostics. */
  stats(): ReturnType<NativeBlkWorker['stats']> | undefined {
    return this.worker?.stats();
  }

  /** The BAR moved: notifications must follow it. */
  barMoved(): void {
    if (this.worker) this.interruptsChanged();
  }

  private startWorker(): void {
    const transport = this.transport;
    const q = this.activeQueues.find((x) => x.index === 0);
    if (!transport || !q || this.closed) return;
    if (!this.dataPath) {
      this.warn(`${transport.fn.label}: no native data path on this machine; the queue cannot run`);
      transport.needsReset();
      return;
    }
    const gen = ++this.generation;
    this.wiring ??= new QueueWiring(this.dataPath, 0);
    const { interruptFd, useIsr } = this.wiring.attach(transport);
    const canDelete = this.geometry.canDelete;
    const worker = new (nativeVirtio().BlkWorker)(
      this.dataPath.memoryHandle,
      this.backend,
      {
        size: q.size,
        pfn: q.pfn,
        eventIdx: (this.features & bit(VIRTIO_RING_F_EVENT_IDX)) !== 0,
        indirect: (this.features & bit(VIRTIO_RING_F_INDIRECT_DESC)) !== 0,
        useIsr,
        discard: canDelete && (this.features & bit(VIRTIO_BLK_F_DISCARD)) !== 0,
        writeZeroes: canDelete && (this.features & bit(VIRTIO_BLK_F_WRITE_ZEROES)) !== 0,
        maxDiscardSectors: VTBLK_MAX_DISCARD_SECT,
        maxDiscardSegments: VTBLK_MAX_DISCARD_SEG,
        maxWriteZeroesSectors: VTBLK_MAX_DISCARD_SECT,
        maxWriteZeroesSegments: VTBLK_MAX_DISCARD_SEG,
        maxSegments: VTBLK_MAXSEGS,
        id: this.options.serial,
        ioThreads: this.options.ioThreads,
        engine: this.options.engine,
        notifyFd: this.wiring.notifyFd,
        interruptFd,
      },
      (kind) => {
        if (gen !== this.generation) return;
        if (kind === WORKER_EVENT_INTERRUPT) transport.raiseQueue(0);
        else if (kind === WORKER_EVENT_NEEDS_RESET) {
          const why = this.worker?.stats().queueError ?? 'queue error';
          this.warn(`${transport.fn.label}: ${why}; device needs reset`);
          transport.needsReset();
        }
      },
    );
    try {
      worker.start();
    } catch (e) {
      // The rings are not in guest RAM: the driver gave an impossible PFN.
      this.wiring.detach();
      this.warn(`${transport.fn.label}: ${nativeErrorParts(e).message}; device needs reset`);
      transport.needsReset();
      return;
    }
    this.worker = worker;
  }

  private stopWorker(): void {
    this.generation++;
    const w = this.worker;
    this.worker = undefined;
    // Join first: after stop() no request touches guest memory or the file.
    w?.stop();
    this.wiring?.detach();
  }

  /** Stops the data path and releases the disk (the VM is going away). */
  close(): void {
    if (this.closed) return;
    this.stopWorker();
    this.closed = true;
    this.stopResizeWatch?.();
    this.wiring?.close();
    this.backend.close();
  }
}

export const createVirtioBlk: PciDeviceFactory = (ctx) => {
  const opts = readBlockOptions(ctx.tree, ctx.node);
  let backend: NativeBlockBackend;
  try {
    backend = new (nativeVirtio().BlockBackend)({
      path: opts.path,
      readOnly: opts.readOnly,
      noCache: opts.noCache,
      sync: opts.sync,
      noDelete: opts.noDelete,
      logicalSector: opts.logicalSector,
      physicalSector: opts.physicalSector,
    });
  } catch (e) {
    throw new BhyveError(ExitStatus.ERROR, nativeErrorParts(e).message, false);
  }
  const info = backend.info();
  const geometry: BlkGeometry = {
    size: info.size,
    logicalSector: info.logicalSector,
    physicalSector: info.physicalSector,
    readOnly: info.readOnly,
    canDelete: info.canDelete,
  };
  const device = new VirtioBlkDevice(backend, geometry, opts, ctx.machine.dataPath, ctx.warn);
  const msix = ctx.tree.getBoolDefault('virtio_msix', true);
  const transport = new VirtioPciTransport(ctx.fn, device, ctx, { msix });
  device.attach(transport);
  return transport;
};
