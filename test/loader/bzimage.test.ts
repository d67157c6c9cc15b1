// Linux bzImage plans: a real Debian cloud kernel (fetched and cached by fixtures.ts) and a synthetic
// image, checked against boot.rst with readers that do not share code with the loader.
import { readFileSync } from 'node:fs';
import test from 'tape';
import type { BootPlan } from '../../src/loader/index.js';
import { planDirectBoot } from '../../src/loader/index.js';
import { memoryLayout } from '../../src/vm/memmap.js';
import { debianBzImage } from './fixtures.js';
import { PlanMemory, bhyveE820 } from './guest-memory.js';
import { gdtEntry, translate } from './inspect.js';
import { syntheticBzImage } from './synthetic.js';

const MiB = 2 ** 20;
const RSDP = 0xf2400;

/** Setup-header fields the loader writes (offset, size); every other header byte must be the image's. */
const WRITTEN_FIELDS: [number, number][] = [
  [0x210, 1], [0x214, 4], [0x218, 4], [0x21c, 4], [0x228, 4], [0x23c, 4], [0x250, 8],
];

function checkCommonLinux(t: test.Test, plan: BootPlan, file: Uint8Array, layout: { lowmem: number }, initrd: Uint8Array, cmdline: string): void {
  const mem = new PlanMemory(plan);
  const fdv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const setupSects = file[0x1f1] || 4;
  const syssize = fdv.getUint32(0x1f4, true);
  const pref = Number(fdv.getBigUint64(0x258, true));
  const initSize = fdv.getUint32(0x260, true);
  const initrdMax = fdv.getUint32(0x22c, true);
  const cmdlineSize = fdv.getUint32(0x238, true);
  const headerEnd = 0x202 + file[0x201]!;

  t.equal(plan.format, 'linux-bzimage', 'detected as a bzImage');
  const kernelWrite = plan.writes.find((w) => w.what === 'kernel');
  t.ok(kernelWrite, 'the protected-mode kernel is written');
  t.equal(kernelWrite?.gpa, pref, `kernel loaded at pref_address 0x${pref.toString(16)}`);
  const pm = file.subarray((setupSects + 1) * 512, (setupSects + 1) * 512 + syssize * 16);
  t.equal(kernelWrite?.bytes.length, pm.length, 'syssize * 16 bytes of kernel');
  t.ok(Buffer.from(mem.read(pref, 4096)).equals(Buffer.from(pm.subarray(0, 4096))), 'kernel bytes start the protected-mode part');
  t.ok(Buffer.from(mem.read(pref + pm.length - 4096, 4096)).equals(Buffer.from(pm.subarray(pm.length - 4096))), 'kernel bytes end with it');

  // Zero page at rsi.
  const zp = Number(plan.vcpu.regs.rsi);
  t.equal(zp, 0x7000, 'rsi = zero page at 0x7000');
  const z = mem.view(zp, 4096);
  let copied = true;
  for (let off = 0x1f1; off < headerEnd; off++) {
    if (WRITTEN_FIELDS.some(([o, n]) => off >= o && off < o + n)) continue;
    if (z.getUint8(off) !== file[off]) copied = false;
  }
  t.ok(copied, `setup header 0x1f1..0x${headerEnd.toString(16)} copied from the image`);
  t.equal(z.getUint32(0x202, true), 0x53726448, 'HdrS in the zero page');
  t.equal(z.getUint8(0x210), 0xff, 'type_of_loader = 0xff');
  t.equal(z.getUint32(0x214, true), pref, 'code32_start = load address');
  t.equal(z.getBigUint64(0x250, true), 0n, 'no setup_data');
  t.ok(mem.read(zp, 0x40).every((b) => b === 0), 'screen_info left empty');

  // Command line.
  const cmdPtr = z.getUint32(0x228, true) + z.getUint32(0xc8, true) * 2 ** 32;
  t.equal(mem.cstring(cmdPtr), cmdline, 'cmd_line_ptr points at the command line');
  t.ok(cmdline.length <= cmdlineSize, 'within cmdline_size');
  t.ok(cmdPtr + cmdline.length + 1 <= 0xa0000, 'command line below 0xa0000');

  // Initrd (boot.rst: below initrd_addr_max, as high as possible; page aligned here).
  const rdImage = z.getUint32(0x218, true) + z.getUint32(0xc0, true) * 2 ** 32;
  const rdSize = z.getUint32(0x21c, true) + z.getUint32(0xc4, true) * 2 ** 32;
  t.equal(rdSize, initrd.length, 'ramdisk_size');
  t.equal(rdImage % 4096, 0, 'ramdisk_image is page aligned');
  t.ok(rdImage + rdSize - 1 <= initrdMax, 'initrd ends at or below initrd_addr_max');
  t.ok(rdImage + rdSize <= layout.lowmem, 'initrd inside lowmem');
  t.ok(rdImage >= pref + initSize || rdImage + rdSize <= pref, "initrd outside the kernel's init_size");
  t.ok(Math.min(layout.lowmem, initrdMax + 1) - (rdImage + rdSize) < 4096, 'initrd placed as high as RAM and initrd_addr_max allow');
  t.ok(Buffer.from(mem.read(rdImage, rdSize)).equals(Buffer.from(initrd)), 'initrd bytes');

  // ACPI RSDP (protocol 2.14+).
  t.equal(z.getBigUint64(0x70, true), BigInt(RSDP), 'acpi_rsdp_addr');

  // CPU state: 64-bit boot protocol.
  const { regs, sregs } = plan.vcpu;
  t.equal(regs.rip, BigInt(pref + 0x200), '64-bit entry = load address + 0x200');
  t.equal(regs.rflags & 0x200n, 0n, 'interrupts off');
  t.equal(regs.rflags & 2n, 2n, 'rflags bit 1 set');
  t.equal(sregs.cs.selector, 0x10, 'CS = __BOOT_CS');
  for (const s of ['ds', 'es', 'ss'] as const) t.equal(sregs[s].selector, 0x18, `${s.toUpperCase()} = __BOOT_DS`);
  t.ok(sregs.cs.l && !sregs.cs.db, 'CS is a 64-bit code segment');
  t.equal(sregs.cr0 & 0x8000_0001n, 0x8000_0001n, 'CR0.PE and CR0.PG');
  t.equal(sregs.cr4 & 0x20n, 0x20n, 'CR4.PAE');
  t.equal(sregs.efer & 0x500n, 0x500n, 'EFER.LME and EFER.LMA');
  t.equal(sregs.tr.type, 11, 'TR is a busy TSS');

  // The GDT in memory says what the segment state says.
  const gdtBase = Number(sregs.gdt.base);
  const cs = gdtEntry(mem, gdtBase, 0x10);
  t.deepEqual([cs.base, cs.limit, cs.type, cs.s, cs.present, cs.l, cs.db, cs.g], [0, 0xffffffff, 11, true, true, true, false, true], 'GDT 0x10: flat 64-bit execute/read');
  const ds = gdtEntry(mem, gdtBase, 0x18);
  t.deepEqual([ds.base, ds.limit, ds.type, ds.s, ds.present, ds.db, ds.g], [0, 0xffffffff, 3, true, true, true, true], 'GDT 0x18: flat read/write');
  const tss = gdtEntry(mem, gdtBase, 0x20);
  t.deepEqual([tss.base, tss.limit, tss.type, tss.s, tss.present], [Number(sregs.tr.base), sregs.tr.limit, 11, false, true], 'GDT 0x20: the busy TSS TR names');
  t.ok(sregs.gdt.limit >= 0x2f, 'GDT limit covers the 16-byte long-mode TSS descriptor');

  // Page tables identity-map the first 4 GiB: every 2 MiB page, at its first and last byte.
  let identity = true;
  for (let va = 0; va < 2 ** 32; va += 2 * MiB) {
    if (translate(mem, sregs.cr3, va) !== va || translate(mem, sregs.cr3, va + 2 * MiB - 1) !== va + 2 * MiB - 1) {
      identity = false;
      break;
    }
  }
  t.ok(identity, 'page tables identity-map [0, 4 GiB)');

  // Writes are sorted and disjoint.
  let disjoint = true;
  for (let i = 1; i < plan.writes.length; i++) {
    const a = plan.writes[i - 1]!;
    if (a.gpa + a.bytes.length > plan.writes[i]!.gpa) disjoint = false;
  }
  t.ok(disjoint, 'writes are sorted and do not overlap');
}

