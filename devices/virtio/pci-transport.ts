// The legacy virtio PCI transport (virtio 1.2 §4.1.4.8 and §4.1.5 "legacy interface"), as bhyve's virtio.c
// presents it for every virtio device: the register file in I/O BAR0, queues placed by page frame number,
// MSI-X in BAR1 (one vector for configuration changes, one per queue) or a single MSI message when
// `virtio_msix=false`, INTx otherwise. The device behind it (VirtioDevice) declares its features, its
// configuration bytes and what to start when the driver brings queues up; it never sees the registers.
import { PCIM_MSIXCTRL_FUNCTION_MASK, PCIM_MSIX_VCTRL_MASK, PCIR_CLASS, PCIR_DEVICE, PCIR_SUBCLASS, PCIR_SUBDEV_0, PCIR_SUBVEND_0, PCIR_VENDOR } from '../../src/platform/pci/regs.js';
import type { PciDeviceModel, PciFunction } from '../../src/platform/pci/function.js';
import type { PciDeviceContext } from '../device.js';
import {
  VIRTIO_CONFIG_OFFSET_MSIX,
  VIRTIO_CONFIG_OFFSET_NOMSIX,
  VIRTIO_MSI_CONFIG_VECTOR,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_MSI_QUEUE_VECTOR,
  VIRTIO_PCI_GUEST_FEATURES,
  VIRTIO_PCI_HOST_FEATURES,
  VIRTIO_PCI_ISR,
  VIRTIO_PCI_ISR_CONFIG,
  VIRTIO_PCI_ISR_QUEUE,
  VIRTIO_PCI_QUEUE_NOTIFY,
  VIRTIO_PCI_QUEUE_NUM,
  VIRTIO_PCI_QUEUE_PFN,
  VIRTIO_PCI_QUEUE_SEL,
  VIRTIO_PCI_STATUS,
  VIRTIO_STATUS_DRIVER_OK,
  VIRTIO_STATUS_NEEDS_RESET,
  VIRTIO_VENDOR,
} from './constants.js';

/** How the function currently signals the guest (§4.1.4.5: ISR and INTx are used unless MSI-X is on). */
export type InterruptMode = 'msix' | 'msi' | 'intx';

/** What a running queue needs from the transport for its interrupts. */
export interface QueueInterruptRoute {
  mode: InterruptMode;
  /** MSI-X: the table entry of the queue's vector, or undefined for NO_VECTOR / masked entries */
  msix?: { addr: bigint; data: number; masked: boolean };
  /** MSI: the function's message (vector 0) */
  msi?: { addr: bigint; data: number };
}

/** A queue as the legacy driver configured it. */
export interface QueueConfig {
  index: number;
  size: number;
  /** guest-physical page frame of the descriptor table (0: not set up) */
  pfn: number;
}

/** The device-specific half of a virtio function. */
export interface VirtioDevice {
  /** PCI device ID and subsystem ID (the virtio type), e.g. 0x1001 / 2 for block */
  readonly pciDeviceId: number;
  readonly virtioType: number;
  readonly pciClass: number;
  readonly pciSubclass: number;
  /** Queue sizes (the legacy QUEUE_NUM values), one per queue. */
  readonly queueSizes: readonly number[];
  /** Device and transport features offered (legacy: the low 32 bits only). */
  readonly hostFeatures: number;
  /** Device-specific configuration space size in bytes. */
  readonly configSize: number;
  configRead(offset: number, size: 1 | 2 | 4): number;
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void;
  /** The driver made queues live (DRIVER_OK, or a notification, with a PFN set); start the data path. */
  activate(queues: readonly QueueConfig[], features: number, transport: VirtioPciTransport): void;
  /** Stop the data path (reset, reconfiguration); must be synchronous: no request runs afterwards. */
  deactivate(): void;
  /** A notification that reached the register (no ioeventfd installed) for a live queue. */
  notify(queue: number): void;
  /** Device reset (status 0 written), after deactivate(): device state returns to its defaults. */
  reset?(): void;
  /** The interrupt mode or a vector changed while active. */
  interruptsChanged?(): void;
  /** ISR bits the data path set since the last read (read-to-clear). */
  takeIsr?(): number;
  /** The register BAR started or stopped decoding somewhere else (notification hooks must follow). */
  barMoved?(): void;
}

