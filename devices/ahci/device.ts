// ahci, ahci-hd, ahci-cd (`-s S,ahci,hd:PATH[,opts],cd:PATH[,opts],...`): an AHCI 1.3 SATA controller as bhyve's
// pci_ahci.c presents it (8086:2821, class 01/06/01, ABAR in BAR5, MSI and INTx), with disks and ATAPI CD drives
// on its ports. TypeScript owns the PCI function, the options and the IDENTIFY data; the HBA's registers and
// each port's command engine are native (native/ahci/hba.cc): on a VM the guest's ABAR accesses are served on
// the vCPU threads, and the port workers run the command lists, the block I/O and the interrupts (MSI by irqfd)
// with no JavaScript per command.
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import type { DataPath } from '../../src/platform/machine.js';
import type { PciDeviceModel, PciFunction } from '../../src/platform/pci/function.js';
import { PCIC_STORAGE, PCIR_CLASS, PCIR_DEVICE, PCIR_PROGIF, PCIR_SUBCLASS, PCIR_VENDOR } from '../../src/platform/pci/regs.js';
import { EventFd } from '../../src/vm/eventfd.js';
import type { PciDeviceFactory } from '../device.js';
import { nativeErrorParts, nativeVirtio, type NativeBlockBackend } from '../virtio-blk/native.js';
import { identifyDevice, identifyPacketDevice } from './identify.js';
import { HBA_EVENT_INTX, HBA_EVENT_MSI, IRQ_MODE_INTX, IRQ_MODE_MSI, nativeAhci, type HbaStats, type NativeHba, type NativePortSetup } from './native.js';
import { readAhciOptions, type AhciOptions } from './options.js';

export const AHCI_VENDOR = 0x8086;
export const AHCI_DEVICE = 0x2821; // ICH8
/** The ABAR is BAR5 (AHCI 1.3.1 §2.1.11). */
export const AHCI_BAR = 5;
/** Registers before the first port, and each port's share of the ABAR. */
const AHCI_OFFSET = 0x100;
const AHCI_STEP = 0x80;
/** NCQ queue depth a disk reports (IDENTIFY word 75 + 1): one per command slot. */
const QUEUE_DEPTH = 32;

export class AhciController implements PciDeviceModel {
  readonly abarSize: number;
  private readonly hba: NativeHba;
  /** MSI messages the capability asks for: a power of two covering the ports, at most 16 (as bhyve) */
  readonly msiMessages: number;
  /** KVM wiring per MSI message: irqfd eventfds and their GSIs */
  private msiRoutes: Array<{ efd: EventFd; gsi: number } | undefined> = [];
  private attachedAt?: number;
  private closed = false;

  constructor(
    readonly fn: PciFunction,
    readonly options: AhciOptions,
    private readonly backends: NativeBlockBackend[],
    private readonly dataPath: DataPath,
  ) {
    this.abarSize = AHCI_OFFSET + options.portCount * AHCI_STEP;
    this.msiMessages = 2 ** Math.ceil(Math.log2(Math.min(options.portCount, 16)));
    const ports: Array<NativePortSetup | null> = Array.from({ length: options.portCount }, () => null);
    options.ports.forEach((p, i) => {
      const backend = backends[i]!;
      const info = backend.info();
      if (p.type === 'cd') {
        ports[p.port] = {
          backend,
          atapi: true,
          identify: identifyPacketDevice({ serial: p.serial, firmware: p.revision, model: p.model }),
          vendor: 'BHYVE',
          product: 'BHYVE DVD-ROM',
          revision: p.revision,
        };
        return;
      }
      const logical = info.logicalSector >= 4096 ? 4096 : 512;
      ports[p.port] = {
        backend,
        atapi: false,
        lbaShift: Math.log2(logical),
        engine: p.block.engine === 'threads' ? 'sync' : 'auto',
        identify: identifyDevice({
          serial: p.serial,
          firmware: p.revision,
          model: p.model,
          sectors: BigInt(Math.floor(info.size / logical)),
          logicalSector: logical,
          physicalSector: Math.max(logical, info.physicalSector),
          trim: info.canDelete,
          rotationRate: p.rotationRate,
          queueDepth: QUEUE_DEPTH,
        }),
      };
    });
    this.hba = new (nativeAhci().Hba)(dataPath.memoryHandle, ports, (kind, arg) => {
      if (!this.closed) this.event(kind, arg);
    });
    this.hba.start();
    dataPath.onClose(() => this.close());
  }

  stats(): HbaStats {
    return this.hba.stats();
  }

  // --- registers (without a VM's native MMIO path: the device harness, or before the BAR is attached) ---------

  barRead(bar: number, offset: number, size: 1 | 2 | 4): number {
    if (bar !== AHCI_BAR || offset >= this.abarSize) return 0;
    const dword = this.hba.read(offset & ~3) >>> 0;
    const shift = (offset & 3) * 8;
    return size === 4 ? dword : (dword >>> shift) & (size === 1 ? 0xff : 0xffff);
  }

