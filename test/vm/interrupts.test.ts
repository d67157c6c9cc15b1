// test-needs: kvm
// Interrupt delivery into a running 64-bit guest through the in-kernel LAPIC and IOAPIC: an MSI from
// a handler, then an IOAPIC pin pulse routed to another vector; plus argument checks on the calls.
import test from 'tape';

import { EventFd, SuspendHow, Vm } from '../../src/vm/index.js';
import { apicIdOf } from '../../src/vm/vm.js';
import { enterLongMode, load, newVm, withKvm } from './guest.js';

// Guest layout: code 0x1000, handlers 0x1800 (vector 0x30) and 0x1900 (vector 0x31), IDT 0x4000, GDT 0x5000.
// prettier-ignore
const MAIN = [
  0xbb, 0x00, 0x00, 0xe0, 0xfe,               // mov ebx, 0xfee00000 (LAPIC)
  0xc7, 0x83, 0xf0, 0x00, 0x00, 0x00, 0xff, 0x01, 0x00, 0x00, // mov dword [rbx+0xf0], 0x1ff (SVR: enable)
  0xb9, 0x00, 0x00, 0xc0, 0xfe,               // mov ecx, 0xfec00000 (IOAPIC)
  0xc7, 0x01, 0x1a, 0x00, 0x00, 0x00,         // mov dword [rcx], 0x1a       (IOREGSEL: pin 5 low)
  0xc7, 0x41, 0x10, 0x31, 0x00, 0x00, 0x00,   // mov dword [rcx+0x10], 0x31  (vector 0x31, edge, fixed, unmasked)
  0xc7, 0x01, 0x1b, 0x00, 0x00, 0x00,         // mov dword [rcx], 0x1b       (pin 5 high)
  0xc7, 0x41, 0x10, 0x00, 0x00, 0x00, 0x00,   // mov dword [rcx+0x10], 0     (destination APIC 0)
  0xfb,                                       // sti
  0xe6, 0x84,                                 // out 0x84, al  -> "ready": the test sends an MSI
  0xf4,                                       // idle: hlt
  0xeb, 0xfd,                                 // jmp idle
];
// prettier-ignore
const handler = (vector: number) => [
  0xb0, vector,                               // mov al, vector
  0xe6, 0x85,                                 // out 0x85, al
  0xc7, 0x83, 0xb0, 0x00, 0x00, 0x00, 0, 0, 0, 0, // mov dword [rbx+0xb0], 0 (EOI)
  0x48, 0xcf,                                 // iretq
];

function gate(handlerAddr: number): number[] {
  // 64-bit interrupt gate: offset, selector 8, type 0xe present
  return [handlerAddr & 0xff, (handlerAddr >> 8) & 0xff, 8, 0, 0, 0x8e, (handlerAddr >> 16) & 0xff, (handlerAddr >> 24) & 0xff, 0, 0, 0, 0, 0, 0, 0, 0];
}

test('MSI and IOAPIC pin interrupts reach a 64-bit guest', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    load(vm, 0x1000, MAIN);
    load(vm, 0x1800, handler(0x30));
    load(vm, 0x1900, handler(0x31));
    load(vm, 0x4000 + 0x30 * 16, [...gate(0x1800), ...gate(0x1900)]);
    // GDT: null, 64-bit code (selector 8), data (selector 16)
    // prettier-ignore
    load(vm, 0x5000, [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0x9a, 0xaf, 0, 0xff, 0xff, 0, 0, 0, 0x92, 0xcf, 0]);
    enterLongMode(vm, 0x1000);
    const c = vm.vcpus[0]!;
    c.setSregs({ ...c.getSregs(), idt: { base: 0x4000n, limit: 0x32 * 16 - 1 }, gdt: { base: 0x5000n, limit: 23 } });
    const got: number[] = [];
    vm.registerPio(0x84, 1, () => vm.lapicMsi(0xfee0_0000, 0x30)); // fixed, physical destination 0
    vm.registerPio(0x85, 1, (_c, _p, _s, _w, v) => {
      got.push(v);
      if (v === 0x30) vm.ioapicPulseIrq(5);
      else vm.suspend(SuspendHow.Poweroff);
    });
    const r = await vm.run();
    t.deepEqual(r, { status: 1, error: '' }, 'the run ended by the second interrupt handler');
    t.deepEqual(got, [0x30, 0x31], 'vector 0x30 from the MSI, then 0x31 from IOAPIC pin 5');
    vm.close();
  }));

