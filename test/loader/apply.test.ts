// applyBootPlan against a recording target: memory first, then sregs merged over KVM's own values,
// then regs; LDTR goes to KVM's `ldt` field.
import test from 'tape';
import type { KvmSregsFields } from '../../src/loader/index.js';
import { applyBootPlan, planDirectBoot } from '../../src/loader/index.js';
import { memoryLayout } from '../../src/vm/memmap.js';
import { bhyveE820 } from './guest-memory.js';
import { syntheticBzImage } from './synthetic.js';

type FakeSregs = KvmSregsFields & { cr2: bigint; cr8: bigint; apicBase: bigint };

test('applyBootPlan: order and field mapping', (t) => {
  const layout = memoryLayout(128 * 2 ** 20);
  const plan = planDirectBoot({ kernel: syntheticBzImage(), cmdline: 'a', layout, e820: bhyveE820(layout.lowmem, 0) });
  const log: string[] = [];
  const blank = { selector: 0, base: 0n, limit: 0xffff, type: 3, present: true, dpl: 0, db: false, s: true, l: false, g: false, avl: false, unusable: false };
  const before: FakeSregs = {
    cs: blank, ds: blank, es: blank, fs: blank, gs: blank, ss: blank, tr: blank, ldt: blank,
    gdt: { base: 0n, limit: 0xffff }, idt: { base: 0n, limit: 0xffff },
    cr0: 0x60000010n, cr2: 7n, cr3: 0n, cr4: 0n, cr8: 5n, efer: 0n, apicBase: 0xfee00900n,
  };
  let written: FakeSregs | undefined;
  applyBootPlan(plan, { write: (gpa) => log.push(`mem ${gpa.toString(16)}`) }, {
    getSregs: () => {
      log.push('getSregs');
      return before;
    },
    setSregs: (s) => {
      log.push('setSregs');
      written = s;
    },
    setRegs: (r) => log.push(`setRegs rip=${r.rip.toString(16)}`),
  });
  const memOps = log.filter((l) => l.startsWith('mem'));
  t.equal(memOps.length, plan.writes.length, 'every write applied');
  t.deepEqual(log.slice(memOps.length), ['getSregs', 'setSregs', `setRegs rip=${plan.vcpu.regs.rip.toString(16)}`], 'memory, then sregs, then regs');
  t.equal(written?.apicBase, 0xfee00900n, "KVM's apic_base kept");
  t.equal(written?.cr2, 7n, 'cr2 kept');
  t.equal(written?.cr8, 5n, 'cr8 kept');
  t.deepEqual(written?.ldt, plan.vcpu.sregs.ldtr, 'LDTR mapped to ldt');
  t.equal(written?.cr3, plan.vcpu.sregs.cr3, 'cr3 from the plan');
  t.deepEqual(written?.cs, plan.vcpu.sregs.cs, 'cs from the plan');
  t.end();
});