test('bzImage: a real Debian cloud kernel', (t) => {
  const fx = debianBzImage();
  if ('skip' in fx) {
    t.comment(`SKIP real bzImage: ${fx.skip}`);
    t.end();
    return;
  }
  const file = new Uint8Array(readFileSync(fx.path));
  const layout = memoryLayout(512 * MiB);
  const e820 = bhyveE820(layout.lowmem, layout.highmem);
  const initrd = new Uint8Array(3 * MiB + 123).map((_, i) => (i * 13) & 0xff);
  const cmdline = 'console=ttyS0 earlyprintk=serial root=/dev/vda1 panic=-1';
  const plan = planDirectBoot({ kernel: file, initrd, cmdline, layout, e820, rsdpAddress: RSDP });
  t.comment(plan.description.join(' | '));
  const version = new DataView(file.buffer, file.byteOffset).getUint16(0x206, true);
  t.ok(version >= 0x020c, `protocol ${version.toString(16)} >= 2.12`);
  checkCommonLinux(t, plan, file, layout, initrd, cmdline);

  // E820 in the zero page (boot_params.e820_entries at 0x1e8, table at 0x2d0, 20 bytes per entry).
  const mem = new PlanMemory(plan);
  const z = mem.view(0x7000, 4096);
  t.equal(z.getUint8(0x1e8), e820.length, 'e820_entries');
  const table = e820.map((_, i) => ({
    base: Number(z.getBigUint64(0x2d0 + i * 20, true)),
    length: Number(z.getBigUint64(0x2d0 + i * 20 + 8, true)),
    type: z.getUint32(0x2d0 + i * 20 + 16, true),
  }));
  t.deepEqual(table, e820, 'e820_table holds the map');
  t.end();
});