function setupIdt(vm: ReturnType<typeof newVm>): void {
  load(vm, 0x1800, handler(0x30));
  load(vm, 0x4000 + 0x30 * 16, gate(0x1800));
  // prettier-ignore
  load(vm, 0x5000, [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0x9a, 0xaf, 0, 0xff, 0xff, 0, 0, 0, 0x92, 0xcf, 0]);
  enterLongMode(vm, 0x1000);
  const c = vm.vcpus[0]!;
  c.setSregs({ ...c.getSregs(), idt: { base: 0x4000n, limit: 0x31 * 16 - 1 }, gdt: { base: 0x5000n, limit: 23 } });
}

for (const reinit of [false, true]) {
test(`ioeventfd absorbs port writes without exits; irqfd on an MSI route interrupts the guest${reinit ? ' (registered before a vm_reinit)' : ''}`, (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    // prettier-ignore
    load(vm, 0x1000, [
      0xbb, 0x00, 0x00, 0xe0, 0xfe,                               // mov ebx, 0xfee00000
      0xc7, 0x83, 0xf0, 0x00, 0x00, 0x00, 0xff, 0x01, 0x00, 0x00, // SVR: enable the LAPIC
      0xfb,                                                       // sti
      0xe6, 0xe2, 0xe6, 0xe2, 0xe6, 0xe2, 0xe6, 0xe2, 0xe6, 0xe2, // 5 x out 0xe2, al (ioeventfd)
      0xe6, 0x84,                                                 // out 0x84, al
      0xf4, 0xeb, 0xfd,                                           // hlt; jmp back
    ]);
    setupIdt(vm);
    const notify = new EventFd();
    const irq = new EventFd();
    vm.ioeventfd(notify.fd, { addr: 0xe2, len: 1, pio: true });
    vm.setMsiRoute(64, 0xfee0_0000, 0x30);
    vm.irqfd(irq.fd, 64);
    if (reinit) {
      vm.reinit(); // a new KVM VM underneath: the route, irqfd and ioeventfd must be made again by the shim
      setupIdt(vm);
    }
    let seenE2 = 0;
    vm.registerPio(0xe2, 1, () => {
      seenE2++;
    });
    let counted = -1;
    vm.registerPio(0x84, 1, () => {
      counted = notify.take();
      irq.signal();
    });
    const vectors: number[] = [];
    vm.registerPio(0x85, 1, (_c, _p, _s, _w, v) => {
      vectors.push(v);
      vm.suspend(SuspendHow.Poweroff);
    });
    const r = await vm.run();
    t.deepEqual(r, { status: 1, error: '' }, 'ended by the interrupt handler');
    t.equal(counted, 5, 'the eventfd counted the 5 writes');
    t.equal(seenE2, 0, 'none of them exited to the port handler');
    t.deepEqual(vectors, [0x30], 'the irqfd signal arrived as vector 0x30 through the MSI route');
    vm.irqfd(irq.fd, 64, { deassign: true });
    vm.ioeventfd(notify.fd, { addr: 0xe2, len: 1, pio: true, deassign: true });
    notify.close();
    irq.close();
    vm.close();
  }));
}