/** bhyve's virtio functions use BAR0 for registers and BAR1 for the MSI-X table. */
export const VIRTIO_REG_BAR = 0;
export const VIRTIO_MSIX_BAR = 1;

export class VirtioPciTransport implements PciDeviceModel {
  private guestFeatures = 0;
  private status = 0;
  private isr = 0;
  private queueSel = 0;
  private configVector = VIRTIO_MSI_NO_VECTOR;
  private readonly queues: Array<QueueConfig & { vector: number }>;
  private active = false;
  private readonly msixVectors: number;

  constructor(
    readonly fn: PciFunction,
    private readonly device: VirtioDevice,
    ctx: Pick<PciDeviceContext, 'bus'>,
    opts: { msix: boolean },
  ) {
    this.queues = device.queueSizes.map((size, index) => ({ index, size, pfn: 0, vector: VIRTIO_MSI_NO_VECTOR }));
    // vi_intr_init: MSI-X with one vector per queue plus the configuration vector, else one MSI message;
    // INTx is always wired as the fallback.
    this.msixVectors = device.queueSizes.length + 1;
    fn.set16(PCIR_VENDOR, VIRTIO_VENDOR);
    fn.set16(PCIR_DEVICE, device.pciDeviceId);
    fn.set8(PCIR_CLASS, device.pciClass);
    fn.set8(PCIR_SUBCLASS, device.pciSubclass);
    fn.set16(PCIR_SUBVEND_0, VIRTIO_VENDOR);
    fn.set16(PCIR_SUBDEV_0, device.virtioType);
    if (opts.msix) {
      const size = fn.addMsixCapability(this.msixVectors, VIRTIO_MSIX_BAR);
      ctx.bus.allocBar(fn, VIRTIO_MSIX_BAR, 'mem32', size);
    } else {
      fn.addMsiCapability(1);
    }
    fn.requestLintr();
    // vi_set_io_bar: the register file plus the device configuration, with room for the MSI-X registers.
    ctx.bus.allocBar(fn, VIRTIO_REG_BAR, 'io', VIRTIO_CONFIG_OFFSET_MSIX + device.configSize);
  }

  /** Where device configuration starts right now (§4.1.4.8: it moves with the MSI-X enable bit). */
  configOffset(): number {
    return this.fn.msixEnabled() ? VIRTIO_CONFIG_OFFSET_MSIX : VIRTIO_CONFIG_OFFSET_NOMSIX;
  }

  interruptMode(): InterruptMode {
    if (this.fn.msixEnabled()) return 'msix';
    if (this.fn.msiEnabled()) return 'msi';
    return 'intx';
  }

  negotiatedFeatures(): number {
    return this.guestFeatures;
  }

  /** The current interrupt route of queue `q`, for data paths that deliver interrupts natively. */
  queueRoute(q: number): QueueInterruptRoute {
    const mode = this.interruptMode();
    if (mode === 'msix') {
      const m = this.fn.msix!;
      const v = this.queues[q]?.vector ?? VIRTIO_MSI_NO_VECTOR;
      if (v >= m.tableCount) return { mode };
      const e = v * 4;
      const fmask = (this.fn.get16(m.capOff + 2) & PCIM_MSIXCTRL_FUNCTION_MASK) !== 0;
      return {
        mode,
        msix: {
          addr: (BigInt(m.table[e + 1]!) << 32n) | BigInt(m.table[e]!),
          data: m.table[e + 2]!,
          masked: fmask || (m.table[e + 3]! & PCIM_MSIX_VCTRL_MASK) !== 0,
        },
      };
    }
    if (mode === 'msi') {
      const c = this.fn.msi!.capOff;
      return { mode, msi: { addr: (BigInt(this.fn.get32(c + 8)) << 32n) | BigInt(this.fn.get32(c + 4)), data: this.fn.get16(c + 12) } };
    }
    return { mode };
  }

  /** Raises queue `q`'s interrupt from TypeScript (vq_interrupt). */
  raiseQueue(q: number): void {
    if (this.interruptMode() === 'msix') {
      const v = this.queues[q]?.vector ?? VIRTIO_MSI_NO_VECTOR;
      if (v !== VIRTIO_MSI_NO_VECTOR) this.fn.generateMsix(v);
      return;
    }
    this.isr |= VIRTIO_PCI_ISR_QUEUE;
    this.raiseLegacy();
  }

