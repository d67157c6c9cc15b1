// virtio-net (`-s S,virtio-net,tapN[,mac=,mtu=]`): bhyve's pci_virtio_net.c on the legacy virtio PCI transport.
// TypeScript owns identity, features, the configuration space (MAC, link status, MTU) and the queue hand-over;
// frames move in a native worker (native/virtio/net_worker.cc) between the rings and the tap, woken by ioeventfds
// on the notify register and raising interrupts through irqfds, so no JavaScript runs per frame. Without KVM (the
// device harness) the same worker is woken by eventfds the transport signals and reports interrupts back.
import { closeSync, fstatSync } from 'node:fs';
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import { PCIC_NETWORK } from '../../src/platform/pci/regs.js';
import type { DataPath } from '../../src/platform/machine.js';
import type { PciDeviceFactory } from '../device.js';
import { readNetOptions, type NetOptions } from '../net/options.js';
import { nativeErrorParts } from '../virtio-blk/native.js';
import { bit, VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../virtio/constants.js';
import { VirtioPciTransport, type QueueConfig, type VirtioDevice } from '../virtio/pci-transport.js';
import { QueueWiring, wireQueues } from '../virtio/queue-wiring.js';
import {
  nativeNet,
  NET_EVENT_INTERRUPT,
  NET_EVENT_NEEDS_RESET,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
  type NativeNetWorker,
} from './native.js';

/** PCI device ID and virtio type of a network card (virtio 1.2 §4.1.2.3, §5.1). */
export const VIRTIO_DEV_NET = 0x1000;
export const VIRTIO_TYPE_NET = 1;

// Feature bits (§5.1.3).
export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
export const VIRTIO_NET_F_GUEST_ECN = 9;
export const VIRTIO_NET_F_HOST_TSO4 = 11;
export const VIRTIO_NET_F_HOST_TSO6 = 12;
export const VIRTIO_NET_F_HOST_ECN = 13;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;
export const VIRTIO_NET_F_CTRL_RX = 18;

/** Configuration space (§5.1.4, legacy): mac[6], status, max_virtqueue_pairs, mtu. */
export const NET_CFG = { mac: 0, status: 6, maxVirtqueuePairs: 8, mtu: 10 } as const;
export const NET_CONFIG_SIZE = 12;
export const VIRTIO_NET_S_LINK_UP = 1;

/** bhyve's VTNET_RINGSZ. Queues: receive, transmit, control. */
export const VTNET_RINGSZ = 1024;

/** Which features a backend can carry: a tap with a virtio header passes offloads through both ways. */
export function netFeatures(offloads: boolean): number {
  let f =
    bit(VIRTIO_NET_F_MAC) |
    bit(VIRTIO_NET_F_MTU) |
    bit(VIRTIO_NET_F_STATUS) |
    bit(VIRTIO_NET_F_MRG_RXBUF) |
    bit(VIRTIO_NET_F_CTRL_VQ) |
    bit(VIRTIO_NET_F_CTRL_RX) |
    bit(VIRTIO_F_NOTIFY_ON_EMPTY) |
    bit(VIRTIO_RING_F_INDIRECT_DESC) |
    bit(VIRTIO_RING_F_EVENT_IDX);
  if (offloads) {
    for (const b of [
      VIRTIO_NET_F_CSUM,
      VIRTIO_NET_F_GUEST_CSUM,
      VIRTIO_NET_F_HOST_TSO4,
      VIRTIO_NET_F_HOST_TSO6,
      VIRTIO_NET_F_HOST_ECN,
      VIRTIO_NET_F_GUEST_TSO4,
      VIRTIO_NET_F_GUEST_TSO6,
      VIRTIO_NET_F_GUEST_ECN,
    ])
      f |= bit(b);
  }
  return f >>> 0;
}

/** The packet side of the device: a tap, or (tests) any datagram fd carrying the same records. */
export interface PacketPort {
  readonly fd: number;
  /** whether the far end takes the tap's offloads (virtio headers with GSO and partial checksums); default true */
  readonly offloads?: boolean;
  /** TUNSETVNETHDRSZ / TUNSETOFFLOAD where the fd is a tap; a no-op otherwise. */
  configure(headerBytes: 10 | 12, tunOffloads: number): void;
  close(): void;
}

export function openTapPort(name: string): PacketPort {
  const net = nativeNet();
  const fd = net.openTap(name);
  let open = true;
  return {
    fd,
    configure: (h, o) => net.tapConfigure(fd, h, o),
    close: () => {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

/** An inherited descriptor (`fd:N`): configured as a tap when it is one, else used as a record socket. */
export function inheritedPort(fd: number): PacketPort {
  const net = nativeNet();
  const tap = net.isTap(fd);
  let open = true;
  return {
    fd,
    configure: (h, o) => {
      if (tap) net.tapConfigure(fd, h, o);
    },
    close: () => {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

export class VirtioNetDevice implements VirtioDevice {
  readonly pciDeviceId = VIRTIO_DEV_NET;
  readonly virtioType = VIRTIO_TYPE_NET;
  readonly pciClass = PCIC_NETWORK;
  readonly pciSubclass = 0;
  readonly queueSizes = [VTNET_RINGSZ, VTNET_RINGSZ, VTNET_RINGSZ];
  readonly hostFeatures: number;
  readonly configSize = NET_CONFIG_SIZE;
  private readonly config = new Uint8Array(NET_CONFIG_SIZE);
  private readonly configView = new DataView(this.config.buffer);

  private worker?: NativeNetWorker;
  private running = false;
  /** per queue: its notification eventfd and KVM wiring */
  private readonly wirings: Array<QueueWiring | undefined> = [];
  private activeQueues: readonly QueueConfig[] = [];
  private features = 0;
  private transport?: VirtioPciTransport;
  private closed = false;

  constructor(
    private readonly port: PacketPort,
    readonly options: NetOptions,
    private readonly dataPath: DataPath | undefined,
    private readonly warn: (message: string) => void,
    offloads = true,
  ) {
    this.hostFeatures = netFeatures(offloads);
    this.config.set(options.mac, NET_CFG.mac);
    this.configView.setUint16(NET_CFG.status, VIRTIO_NET_S_LINK_UP, true);
    this.configView.setUint16(NET_CFG.maxVirtqueuePairs, 1, true);
    this.configView.setUint16(NET_CFG.mtu, options.mtu, true);
    dataPath?.onClose(() => this.close());
  }

  attach(transport: VirtioPciTransport): void {
    this.transport = transport;
  }

  /** The station address the guest sees now (a legacy driver may rewrite it). */
  mac(): Uint8Array {
    return this.config.slice(NET_CFG.mac, NET_CFG.mac + 6);
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    if (size === 1) return this.config[offset]!;
    if (size === 2) return this.configView.getUint16(offset, true);
    return this.configView.getUint32(offset, true);
  }

  /** Only the MAC is writable (§5.1.4 legacy: a driver without CTRL_MAC_ADDR sets the address there). */
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      if (at >= NET_CFG.mac && at < NET_CFG.mac + 6) this.config[at] = (value >>> (8 * i)) & 0xff;
    }
    this.worker?.setMac(this.mac());
  }

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

  /** Device reset: the receive filter returns to its defaults and the MAC to the configured one. */
  reset(): void {
    this.config.set(this.options.mac, NET_CFG.mac);
    this.worker?.resetFilter();
    this.worker?.setMac(this.mac());
  }

  notify(queue: number): void {
    this.wirings[queue]?.signal();
  }

  interruptsChanged(): void {
    if (!this.running) return;
    // The interrupt routes are part of the worker's start: restart it (the rings keep their place, see
    // SplitQueue::Attach; receive buffers it held are taken again).
    this.stopWorker();
    this.startWorker();
  }

  takeIsr(): number {
    return this.worker?.takeIsr() ?? 0;
  }

  stats(): ReturnType<NativeNetWorker['stats']> | undefined {
    return this.worker?.stats();
  }

  barMoved(): void {
    if (this.running) this.interruptsChanged();
  }

  private has(f: number): boolean {
    return (this.features & bit(f)) !== 0;
  }

  private startWorker(): void {
    const transport = this.transport;
    if (!transport || this.closed) return;
    if (!this.dataPath) {
      this.warn(`${transport.fn.label}: no native data path on this machine; the queues cannot run`);
      transport.needsReset();
      return;
    }
    const mergeable = this.has(VIRTIO_NET_F_MRG_RXBUF);
    let offloads = 0;
    if (this.has(VIRTIO_NET_F_GUEST_CSUM)) {
      offloads |= TUN_F_CSUM;
      if (this.has(VIRTIO_NET_F_GUEST_TSO4)) offloads |= TUN_F_TSO4;
      if (this.has(VIRTIO_NET_F_GUEST_TSO6)) offloads |= TUN_F_TSO6;
      if (this.has(VIRTIO_NET_F_GUEST_ECN) && offloads & (TUN_F_TSO4 | TUN_F_TSO6)) offloads |= TUN_F_TSO_ECN;
    }
    try {
      this.port.configure(mergeable ? 12 : 10, offloads);
    } catch (e) {
      this.warn(`${transport.fn.label}: ${nativeErrorParts(e).message}; device needs reset`);
      transport.needsReset();
      return;
    }
    const { specs, useIsr } = wireQueues(this.dataPath, this.wirings, this.activeQueues, transport, 3, (i) => i < 2 || this.has(VIRTIO_NET_F_CTRL_VQ));
    // One worker object per device: its receive filter and counters outlive restarts. Events queued by a
    // stopped run may arrive later; only the current run's count.
    this.worker ??= new (nativeNet().NetWorker)(this.dataPath.memoryHandle, (kind, queue) => {
      const t = this.transport;
      if (!this.running || !t) return;
      if (kind === NET_EVENT_INTERRUPT) t.raiseQueue(queue);
      else if (kind === NET_EVENT_NEEDS_RESET) {
        const why = this.worker?.stats().queueError ?? 'queue error';
        this.warn(`${t.fn.label}: queue ${queue}: ${why}; device needs reset`);
        t.needsReset();
      }
    });
    this.worker.setMac(this.mac());
    try {
      this.worker.start({
        packetFd: this.port.fd,
        queues: specs,
        mergeable,
        ctrlRx: this.has(VIRTIO_NET_F_CTRL_RX),
        eventIdx: this.has(VIRTIO_RING_F_EVENT_IDX),
        indirect: this.has(VIRTIO_RING_F_INDIRECT_DESC),
        useIsr,
      });
    } catch (e) {
      for (const w of this.wirings) w?.detach();
      this.warn(`${transport.fn.label}: ${nativeErrorParts(e).message}; device needs reset`);
      transport.needsReset();
      return;
    }
    this.running = true;
  }

  private stopWorker(): void {
    this.running = false;
    // Join first: after stop() no frame touches guest memory.
    this.worker?.stop();
    for (const w of this.wirings) w?.detach();
  }

  close(): void {
    if (this.closed) return;
    this.stopWorker();
    this.closed = true;
    for (const w of this.wirings) w?.close();
    this.port.close();
  }
}

/**
 * User-mode networking: libslirp on a thread of its own at the far end of a packet socket pair (native/net/slirp.cc),
 * the NetWorker at the near end as with any record socket. No offloads (slirp wants whole, checksummed frames).
 */
export function slirpPort(opts: NetOptions): PacketPort {
  const net = nativeNet();
  const [near, far] = net.packetPair();
  let backend;
  try {
    backend = new net.SlirpBackend(far, { restricted: !(opts.slirp?.open ?? false), forwards: opts.slirp?.forwards ?? [] });
  } catch (e) {
    closeSync(near);
    closeSync(far);
    throw new BhyveError(ExitStatus.ERROR, `backend slirp: ${nativeErrorParts(e).message}`, false);
  }
  let open = true;
  return {
    fd: near,
    offloads: false,
    configure: (h) => backend.setHeaderBytes(h),
    close: () => {
      if (!open) return;
      open = false;
      backend.stop();
      closeSync(near);
    },
  };
}

/** The packet port for the configured backend, or bhyve's error (status 4) when it cannot be had on this host. */
export function openBackend(opts: NetOptions): PacketPort {
  switch (opts.kind) {
    case 'tap':
      try {
        return openTapPort(opts.backend);
      } catch (e) {
        throw new BhyveError(ExitStatus.ERROR, `could not open backend device ${opts.backend}: ${nativeErrorParts(e).message}`, false);
      }
    case 'fd': {
      const fd = Number(opts.backend.slice(3));
      try {
        fstatSync(fd);
      } catch {
        throw new BhyveError(ExitStatus.ERROR, `backend ${opts.backend}: descriptor ${fd} is not open`, false);
      }
      return inheritedPort(fd);
    }
    case 'netgraph':
    case 'netmap':
      throw new BhyveError(ExitStatus.ERROR, `backend ${opts.backend}: ${opts.kind} exists only on FreeBSD; on Linux use a tap (tapN or vmnetN)`, false);
    case 'slirp':
      return slirpPort(opts);
  }
}

export const createVirtioNet: PciDeviceFactory = (ctx) => {
  const opts = readNetOptions(ctx.tree, ctx.node, ctx.fn.slot, ctx.fn.func);
  const port = openBackend(opts);
  const device = new VirtioNetDevice(port, opts, ctx.machine.dataPath, ctx.warn, port.offloads ?? true);
  const msix = ctx.tree.getBoolDefault('virtio_msix', true);
  const transport = new VirtioPciTransport(ctx.fn, device, ctx, { msix });
  device.attach(transport);
  return transport;
};
