// nvme (`-s S,nvme,PATH[,opts]` or `-s S,nvme,ram=MiB[,opts]`): an NVMe 1.4 controller as bhyve's pci_nvme.c
// presents it (FB5D:0A0A, class 01/08/02, one namespace). TypeScript owns the PCI function, the controller
// registers, the admin queue, features, log pages and asynchronous events; the I/O queues run in a native
// worker (native/nvme/io_queues.cc) that takes its doorbells on the vCPU threads (an MMIO overlay on KVM),
// fetches commands, does the block I/O and posts completions with the phase tag, raising MSI-X vectors by
// irqfd. No JavaScript runs per I/O command.
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import type { DataPath, GuestMemoryAccess } from '../../src/platform/machine.js';
import type { PciDeviceModel, PciFunction } from '../../src/platform/pci/function.js';
import { PCIC_STORAGE, PCIR_CLASS, PCIR_DEVICE, PCIR_PROGIF, PCIR_SUBCLASS, PCIR_SUBDEV_0, PCIR_SUBVEND_0, PCIR_VENDOR } from '../../src/platform/pci/regs.js';
import { EventFd } from '../../src/vm/eventfd.js';
import { watchDiskResize } from '../block/resize-watch.js';
import type { PciDeviceFactory } from '../device.js';
import { nativeErrorParts, nativeVirtio, type NativeBlockBackend } from '../virtio-blk/native.js';
import {
  activeNamespaceList,
  AER_LIMIT,
  COMPOSITE_TEMPERATURE,
  FIRMWARE_REVISION,
  identifyController,
  identifyNamespace,
  MDTS_BYTES,
  namespaceDescriptors,
  NVME_DEVICE,
  NVME_VENDOR,
  WCTEMP,
} from './identify.js';
import { IO_EVENT_CQ_DRAINED, IO_EVENT_DOORBELL_ERROR, IO_EVENT_INTERRUPT, nativeNvme, type IoQueuesStats, type NativeIoQueues } from './native.js';
import { defaultEui64, readNvmeOptions, type NvmeOptions } from './options.js';
import * as S from './spec.js';

/** BAR0: registers and doorbells; BAR4: the MSI-X table and PBA (bhyve's NVME_MSIX_BAR). */
export const NVME_REG_BAR = 0;
export const NVME_MSIX_BAR = 4;
/** NVME_MMIO_SPACE_MIN: BAR0 is at least 16 KiB. */
const MMIO_SPACE_MIN = 1 << 14;
/** CAP.TO in 500 ms units: how long the host waits for CSTS.RDY */
const CAP_TIMEOUT = 30;
/** Mask of the 0's based queue sizes in AQA */
const AQA_SIZE_MASK = 0xfff;

interface AdminQueues {
  sqGpa: number;
  sqSize: number;
  sqHead: number;
  sqTail: number;
  cqGpa: number;
  cqSize: number;
  cqHead: number;
  cqTail: number;
  phase: boolean;
}

interface AsyncEvent {
  type: number;
  info: number;
  log: number;
}

/** Features the host can change, with their reset values. */
interface Features {
  arbitration: number;
  powerState: number;
  tempOver: number;
  tempUnder: number;
  errorRecovery: number;
  writeCache: boolean;
  coalescing: number;
  /** Interrupt Vector Configuration: coalescing disabled per vector */
  vectorNoCoalesce: Set<number>;
  writeAtomicity: number;
  asyncEventConfig: number;
}

const defaultFeatures = (): Features => ({
  arbitration: 0,
  powerState: 0,
  tempOver: WCTEMP,
  tempUnder: 0,
  errorRecovery: 0,
  writeCache: true,
  coalescing: 0,
  vectorNoCoalesce: new Set(),
  writeAtomicity: 0,
  asyncEventConfig: 0,
});

/** Completion dword 3 (§4.6): command id, phase tag, status field; DNR for every error (a retry cannot help). */
export function cqeDword3(cid: number, phase: boolean, status: number): number {
  const sf = status === S.SC_SUCCESS ? 0 : ((status & 0xff) << 1) | (((status >> 8) & 7) << 9) | (1 << 15);
  return ((cid & 0xffff) | (phase ? 1 << 16 : 0) | (sf << 16)) >>> 0;
}

export class NvmeController implements PciDeviceModel {
  readonly vectors: number;
  readonly bar0Size: number;
  readonly lbaShift: number;
  readonly dsm: boolean;
  readonly eui64: bigint;
  private diskBytes: number;

  private cc = 0;
  private csts = 0;
  private aqa = 0;
  private asq = 0n;
  private acq = 0n;
  private intms = 0;
  private admin?: AdminQueues;
  private io?: NativeIoQueues;
  private features = defaultFeatures();
  /** command ids of outstanding Asynchronous Event Requests */
  private aerCids: number[] = [];
  private events: AsyncEvent[] = [];
  /** event types reported and not yet cleared by reading their log page */
  private maskedEventTypes = new Set<number>();
  private errorCount = 0n;
  private lastError = new Uint8Array(64);
  private namespaceChanged = false;
  private readonly startedAt = Date.now();
  /** MSI held by INTMS */
  private msiHeld = false;
  /** KVM wiring per vector: irqfd eventfds and their GSIs */
  private vectorFds: Array<EventFd | undefined> = [];
  private vectorGsis: Array<number | undefined> = [];
  private doorbellsAt?: number;
  /** KVM ioeventfds on the I/O doorbells (shadow doorbells on): their addresses */
  private doorbellEventfds: number[] = [];
  private shadowOn = false;
  private closed = false;
  private stopResizeWatch?: () => void;
  /** bumped when the queues are rebuilt so that late events of an old worker are ignored */
  private generation = 0;

