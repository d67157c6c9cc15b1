// test-needs: kvm
// Register and segment access, vcpu_reset, capabilities and CPUID topology.
import test from 'tape';

import { Vm, VcpuCap } from '../../src/vm/index.js';
import { lockDir, newVm, withKvm } from './guest.js';

test('registers round-trip as bigint, including full 64-bit values', (t) =>
  withKvm(t, () => {
    const vm = newVm(1 << 20);
    const c = vm.vcpus[0]!;
    c.updateRegs({ rax: 0xffff_ffff_ffff_fffen, r15: 0x8000_0000_0000_0001n, rip: 0x1234n });
    const r = c.getRegs();
    t.equal(r.rax, 0xffff_ffff_ffff_fffen, 'rax');
    t.equal(r.r15, 0x8000_0000_0000_0001n, 'r15');
    t.equal(r.rip, 0x1234n, 'rip');
    t.equal(r.rflags & 2n, 2n, 'rflags bit 1 stays set');
    const s = c.getSregs();
    s.fs = { ...s.fs, base: 0xffff_8000_0000_0000n, selector: 0x2b };
    s.gdt = { base: 0x5000n, limit: 0x27 };
    c.setSregs(s);
    const s2 = c.getSregs();
    t.equal(s2.fs.base, 0xffff_8000_0000_0000n, 'fs.base');
    t.equal(s2.fs.selector, 0x2b, 'fs.selector');
    t.deepEqual(s2.gdt, { base: 0x5000n, limit: 0x27 }, 'gdt');
    vm.close();
  }));

test('vcpu_reset restores the architectural reset state', (t) =>
  withKvm(t, () => {
    const vm = newVm(1 << 20);
    const c = vm.vcpus[0]!;
    c.updateRegs({ rip: 0x4444n, rax: 5n });
    const s = c.getSregs();
    c.setSregs({ ...s, cr0: 0x11n, cs: { ...s.cs, base: 0n, selector: 0 } });
    c.reset();
    const r = c.getRegs();
    const s2 = c.getSregs();
    t.equal(r.rip, 0xfff0n, 'IP 0xfff0');
    t.equal(r.rax, 0n, 'rax cleared');
    t.equal(r.rdx, 0x600n, 'EDX holds the processor signature');
    t.equal(s2.cs.base, 0xffff0000n, 'CS base 0xffff0000');
    t.equal(s2.cs.selector, 0xf000, 'CS selector 0xf000');
    t.equal(s2.cr0, 0x60000010n, 'CR0 = CD | NW | ET');
    t.equal(s2.efer, 0n, 'EFER clear');
    vm.close();
  }));

test('capabilities are recorded; CPUID reflects topology, APIC IDs, hypervisor bit and x2APIC state', (t) =>
  withKvm(t, () => {
    const vm = Vm.open(`topo-${process.pid}`, { create: true, lockDir });
    vm.setTopology({ sockets: 2, cores: 2, threads: 2 });
    const cpus = vm.createVcpus(8);
    const c5 = cpus[5]!; // socket 1, core 0, thread 1
    t.equal(c5.cpuid(1).ebx >>> 24, 0b101, 'leaf 1 EBX[31:24] is the APIC ID (socket 1, core 0, thread 1)');
    t.equal((c5.cpuid(1).ebx >>> 16) & 0xff, 4, 'leaf 1 reports 4 logical processors per package');
    t.ok(c5.cpuid(1).ecx & (1 << 31), 'hypervisor bit set');
    t.ok(c5.cpuid(1).edx & (1 << 28), 'HTT set with more than one thread per package');
    t.deepEqual([c5.cpuid(0xb, 0).eax, c5.cpuid(0xb, 0).ebx, c5.cpuid(0xb, 0).edx], [1, 2, 5], 'leaf 0xB SMT level: shift 1, 2 threads, x2APIC ID 5');
    t.deepEqual([c5.cpuid(0xb, 1).eax, c5.cpuid(0xb, 1).ebx], [2, 4], 'leaf 0xB core level: shift 2, 4 per package');
    c5.setX2apicState(false);
    t.equal(c5.cpuid(1).ecx & (1 << 21), 0, 'x2APIC hidden when disabled');
    c5.setX2apicState(true);
    t.ok(c5.cpuid(1).ecx & (1 << 21), 'x2APIC offered when enabled');
    t.equal(c5.getCapability(VcpuCap.HaltExit), false, 'HALT_EXIT starts off');
    c5.setCapability(VcpuCap.HaltExit, true);
    c5.setCapability(VcpuCap.UnrestrictedGuest, true);
    t.equal(c5.getCapability(VcpuCap.HaltExit), true, 'HALT_EXIT recorded');
    t.throws(() => vm.createVcpus(1), /already/, 'vCPUs are created once');
    vm.close();
  }));
