// test-needs: kvm
// Register access while running (only from the vCPU's own exit handler), and a second run() of the same
// VM after a reset, as an in-process reboot would do.
import test from 'tape';

import { PROT_EXEC, PROT_READ, SuspendHow, VmmError } from '../../src/vm/index.js';
import { enterRealMode, load, newVm, withKvm } from './guest.js';

test('a handler reads and changes its vCPU registers; other callers get EBUSY while it runs', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    // prettier-ignore
    load(vm, 0x1000, [
      0x66, 0xb8, 0x44, 0x33, 0x22, 0x11, // mov eax, 0x11223344
      0xe6, 0x80,                         // out 0x80, al -> the handler sets rbx = 0x77
      0x89, 0xd8,                         // mov ax, bx
      0xe7, 0x81,                         // out 0x81, ax -> reports bx
      0xfb, 0xf4, 0xeb, 0xfd,             // sti; hlt; jmp back (idle until the timer)
    ]);
    const c = vm.vcpus[0]!;
    let raxSeen = 0n;
    vm.registerPio(0x80, 1, () => {
      raxSeen = c.getRegs().rax;
      c.updateRegs({ rbx: 0x77n });
    });
    let bx = -1;
    let busy: unknown;
    // Once the guest has reported (and goes on to idle in hlt, still inside KVM_RUN), touch the vCPU from the main
    // thread: started from the report, not from a fixed delay, so a slow host cannot reorder the steps.
    vm.registerPio(0x81, 2, (_c, _p, _s, _w, v) => {
      bx = v;
      setTimeout(() => {
        try {
          c.getRegs();
        } catch (e) {
          busy = e;
        }
        vm.suspend(SuspendHow.Poweroff);
      }, 20);
    });
    enterRealMode(vm, 0x1000);
    const r = await vm.run();
    t.equal(r.status, 1, 'status 1');
    t.equal(raxSeen, 0x11223344n, 'the handler saw the guest EAX');
    t.equal(bx, 0x77, 'the guest saw the RBX the handler wrote');
    t.ok(busy instanceof VmmError && busy.code === 'EBUSY', 'a timer touching a running vCPU gets EBUSY instead of blocking');
    t.equal(c.getRegs().rip > 0n, true, 'after the run the registers are accessible again');
    vm.close();
  }));

test('run() again after a reset: status and handlers work on the second run', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    load(vm, 0x1000, [0xe4, 0x80, 0xe6, 0x84, 0xf4]); // in al, 0x80; out 0x84, al; hlt
    let round = 0;
    const got: number[] = [];
    vm.registerPio(0x80, 1, () => 0x10 + round);
    vm.registerPio(0x84, 1, (_c, _p, _s, _w, v) => {
      got.push(v);
      vm.suspend(round === 0 ? SuspendHow.Reset : SuspendHow.Poweroff);
    });
    enterRealMode(vm, 0x1000);
    const first = await vm.run();
    vm.vcpus[0]!.reset();
    enterRealMode(vm, 0x1000);
    round = 1;
    const second = await vm.run();
    t.deepEqual([first.status, second.status], [0, 1], 'reset, then poweroff');
    t.deepEqual(got, [0x10, 0x11], 'both runs reached the handlers');
    vm.close();
  }));

test('reinit: a fresh machine over the same memory; the ROM mapping and RAM contents survive', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    const rom = vm.createDevmem(0, 'bootrom', 0x10000);
    rom.bytes.fill(0x5c);
    vm.mapMemseg(0xffff_0000, 0, 0, 0x10000, PROT_READ | PROT_EXEC);
    // prettier-ignore
    const code = [
      0xfa,                         // cli
      0xb0, 0xff, 0xe6, 0x21,       // mov al, 0xff; out 0x21, al (mask the 8259: in-kernel state)
      0xe4, 0x21,                   // in al, 0x21
      0xe6, 0x84,                   // out 0x84, al -> report the mask and suspend
      0xf4,
    ];
    load(vm, 0x1000, code);
    vm.memory.writeU32(0x7000, 0xcafef00d);
    const masks: number[] = [];
    vm.registerPio(0x84, 1, (_c, _p, _s, _w, v) => {
      masks.push(v);
      vm.suspend(SuspendHow.Reset);
    });
    enterRealMode(vm, 0x1000);
    t.equal((await vm.run()).status, 0, 'first run: reset');
    const before = vm.regions();
    vm.reinit();
    t.deepEqual(vm.regions(), before, 'the memory map is unchanged');
    t.equal(vm.memory.readU32(0x7000), 0xcafef00d, 'RAM contents kept');
    t.equal(vm.vcpus[0]!.getRegs().rip, 0xfff0n, 'the vCPU is at the reset vector');
    // second run: read the 8259 mask before writing it
    // prettier-ignore
    load(vm, 0x1000, [
      0xe4, 0x21, 0xe6, 0x84,             // in al, 0x21; out 0x84, al (mask after reinit)
      0xf4,
    ]);
    enterRealMode(vm, 0x1000);
    t.equal((await vm.run()).status, 0, 'second run: reset');
    t.deepEqual(masks, [0xff, 0x00], 'the 8259 mask the guest set did not survive reinit');
    t.equal(rom.bytes[0], 0x5c, 'the ROM segment is intact');
    vm.close();
  }));