  constructor(
    readonly fn: PciFunction,
    readonly options: NvmeOptions,
    private readonly backend: NativeBlockBackend,
    private readonly memory: GuestMemoryAccess,
    private readonly dataPath: DataPath | undefined,
    private readonly warn: (message: string) => void,
    vmName: string,
  ) {
    const info = backend.info();
    this.diskBytes = info.size;
    const sector = options.sectorSize ?? Math.max(512, info.logicalSector);
    this.lbaShift = Math.log2(sector);
    this.dsm = options.dsm === 'enable' || (options.dsm === 'auto' && info.canDelete);
    this.eui64 = options.eui64 ?? defaultEui64(vmName, fn.bus, fn.slot, fn.func);
    this.vectors = options.maxQueues + 1;
    this.bar0Size = Math.max(MMIO_SPACE_MIN, 2 ** Math.ceil(Math.log2(S.DOORBELL_BASE + 8 * (options.maxQueues + 1))));
    dataPath?.onClose(() => this.close());
  }

  /** CAP (§3.1.1): MQES from qsz, contiguous queues required, NVM command set, 4 KiB pages only. */
  get cap(): bigint {
    return (
      BigInt(this.options.queueEntries - 1) |
      (1n << 16n) | // CQR
      (BigInt(CAP_TIMEOUT) << 24n) |
      (1n << 37n) // CSS: NVM command set
    );
  }

  /** Namespace size in LBAs (follows disk resizes). */
  get lbas(): bigint {
    return BigInt(Math.floor(this.diskBytes / 2 ** this.lbaShift));
  }

  /** Errors recorded in the error information log since start (its Error Count). */
  get errorLogCount(): bigint {
    return this.errorCount;
  }

  /** Worker counters (undefined before the controller was first enabled). */
  stats(): IoQueuesStats | undefined {
    return this.io?.stats();
  }

  // --- registers -------------------------------------------------------------------------------------

  barRead(bar: number, offset: number, size: 1 | 2 | 4): number {
    if (bar !== NVME_REG_BAR || offset >= S.DOORBELL_BASE) return 0;
    const dword = this.regRead(offset & ~3);
    const shift = (offset & 3) * 8;
    return size === 4 ? dword : (dword >>> shift) & (size === 1 ? 0xff : 0xffff);
  }

  private regRead(off: number): number {
    switch (off) {
      case S.REG_CAP: return Number(this.cap & 0xffffffffn) >>> 0;
      case S.REG_CAP + 4: return Number(this.cap >> 32n) >>> 0;
      case S.REG_VS: return S.NVME_VERSION;
      case S.REG_INTMS:
      case S.REG_INTMC: return this.intms;
      case S.REG_CC: return this.cc;
      case S.REG_CSTS: return this.csts;
      case S.REG_AQA: return this.aqa;
      case S.REG_ASQ: return Number(this.asq & 0xffffffffn) >>> 0;
      case S.REG_ASQ + 4: return Number(this.asq >> 32n) >>> 0;
      case S.REG_ACQ: return Number(this.acq & 0xffffffffn) >>> 0;
      case S.REG_ACQ + 4: return Number(this.acq >> 32n) >>> 0;
      default: return 0;
    }
  }

  barWrite(bar: number, offset: number, size: 1 | 2 | 4, value: number): void {
    // Registers and doorbells are written as dwords (§3.1); narrower writes are dropped.
    if (bar !== NVME_REG_BAR || size !== 4 || (offset & 3) !== 0) return;
    value >>>= 0;
    if (offset >= S.DOORBELL_BASE) {
      this.doorbell(offset, value);
      return;
    }
    const lo = (q: bigint): bigint => (q & ~0xffffffffn) | BigInt(value);
    const hi = (q: bigint): bigint => (q & 0xffffffffn) | (BigInt(value) << 32n);
    switch (offset) {
      case S.REG_INTMS:
        this.intms = (this.intms | value) >>> 0;
        this.updateIntx();
        break;
      case S.REG_INTMC:
        this.intms = (this.intms & ~value) >>> 0;
        if (this.msiHeld && !(this.intms & 1)) {
          this.msiHeld = false;
          this.fn.generateMsi(0);
        }
        this.updateIntx();
        break;
      case S.REG_CC:
        this.writeCc(value);
        break;
      case S.REG_AQA:
        this.aqa = value & ((AQA_SIZE_MASK << 16) | AQA_SIZE_MASK);
        break;
      // The low 12 bits of ASQ/ACQ are reserved: the queues are page aligned.
      case S.REG_ASQ: this.asq = lo(this.asq) & ~0xfffn; break;
      case S.REG_ASQ + 4: this.asq = hi(this.asq); break;
      case S.REG_ACQ: this.acq = lo(this.acq) & ~0xfffn; break;
      case S.REG_ACQ + 4: this.acq = hi(this.acq); break;
      default: break; // CAP, VS, CSTS and NSSR (no subsystem reset) are read-only here
    }
  }

  private writeCc(value: number): void {
    const old = this.cc;
    this.cc = value;
    if (!(old & S.CC_EN) && value & S.CC_EN) this.enable();
    else if (old & S.CC_EN && !(value & S.CC_EN)) this.reset();
    const shn = (value >>> 14) & 3;
    if (shn !== 0 && ((old >>> 14) & 3) === 0) this.shutdown();
  }

