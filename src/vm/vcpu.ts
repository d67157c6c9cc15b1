// One vCPU's state: registers, segments, reset, capabilities and CPUID (vm_get_register_set & co).
import { nativeCall } from './errors.js';
import type { NativeVm } from './native-vmm.js';
import { packRegs, packSregs, REG_COUNT, SREG_COUNT, unpackRegs, unpackSregs, type Regs, type Sregs } from './registers.js';

/** libvmmapi capability names the KVM backend accepts (docs/vmm.md says what each means on KVM). */
export enum VcpuCap {
  HaltExit = 0,
  PauseExit = 1,
  UnrestrictedGuest = 2,
  EnableInvpcid = 3,
  IpiExit = 4,
}

/** vm_get_stats-style counters of one vCPU. */
export interface VcpuStats {
  /** returns from KVM_RUN (every exit, including kicks) */
  runs: number;
  io: number;
  mmio: number;
  /** unknown-MSR exits handled by the strictmsr policy */
  msr: number;
  /** port/MMIO exits handled by a native device on the vCPU thread */
  native: number;
  /** port/MMIO exits handed to a TypeScript handler */
  js: number;
}

export class Vcpu {
  constructor(
    private readonly nat: NativeVm,
    readonly id: number,
  ) {}

  getRegs(): Regs {
    const a = new BigUint64Array(REG_COUNT);
    nativeCall(() => this.nat.getRegs(this.id, a));
    return unpackRegs(a);
  }

  setRegs(r: Regs): void {
    nativeCall(() => this.nat.setRegs(this.id, packRegs(r)));
  }

  /** Read-modify-write of some registers. */
  updateRegs(r: Partial<Regs>): void {
    this.setRegs({ ...this.getRegs(), ...r });
  }

  getSregs(): Sregs {
    const a = new BigUint64Array(SREG_COUNT);
    nativeCall(() => this.nat.getSregs(this.id, a));
    return unpackSregs(a);
  }

  setSregs(s: Sregs): void {
    nativeCall(() => this.nat.setSregs(this.id, packSregs(s)));
  }

  /** vcpu_reset: the architectural reset state (CS 0xf000 base 0xffff0000, IP 0xfff0). */
  reset(): void {
    nativeCall(() => this.nat.resetVcpu(this.id));
  }

  setCapability(cap: VcpuCap, value: boolean): void {
    nativeCall(() => this.nat.setCapability(this.id, cap, value ? 1 : 0));
  }

  getCapability(cap: VcpuCap): boolean {
    return nativeCall(() => this.nat.getCapability(this.id, cap)) !== 0;
  }

  /** vm_set_x2apic_state: whether CPUID offers x2APIC to this vCPU and its LAPIC runs in x2APIC mode
   *  (IA32_APIC_BASE.EXTD), as bhyve's -x does; kept across reset(). */
  setX2apicState(enabled: boolean): void {
    nativeCall(() => this.nat.setX2apicState(this.id, enabled ? 1 : 0));
  }

  /**
   * vm_inject_exception: exception `vector` (0-31; not 2, the NMI, nor 8, #DF) is delivered before the next
   * instruction this vCPU executes, with `errorCode` pushed when given (never in real mode). Call it while
   * the vCPU is stopped or from its own exit handler; in a handler, the exiting access completes first.
   * Throws EBUSY when an exception is already pending.
   */
  injectException(vector: number, errorCode?: number): void {
    nativeCall(() => this.nat.injectException(this.id, vector, errorCode === undefined ? 0 : 1, errorCode ?? 0));
  }

  /** Exit counters since the vCPU was created (cumulative over runs). */
  stats(): VcpuStats {
    const [runs, io, mmio, msr, native, js] = nativeCall(() => this.nat.stats(this.id));
    return { runs, io, mmio, msr, native, js };
  }

  /** The CPUID values this vCPU's guest will see. */
  cpuid(leaf: number, subleaf = 0): { eax: number; ebx: number; ecx: number; edx: number } {
    const [eax, ebx, ecx, edx] = nativeCall(() => this.nat.getCpuid(this.id, leaf, subleaf));
    return { eax, ebx, ecx, edx };
  }
}
