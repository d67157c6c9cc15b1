// Shared assertions on a plan's CPU state, used by the PVH and Multiboot tests.
import type test from 'tape';
import type { BootPlan } from '../../src/loader/index.js';
import type { PlanMemory } from './guest-memory.js';
import { gdtEntry } from './inspect.js';

/** 32-bit protected mode, paging off, flat CS/DS/ES/SS, TR a busy TSS with limit 0x67 (PVH ABI; Multiboot 0.6.96 §3.2). */
export function checkFlat32(t: test.Test, plan: BootPlan, mem: PlanMemory): void {
  const { regs, sregs } = plan.vcpu;
  t.equal(sregs.cr0, 1n, 'CR0 = PE only (paging off)');
  t.equal(sregs.cr4, 0n, 'CR4 = 0');
  t.equal(sregs.efer, 0n, 'EFER = 0');
  t.equal(regs.rflags & 0x20300n, 0n, 'EFLAGS: VM, IF and TF clear');
  t.equal(regs.rflags & 2n, 2n, 'EFLAGS bit 1 set');
  const gdtBase = Number(sregs.gdt.base);
  for (const name of ['cs', 'ds', 'es', 'ss'] as const) {
    const s = sregs[name];
    const d = gdtEntry(mem, gdtBase, s.selector);
    t.ok(s.base === 0n && s.limit === 0xffffffff && s.db && !s.l && s.present && s.s && !s.unusable, `${name.toUpperCase()} flat 32-bit`);
    t.deepEqual([d.base, d.limit, d.type, d.db, d.present], [0, 0xffffffff, s.type, true, true], `${name.toUpperCase()} GDT descriptor matches`);
  }
  t.equal(sregs.cs.type & 0xa, 0xa, 'CS execute/read');
  t.equal(sregs.ds.type & 0xa, 0x2, 'DS read/write data');
  t.equal(sregs.tr.type, 11, 'TR busy 32-bit TSS');
  t.equal(sregs.tr.limit, 0x67, 'TR limit 0x67');
  t.ok(sregs.tr.present && !sregs.tr.unusable && !sregs.tr.s, 'TR usable system segment');
  const tr = gdtEntry(mem, gdtBase, sregs.tr.selector);
  t.deepEqual([tr.base, tr.limit, tr.type, tr.s], [Number(sregs.tr.base), 0x67, 11, false], 'TR GDT descriptor matches');
}