  /** CC.EN 0 -> 1: checks the configuration and the admin queues, then reports ready (or fatal). */
  private enable(): void {
    const mps = (this.cc >>> 7) & 0xf;
    const css = (this.cc >>> 4) & 7;
    const ams = (this.cc >>> 11) & 7;
    const sqSize = (this.aqa & AQA_SIZE_MASK) + 1;
    const cqSize = ((this.aqa >>> 16) & AQA_SIZE_MASK) + 1;
    const why =
      mps !== 0 ? `CC.MPS ${mps} (only 4 KiB pages)`
      : css !== 0 ? `CC.CSS ${css} (only the NVM command set)`
      : ams !== 0 ? `CC.AMS ${ams} (only round robin)`
      : sqSize < 2 || cqSize < 2 ? 'an admin queue of one entry'
      : !this.inRam(this.asq, sqSize * 64) ? `admin SQ at 0x${this.asq.toString(16)} is not in guest RAM`
      : !this.inRam(this.acq, cqSize * 16) ? `admin CQ at 0x${this.acq.toString(16)} is not in guest RAM`
      : this.ensureQueues();
    if (why) {
      this.warn(`${this.fn.label}: cannot enable: ${why}`);
      this.csts = S.CSTS_CFS;
      return;
    }
    this.admin = {
      sqGpa: Number(this.asq), sqSize, sqHead: 0, sqTail: 0,
      cqGpa: Number(this.acq), cqSize, cqHead: 0, cqTail: 0, phase: true,
    };
    this.io!.setPageSize(4096 << mps);
    this.csts = S.CSTS_RDY;
  }

  /** Whether [gpa, gpa+len) is guest RAM the accessor reaches. */
  private inRam(gpa: bigint, len: number): boolean {
    if (gpa + BigInt(len) > BigInt(Number.MAX_SAFE_INTEGER)) return false;
    try {
      this.memory.read(Number(gpa), 1);
      this.memory.read(Number(gpa) + len - 1, 1);
      return true;
    } catch {
      return false;
    }
  }

  /** Creates and starts the native queues the first time; returns why not, or undefined. */
  private ensureQueues(): string | undefined {
    if (this.io) return undefined;
    if (!this.dataPath) return 'no native data path on this machine';
    const gen = this.generation;
    try {
      const io = new (nativeNvme().IoQueues)(
        this.dataPath.memoryHandle,
        this.backend,
        {
          lbaShift: this.lbaShift,
          mdtsBytes: MDTS_BYTES,
          dsm: this.dsm,
          maxQueues: this.options.maxQueues,
          vectors: this.vectors,
          ioSlots: this.options.ioSlots,
          engine: this.options.block?.engine === 'threads' ? 'sync' : 'auto',
        },
        (kind, arg) => {
          if (gen === this.generation && !this.closed) this.ioEvent(kind, arg);
        },
      );
      io.start();
      this.io = io;
    } catch (e) {
      return nativeErrorParts(e).message;
    }
    this.routeVectors();
    this.attachDoorbells();
    return undefined;
  }

  /** CC.EN 1 -> 0 (controller reset, §7.3.2): queues deleted, features and events back to their reset state. */
  private reset(): void {
    this.shadowOn = false;
    this.unwireDoorbellEventfds();
    this.io?.reset();
    this.admin = undefined;
    this.csts = 0;
    this.intms = 0;
    this.msiHeld = false;
    this.aerCids = [];
    this.events = [];
    this.maskedEventTypes.clear();
    this.features = defaultFeatures();
    this.io?.setWriteCache(true);
    this.fn.deassertLintr();
  }

  /** CC.SHN: commands in hand finish, the disk is flushed, then shutdown is reported complete. */
  private shutdown(): void {
    // Without queues nothing was ever written through this controller.
    const err = this.io?.flush() ?? 0;
    if (err !== 0) this.warn(`${this.fn.label}: flush at shutdown failed (errno ${err})`);
    this.csts = (this.csts & ~(3 << 2)) | S.CSTS_SHST_COMPLETE;
  }

  // --- doorbells -------------------------------------------------------------------------------------

  private doorbell(offset: number, value: number): void {
    if (!(this.csts & S.CSTS_RDY) || !this.admin) return;
    const a = this.admin;
    if (offset === S.DOORBELL_BASE) {
      if (value >= a.sqSize) return this.doorbellError(0, S.AER_INFO_INVALID_DB_VALUE);
      a.sqTail = value;
      this.processAdmin();
    } else if (offset === S.DOORBELL_BASE + 4) {
      if (value >= a.cqSize) return this.doorbellError(0, S.AER_INFO_INVALID_DB_VALUE);
      a.cqHead = value;
      this.processAdmin();
      this.updateIntx();
    } else {
      this.io?.doorbell(offset, value);
    }
  }

  private doorbellError(qid: number, info: number): void {
    this.errorCount++;
    const e = new DataView(this.lastError.buffer);
    this.lastError.fill(0);
    e.setBigUint64(0, this.errorCount, true);
    e.setUint16(8, qid, true);
    e.setUint16(10, 0xffff, true); // no command
    this.queueEvent({ type: S.AER_TYPE_ERROR, info, log: S.LOG_ERROR });
  }

  private ioEvent(kind: number, arg: number): void {
    if (kind === IO_EVENT_INTERRUPT) this.interrupt(arg);
    else if (kind === IO_EVENT_CQ_DRAINED) this.updateIntx();
    else if (kind === IO_EVENT_DOORBELL_ERROR) {
      this.doorbellError(arg & 0xffff, arg >>> 16 ? S.AER_INFO_INVALID_DB_VALUE : S.AER_INFO_INVALID_DB_REGISTER);
    }
  }

  // --- admin queue -----------------------------------------------------------------------------------

