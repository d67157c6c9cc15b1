// One virtqueue's KVM plumbing, shared by the virtio devices whose queues run in native workers: the eventfd the
// driver's notifications reach (an ioeventfd on the notify register with the queue index as datamatch, or
// signalled by the transport without KVM), and, when the queue's vector is a plain MSI(-X) message, an irqfd on
// an MSI route. INTx and masked vectors are left to the worker's callback, where the transport applies PCI's
// masking and ISR rules.
import type { DataPath } from '../../src/platform/machine.js';
import { EventFd } from '../../src/vm/eventfd.js';
import { VIRTIO_PCI_QUEUE_NOTIFY } from './constants.js';
import { VIRTIO_REG_BAR, type QueueConfig, type VirtioPciTransport } from './pci-transport.js';

/** A queue as the native workers take it: its legacy page frame and eventfds. */
export interface WiredQueue {
  size: number;
  pfn: number;
  notifyFd: number;
  /** absent: the worker reports interrupts through its callback */
  interruptFd?: number;
}

/**
 * Wires every queue of `queues` that `wanted` accepts (making its QueueWiring in `wirings` on first use) for a
 * multi-queue worker: the specs indexed by queue number (null for the others, `count` in all) and whether the
 * worker must set ISR bit 0 itself.
 */
export function wireQueues(
  dataPath: DataPath,
  wirings: Array<QueueWiring | undefined>,
  queues: readonly QueueConfig[],
  transport: VirtioPciTransport,
  count: number,
  wanted: (index: number) => boolean,
): { specs: Array<WiredQueue | null>; useIsr: boolean } {
  const specs = new Array<WiredQueue | null>(count).fill(null);
  let useIsr = false;
  for (const q of queues) {
    if (q.index >= count || !wanted(q.index)) continue;
    const w = (wirings[q.index] ??= new QueueWiring(dataPath, q.index));
    const r = w.attach(transport);
    useIsr ||= r.useIsr;
    specs[q.index] = { size: q.size, pfn: q.pfn, notifyFd: w.notifyFd, interruptFd: r.interruptFd };
  }
  return { specs, useIsr };
}

export class QueueWiring {
  private readonly notify = new EventFd();
  private irq?: EventFd;
  private gsi?: number;
  private ioeventfdAt?: number;
  private irqfdGsi?: number;

  constructor(
    private readonly dataPath: DataPath,
    readonly index: number,
  ) {}

  get notifyFd(): number {
    return this.notify.fd;
  }

  /** A notification that reached the register (no ioeventfd installed). */
  signal(): void {
    this.notify.signal();
  }

  /**
   * Installs the ioeventfd and, for a plain MSI(-X) vector, the irqfd, for the transport's current route.
   * Returns the interrupt eventfd for the worker (undefined: report interrupts through the callback) and whether
   * the worker must set ISR bit 0 itself (single-message MSI, §4.1.4.5).
   */
  attach(transport: VirtioPciTransport): { interruptFd?: number; useIsr: boolean } {
    const kvm = this.dataPath.kvm;
    if (!kvm) return { useIsr: false };
    let interruptFd: number | undefined;
    let useIsr = false;
    const route = transport.queueRoute(this.index);
    const msg = route.mode === 'msix' ? (route.msix && !route.msix.masked ? route.msix : undefined) : route.msi;
    if (msg) {
      this.irq ??= new EventFd();
      this.gsi ??= kvm.allocMsiGsi();
      kvm.setMsiRoute(this.gsi, msg.addr, msg.data);
      kvm.irqfd(this.irq.fd, this.gsi);
      this.irqfdGsi = this.gsi;
      interruptFd = this.irq.fd;
      useIsr = route.mode === 'msi';
    }
    const bar = transport.fn.bars[VIRTIO_REG_BAR]!;
    if (bar.size > 0 && transport.fn.decodeEnabled(VIRTIO_REG_BAR)) {
      this.ioeventfdAt = bar.addr + VIRTIO_PCI_QUEUE_NOTIFY;
      kvm.ioeventfd(this.notify.fd, { addr: this.ioeventfdAt, len: 2, pio: true, data: this.index });
    }
    return { interruptFd, useIsr };
  }

  /** Removes what attach() installed (the worker must be stopped first). */
  detach(): void {
    const kvm = this.dataPath.kvm;
    if (!kvm) return;
    if (this.ioeventfdAt !== undefined) {
      kvm.ioeventfd(this.notify.fd, { addr: this.ioeventfdAt, len: 2, pio: true, data: this.index, deassign: true });
      this.ioeventfdAt = undefined;
    }
    if (this.irqfdGsi !== undefined && this.irq) {
      kvm.irqfd(this.irq.fd, this.irqfdGsi, { deassign: true });
      this.irqfdGsi = undefined;
    }
  }

  close(): void {
    this.detach();
    this.notify.close();
    this.irq?.close();
  }
}