test('a level-triggered irqfd on an IOAPIC pin: delivered once, resampled at EOI', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    // prettier-ignore
    load(vm, 0x1000, [
      0xbb, 0x00, 0x00, 0xe0, 0xfe,                               // mov ebx, 0xfee00000
      0xc7, 0x83, 0xf0, 0x00, 0x00, 0x00, 0xff, 0x01, 0x00, 0x00, // SVR: enable the LAPIC
      0xb9, 0x00, 0x00, 0xc0, 0xfe,                               // mov ecx, 0xfec00000
      0xc7, 0x01, 0x24, 0x00, 0x00, 0x00,                         // IOREGSEL = pin 10 low
      0xc7, 0x41, 0x10, 0x32, 0x80, 0x00, 0x00,                   // vector 0x32, level triggered
      0xc7, 0x01, 0x25, 0x00, 0x00, 0x00,                         // IOREGSEL = pin 10 high
      0xc7, 0x41, 0x10, 0x00, 0x00, 0x00, 0x00,                   // destination APIC 0
      0xfb,                                                       // sti
      0xe6, 0x84,                                                 // out 0x84 -> the test signals the irqfd
      0xf4, 0xeb, 0xfd,                                           // hlt; jmp back
    ]);
    // prettier-ignore
    load(vm, 0x1800, [
      0xb0, 0x32, 0xe6, 0x85,                                     // mov al, 0x32; out 0x85, al
      0xc7, 0x83, 0xb0, 0x00, 0x00, 0x00, 0, 0, 0, 0,             // EOI
      0xe6, 0x86,                                                 // out 0x86 -> the test checks the resample fd
      0x48, 0xcf,                                                 // iretq
    ]);
    load(vm, 0x4000 + 0x32 * 16, gate(0x1800));
    // prettier-ignore
    load(vm, 0x5000, [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0x9a, 0xaf, 0, 0xff, 0xff, 0, 0, 0, 0x92, 0xcf, 0]);
    enterLongMode(vm, 0x1000);
    const c = vm.vcpus[0]!;
    c.setSregs({ ...c.getSregs(), idt: { base: 0x4000n, limit: 0x33 * 16 - 1 }, gdt: { base: 0x5000n, limit: 23 } });
    const irq = new EventFd();
    const resample = new EventFd();
    vm.irqfd(irq.fd, Vm.ioapicGsi(10), { resampleFd: resample.fd });
    vm.registerPio(0x84, 1, () => irq.signal());
    const vectors: number[] = [];
    vm.registerPio(0x85, 1, (_c, _p, _s, _w, v) => {
      vectors.push(v);
    });
    let resampled = -1;
    vm.registerPio(0x86, 1, () => {
      resampled = resample.take();
      // give a second interrupt a chance to show up (it must not: the line was lowered at EOI)
      setTimeout(() => vm.suspend(SuspendHow.Poweroff), 50);
    });
    const r = await vm.run();
    t.equal(r.status, 1, 'status 1');
    t.deepEqual(vectors, [0x32], 'vector 0x32 delivered exactly once');
    t.equal(resampled, 1, 'the EOI signalled the resample eventfd');
    vm.irqfd(irq.fd, Vm.ioapicGsi(10), { deassign: true });
    irq.close();
    resample.close();
    vm.close();
  }));

