// Multiboot v1 plans for an ELF32 kernel and an a.out-kludge flat image built here with as/ld/objcopy,
// read back against the Multiboot 0.6.96 spec §3.3 (boot information format).
import test from 'tape';
import type { BootPlan } from '../../src/loader/index.js';
import { detectFormat, planDirectBoot } from '../../src/loader/index.js';
import { memoryLayout } from '../../src/vm/memmap.js';
import { PlanMemory, bhyveE820 } from './guest-memory.js';
import { checkFlat32 } from './checks.js';
import { buildAoutKernel, buildMultibootElf, toolchainMissing } from './toolchain.js';

const MiB = 2 ** 20;
const missing = toolchainMissing();

function checkInfo(t: test.Test, plan: BootPlan, e820: { base: number; length: number; type: number }[], lowmem: number, cmdline: string, initrd: Uint8Array): void {
  const mem = new PlanMemory(plan);
  t.equal(plan.vcpu.regs.rax, 0x2badb002n, 'eax = 0x2BADB002');
  const info = Number(plan.vcpu.regs.rbx);
  const v = mem.view(info, 88);
  const flags = v.getUint32(0, true);
  t.ok(flags & 1, 'flags[0]: mem_lower/mem_upper');
  t.equal(v.getUint32(4, true), 640, 'mem_lower = 640 KiB');
  t.equal(v.getUint32(8, true), (lowmem - MiB) / 1024, 'mem_upper = KiB from 1 MiB to the end of low RAM');
  t.ok(flags & 4, 'flags[2]: cmdline');
  t.equal(mem.cstring(v.getUint32(16, true)), cmdline, 'cmdline');
  t.ok(flags & 8, 'flags[3]: modules');
  t.equal(v.getUint32(20, true), 1, 'mods_count = 1');
  const mod = mem.view(v.getUint32(24, true), 16);
  const start = mod.getUint32(0, true);
  t.equal(mod.getUint32(4, true) - start, initrd.length, 'mod_end - mod_start = initrd size');
  t.equal(start % 4096, 0, 'module page aligned');
  t.ok(Buffer.from(mem.read(start, initrd.length)).equals(Buffer.from(initrd)), 'module bytes');
  t.equal(mem.cstring(mod.getUint32(8, true)), 'initrd', 'module string');
  t.ok(flags & 0x40, 'flags[6]: mmap');
  const mmapLen = v.getUint32(44, true);
  const mmapAddr = v.getUint32(48, true);
  // Walk size-prefixed entries as the spec describes: the next entry is at addr + size + 4.
  const entries: { base: number; length: number; type: number }[] = [];
  for (let p = mmapAddr; p < mmapAddr + mmapLen;) {
    const e = mem.view(p, 24);
    const size = e.getUint32(0, true);
    entries.push({ base: Number(e.getBigUint64(4, true)), length: Number(e.getBigUint64(12, true)), type: e.getUint32(20, true) });
    p += size + 4;
  }
  t.deepEqual(entries, e820, 'mmap = the E820 given');
  t.ok(flags & 0x200, 'flags[9]: boot_loader_name');
  t.equal(mem.cstring(v.getUint32(64, true)), 'tsbhyve', 'boot_loader_name');
  t.equal(flags & 0x1800, 0, 'no VBE/framebuffer info claimed');
  checkFlat32(t, plan, mem);
}

test('Multiboot: ELF32 kernel', { skip: missing !== undefined }, (t) => {
  const k = buildMultibootElf();
  const layout = memoryLayout(128 * MiB);
  const e820 = bhyveE820(layout.lowmem, 0);
  const initrd = new Uint8Array(9000).fill(0xa5);
  t.equal(detectFormat(k.bytes), 'multiboot', 'detected as Multiboot');
  const plan = planDirectBoot({ kernel: k.bytes, initrd, cmdline: 'kernel.elf debug', layout, e820 });
  const mem = new PlanMemory(plan);
  t.equal(plan.vcpu.regs.rip, BigInt(k.symbols.get('mb_start')!), 'entry = e_entry');
  const text = k.section('.text');
  t.ok(Buffer.from(mem.read(k.symbols.get('mb_start')!, text.length)).equals(Buffer.from(text)), '.text at its address');
  t.equal(mem.cstring(k.symbols.get('marker')!, 15), 'TSBHYVE-MB-DATA', '.data at its address');
  const bs = k.symbols.get('bss_start')!;
  const be = k.symbols.get('bss_end')!;
  t.ok(mem.written(bs) && mem.written(be - 1) && mem.read(bs, be - bs).every((b) => b === 0), 'bss zeroed');
  checkInfo(t, plan, e820, layout.lowmem, 'kernel.elf debug', initrd);
  t.end();
});

test('Multiboot: a.out kludge flat image', { skip: missing !== undefined }, (t) => {
  const k = buildAoutKernel();
  const layout = memoryLayout(64 * MiB);
  const e820 = bhyveE820(layout.lowmem, 0);
  const initrd = new Uint8Array(100).fill(1);
  t.equal(detectFormat(k.bytes), 'multiboot', 'detected as Multiboot');
  const plan = planDirectBoot({ kernel: k.bytes, initrd, cmdline: 'x', layout, e820 });
  const mem = new PlanMemory(plan);
  const start = k.symbols.get('start')!;
  t.equal(plan.vcpu.regs.rip, BigInt(k.symbols.get('entry')!), 'entry = entry_addr');
  t.ok(Buffer.from(mem.read(start, k.bytes.length)).equals(Buffer.from(k.bytes)), 'the file lands at load_addr');
  t.equal(mem.cstring(k.symbols.get('marker')!, 17), 'TSBHYVE-AOUT-DATA', 'data at its linked address');
  const le = k.symbols.get('load_end')!;
  const be = k.symbols.get('bss_end')!;
  t.ok(be > le && mem.written(le) && mem.written(be - 1), 'load_end_addr..bss_end_addr is written');
  t.ok(mem.read(le, be - le).every((b) => b === 0), 'and zeroed');
  t.notOk(mem.written(be), 'nothing past bss_end_addr');
  checkInfo(t, plan, e820, layout.lowmem, 'x', initrd);
  t.end();
});
