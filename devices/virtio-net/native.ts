// Typed surface of the addon's virtio-net data path (native/virtio/net_napi.cc): the NetWorker and the tap helpers.
import { nativeVirtio } from '../virtio-blk/native.js';

/** One queue for NetWorker.start: its legacy page frame and eventfds. */
export interface NetQueueSpec {
  size: number;
  pfn: number;
  /** eventfd the driver's kicks arrive on (ioeventfd on KVM) */
  notifyFd: number;
  /** eventfd to signal for an interrupt (irqfd); absent: onEvent(NET_EVENT_INTERRUPT, queue) */
  interruptFd?: number;
}

export interface NetWorkerStart {
  /** a tap (IFF_VNET_HDR) or any datagram fd carrying virtio_net_hdr + frame records; non-blocking */
  packetFd: number;
  /** rx, tx and (with CTRL_VQ) the control queue; null for one the driver did not set up */
  queues: Array<NetQueueSpec | null>;
  mergeable?: boolean;
  ctrlRx?: boolean;
  eventIdx?: boolean;
  indirect?: boolean;
  useIsr?: boolean;
}

export interface NetWorkerStats {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  rxNoBuffer: number;
  rxFiltered: number;
  rxRunt: number;
  rxBadChain: number;
  txBadChain: number;
  txDropped: number;
  ctrlCommands: number;
  ctrlErrors: number;
  interrupts: number;
  queueError: string | null;
  promisc: boolean;
  allmulti: boolean;
  unicastFilters: number;
  multicastFilters: number;
}

export interface NativeNetWorker {
  start(cfg: NetWorkerStart): void;
  /** Joins the worker thread; nothing touches guest memory after it returns. */
  stop(): void;
  setMac(mac: Uint8Array): void;
  resetFilter(): void;
  takeIsr(): number;
  /** counters since the object was made (they survive restarts) */
  stats(): NetWorkerStats;
}

export const NET_EVENT_INTERRUPT = 1;
export const NET_EVENT_NEEDS_RESET = 2;

/** TUN_F_* offloads the guest's receive side takes (linux/if_tun.h). */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;

/** One `hostfwd` rule: a host address and port forwarded to the guest (address '' = any / slirp's guest). */
export interface SlirpForward {
  udp: boolean;
  hostAddr: string;
  hostPort: number;
  guestAddr: string;
  guestPort: number;
}

export interface NativeSlirpBackend {
  /** the device's virtio header length (10, or 12 with MRG_RXBUF) */
  setHeaderBytes(n: 10 | 12): void;
  /** joins the thread, frees libslirp's network and closes its socket */
  stop(): void;
  stats(): { toGuest: number; fromGuest: number; dropped: number };
}

interface NetAddon {
  SlirpBackend: new (fd: number, settings: { restricted: boolean; forwards: SlirpForward[] }) => NativeSlirpBackend;
  NetWorker: new (memory: object, onEvent: (kind: number, queue: number) => void) => NativeNetWorker;
  openTap(name: string): number;
  tapConfigure(fd: number, headerBytes: 10 | 12, offloads: number): void;
  isTap(fd: number): boolean;
  /** a connected non-blocking SOCK_SEQPACKET pair: one record per frame with its virtio header */
  packetPair(): [number, number];
}

export function nativeNet(): NetAddon {
  return nativeVirtio() as unknown as NetAddon;
}
