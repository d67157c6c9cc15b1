// PVH plans for ELF kernels built here with as/ld, read back against start_info.h and the PVH ABI
// (xen docs/misc/pvh.pandoc).
import test from 'tape';
import { detectFormat, planDirectBoot } from '../../src/loader/index.js';
import { memoryLayout } from '../../src/vm/memmap.js';
import { PlanMemory, bhyveE820 } from './guest-memory.js';
import { checkFlat32 } from './checks.js';
import { buildPvhKernel, toolchainMissing } from './toolchain.js';

const MiB = 2 ** 20;
const missing = toolchainMissing();

for (const bits of [64, 32] as const) {
  test(`PVH: ELF${bits} kernel with a ${bits === 64 ? 8 : 4}-byte PHYS32_ENTRY note`, { skip: missing !== undefined }, (t) => {
    const k = buildPvhKernel(bits);
    const layout = memoryLayout(256 * MiB);
    const e820 = bhyveE820(layout.lowmem, layout.highmem);
    const initrd = new Uint8Array(5000).map((_, i) => i & 0xff);
    const cmdline = 'console=hvc0 init=/bin/sh';
    t.equal(detectFormat(k.bytes), 'pvh-elf', 'detected as PVH');
    const plan = planDirectBoot({ kernel: k.bytes, initrd, cmdline, layout, e820, rsdpAddress: 0xf2400 });
    const mem = new PlanMemory(plan);
    t.comment(plan.description.join(' | '));

    // Segments where nm says the symbols are.
    const text = k.section('.text');
    t.ok(Buffer.from(mem.read(k.symbols.get('pvh_start')!, text.length)).equals(Buffer.from(text)), '.text at its address');
    t.equal(mem.cstring(k.symbols.get('marker')!, 16), 'TSBHYVE-PVH-DATA', '.data at its address');
    const bssStart = k.symbols.get('bss_start')!;
    const bssEnd = k.symbols.get('bss_end')!;
    t.ok(mem.written(bssStart) && mem.written(bssEnd - 1), 'bss is explicitly zeroed');
    t.ok(mem.read(bssStart, bssEnd - bssStart).every((b) => b === 0), 'bss reads as zeros');

    // Registers.
    t.equal(plan.vcpu.regs.rip, BigInt(k.symbols.get('pvh_start')!), 'rip = the note entry');
    const si = Number(plan.vcpu.regs.rbx);
    checkFlat32(t, plan, mem);
    t.equal(plan.vcpu.sregs.tr.base, 0n, 'PVH TR base 0');

    // hvm_start_info (start_info.h).
    const v = mem.view(si, 56);
    t.equal(v.getUint32(0, true), 0x336ec578, 'magic');
    t.equal(v.getUint32(4, true), 1, 'version 1');
    t.equal(v.getUint32(12, true), 1, 'nr_modules = 1');
    t.equal(mem.cstring(Number(v.getBigUint64(24, true))), cmdline, 'cmdline_paddr -> the command line');
    t.equal(v.getBigUint64(32, true), 0xf2400n, 'rsdp_paddr');
    const mod = mem.view(Number(v.getBigUint64(16, true)), 32);
    const modAddr = Number(mod.getBigUint64(0, true));
    t.equal(Number(mod.getBigUint64(8, true)), initrd.length, 'module size');
    t.equal(modAddr % 4096, 0, 'module page aligned');
    t.ok(Buffer.from(mem.read(modAddr, initrd.length)).equals(Buffer.from(initrd)), 'module bytes are the initrd');
    t.ok(modAddr + initrd.length <= layout.lowmem, 'module inside RAM');
    const n = v.getUint32(48, true);
    t.equal(n, e820.length, 'memmap_entries');
    const mm = mem.view(Number(v.getBigUint64(40, true)), n * 24);
    const map = Array.from({ length: n }, (_, i) => ({
      base: Number(mm.getBigUint64(i * 24, true)), length: Number(mm.getBigUint64(i * 24 + 8, true)), type: mm.getUint32(i * 24 + 16, true),
    }));
    t.deepEqual(map, e820, 'memory map = the E820 given');
    t.end();
  });
}

test('PVH: no initrd, no RSDP, empty command line', { skip: missing !== undefined }, (t) => {
  const k = buildPvhKernel(64);
  const layout = memoryLayout(64 * MiB);
  const plan = planDirectBoot({ kernel: k.bytes, layout, e820: bhyveE820(layout.lowmem, 0) });
  const mem = new PlanMemory(plan);
  const v = mem.view(Number(plan.vcpu.regs.rbx), 56);
  t.equal(v.getUint32(12, true), 0, 'nr_modules = 0');
  t.equal(v.getBigUint64(16, true), 0n, 'modlist_paddr = 0');
  t.equal(v.getBigUint64(32, true), 0n, 'rsdp_paddr = 0');
  t.equal(mem.cstring(Number(v.getBigUint64(24, true))), '', 'empty command line');
  t.end();
});

test('PVH: the entry note is also found through the section headers when there is no PT_NOTE', { skip: missing !== undefined }, (t) => {
  const k = buildPvhKernel(64);
  const copy = new Uint8Array(k.bytes);
  const dv = new DataView(copy.buffer);
  const phoff = Number(dv.getBigUint64(32, true));
  let removed = 0;
  for (let i = 0; i < dv.getUint16(56, true); i++) {
    if (dv.getUint32(phoff + i * 56, true) === 4) {
      dv.setUint32(phoff + i * 56, 0, true); // PT_NOTE -> PT_NULL
      removed++;
    }
  }
  t.equal(removed, 1, 'the PT_NOTE header was turned into PT_NULL');
  t.equal(detectFormat(copy), 'pvh-elf', 'still detected as PVH (SHT_NOTE section)');
  const layout = memoryLayout(64 * MiB);
  const plan = planDirectBoot({ kernel: copy, layout, e820: bhyveE820(layout.lowmem, 0) });
  t.equal(plan.vcpu.regs.rip, BigInt(k.symbols.get('pvh_start')!), 'same entry');
  t.end();
});
