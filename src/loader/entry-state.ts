// The two CPU states the boot protocols enter in, with the GDT (and page tables) written to guest memory
// to match:
// - long mode with paging (Linux 64-bit boot protocol, boot.rst "64-bit BOOT PROTOCOL");
// - 32-bit protected mode, paging off (PVH ABI: xen docs/misc/pvh.pandoc; Multiboot 0.6.96 §3.2
//   "Machine state").
// Each prepare* call claims its fixed low-memory areas at once (before the kernel is placed) and returns a
// function that builds the final state once the entry point is known.
import type { PlanBuilder } from './boot-plan.js';
import { bootSegments, buildGdt } from './gdt.js';
import { GDT_ADDR, PAGE_TABLES_ADDR, STACK_BASE, STACK_TOP, TSS_ADDR, TSS_LIMIT } from './low-memory.js';
import { identityMap4GiB } from './page-tables.js';
import type { GeneralRegisters, InitialVcpuState } from './vcpu-state.js';
import { CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME, unusableLdt, zeroGeneralRegisters } from './vcpu-state.js';

export type EnterAt = (entry: number, regs: Partial<GeneralRegisters>) => InitialVcpuState;

/** Writes GDT, TSS, stack and identity-mapped page tables for a long-mode entry. */
export function prepareLongMode(b: PlanBuilder): EnterAt {
  const segs = bootSegments(true, TSS_ADDR, TSS_LIMIT);
  const gdt = buildGdt(segs, true, GDT_ADDR);
  b.put(GDT_ADDR, gdt.bytes, 'GDT');
  b.put(TSS_ADDR, new Uint8Array(TSS_LIMIT + 1), 'TSS');
  b.put(STACK_BASE, new Uint8Array(0x1000), 'boot stack');
  const pt = identityMap4GiB(PAGE_TABLES_ADDR);
  b.put(PAGE_TABLES_ADDR, pt.bytes, 'page tables');
  return (entry, regs) => ({
    regs: { ...zeroGeneralRegisters(), rsp: BigInt(STACK_TOP), ...regs, rip: BigInt(entry) },
    sregs: {
      cs: segs.code, ds: segs.data, es: segs.data, fs: segs.data, gs: segs.data, ss: segs.data,
      tr: segs.tss, ldtr: unusableLdt(),
      gdt: gdt.gdtr,
      // No IDT: every protocol here enters with interrupts off and the kernel loads its own.
      idt: { base: 0n, limit: 0 },
      cr0: CR0_PE | CR0_PG,
      cr3: pt.cr3,
      cr4: CR4_PAE,
      efer: EFER_LME | EFER_LMA,
    },
  });
}

/**
 * Writes GDT and stack for flat 32-bit protected mode with paging off. `tssBase` is where TR points:
 * the PVH ABI asks for base 0 (nothing is written there); otherwise the loader's zeroed TSS_ADDR.
 */
export function prepareProtectedMode(b: PlanBuilder, tssBase: number): EnterAt {
  const segs = bootSegments(false, tssBase, TSS_LIMIT);
  const gdt = buildGdt(segs, false, GDT_ADDR);
  b.put(GDT_ADDR, gdt.bytes, 'GDT');
  if (tssBase === TSS_ADDR) b.put(TSS_ADDR, new Uint8Array(TSS_LIMIT + 1), 'TSS');
  b.put(STACK_BASE, new Uint8Array(0x1000), 'boot stack');
  return (entry, regs) => ({
    regs: { ...zeroGeneralRegisters(), rsp: BigInt(STACK_TOP), ...regs, rip: BigInt(entry) },
    sregs: {
      cs: segs.code, ds: segs.data, es: segs.data, fs: segs.data, gs: segs.data, ss: segs.data,
      tr: segs.tss, ldtr: unusableLdt(),
      gdt: gdt.gdtr,
      idt: { base: 0n, limit: 0 },
      cr0: CR0_PE,
      cr3: 0n,
      cr4: 0n,
      efer: 0n,
    },
  });
}