  /** Raises the configuration-change interrupt (also used for DEVICE_NEEDS_RESET, §2.1.2). */
  raiseConfig(): void {
    if (this.interruptMode() === 'msix') {
      if (this.configVector !== VIRTIO_MSI_NO_VECTOR) this.fn.generateMsix(this.configVector);
      return;
    }
    this.isr |= VIRTIO_PCI_ISR_CONFIG;
    this.raiseLegacy();
  }

  private raiseLegacy(): void {
    if (this.interruptMode() === 'msi') this.fn.generateMsi(0);
    else this.fn.assertLintr();
  }

  /** The device configuration changed (e.g. the disk was resized): tell a running driver (§4.1.4.5). */
  configChanged(): void {
    if (this.status & VIRTIO_STATUS_DRIVER_OK) this.raiseConfig();
  }

  /** The device found the queues broken: stop them and tell the driver (§2.1.2). */
  needsReset(): void {
    if (this.status & VIRTIO_STATUS_NEEDS_RESET) return;
    this.deactivate();
    this.status |= VIRTIO_STATUS_NEEDS_RESET;
    if (this.status & VIRTIO_STATUS_DRIVER_OK) this.raiseConfig();
  }

  private activate(): void {
    if (this.active || (this.status & VIRTIO_STATUS_NEEDS_RESET) !== 0) return;
    const live = this.queues.filter((q) => q.pfn !== 0);
    if (live.length === 0) return;
    this.active = true;
    this.device.activate(live.map(({ index, size, pfn }) => ({ index, size, pfn })), this.guestFeatures, this);
  }

  private deactivate(): void {
    if (!this.active) return;
    this.active = false;
    this.device.deactivate();
  }

  isActive(): boolean {
    return this.active;
  }

  /** Device reset (status 0): the data path stops before any state is cleared (§2.4). */
  reset(): void {
    this.deactivate();
    this.guestFeatures = 0;
    this.status = 0;
    this.isr = 0;
    this.device.takeIsr?.();
    this.device.reset?.();
    this.queueSel = 0;
    this.configVector = VIRTIO_MSI_NO_VECTOR;
    for (const q of this.queues) {
      q.pfn = 0;
      q.vector = VIRTIO_MSI_NO_VECTOR;
    }
    this.fn.deassertLintr();
  }

  // --- PciDeviceModel ------------------------------------------------------------------------------------

  barRead(bar: number, offset: number, size: 1 | 2 | 4): number {
    if (bar !== VIRTIO_REG_BAR) return 0xffffffff;
    const cfg = this.configOffset();
    if (offset >= cfg) {
      const rel = offset - cfg;
      if (rel + size > this.device.configSize) return ones(size);
      return this.device.configRead(rel, size);
    }
    const want = registerSize(offset, cfg);
    if (want === 0 || want !== size) return ones(size); // bhyve: a wrongly sized register access reads all ones
    const q = this.queues[this.queueSel];
    switch (offset) {
      case VIRTIO_PCI_HOST_FEATURES:
        return this.device.hostFeatures >>> 0;
      case VIRTIO_PCI_GUEST_FEATURES:
        return this.guestFeatures >>> 0;
      case VIRTIO_PCI_QUEUE_PFN:
        return q ? q.pfn : 0;
      case VIRTIO_PCI_QUEUE_NUM:
        return q ? q.size : 0;
      case VIRTIO_PCI_QUEUE_SEL:
        return this.queueSel;
      case VIRTIO_PCI_QUEUE_NOTIFY:
        return 0;
      case VIRTIO_PCI_STATUS:
        return this.status;
      case VIRTIO_PCI_ISR: {
        // Reading the ISR returns and clears it, and lowers INTx (§4.1.4.5).
        const v = this.isr | (this.device.takeIsr?.() ?? 0);
        this.isr = 0;
        if (v !== 0) this.fn.deassertLintr();
        return v;
      }
      case VIRTIO_MSI_CONFIG_VECTOR:
        return this.configVector;
      case VIRTIO_MSI_QUEUE_VECTOR:
        return q ? q.vector : VIRTIO_MSI_NO_VECTOR;
    }
    return ones(size);
  }