test('bzImage: synthetic image, memory above 4 GiB in the E820', (t) => {
  const file = syntheticBzImage();
  const layout = memoryLayout(4 * 1024 * MiB);
  const e820 = bhyveE820(layout.lowmem, layout.highmem);
  const initrd = new Uint8Array(64 * 1024).fill(0x5a);
  const plan = planDirectBoot({ kernel: file, initrd, cmdline: 'quiet', layout, e820, rsdpAddress: RSDP });
  checkCommonLinux(t, plan, file, layout, initrd, 'quiet');
  const z = new PlanMemory(plan).view(0x7000, 4096);
  t.equal(z.getUint8(0x1e8), 4, 'four E820 entries');
  t.equal(z.getBigUint64(0x2d0 + 3 * 20, true), 2n ** 32n, 'the high RAM entry starts at 4 GiB');
  t.equal(z.getBigUint64(0x2d0 + 3 * 20 + 8, true), BigInt(layout.highmem), 'and is highmem long');
  t.end();
});

test('bzImage: a relocatable kernel moves below pref_address when RAM is small', (t) => {
  const file = syntheticBzImage({ prefAddress: 0x1000000, initSize: 0x600000 });
  const layout = memoryLayout(20 * MiB);
  const plan = planDirectBoot({ kernel: file, layout, e820: bhyveE820(layout.lowmem, 0) });
  const k = plan.writes.find((w) => w.what === 'kernel')!;
  t.equal(k.gpa % 0x200000, 0, 'aligned to kernel_alignment');
  t.ok(k.gpa >= MiB && k.gpa + 0x600000 <= 20 * MiB, 'init_size fits in RAM');
  t.equal(plan.vcpu.regs.rip, BigInt(k.gpa + 0x200), 'entry follows the load address');
  const z = new PlanMemory(plan).view(0x7000, 4096);
  t.equal(z.getUint32(0x218, true), 0, 'no initrd: ramdisk_image 0');
  t.equal(z.getUint32(0x21c, true), 0, 'no initrd: ramdisk_size 0');
  t.equal(z.getBigUint64(0x70, true), 0n, 'no RSDP given: acpi_rsdp_addr 0');
  t.end();
});

