// Typed surface of the addon's `ahci` export (native/ahci/ahci_napi.cc): one HBA's registers and the command
// engines of its ports, run natively.
import { loadAddon } from '../../src/native.js';
import type { NativeBlockBackend } from '../virtio-blk/native.js';

export interface NativePortSetup {
  backend: NativeBlockBackend;
  atapi: boolean;
  /** IDENTIFY DEVICE (disk) or IDENTIFY PACKET DEVICE (ATAPI) data, 512 bytes */
  identify: Uint8Array;
  /** disks: log2 of the logical sector, 9 or 12 */
  lbaShift?: number;
  /** 'auto' (default): disk reads and writes on io_uring where the kernel allows it; 'sync': one at a time on the worker */
  engine?: 'auto' | 'sync';
  /** ATAPI INQUIRY strings */
  vendor?: string;
  product?: string;
  revision?: string;
}

export interface HbaStats {
  commands: number;
  errors: number;
  ncqCommands: number;
  bytesRead: number;
  bytesWritten: number;
  interrupts: number;
}

export const IRQ_MODE_INTX = 0;
export const IRQ_MODE_MSI = 1;
/** onEvent kinds: the INTx level changed (arg 0/1); MSI message `arg` is due and it has no eventfd. */
export const HBA_EVENT_INTX = 1;
export const HBA_EVENT_MSI = 2;

export interface NativeHba {
  start(): void;
  /** Joins the port workers; nothing touches guest memory or the disks after it returns. */
  stop(): void;
  /** A dword register at an ABAR offset. */
  read(offset: number): number;
  write(offset: number, value: number): void;
  /**
   * INTx (levels reported), or MSI: `msiFds[i]` is message i's eventfd (-1: reported as HBA_EVENT_MSI with arg i);
   * `perPort` gives port N message N, else all use message 0 and `reverted` sets GHC.MRSM.
   */
  setIrqMode(mode: number, msiFds: number[], perPort: boolean, reverted: boolean): void;
  /** Serves the ABAR at [gpa, gpa+len) on the VM's vCPU threads. */
  attach(vm: object, gpa: number, len: number): void;
  detach(vm: object, gpa: number): void;
  registerBytes(): number;
  stats(): HbaStats;
}

interface AhciAddon {
  Hba: new (memory: object, ports: Array<NativePortSetup | null>, onEvent: (kind: number, arg: number) => void) => NativeHba;
}

export function nativeAhci(): AhciAddon {
  const v = loadAddon()['ahci'] as AhciAddon | undefined;
  if (!v) throw new Error('tsbhyve: the native addon has no ahci module; rebuild with npm run build:native');
  return v;
}