  private processAdmin(): void {
    const a = this.admin;
    while (a && this.admin === a && a.sqHead !== a.sqTail) {
      if ((a.cqTail + 1) % a.cqSize === a.cqHead) return; // CQ full: the head doorbell resumes us
      let sqe: DataView;
      try {
        const b = this.memory.read(a.sqGpa + a.sqHead * 64, 64);
        sqe = new DataView(b.buffer, b.byteOffset, 64);
      } catch {
        this.fatal('admin SQ left guest RAM');
        return;
      }
      a.sqHead = (a.sqHead + 1) % a.sqSize;
      const cid = sqe.getUint32(0, true) >>> 16;
      const r = this.adminCommand(sqe, cid);
      if (r) this.postAdmin(cid, r.status, r.dw0 ?? 0);
      this.deliverEvents();
    }
  }

  private fatal(why: string): void {
    this.warn(`${this.fn.label}: controller fatal: ${why}`);
    this.csts |= S.CSTS_CFS;
  }

  private postAdmin(cid: number, status: number, dw0: number): void {
    const a = this.admin;
    if (!a) return;
    const at = a.cqGpa + a.cqTail * 16;
    const head = new Uint8Array(12);
    const v = new DataView(head.buffer);
    v.setUint32(0, dw0 >>> 0, true);
    v.setUint32(8, a.sqHead, true); // SQ head; SQ id 0
    const last = new Uint8Array(4);
    new DataView(last.buffer).setUint32(0, cqeDword3(cid, a.phase, status), true);
    try {
      this.memory.write(at, head);
      // The phase tag makes the entry valid: its dword goes last.
      this.memory.write(at + 12, last);
    } catch {
      this.fatal('admin CQ left guest RAM');
      return;
    }
    a.cqTail = (a.cqTail + 1) % a.cqSize;
    if (a.cqTail === 0) a.phase = !a.phase;
    this.interrupt(0);
  }

  /** Runs one admin command; undefined when it completes later (Asynchronous Event Request). */
  private adminCommand(sqe: DataView, cid: number): { status: number; dw0?: number } | undefined {
    const opcode = sqe.getUint8(0);
    const flags = sqe.getUint8(1);
    const nsid = S.sqeDword(sqe, 1);
    const cdw10 = S.sqeDword(sqe, 10);
    const cdw11 = S.sqeDword(sqe, 11);
    const prp1 = sqe.getBigUint64(24, true);
    const prp2 = sqe.getBigUint64(32, true);
    const io = this.io!;
    // No fused operations; PRPs only (PSDT 0).
    if ((flags & 3) !== 0 || (flags >>> 6) !== 0) return { status: S.SC_INVALID_FIELD };
    switch (opcode) {
      case S.ADM_CREATE_CQ: {
        const qid = cdw10 & 0xffff;
        const entries = (cdw10 >>> 16) + 1;
        if (!(cdw11 & 1)) return { status: S.SC_INVALID_FIELD }; // CAP.CQR: queues must be contiguous
        if (qid === 0 || qid > this.options.maxQueues || io.cqExists(qid)) return { status: S.SC_INVALID_QID };
        if (entries < 2 || entries > this.options.queueEntries) return { status: S.SC_INVALID_QSIZE };
        const vector = cdw11 >>> 16;
        if (vector >= this.vectors || (!this.fn.msixEnabled() && vector !== 0)) return { status: S.SC_INVALID_VECTOR };
        return { status: io.createCq(qid, prp1, entries, vector, (cdw11 & 2) !== 0) };
      }
      case S.ADM_CREATE_SQ: {
        const qid = cdw10 & 0xffff;
        const entries = (cdw10 >>> 16) + 1;
        const cqid = cdw11 >>> 16;
        if (!(cdw11 & 1)) return { status: S.SC_INVALID_FIELD };
        if (qid === 0 || qid > this.options.maxQueues || io.sqExists(qid)) return { status: S.SC_INVALID_QID };
        if (cqid === 0 || !io.cqExists(cqid)) return { status: S.SC_CQ_INVALID };
        if (entries < 2 || entries > this.options.queueEntries) return { status: S.SC_INVALID_QSIZE };
        return { status: io.createSq(qid, prp1, entries, cqid) };
      }
      case S.ADM_DELETE_SQ: {
        const qid = cdw10 & 0xffff;
        if (qid === 0) return { status: S.SC_INVALID_QID };
        return { status: io.deleteSq(qid) };
      }
      case S.ADM_DELETE_CQ: {
        const qid = cdw10 & 0xffff;
        if (qid === 0) return { status: S.SC_INVALID_QID };
        return { status: io.deleteCq(qid) };
      }
      case S.ADM_IDENTIFY:
        return this.identify(cdw10 & 0xff, nsid, prp1, prp2);
      case S.ADM_GET_LOG_PAGE:
        return this.getLogPage(sqe, nsid, prp1, prp2);
      case S.ADM_SET_FEATURES:
        return this.setFeature(cdw10, cdw11, nsid);
      case S.ADM_GET_FEATURES:
        return this.getFeature(cdw10, cdw11);
      case S.ADM_ASYNC_EVENT_REQUEST:
        if (this.aerCids.length > AER_LIMIT) return { status: S.SC_ASYNC_EVENT_LIMIT };
        this.aerCids.push(cid);
        return undefined;
      case S.ADM_ABORT:
        // Commands run to completion once fetched; the spec lets the controller decline (DW0 bit 0).
        return { status: S.SC_SUCCESS, dw0: 1 };
      case S.ADM_DOORBELL_BUFFER_CONFIG: {
        if (prp1 === 0n || prp2 === 0n) return { status: S.SC_INVALID_FIELD };
        const status = io.setDoorbellBuffer(prp1, prp2);
        if (status === S.SC_SUCCESS) {
          this.shadowOn = true;
          this.wireDoorbellEventfds();
        }
        return { status };
      }
      case S.ADM_FORMAT_NVM:
        return this.format(cdw10, nsid);
      default:
        return { status: S.SC_INVALID_OPCODE };
    }
  }