  barWrite(bar: number, offset: number, size: 1 | 2 | 4, value: number): void {
    // Registers are written as dwords (AHCI 1.3.1 §3); narrower writes are dropped.
    if (bar !== AHCI_BAR || size !== 4 || (offset & 3) !== 0 || offset >= this.abarSize) return;
    this.hba.write(offset, value >>> 0);
  }

  barMapped(bar: number, mapped: boolean, addr: number): void {
    if (bar !== AHCI_BAR) return;
    this.detach();
    if (mapped && this.dataPath.kvm) {
      try {
        this.hba.attach(this.dataPath.memoryHandle, addr, this.fn.bars[AHCI_BAR]!.size);
        this.attachedAt = addr;
      } catch {
        // Not a VM (the device harness): accesses reach barRead/barWrite.
      }
    }
  }

  private detach(): void {
    if (this.attachedAt === undefined) return;
    this.hba.detach(this.dataPath.memoryHandle, this.attachedAt);
    this.attachedAt = undefined;
  }

  // --- interrupts --------------------------------------------------------------------------------------------

  interruptModeChanged(): void {
    this.route();
  }

  interruptRouteChanged(): void {
    this.route();
  }

  /**
   * MSI goes out by irqfd on KVM (the worker signals the eventfds); INTx and MSI without KVM come back here. When the
   * guest enabled every message the capability asks for, each port has its own (AHCI 1.3.1 §10.6.2.3), as bhyve
   * offers; with fewer, all share message 0 and GHC.MRSM says so.
   */
  private route(): void {
    if (!this.fn.msiMessage(0)) {
      this.hba.setIrqMode(IRQ_MODE_INTX, [], false, false);
      return;
    }
    this.fn.deassertLintr();
    const enabled = this.fn.msiEnabledCount();
    const perPort = enabled >= this.msiMessages && this.msiMessages > 1;
    // Ports beyond the 16th share the last message (the capability asks for 16 at most).
    const used = perPort ? Math.min(this.options.portCount, this.msiMessages) : 1;
    const kvm = this.dataPath.kvm;
    const fds: number[] = [];
    for (let i = 0; i < used; i++) {
      const msg = this.fn.msiMessage(i)!;
      if (!kvm || msg.addr === 0n) {
        fds.push(-1);
        continue;
      }
      let route = this.msiRoutes[i];
      if (!route) {
        route = this.msiRoutes[i] = { efd: new EventFd(), gsi: kvm.allocMsiGsi() };
        kvm.setMsiRoute(route.gsi, msg.addr, msg.data);
        kvm.irqfd(route.efd.fd, route.gsi);
      } else {
        kvm.setMsiRoute(route.gsi, msg.addr, msg.data);
      }
      fds.push(route.efd.fd);
    }
    this.hba.setIrqMode(IRQ_MODE_MSI, fds, perPort, !perPort && this.msiMessages > 1);
  }

  private event(kind: number, arg: number): void {
    if (kind === HBA_EVENT_MSI) this.fn.generateMsi(arg);
    else if (kind === HBA_EVENT_INTX) {
      if (arg && !this.fn.msiEnabled()) this.fn.assertLintr();
      else this.fn.deassertLintr();
    }
  }

  /** Stops the port workers and releases the disks (the VM is going away). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    this.hba.stop();
    for (const r of this.msiRoutes) {
      if (!r) continue;
      this.dataPath.kvm?.irqfd(r.efd.fd, r.gsi, { deassign: true });
      r.efd.close();
    }
    for (const b of this.backends) b.close();
  }
}

export const createAhci: PciDeviceFactory = (ctx) => {
  const fn = ctx.fn;
  const opts = readAhciOptions(ctx.tree, ctx.node);
  const dataPath = ctx.machine.dataPath;
  if (!dataPath) throw new BhyveError(ExitStatus.ERROR, 'ahci: no native data path on this machine', false);
  const backends: NativeBlockBackend[] = [];
  try {
    for (const p of opts.ports) {
      const b = p.block;
      const backend = new (nativeVirtio().BlockBackend)({
        path: b.path,
        readOnly: b.readOnly,
        noCache: b.noCache,
        sync: b.sync,
        noDelete: b.noDelete,
        logicalSector: b.logicalSector,
        physicalSector: b.physicalSector,
      });
      backends.push(backend);
      if (backend.info().size === 0 && p.type === 'hd') throw new BhyveError(ExitStatus.ERROR, `ahci: port ${p.port}: backing store is empty`, false);
    }
  } catch (e) {
    for (const b of backends) b.close();
    if (e instanceof BhyveError) throw e;
    throw new BhyveError(ExitStatus.ERROR, nativeErrorParts(e).message, false);
  }
  const dev = new AhciController(fn, opts, backends, dataPath);
  fn.set16(PCIR_VENDOR, AHCI_VENDOR);
  fn.set16(PCIR_DEVICE, AHCI_DEVICE);
  fn.set8(PCIR_CLASS, PCIC_STORAGE);
  fn.set8(PCIR_SUBCLASS, 0x06); // SATA
  fn.set8(PCIR_PROGIF, 0x01); // AHCI 1.0
  fn.addMsiCapability(dev.msiMessages);
  fn.requestLintr();
  ctx.bus.allocBar(fn, AHCI_BAR, 'mem32', dev.abarSize);
  return dev;
};