test('bzImage: protocol 2.12/2.13 gets no acpi_rsdp_addr', (t) => {
  const file = syntheticBzImage({ version: 0x020c });
  const layout = memoryLayout(128 * MiB);
  const plan = planDirectBoot({ kernel: file, layout, e820: bhyveE820(layout.lowmem, 0), rsdpAddress: RSDP });
  t.equal(new PlanMemory(plan).u64(0x7000 + 0x70), 0n, 'acpi_rsdp_addr not written');
  t.ok(plan.description.some((l) => /RSDP address not passed/.test(l)), 'the plan says so');
  t.end();
});

test('bzImage: an fbuf framebuffer is described in screen_info as an EFI linear framebuffer', (t) => {
  const file = syntheticBzImage();
  const layout = memoryLayout(128 * MiB);
  const fb = { base: 0xc0000000, size: 32 * MiB, width: 800, height: 600, stride: 3200 };
  const plan = planDirectBoot({ kernel: file, layout, e820: bhyveE820(layout.lowmem, 0), framebuffer: fb });
  const z = new PlanMemory(plan).view(0x7000, 4096);
  t.equal(z.getUint8(0x0f), 0x70, 'orig_video_isVGA = VIDEO_TYPE_EFI');
  t.deepEqual([z.getUint16(0x12, true), z.getUint16(0x14, true), z.getUint16(0x16, true)], [800, 600, 32], 'lfb width, height, depth');
  t.equal(z.getUint32(0x18, true), 0xc0000000, 'lfb_base');
  t.equal(z.getUint32(0x1c, true), 32 * MiB, 'lfb_size in bytes');
  t.equal(z.getUint16(0x24, true), 3200, 'lfb_linelength');
  t.deepEqual([...new Uint8Array(z.buffer, z.byteOffset + 0x26, 8)], [8, 16, 8, 8, 8, 0, 8, 24], 'XRGB8888 channel sizes and positions');
  t.equal(z.getUint32(0x36, true), 0, 'no 64-bit base needed');
  const high = planDirectBoot({ kernel: file, layout, e820: bhyveE820(layout.lowmem, 0), framebuffer: { ...fb, base: 0x4_0000_0000 } });
  const zh = new PlanMemory(high).view(0x7000, 4096);
  t.deepEqual([zh.getUint32(0x18, true), zh.getUint32(0x3a, true), zh.getUint32(0x36, true)], [0, 4, 2], 'a base above 4 GiB: ext_lfb_base and VIDEO_CAPABILITY_64BIT_BASE');
  t.throws(() => planDirectBoot({ kernel: file, layout, e820: bhyveE820(layout.lowmem, 0), framebuffer: { ...fb, stride: 100 } }), /does not fit/, 'a stride shorter than a row');
  const none = new PlanMemory(planDirectBoot({ kernel: file, layout, e820: bhyveE820(layout.lowmem, 0) })).view(0x7000, 64);
  t.equal(none.getUint8(0x0f), 0, 'no fbuf: screen_info stays zero');
  t.end();
});