  private transfer(prp1: bigint, prp2: bigint, data: Uint8Array): { status: number } {
    return { status: this.io!.dmaWrite(prp1, prp2, data) };
  }

  private identify(cns: number, nsid: number, prp1: bigint, prp2: bigint): { status: number } {
    switch (cns) {
      case S.CNS_NAMESPACE:
        // NSID FFFFFFFFh: the capabilities common to all namespaces (this one's format, no size)
        if (nsid === 0xffffffff) return this.transfer(prp1, prp2, identifyNamespace({ ...this.namespaceIdentity(), lbas: 0n }));
        if (nsid !== 1) return { status: S.SC_INVALID_NAMESPACE };
        return this.transfer(prp1, prp2, identifyNamespace(this.namespaceIdentity()));
      case S.CNS_CONTROLLER:
        return this.transfer(prp1, prp2, identifyController({
          serial: this.options.serial,
          maxQueues: this.options.maxQueues,
          dsm: this.dsm,
          vwc: true,
        }));
      case S.CNS_ACTIVE_NS_LIST:
        if (nsid >= 0xfffffffe) return { status: S.SC_INVALID_NAMESPACE };
        return this.transfer(prp1, prp2, activeNamespaceList(nsid));
      case S.CNS_NS_DESCRIPTORS:
        if (nsid !== 1) return { status: S.SC_INVALID_NAMESPACE };
        return this.transfer(prp1, prp2, namespaceDescriptors(this.eui64));
      default:
        return { status: S.SC_INVALID_FIELD };
    }
  }

  private namespaceIdentity(): Parameters<typeof identifyNamespace>[0] {
    return { lbas: this.lbas, lbaShift: this.lbaShift, eui64: this.eui64, deallocate: this.dsm && this.backend.info().canDelete };
  }

  // --- log pages -------------------------------------------------------------------------------------

  private getLogPage(sqe: DataView, nsid: number, prp1: bigint, prp2: bigint): { status: number } {
    const cdw10 = S.sqeDword(sqe, 10);
    const lid = cdw10 & 0xff;
    const rae = (cdw10 & (1 << 15)) !== 0;
    const numd = ((cdw10 >>> 16) | ((S.sqeDword(sqe, 11) & 0xffff) << 16)) + 1;
    const offset = BigInt(S.sqeDword(sqe, 12)) | (BigInt(S.sqeDword(sqe, 13)) << 32n);
    const len = numd * 4;
    if ((offset & 3n) !== 0n || len > MDTS_BYTES) return { status: S.SC_INVALID_FIELD };
    let page: Uint8Array;
    let eventType: number | undefined;
    switch (lid) {
      case S.LOG_ERROR:
        page = this.lastError.slice();
        eventType = S.AER_TYPE_ERROR;
        break;
      case S.LOG_SMART:
        // LPA bit 0 is clear: the log is for the controller as a whole
        if (nsid !== 0 && nsid !== 0xffffffff) return { status: S.SC_INVALID_FIELD };
        page = this.smartLog();
        eventType = S.AER_TYPE_SMART;
        break;
      case S.LOG_FIRMWARE_SLOT:
        page = new Uint8Array(512);
        page[0] = 1; // AFI: slot 1 active
        page.set(Buffer.from(FIRMWARE_REVISION.padEnd(8, ' '), 'latin1'), 8);
        break;
      case S.LOG_CHANGED_NS_LIST:
        page = new Uint8Array(4096);
        if (this.namespaceChanged) new DataView(page.buffer).setUint32(0, 1, true);
        if (!rae) this.namespaceChanged = false;
        eventType = S.AER_TYPE_NOTICE;
        break;
      default:
        return { status: S.SC_INVALID_LOG_PAGE };
    }
    const out = new Uint8Array(len);
    if (offset < BigInt(page.length)) out.set(page.subarray(Number(offset), Number(offset) + len));
    const r = this.transfer(prp1, prp2, out);
    if (r.status === S.SC_SUCCESS && eventType !== undefined && !rae) {
      // Reading the log page re-arms its event type (§5.2); a held event goes out after this completion.
      this.maskedEventTypes.delete(eventType);
    }
    return r;
  }

  private smartLog(): Uint8Array {
    const p = new Uint8Array(512);
    const v = new DataView(p.buffer);
    const s = this.io?.stats();
    const temp = COMPOSITE_TEMPERATURE;
    p[0] = (this.temperatureAlarm(temp) ? 1 << 1 : 0) | (this.backend.info().readOnly ? 1 << 3 : 0);
    v.setUint16(1, temp, true);
    p[3] = 100; // available spare
    p[4] = 10; // available spare threshold
    p[5] = 0; // percentage used
    // Data units are thousands of 512-byte units, rounded up; counters are 128-bit little-endian.
    const units = (bytes: number): bigint => BigInt(Math.ceil(bytes / 512 / 1000));
    v.setBigUint64(32, units(s?.bytesRead ?? 0), true);
    v.setBigUint64(48, units(s?.bytesWritten ?? 0), true);
    v.setBigUint64(64, BigInt(s?.readCommands ?? 0), true);
    v.setBigUint64(80, BigInt(s?.writeCommands ?? 0), true);
    v.setBigUint64(112, 1n, true); // power cycles
    v.setBigUint64(128, BigInt(Math.floor((Date.now() - this.startedAt) / 3_600_000)), true);
    v.setBigUint64(176, this.errorCount, true);
    v.setUint16(200, temp, true); // temperature sensor 1
    return p;
  }

  private temperatureAlarm(temp: number): boolean {
    return temp > this.features.tempOver || temp < this.features.tempUnder;
  }

  // --- features --------------------------------------------------------------------------------------

