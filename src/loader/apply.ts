// Applies a BootPlan to a VM in one call, in the one order that is correct:
//   1. every write into guest memory (the GDT and page tables must be in place before the CPU state that
//      points at them is used, and KVM_SET_SREGS with CR0.PG set may already walk CR3);
//   2. special registers: read the vCPU's current kvm_sregs, overwrite the segment, descriptor-table,
//      CR0/CR3/CR4 and EFER fields, write them back (apic_base, cr2, cr8 keep KVM's values);
//   3. general registers (KVM_SET_REGS), last, so rip/rsp/rflags land in the mode set just before.
// The targets are structural so the VMM's own classes (GuestMemory, Vcpu) fit without an adapter.
import type { BootPlan } from './boot-plan.js';
import type { DescriptorTable, GeneralRegisters, SegmentState } from './vcpu-state.js';

export interface BootMemoryTarget {
  write(gpa: number, bytes: Uint8Array): void;
}

/** The kvm_sregs fields a plan sets, named as KVM names them (`ldt` for LDTR). */
export interface KvmSregsFields {
  cs: SegmentState; ds: SegmentState; es: SegmentState; fs: SegmentState;
  gs: SegmentState; ss: SegmentState; tr: SegmentState; ldt: SegmentState;
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint;
  cr3: bigint;
  cr4: bigint;
  efer: bigint;
}

export interface BootVcpuTarget<S extends KvmSregsFields> {
  getSregs(): S;
  setSregs(s: S): void;
  setRegs(r: GeneralRegisters): void;
}

export function applyBootPlan<S extends KvmSregsFields>(plan: BootPlan, memory: BootMemoryTarget, vcpu: BootVcpuTarget<S>): void {
  for (const w of plan.writes) memory.write(w.gpa, w.bytes);
  const p = plan.vcpu.sregs;
  const current = vcpu.getSregs();
  vcpu.setSregs({
    ...current,
    cs: p.cs, ds: p.ds, es: p.es, fs: p.fs, gs: p.gs, ss: p.ss, tr: p.tr, ldt: p.ldtr,
    gdt: p.gdt, idt: p.idt, cr0: p.cr0, cr3: p.cr3, cr4: p.cr4, efer: p.efer,
  });
  vcpu.setRegs({ ...plan.vcpu.regs });
}
