// The vCPU state a boot plan starts the BSP in. The shapes follow KVM's struct kvm_regs and
// struct kvm_sregs (Linux include/uapi/asm-x86/kvm.h) field for field, so the VMM side copies them 1:1:
//   GeneralRegisters -> kvm_regs (KVM_SET_REGS)
//   SegmentState     -> kvm_segment, DescriptorTable -> kvm_dtable
//   SpecialRegisters -> the listed kvm_sregs fields (KVM_SET_SREGS); fields not listed here (cr2, cr8,
//                       apic_base, interrupt_bitmap) keep the values KVM_GET_SREGS returned.
// Every 64-bit register is a bigint; small fields are numbers or booleans (booleans map to 0/1).

// The register shapes are the VMM's own (src/vm/registers.ts), so a plan applies without conversion.
import type { DescriptorTable, Regs, Segment } from '../vm/registers.js';

/** kvm_regs: rax..r15, rip, rflags. */
export type GeneralRegisters = Regs;

/**
 * kvm_segment: the hidden (cached) part of a segment register. `limit` is byte-granular, already scaled by `g`
 * (0xffffffff for a flat 4 GiB segment); `type` is the 4-bit descriptor type (Intel SDM vol. 3 §3.4.5.1).
 */
export type SegmentState = Segment;
export type { DescriptorTable };

/** The kvm_sregs fields a boot plan sets (kvm_sregs names `ldt` what is called `ldtr` here). */
export interface SpecialRegisters {
  cs: SegmentState; ds: SegmentState; es: SegmentState; fs: SegmentState;
  gs: SegmentState; ss: SegmentState; tr: SegmentState; ldtr: SegmentState;
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint;
  cr3: bigint;
  cr4: bigint;
  efer: bigint;
}

export interface InitialVcpuState {
  regs: GeneralRegisters;
  sregs: SpecialRegisters;
}

// Architectural bits (Intel SDM vol. 3 §2.5 control registers, §2.2.1 EFER).
export const CR0_PE = 1n << 0n;
export const CR0_PG = 1n << 31n;
export const CR4_PAE = 1n << 5n;
export const EFER_LME = 1n << 8n;
export const EFER_LMA = 1n << 10n;
/** RFLAGS bit 1 is reserved and always reads 1; IF (bit 9) stays clear: every protocol here enters with interrupts off. */
export const RFLAGS_FIXED = 0x2n;

// Descriptor types (SDM vol. 3 table 3-1 and table 3-2), with the accessed bit set so the CPU never
// needs to write the GDT.
export const SEG_TYPE_DATA_RW_ACCESSED = 0x3;
export const SEG_TYPE_CODE_RX_ACCESSED = 0xb;
export const SEG_TYPE_TSS_BUSY = 0xb;
export const SEG_TYPE_LDT = 0x2;

export function zeroGeneralRegisters(): GeneralRegisters {
  return {
    rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0n, rbp: 0n,
    r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n,
    rip: 0n, rflags: RFLAGS_FIXED,
  };
}

/** A flat 4 GiB code segment: 64-bit (l=1, db=0) or 32-bit (l=0, db=1). */
export function flatCode(selector: number, longMode: boolean): SegmentState {
  return {
    selector, base: 0n, limit: 0xffff_ffff, type: SEG_TYPE_CODE_RX_ACCESSED, present: true, dpl: 0,
    db: !longMode, s: true, l: longMode, g: true, avl: false, unusable: false,
  };
}

/** A flat 4 GiB read/write data segment. */
export function flatData(selector: number): SegmentState {
  return {
    selector, base: 0n, limit: 0xffff_ffff, type: SEG_TYPE_DATA_RW_ACCESSED, present: true, dpl: 0,
    db: true, s: true, l: false, g: true, avl: false, unusable: false,
  };
}

/** A busy TSS (type 11 is "busy 32-bit TSS" outside and "busy 64-bit TSS" inside IA-32e mode; VMX requires it). */
export function busyTss(selector: number, base: number, limit: number): SegmentState {
  return {
    selector, base: BigInt(base), limit, type: SEG_TYPE_TSS_BUSY, present: true, dpl: 0,
    db: false, s: false, l: false, g: false, avl: false, unusable: false,
  };
}

/** An unused LDTR (null selector). */
export function unusableLdt(): SegmentState {
  return {
    selector: 0, base: 0n, limit: 0, type: SEG_TYPE_LDT, present: false, dpl: 0,
    db: false, s: false, l: false, g: false, avl: false, unusable: true,
  };
}