  private setFeature(cdw10: number, cdw11: number, nsid: number): { status: number; dw0?: number } {
    const fid = cdw10 & 0xff;
    if (cdw10 & (1 << 31)) return { status: S.SC_FEATURE_NOT_SAVEABLE };
    if (nsid !== 0 && nsid !== 0xffffffff && nsid !== 1) return { status: S.SC_INVALID_NAMESPACE };
    const f = this.features;
    switch (fid) {
      case S.FEAT_ARBITRATION: f.arbitration = cdw11; break;
      case S.FEAT_POWER_MANAGEMENT:
        if ((cdw11 & 0x1f) !== 0) return { status: S.SC_INVALID_FIELD }; // one power state (NPSS 0)
        f.powerState = cdw11 & 0xff;
        break;
      case S.FEAT_TEMPERATURE_THRESHOLD: {
        const sel = (cdw11 >>> 16) & 0xf;
        const thsel = (cdw11 >>> 20) & 3;
        if ((sel !== 0 && sel !== 0xf) || thsel > 1) return { status: S.SC_INVALID_FIELD };
        if (thsel === 0) f.tempOver = cdw11 & 0xffff;
        else f.tempUnder = cdw11 & 0xffff;
        if (this.temperatureAlarm(COMPOSITE_TEMPERATURE) && f.asyncEventConfig & (1 << 1)) {
          this.queueEvent({ type: S.AER_TYPE_SMART, info: S.AER_INFO_TEMPERATURE, log: S.LOG_SMART });
        }
        break;
      }
      case S.FEAT_ERROR_RECOVERY:
        if (cdw11 & (1 << 16)) return { status: S.SC_INVALID_FIELD }; // DULBE needs deallocated-block errors
        f.errorRecovery = cdw11 & 0xffff;
        break;
      case S.FEAT_VOLATILE_WRITE_CACHE: {
        const on = (cdw11 & 1) !== 0;
        // Turning the cache off makes what it held stable first.
        if (!on && f.writeCache) this.io?.flush();
        f.writeCache = on;
        this.io?.setWriteCache(on);
        break;
      }
      case S.FEAT_NUMBER_OF_QUEUES: {
        if ((cdw11 & 0xffff) === 0xffff || cdw11 >>> 16 === 0xffff) return { status: S.SC_INVALID_FIELD };
        return { status: S.SC_SUCCESS, dw0: this.queuesAllocated() };
      }
      case S.FEAT_INTERRUPT_COALESCING: f.coalescing = cdw11 & 0xffff; break;
      case S.FEAT_INTERRUPT_VECTOR_CONFIG: {
        const iv = cdw11 & 0xffff;
        if (iv >= this.vectors) return { status: S.SC_INVALID_FIELD };
        if (cdw11 & (1 << 16)) f.vectorNoCoalesce.add(iv);
        else f.vectorNoCoalesce.delete(iv);
        break;
      }
      case S.FEAT_WRITE_ATOMICITY: f.writeAtomicity = cdw11 & 1; break;
      case S.FEAT_ASYNC_EVENT_CONFIG: f.asyncEventConfig = cdw11 & 0x3ff; break;
      default: return { status: S.SC_INVALID_FIELD };
    }
    return { status: S.SC_SUCCESS };
  }

  /** Number of Queues' DW0: the I/O SQs and CQs allocated, 0's based. */
  private queuesAllocated(): number {
    const n = this.options.maxQueues - 1;
    return (n | (n << 16)) >>> 0;
  }

  private getFeature(cdw10: number, cdw11: number): { status: number; dw0?: number } {
    const fid = cdw10 & 0xff;
    const sel = (cdw10 >>> 8) & 7;
    if (sel > 3) return { status: S.SC_INVALID_FIELD };
    const changeable = [
      S.FEAT_ARBITRATION, S.FEAT_POWER_MANAGEMENT, S.FEAT_TEMPERATURE_THRESHOLD, S.FEAT_ERROR_RECOVERY,
      S.FEAT_VOLATILE_WRITE_CACHE, S.FEAT_NUMBER_OF_QUEUES, S.FEAT_INTERRUPT_COALESCING,
      S.FEAT_INTERRUPT_VECTOR_CONFIG, S.FEAT_WRITE_ATOMICITY, S.FEAT_ASYNC_EVENT_CONFIG,
    ];
    if (!changeable.includes(fid)) return { status: S.SC_INVALID_FIELD };
    if (sel === 3) return { status: S.SC_SUCCESS, dw0: 1 << 2 }; // changeable, not saveable, controller-wide
    // Nothing is saveable: "saved" reads as the default.
    const f = sel === 0 ? this.features : defaultFeatures();
    let dw0: number;
    switch (fid) {
      case S.FEAT_ARBITRATION: dw0 = f.arbitration; break;
      case S.FEAT_POWER_MANAGEMENT: dw0 = f.powerState; break;
      case S.FEAT_TEMPERATURE_THRESHOLD: {
        const sel2 = (cdw11 >>> 16) & 0xf;
        const thsel = (cdw11 >>> 20) & 3;
        if ((sel2 !== 0 && sel2 !== 0xf) || thsel > 1) return { status: S.SC_INVALID_FIELD };
        dw0 = thsel === 0 ? f.tempOver : f.tempUnder;
        break;
      }
      case S.FEAT_ERROR_RECOVERY: dw0 = f.errorRecovery; break;
      case S.FEAT_VOLATILE_WRITE_CACHE: dw0 = f.writeCache ? 1 : 0; break;
      case S.FEAT_NUMBER_OF_QUEUES: dw0 = this.queuesAllocated(); break;
      case S.FEAT_INTERRUPT_COALESCING: dw0 = f.coalescing; break;
      case S.FEAT_INTERRUPT_VECTOR_CONFIG: {
        const iv = cdw11 & 0xffff;
        if (iv >= this.vectors) return { status: S.SC_INVALID_FIELD };
        dw0 = iv | (f.vectorNoCoalesce.has(iv) ? 1 << 16 : 0);
        break;
      }
      case S.FEAT_WRITE_ATOMICITY: dw0 = f.writeAtomicity; break;
      default: dw0 = f.asyncEventConfig; break;
    }
    return { status: S.SC_SUCCESS, dw0: dw0 >>> 0 };
  }