test('an NMI reaches the guest through vector 2', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    // prettier-ignore
    load(vm, 0x1000, [
      0xbb, 0x00, 0x00, 0xe0, 0xfe,                               // mov ebx, 0xfee00000
      0xc7, 0x83, 0xf0, 0x00, 0x00, 0x00, 0xff, 0x01, 0x00, 0x00, // SVR: enable the LAPIC
      0xfa,                                                       // cli (NMIs are not masked by IF)
      0xe6, 0x84,                                                 // out 0x84, al -> the test injects an NMI
      0xf4, 0xeb, 0xfd,                                           // hlt; jmp back
    ]);
    // vector 2 handler: report and stop
    load(vm, 0x1800, [0xb0, 0x02, 0xe6, 0x85, 0xf4]);
    load(vm, 0x4000 + 2 * 16, gate(0x1800));
    // prettier-ignore
    load(vm, 0x5000, [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0x9a, 0xaf, 0, 0xff, 0xff, 0, 0, 0, 0x92, 0xcf, 0]);
    enterLongMode(vm, 0x1000);
    const c = vm.vcpus[0]!;
    c.setSregs({ ...c.getSregs(), idt: { base: 0x4000n, limit: 3 * 16 - 1 }, gdt: { base: 0x5000n, limit: 23 } });
    vm.registerPio(0x84, 1, () => vm.injectNmi(0));
    const got: number[] = [];
    vm.registerPio(0x85, 1, (_c, _p, _s, _w, v) => {
      got.push(v);
      vm.suspend(SuspendHow.Poweroff);
    });
    const r = await vm.run();
    t.deepEqual(r, { status: 1, error: '' }, 'ended by the NMI handler');
    t.deepEqual(got, [2], 'vector 2 ran with interrupts disabled');
    vm.close();
  }));

test('vm_inject_exception: delivered before the next instruction, with or without an error code', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    // prettier-ignore
    load(vm, 0x1000, [
      0xe6, 0x84,                                                 // out 0x84, al -> the test injects #GP(0x1234)
      0xf4, 0xeb, 0xfd,                                           // hlt; jmp back
    ]);
    // #UD handler (no error code): report and return to the interrupted instruction
    load(vm, 0x1800, [0xb0, 0x06, 0xe6, 0x86, 0x48, 0xcf]); // mov al, 6; out 0x86, al; iretq
    // #GP handler: pop the error code and report it, then stop
    load(vm, 0x1900, [0x58, 0xe7, 0x85, 0xf4]); // pop rax; out 0x85, eax; hlt
    load(vm, 0x4000 + 6 * 16, gate(0x1800));
    load(vm, 0x4000 + 13 * 16, gate(0x1900));
    // prettier-ignore
    load(vm, 0x5000, [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0x9a, 0xaf, 0, 0xff, 0xff, 0, 0, 0, 0x92, 0xcf, 0]);
    enterLongMode(vm, 0x1000);
    const c = vm.vcpus[0]!;
    c.setSregs({ ...c.getSregs(), idt: { base: 0x4000n, limit: 14 * 16 - 1 }, gdt: { base: 0x5000n, limit: 23 } });
    t.throws(() => c.injectException(2), /NMI/, 'vector 2 is refused (NMIs have their own call)');
    t.throws(() => c.injectException(8, 0), /double fault/, '#DF is refused');
    t.throws(() => c.injectException(32), /0\.\.31/, 'vectors above 31 are refused');
    c.injectException(6); // before the first instruction
    t.throws(() => c.injectException(13, 0), (e: unknown) => e instanceof Error && /EBUSY|pending/.test(e.message), 'a second pending exception is EBUSY');
    const events: string[] = [];
    vm.registerPio(0x86, 1, (_c, _p, _s, _w, v) => void events.push(`#UD ${v}`));
    vm.registerPio(0x84, 1, () => {
      events.push('out 0x84');
      c.injectException(13, 0x1234);
    });
    vm.registerPio(0x85, 1, (_c, _p, _s, _w, v) => {
      events.push(`#GP error code 0x${v.toString(16)}`);
      vm.suspend(SuspendHow.Poweroff);
    });
    const r = await vm.run();
    t.deepEqual(r, { status: 1, error: '' }, 'ended by the #GP handler');
    t.deepEqual(events, ['#UD 6', 'out 0x84', '#GP error code 0x1234'], '#UD ran first, then the guest continued, then #GP carried its code');
    vm.close();
  }));

