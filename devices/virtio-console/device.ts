// virtio-console (`-s S,virtio-console,NAME=PATH[,NAME=PATH...]`): bhyve's pci_virtio_console.c, a legacy virtio
// console (1AF4:1003, subsystem 3, class 07/80) with MULTIPORT: up to 16 ports, each a unix-domain socket the device
// listens on with one client at a time, named to the guest through the control queue (Linux shows the name in
// /sys/class/virtio-ports/*/name and udev links /dev/virtio-ports/NAME). All 34 queues exist (a pair per possible
// port and the control pair, 64 entries each) as in bhyve. The byte paths and the control protocol run in a native
// worker (native/virtio/console_worker.cc); this file owns the configuration, features and lifecycle.
//
// Beyond bhyve: the socket files are removed when the VM ends (bhyve leaves them, so its next start fails to bind),
// a stale socket file nobody listens on is replaced at start, and `port.N.console=true` announces a port as a
// console (CONSOLE_PORT), which Linux turns into an hvc terminal.
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import type { ConfigNode, ConfigTree } from '../../src/config/tree.js';
import { PCIC_SIMPLECOMM } from '../../src/platform/pci/regs.js';
import type { DataPath } from '../../src/platform/machine.js';
import type { PciDeviceFactory } from '../device.js';
import { nativeErrorParts } from '../virtio-blk/native.js';
import { bit, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../virtio/constants.js';
import { VirtioPciTransport, type QueueConfig, type VirtioDevice } from '../virtio/pci-transport.js';
import { wireQueues, type QueueWiring } from '../virtio/queue-wiring.js';
import { VTCON_MAXPORTS } from './config.js';
import {
  CONSOLE_EVENT_INTERRUPT,
  CONSOLE_EVENT_NEEDS_RESET,
  newConsoleDevice,
  type ConsolePortSpec,
  type ConsoleStats,
  type NativeConsoleDevice,
} from './native.js';

export const VIRTIO_DEV_CONSOLE = 0x1003;
export const PCIS_SIMPLECOMM_OTHER = 0x80;
export const VIRTIO_TYPE_CONSOLE = 3;
/** bhyve's VTCON_RINGSZ, and its queue count: a pair per port plus the control pair. */
export const VTCON_RINGSZ = 64;
export const VTCON_MAXQ = VTCON_MAXPORTS * 2 + 2;

/** §5.3.3 feature bits. bhyve's host capabilities OR the bit numbers (0|1|2 = 3), which offers SIZE and MULTIPORT. */
export const VIRTIO_CONSOLE_F_SIZE = 0;
export const VIRTIO_CONSOLE_F_MULTIPORT = 1;

/** §5.3.4 configuration layout (legacy): cols, rows, max_nr_ports, emerg_wr. */
export const CONSOLE_CFG = { cols: 0, rows: 2, maxNrPorts: 4, emergWr: 8 } as const;
export const CONSOLE_CONFIG_SIZE = 12;

/** The ports configured under pci.B.S.F.port, in configuration order. */
export function readConsolePorts(tree: ConfigTree, node: ConfigNode): ConsolePortSpec[] {
  const portsNode = tree.findRelativeNode(node, 'port');
  if (!portsNode) return [];
  const ports: ConsolePortSpec[] = [];
  for (const [key, child] of portsNode.children) {
    if (typeof child === 'string') throw new BhyveError(ExitStatus.ERROR, `vtcon: port.${key} must be a node with name and path`, false);
    const name = tree.getIn(child, 'name') ?? key;
    const path = tree.getIn(child, 'path');
    if (path === undefined || path === '') throw new BhyveError(ExitStatus.ERROR, `vtcon: port ${name} requires a path`, false);
    if (ports.length === VTCON_MAXPORTS) throw new BhyveError(ExitStatus.ERROR, `vtcon: too many ports (at most ${VTCON_MAXPORTS})`, false);
    ports.push({ name, path, console: tree.getBoolInDefault(child, 'console', false) });
  }
  return ports;
}

export class VirtioConsoleDevice implements VirtioDevice {
  readonly pciDeviceId = VIRTIO_DEV_CONSOLE;
  readonly virtioType = VIRTIO_TYPE_CONSOLE;
  readonly pciClass = PCIC_SIMPLECOMM;
  // bhyve leaves the subclass 0 (a 16450-compatible serial port), and Linux's 8250_pci then claims the function
  // (one I/O BAR looks like a serial card), so virtio_pci never sees it. "Other communications controller", as
  // QEMU's virtio-serial presents, keeps the serial driver away; virtio drivers match the IDs, not the class.
  readonly pciSubclass = PCIS_SIMPLECOMM_OTHER;
  readonly queueSizes: readonly number[] = new Array<number>(VTCON_MAXQ).fill(VTCON_RINGSZ);
  readonly hostFeatures =
    (bit(VIRTIO_CONSOLE_F_SIZE) | bit(VIRTIO_CONSOLE_F_MULTIPORT) | bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_RING_F_EVENT_IDX)) >>> 0;
  readonly configSize = CONSOLE_CONFIG_SIZE;
  private readonly config = new DataView(new ArrayBuffer(CONSOLE_CONFIG_SIZE));
  private readonly native: NativeConsoleDevice;
  private readonly wirings: Array<QueueWiring | undefined> = [];
  private activeQueues: readonly QueueConfig[] = [];
  private features = 0;
  private transport?: VirtioPciTransport;
  private running = false;
  private closed = false;

  constructor(
    readonly ports: readonly ConsolePortSpec[],
    private readonly dataPath: DataPath | undefined,
    private readonly warn: (message: string) => void,
  ) {
    // bhyve's defaults: an 80x25 console, room for all 16 ports whatever number is configured.
    this.config.setUint16(CONSOLE_CFG.cols, 80, true);
    this.config.setUint16(CONSOLE_CFG.rows, 25, true);
    this.config.setUint32(CONSOLE_CFG.maxNrPorts, VTCON_MAXPORTS, true);
    try {
      this.native = newConsoleDevice([...ports], (kind, arg) => this.onEvent(kind, arg));
    } catch (e) {
      throw new BhyveError(ExitStatus.ERROR, nativeErrorParts(e).message, false);
    }
    dataPath?.onClose(() => this.close());
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    if (size === 1) return this.config.getUint8(offset);
    if (size === 2) return this.config.getUint16(offset, true);
    return this.config.getUint32(offset, true);
  }
  /** Nothing is writable (EMERG_WRITE is not offered). */
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
  /** Device reset: the driver will send DEVICE_READY again; host clients stay connected. */
  reset(): void {
    this.native.resetGuest();
  }
  notify(queue: number): void {
    this.wirings[queue]?.signal();
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
    return this.native.takeIsr();
  }
  stats(): ConsoleStats {
    return this.native.stats();
  }

  private onEvent(kind: number, arg: number): void {
    const t = this.transport;
    if (!this.running || !t) return;
    if (kind === CONSOLE_EVENT_INTERRUPT) t.raiseQueue(arg);
    else if (kind === CONSOLE_EVENT_NEEDS_RESET) {
      this.warn(`${t.fn.label}: queue ${arg}: ${this.native.stats().queueError ?? 'queue error'}; device needs reset`);
      t.needsReset();
    }
  }

  private startWorker(): void {
    const transport = this.transport;
    if (!transport || this.closed) return;
    if (!this.dataPath) {
      this.warn(`${transport.fn.label}: no native data path on this machine; the queues cannot run`);
      transport.needsReset();
      return;
    }
    const multiport = (this.features & bit(VIRTIO_CONSOLE_F_MULTIPORT)) !== 0;
    // Without MULTIPORT only port 0's pair exists (§5.3.2).
    const { specs, useIsr } = wireQueues(this.dataPath, this.wirings, this.activeQueues, transport, VTCON_MAXQ, (i) => multiport || i <= 1);
    try {
      this.native.start(this.dataPath.memoryHandle, {
        queues: specs,
        multiport,
        eventIdx: (this.features & bit(VIRTIO_RING_F_EVENT_IDX)) !== 0,
        indirect: (this.features & bit(VIRTIO_RING_F_INDIRECT_DESC)) !== 0,
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
    this.native.stop();
    for (const w of this.wirings) w?.detach();
  }

  /** Stops the worker, closes the sockets and removes their files. */
  close(): void {
    if (this.closed) return;
    this.stopWorker();
    this.closed = true;
    for (const w of this.wirings) w?.close();
    this.native.close();
  }
}

export const createVirtioConsole: PciDeviceFactory = (ctx) => {
  const device = new VirtioConsoleDevice(readConsolePorts(ctx.tree, ctx.node), ctx.machine.dataPath, ctx.warn);
  const msix = ctx.tree.getBoolDefault('virtio_msix', true);
  return new VirtioPciTransport(ctx.fn, device, ctx, { msix });
};