  // --- format ----------------------------------------------------------------------------------------

  private format(cdw10: number, nsid: number): { status: number } {
    if (nsid !== 1 && nsid !== 0xffffffff) return { status: S.SC_INVALID_NAMESPACE };
    const lbaf = cdw10 & 0xf;
    const mset = (cdw10 >>> 4) & 1;
    const pi = (cdw10 >>> 5) & 7;
    const ses = (cdw10 >>> 9) & 7;
    // One LBA format, no metadata, no protection information; a user-data erase is the only secure erase.
    if (lbaf !== 0 || mset !== 0 || pi !== 0) return { status: S.SC_INVALID_FORMAT };
    if (ses > 1) return { status: S.SC_INVALID_FIELD };
    if (this.backend.info().readOnly) return { status: 0x020 /* Namespace is Write Protected */ };
    if (ses === 1) {
      const err = this.io!.eraseAll();
      if (err !== 0) {
        this.warn(`${this.fn.label}: format erase failed (errno ${err})`);
        return { status: S.SC_INTERNAL_ERROR };
      }
    }
    return { status: S.SC_SUCCESS };
  }

  // --- asynchronous events ---------------------------------------------------------------------------

  private queueEvent(e: AsyncEvent): void {
    if (e.type === S.AER_TYPE_NOTICE && !(this.features.asyncEventConfig & (1 << 8))) return;
    if (!this.events.some((x) => x.type === e.type && x.info === e.info)) this.events.push(e);
    this.deliverEvents();
  }

  private deliverEvents(): void {
    while (this.aerCids.length > 0) {
      const i = this.events.findIndex((e) => !this.maskedEventTypes.has(e.type));
      if (i < 0) return;
      const [e] = this.events.splice(i, 1);
      this.maskedEventTypes.add(e!.type);
      this.postAdmin(this.aerCids.shift()!, S.SC_SUCCESS, e!.type | (e!.info << 8) | (e!.log << 16));
    }
  }

  /** The disk changed size: the namespace follows and a Namespace Attribute Changed notice goes out. */
  checkResize(): boolean {
    if (this.closed) return false;
    let size: number;
    try {
      size = this.backend.refresh();
    } catch {
      return false;
    }
    if (size === this.diskBytes) return false;
    this.diskBytes = size;
    this.namespaceChanged = true;
    this.warn(`${this.fn.label}: disk resized to ${size} bytes`);
    this.queueEvent({ type: S.AER_TYPE_NOTICE, info: S.AER_INFO_NS_ATTR_CHANGED, log: S.LOG_CHANGED_NS_LIST });
    return true;
  }

  // --- interrupts ------------------------------------------------------------------------------------

  /** Vector `v` fired: MSI-X by its entry; MSI (one message) and INTx honour INTMS bit 0. */
  private interrupt(v: number): void {
    if (this.fn.msixEnabled()) {
      this.fn.generateMsix(v);
    } else if (this.fn.msiEnabled()) {
      if (this.intms & 1) this.msiHeld = true;
      else this.fn.generateMsi(0);
    } else {
      this.updateIntx();
    }
  }

  /** INTx is a level: asserted while a CQ holds entries the host has not consumed and INTMS allows. */
  private updateIntx(): void {
    if (this.fn.msixEnabled() || this.fn.msiEnabled()) return;
    const a = this.admin;
    const pending = (a !== undefined && a.cqHead !== a.cqTail) || (this.io?.anyPending() ?? false);
    if (pending && !(this.intms & 1)) this.fn.assertLintr();
    else this.fn.deassertLintr();
  }

  interruptModeChanged(): void {
    this.routeVectors();
    this.updateIntx();
  }

  interruptRouteChanged(): void {
    this.routeVectors();
  }

  /**
   * On KVM, unmasked MSI-X vectors are raised by the worker through irqfd; everything else (masked
   * vectors, MSI with its INTMS mask, INTx, no KVM) is reported to us and delivered above.
   */
  private routeVectors(): void {
    const io = this.io;
    if (!io) return;
    io.setIntxLevel(!this.fn.msixEnabled() && !this.fn.msiEnabled());
    const kvm = this.dataPath?.kvm;
    for (let v = 0; v < this.vectors; v++) {
      const entry = this.fn.msixEnabled() ? this.fn.msixEntry(v) : undefined;
      if (!kvm || !entry || entry.masked || entry.addr === 0n) {
        io.setVectorFd(v, -1);
        continue;
      }
      let efd = this.vectorFds[v];
      let gsi = this.vectorGsis[v];
      if (!efd || gsi === undefined) {
        efd = this.vectorFds[v] = new EventFd();
        gsi = this.vectorGsis[v] = kvm.allocMsiGsi();
        kvm.setMsiRoute(gsi, entry.addr, entry.data);
        kvm.irqfd(efd.fd, gsi);
      } else {
        kvm.setMsiRoute(gsi, entry.addr, entry.data);
      }
      io.setVectorFd(v, efd.fd);
    }
  }

  // --- BAR placement ---------------------------------------------------------------------------------

