// test-needs: kvm
// Boot plans run under KVM: the toolchain-built PVH and Multiboot kernels report what they see in their
// entry registers and memory over port 0x500, then halt with interrupts off. Skips without /dev/kvm.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'tape';
import type { BootPlan } from '../../src/loader/index.js';
import { applyBootPlan, planDirectBoot } from '../../src/loader/index.js';
import { e820FromLayout } from '../../src/platform/e820.js';
import type { Vm } from '../../src/vm/index.js';
import { SuspendHow } from '../../src/vm/index.js';
import { loadAddon } from '../../src/native.js';
import { newVm, withKvm } from '../vm/guest.js';
import { debianBzImage } from './fixtures.js';
import { bhyveE820 } from './guest-memory.js';
import { buildAoutKernel, buildMultibootElf, buildPvhKernel, toolchainMissing } from './toolchain.js';

const MiB = 2 ** 20;
/** Why these tests cannot run here: no assembler/linker, or no built addon (withKvm covers /dev/kvm). */
function skipReason(): string | undefined {
  const tools = toolchainMissing();
  if (tools) return tools;
  try {
    loadAddon();
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}
const missing = skipReason();
if (missing) console.log(`# skipping loader KVM tests: ${missing}`);

function le32(s: string): number {
  return Buffer.from(s, 'latin1').readUInt32LE(0);
}

/** Plans `kernel` for a fresh VM, applies the plan, runs to the halt; returns the dwords the guest sent. */
async function boot(kernel: Uint8Array, cmdline: string): Promise<{ reports: number[]; status: number; plan: BootPlan; vm: Vm }> {
  const vm = newVm(64 * MiB);
  const layout = vm.memory.layout;
  const plan = planDirectBoot({ kernel, cmdline, layout, e820: bhyveE820(layout.lowmem, layout.highmem), initrd: new Uint8Array(8192).fill(3) });
  applyBootPlan(plan, vm.memory, vm.vcpus[0]!);
  const reports: number[] = [];
  vm.registerPio(0x500, 4, (_c, _port, _size, write, value) => {
    if (write) reports.push(value >>> 0);
    return 0;
  });
  const r = await vm.run();
  return { reports, status: r.status, plan, vm };
}

test('KVM: a PVH kernel starts at its note entry with hvm_start_info in ebx', { skip: missing !== undefined }, (t) =>
  withKvm(t, async () => {
    for (const bits of [64, 32] as const) {
      const { reports, status, vm } = await boot(buildPvhKernel(bits).bytes, 'cons');
      t.equal(status, 2, `ELF${bits}: halted with interrupts off (status 2)`);
      t.deepEqual(reports, [0x336ec578, le32('cons'), le32('TSBH'), 0, 0x12345678],
        `ELF${bits}: read the start_info magic, the command line, .data, a zero bss and used the stack`);
      const sregs = vm.vcpus[0]!.getSregs();
      t.equal(sregs.tr.type, 11, `ELF${bits}: TR still the busy TSS`);
      vm.close();
    }
  }));

test('KVM: Multiboot kernels start with eax = 0x2BADB002 and the info block in ebx', { skip: missing !== undefined }, (t) =>
  withKvm(t, async () => {
    const elf = await boot(buildMultibootElf().bytes, 'boot');
    t.equal(elf.status, 2, 'ELF32: halted with interrupts off');
    t.deepEqual(elf.reports, [0x2badb002, 0x1 | 0x4 | 0x8 | 0x40 | 0x200, le32('boot'), le32('TSBH'), 0],
      'ELF32: magic, info flags, command line, .data and a zero bss');
    elf.vm.close();
    const aout = await boot(buildAoutKernel().bytes, 'aout');
    t.equal(aout.status, 2, 'a.out kludge: halted with interrupts off');
    t.deepEqual(aout.reports, [0x2badb002, 0x1 | 0x4 | 0x8 | 0x40 | 0x200, le32('aout'), le32('TSBH'), 0],
      'a.out kludge: magic, info flags, command line, data and a zero bss');
    aout.vm.close();
  }));

// The project's own freestanding guest (firmware/testguest, a PVH ELF) confirms over COM1 that it found
// a valid hvm_start_info and our command line. COM1 is a stub here: transmit captured, LSR always ready.
const TESTGUEST = fileURLToPath(new URL('../../firmware/testguest/out/testguest.elf', import.meta.url));

test('KVM: firmware/testguest boots through the PVH plan', { skip: missing !== undefined }, (t) =>
  withKvm(t, async () => {
    if (!existsSync(TESTGUEST)) {
      t.comment(`SKIP: ${TESTGUEST} is not built (make -C firmware/testguest)`);
      return;
    }
    const vm = newVm(128 * MiB);
    const layout = vm.memory.layout;
    const plan = planDirectBoot({
      kernel: new Uint8Array(readFileSync(TESTGUEST)), cmdline: 'loader-check', layout, e820: e820FromLayout(layout),
    });
    t.equal(plan.format, 'pvh-elf', 'testguest is a PVH ELF');
    applyBootPlan(plan, vm.memory, vm.vcpus[0]!);
    let out = '';
    vm.registerPio(0x3f8, 8, (_c, port, _size, write, value) => {
      if (write && port === 0x3f8) {
        out += String.fromCharCode(value & 0xff);
        if (out.includes('\n') && /TESTGUEST READY/.test(out)) vm.suspend(SuspendHow.Halt);
        return;
      }
      return port === 0x3fd ? 0x60 : 0;
    });
    const stop = setTimeout(() => vm.suspend(SuspendHow.Halt), 20_000);
    await vm.run();
    clearTimeout(stop);
    vm.close();
    t.match(out, /TESTGUEST READY start_info=ok cmdline="loader-check"/, 'the guest read start_info and the command line');
  }));

// The real bzImage is run for a few seconds only: a wrong entry state (GDT, page tables, CS) triple-faults at
// once, while a right one leaves it inside the kernel's init_size area: still in the decompressor (a physical
// address, as under kvm_pvm, where Linux crawls) or already in the kernel proper, which runs at its virtual
// mapping __START_KERNEL_map + physical (as on hardware-like KVM, the nested L1's included).
test('KVM: the Debian bzImage runs from its 64-bit entry without faulting', { skip: missing !== undefined }, (t) =>
  withKvm(t, async () => {
    const fx = debianBzImage();
    if ('skip' in fx) {
      t.skip(`real bzImage: ${fx.skip}`);
      return;
    }
    const vm = newVm(256 * MiB);
    const layout = vm.memory.layout;
    const plan = planDirectBoot({
      // nokaslr: the kernel proper then runs at __START_KERNEL_map + its physical address, which the check below uses.
      kernel: new Uint8Array(readFileSync(fx.path)), cmdline: 'console=ttyS0 nokaslr', layout, e820: e820FromLayout(layout),
    });
    applyBootPlan(plan, vm.memory, vm.vcpus[0]!);
    const kernel = plan.writes.find((w) => w.what === 'kernel')!;
    const initSize = readInitSize(plan);
    vm.registerPio(0x3f8, 8, (_c, port, _size, write) => (write ? undefined : port === 0x3fd ? 0x60 : 0));
    const stop = setTimeout(() => vm.suspend(SuspendHow.Halt), 3000);
    const r = await vm.run();
    clearTimeout(stop);
    const rip = vm.vcpus[0]!.getRegs().rip;
    vm.close();
    t.equal(r.status, 2, 'still running when stopped (no triple fault, status 2 from our halt)');
    const START_KERNEL_MAP = 0xffffffff80000000n;
    const virtual = rip >= START_KERNEL_MAP;
    const phys = virtual ? rip - START_KERNEL_MAP : rip;
    t.ok(phys >= BigInt(kernel.gpa) && phys < BigInt(kernel.gpa + initSize),
      `rip 0x${rip.toString(16)} inside the kernel's init_size area (${virtual ? 'the kernel proper, at its virtual mapping' : 'the decompressor'})`);
  }));

/** init_size from the zero page the plan wrote (boot_params 0x260). */
function readInitSize(plan: BootPlan): number {
  const zp = plan.writes.find((w) => w.what === 'zero page')!;
  return new DataView(zp.bytes.buffer, zp.bytes.byteOffset).getUint32(0x260, true);
}
