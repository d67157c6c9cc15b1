// The shape of the addon's `vmm` export (native/vmm/vmm_napi.cc). Only src/vm uses it directly.
import { loadAddon } from '../native.js';

export type U64 = number | bigint;

export interface NativeVm {
  setTopology(sockets: number, cores: number, threads: number, maxcpus: number): void;
  createVcpus(n: number): void;
  reinit(): void;
  setupMemory(size: number, wired: boolean, incore: boolean): void;
  createDevmem(segid: number, name: string, len: number): ArrayBuffer;
  mmapMemseg(gpa: number, segid: number, off: number, len: number, prot: number): void;
  munmapMemseg(gpa: number, len: number): void;
  memCheck(gpa: U64, len: number, write: boolean, anyKind: boolean): number;
  memRead(gpa: U64, dst: Uint8Array): number;
  memWrite(gpa: U64, src: Uint8Array): number;
  memView(gpa: U64, len: number, anyKind: boolean): number | [ArrayBuffer, number];
  regions(): { gpa: number; size: number; kind: 'ram' | 'rom' | 'device'; writable: boolean }[];
  getRegs(vcpu: number, out: BigUint64Array): void;
  setRegs(vcpu: number, src: BigUint64Array): void;
  getSregs(vcpu: number, out: BigUint64Array): void;
  setSregs(vcpu: number, src: BigUint64Array): void;
  resetVcpu(vcpu: number): void;
  setCapability(vcpu: number, cap: number, value: number): void;
  getCapability(vcpu: number, cap: number): number;
  setX2apicState(vcpu: number, enabled: number): void;
  injectException(vcpu: number, vector: number, errorCodeValid: number, errorCode: number): void;
  getCpuid(vcpu: number, leaf: number, sub: number): [number, number, number, number];
  setStrict(io: boolean, msr: boolean): void;
  setPciConf1(ecamBase: number, present: Uint8Array): void;
  stats(vcpu: number): [number, number, number, number, number, number];
  userMsrExits(): boolean;
  lapicMsi(addr: U64, data: number): void;
  ioapicLine(pin: number, level: number): void;
  isaLine(atpic: number, ioapic: number, level: number): void;
  isaSetTrigger(irq: number, level: boolean): void;
  setMsiRoute(gsi: number, addr: U64, data: number): void;
  irqfd(fd: number, gsi: number, deassign: boolean, resampleFd?: number): void;
  ioeventfd(fd: number, addr: number, len: number, pio: boolean, matchData: boolean, data: U64, deassign: boolean): void;
  registerRange(space: 0 | 1, base: number, len: number, jsId: number): void;
  unregisterRange(space: 0 | 1, base: number): void;
  addSink(space: 0 | 1, base: number, len: number): number;
  sinkStats(index: number): { writes: number; reads: number; last: number };
  start(cpusets: number[][], onAttention: () => void, vcpuSpinNs: number): ArrayBuffer;
  pump(done: number, spinNs: number, waitNs: number): number;
  release(done: number): void;
  suspend(how: number): void;
  fail(message: string): void;
  join(): { status: number; error: string };
  close(): void;
}

interface VmmExports {
  NativeVm: new (name: string, lockDir: string) => NativeVm;
  eventfd(): number;
  eventfdRead(fd: number): number;
  eventfdWrite(fd: number, n: number): void;
  eventfdClose(fd: number): void;
}

export function nativeVmm(): VmmExports {
  const vmm = loadAddon()['vmm'] as VmmExports | undefined;
  if (!vmm) throw new Error('tsbhyve: the native addon has no vmm module; rebuild with npm run build:native');
  return vmm;
}