  barMapped(bar: number, mapped: boolean, addr: number): void {
    if (bar !== NVME_REG_BAR) return;
    this.unwireDoorbellEventfds();
    this.detachDoorbells();
    if (mapped) {
      this.attachDoorbells(addr);
      this.wireDoorbellEventfds(addr);
    }
  }

  /**
   * With shadow doorbells the values live in guest memory, so on KVM the I/O doorbell registers need not exit
   * to this process at all: an ioeventfd on each wakes the worker, which reads the shadow buffer. (A value
   * written to such a register is then not checked; the shadow value is, against the queue size.)
   */
  private wireDoorbellEventfds(base = this.fn.decodeEnabled(NVME_REG_BAR) ? this.fn.bars[NVME_REG_BAR]!.addr : undefined): void {
    const kvm = this.dataPath?.kvm;
    if (!kvm || !this.io || !this.shadowOn || base === undefined || this.doorbellEventfds.length > 0) return;
    const fd = this.io.wakeFd();
    for (let q = 1; q <= this.options.maxQueues; q++) {
      for (const addr of [base + S.DOORBELL_BASE + 8 * q, base + S.DOORBELL_BASE + 8 * q + 4]) {
        kvm.ioeventfd(fd, { addr, len: 4, pio: false });
        this.doorbellEventfds.push(addr);
      }
    }
  }

  private unwireDoorbellEventfds(): void {
    const kvm = this.dataPath?.kvm;
    if (!kvm || !this.io) return;
    const fd = this.io.wakeFd();
    for (const addr of this.doorbellEventfds.splice(0)) kvm.ioeventfd(fd, { addr, len: 4, pio: false, deassign: true });
  }

  /** On a VM, I/O doorbell writes are served on the vCPU thread; the admin doorbells stay here. */
  private attachDoorbells(base = this.fn.decodeEnabled(NVME_REG_BAR) ? this.fn.bars[NVME_REG_BAR]!.addr : undefined): void {
    const io = this.io;
    if (!io || base === undefined || !this.dataPath?.kvm || this.doorbellsAt !== undefined) return;
    const gpa = base + S.DOORBELL_BASE + 8;
    try {
      io.attachDoorbells(this.dataPath.memoryHandle, gpa, this.bar0Size - S.DOORBELL_BASE - 8, base);
      this.doorbellsAt = gpa;
    } catch {
      // Not a VM (the device harness): doorbells reach barWrite and go to the worker from there.
    }
  }

  private detachDoorbells(): void {
    if (this.doorbellsAt === undefined || !this.io || !this.dataPath) return;
    this.io.detachDoorbells(this.dataPath.memoryHandle, this.doorbellsAt);
    this.doorbellsAt = undefined;
  }

  /** Stops the worker and releases the disk (the VM is going away). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.generation++;
    this.stopResizeWatch?.();
    this.unwireDoorbellEventfds();
    this.detachDoorbells();
    this.io?.stop();
    const kvm = this.dataPath?.kvm;
    for (let v = 0; v < this.vectorFds.length; v++) {
      const efd = this.vectorFds[v];
      const gsi = this.vectorGsis[v];
      if (efd && gsi !== undefined) kvm?.irqfd(efd.fd, gsi, { deassign: true });
      efd?.close();
    }
    this.backend.close();
  }

  /** Starts watching the disk for resizes. */
  watch(): void {
    this.stopResizeWatch = watchDiskResize(() => this.checkResize());
  }
}

export const createNvme: PciDeviceFactory = (ctx) => {
  const fn = ctx.fn;
  const opts = readNvmeOptions(ctx.tree, ctx.node, { slot: fn.slot, func: fn.func }, ctx.warn);
  let backend: NativeBlockBackend;
  try {
    backend = opts.ramBytes !== undefined
      ? new (nativeVirtio().BlockBackend)({ path: `nvme-ram-${fn.bus}-${fn.slot}-${fn.func}`, memoryBytes: opts.ramBytes })
      : new (nativeVirtio().BlockBackend)({
          path: opts.block!.path,
          readOnly: opts.block!.readOnly,
          noCache: opts.block!.noCache,
          sync: opts.block!.sync,
          noDelete: opts.block!.noDelete,
          logicalSector: opts.block!.logicalSector,
          physicalSector: opts.block!.physicalSector,
        });
  } catch (e) {
    throw new BhyveError(ExitStatus.ERROR, opts.ramBytes !== undefined ? 'Unable to allocate RAM' : nativeErrorParts(e).message, false);
  }
  if (backend.info().size === 0) {
    backend.close();
    throw new BhyveError(ExitStatus.ERROR, 'backing store not specified', false);
  }
  const vmName = ctx.tree.get('name') ?? '';
  const dev = new NvmeController(fn, opts, backend, ctx.machine.memory, ctx.machine.dataPath, ctx.warn, vmName);
  fn.set16(PCIR_VENDOR, NVME_VENDOR);
  fn.set16(PCIR_DEVICE, NVME_DEVICE);
  fn.set16(PCIR_SUBVEND_0, NVME_VENDOR);
  fn.set16(PCIR_SUBDEV_0, NVME_DEVICE);
  fn.set8(PCIR_CLASS, PCIC_STORAGE);
  fn.set8(PCIR_SUBCLASS, 0x08); // Non-Volatile Memory controller
  fn.set8(PCIR_PROGIF, 0x02); // NVM Express
  const msixSize = fn.addMsixCapability(dev.vectors, NVME_MSIX_BAR);
  fn.addMsiCapability(1);
  fn.addPcieCapability(9); // root complex integrated endpoint
  fn.requestLintr();
  ctx.bus.allocBar(fn, NVME_REG_BAR, 'mem64', dev.bar0Size);
  ctx.bus.allocBar(fn, NVME_MSIX_BAR, 'mem32', msixSize);
  dev.watch();
  return dev;
};