  barWrite(bar: number, offset: number, size: 1 | 2 | 4, value: number): void {
    if (bar !== VIRTIO_REG_BAR) return;
    const cfg = this.configOffset();
    if (offset >= cfg) {
      const rel = offset - cfg;
      if (rel + size <= this.device.configSize) this.device.configWrite(rel, size, value);
      return;
    }
    const want = registerSize(offset, cfg);
    if (want === 0 || want !== size) return;
    const q = this.queues[this.queueSel];
    switch (offset) {
      case VIRTIO_PCI_GUEST_FEATURES:
        // The driver may accept only what was offered (§2.2.1).
        this.guestFeatures = (value & this.device.hostFeatures) >>> 0;
        return;
      case VIRTIO_PCI_QUEUE_PFN:
        if (!q) return;
        // A queue moved under a running data path: stop, then restart with the new layout.
        this.deactivate();
        q.pfn = value >>> 0;
        if (this.status & VIRTIO_STATUS_DRIVER_OK) this.activate();
        return;
      case VIRTIO_PCI_QUEUE_SEL:
        // Selecting a queue that does not exist makes QUEUE_NUM read 0 (§4.1.5.1.3 legacy).
        this.queueSel = value & 0xffff;
        return;
      case VIRTIO_PCI_QUEUE_NOTIFY: {
        const target = this.queues[value & 0xffff];
        if (!target || target.pfn === 0) return;
        if (!this.active) this.activate();
        if (this.active) this.device.notify(target.index);
        return;
      }
      case VIRTIO_PCI_STATUS:
        this.writeStatus(value & 0xff);
        return;
      case VIRTIO_MSI_CONFIG_VECTOR:
        this.configVector = this.vectorValue(value);
        return;
      case VIRTIO_MSI_QUEUE_VECTOR:
        if (!q) return;
        q.vector = this.vectorValue(value);
        if (this.active) this.device.interruptsChanged?.();
        return;
    }
  }

  private vectorValue(value: number): number {
    const v = value & 0xffff;
    // A vector the table does not have reads back as NO_VECTOR, so the driver sees the failure (§4.1.5.1.2).
    return v < this.msixVectors ? v : VIRTIO_MSI_NO_VECTOR;
  }

  private writeStatus(value: number): void {
    if (value === 0) {
      this.reset();
      return;
    }
    // NEEDS_RESET belongs to the device; the driver cannot set or clear it.
    this.status = (value & ~VIRTIO_STATUS_NEEDS_RESET) | (this.status & VIRTIO_STATUS_NEEDS_RESET);
    if (value & VIRTIO_STATUS_DRIVER_OK) this.activate();
  }

  interruptModeChanged(): void {
    if (this.active) this.device.interruptsChanged?.();
  }

  barMapped(bar: number): void {
    if (bar === VIRTIO_REG_BAR && this.active) this.device.barMoved?.();
  }

  interruptRouteChanged(): void {
    if (this.active) this.device.interruptsChanged?.();
  }

  /** Test and debug view of the transport state. */
  snapshot(): { status: number; guestFeatures: number; queues: Array<QueueConfig & { vector: number }>; configVector: number } {
    return { status: this.status, guestFeatures: this.guestFeatures, queues: this.queues.map((q) => ({ ...q })), configVector: this.configVector };
  }
}

/** The width of the legacy register at `offset` (0 when no register starts there). */
function registerSize(offset: number, cfgOffset: number): number {
  switch (offset) {
    case VIRTIO_PCI_HOST_FEATURES:
    case VIRTIO_PCI_GUEST_FEATURES:
    case VIRTIO_PCI_QUEUE_PFN:
      return 4;
    case VIRTIO_PCI_QUEUE_NUM:
    case VIRTIO_PCI_QUEUE_SEL:
    case VIRTIO_PCI_QUEUE_NOTIFY:
      return 2;
    case VIRTIO_PCI_STATUS:
    case VIRTIO_PCI_ISR:
      return 1;
    case VIRTIO_MSI_CONFIG_VECTOR:
    case VIRTIO_MSI_QUEUE_VECTOR:
      return cfgOffset === VIRTIO_CONFIG_OFFSET_MSIX ? 2 : 0;
  }
  return 0;
}

function ones(size: 1 | 2 | 4): number {
  return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
}