test('x2APIC state enabled puts the LAPIC in x2APIC mode, kept across vcpu_reset', (t) =>
  withKvm(t, async () => {
    // prettier-ignore
    const code = [
      0xb9, 0x1b, 0x00, 0x00, 0x00, 0x0f, 0x32, 0xe7, 0x85,       // mov ecx, 0x1b; rdmsr; out 0x85, eax (APIC base)
      0xb9, 0x02, 0x08, 0x00, 0x00, 0x0f, 0x32, 0xe7, 0x88,       // mov ecx, 0x802; rdmsr; out 0x88, eax (x2APIC ID)
      0xe6, 0x84, 0xf4,                                           // out 0x84 -> stop
    ];
    for (const enabled of [true, false]) {
      const vm = newVm(16 << 20, 2);
      const c = vm.vcpus[0]!;
      c.setX2apicState(enabled);
      c.reset();
      const base = c.getSregs().apicBase;
      t.equal(Boolean(base & (1n << 10n)), enabled, `${enabled ? 'enabled' : 'disabled'}: IA32_APIC_BASE.EXTD ${enabled ? 'set' : 'clear'} after reset`);
      t.ok(base & (1n << 11n), 'the LAPIC stays globally enabled');
      t.equal(Boolean(vm.vcpus[1]!.getSregs().apicBase & (1n << 10n)), false, 'the other vCPU keeps its own mode');
      load(vm, 0x1000, code);
      enterLongMode(vm, 0x1000);
      c.setSregs({ ...c.getSregs(), idt: { base: 0n, limit: 0 } });
      const seen: number[] = [];
      vm.registerPio(0x85, 1, (_c, _p, _s, _w, v) => void seen.push(v));
      vm.registerPio(0x88, 1, (_c, _p, _s, _w, v) => void seen.push(v));
      vm.registerPio(0x84, 1, () => vm.suspend(SuspendHow.Poweroff));
      const r = await vm.run();
      if (enabled) {
        t.equal(r.status, 1, 'the guest read the x2APIC ID register');
        t.equal((seen[0]! >>> 10) & 3, 3, 'the guest sees EXTD and EN in IA32_APIC_BASE');
        t.equal(seen[1], 0, 'x2APIC ID of vCPU 0 is 0');
      } else {
        t.equal(r.status, 3, 'in xAPIC mode the x2APIC MSR faults (#GP without an IDT: triple fault)');
      }
      vm.close();
    }
  }));

test('APIC IDs follow the topology', (t) => {
  t.equal(apicIdOf({ sockets: 2, cores: 3, threads: 2, maxcpus: 12 }, 7), (1 << 3) | (0 << 1) | 1, 'socket 1, core 0, thread 1');
  t.equal(apicIdOf({ sockets: 1, cores: 4, threads: 1, maxcpus: 4 }, 3), 3);
  t.end();
});

test('interrupt calls check their arguments', (t) =>
  withKvm(t, () => {
    const vm = newVm(1 << 20);
    t.throws(() => vm.ioapicAssertIrq(24), /out of range/, 'IOAPIC pin 24 does not exist (KVM has 24 pins)');
    t.throws(() => vm.isaAssertIrq(16, -1), /out of range/, 'ISA IRQ 16 does not exist');
    t.throws(() => vm.isaSetIrqTrigger(0, 'level'), /cannot be level/, 'IRQ 0 is edge only');
    t.doesNotThrow(() => vm.isaSetIrqTrigger(9, 'level'), 'IRQ 9 (SCI) can be level triggered');
    t.doesNotThrow(() => vm.isaPulseIrq(4, 4), 'COM1 line pulses on both chips');
    t.doesNotThrow(() => vm.isaPulseIrq(3, 11), 'different 8259 and IOAPIC inputs');
    t.doesNotThrow(() => vm.setMsiRoute(64, 0xfee0_0000, 0x40), 'an MSI route for irqfd');
    t.throws(() => vm.setMsiRoute(10, 0xfee0_0000, 0x40), /64\.\.4095/, 'MSI routes stay clear of the ISA/IOAPIC GSIs');
    vm.close();
  }));
