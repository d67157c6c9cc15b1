// test-needs: kvm
// How a run ends: triple fault (3), HLT with interrupts disabled (2), strict I/O on an unowned port (4),
// a throwing handler (4), and the MSR policy (unknown MSR -> #GP, or reads 0 with strictmsr off).
import test from 'tape';

import { SuspendHow } from '../../src/vm/index.js';
import { enterLongMode, enterRealMode, load, newVm, withKvm } from './guest.js';

test('a triple fault (exception without an IDT) ends the run with status 3', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    load(vm, 0x1000, [0x0f, 0x0b]); // ud2: #UD, no IDT -> #GP -> #DF -> shutdown
    enterLongMode(vm, 0x1000);
    const c = vm.vcpus[0]!;
    c.setSregs({ ...c.getSregs(), idt: { base: 0n, limit: 0 } });
    const r = await vm.run();
    t.deepEqual(r, { status: 3, error: '' }, 'status 3');
    vm.close();
  }));

test('HLT with interrupts disabled on every vCPU ends the run with status 2', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    load(vm, 0x1000, [0xfa, 0xf4, 0xeb, 0xfd]); // cli; hlt; jmp back to hlt
    enterRealMode(vm, 0x1000);
    const t0 = Date.now();
    const r = await vm.run();
    t.deepEqual(r, { status: 2, error: '' }, 'status 2');
    t.ok(Date.now() - t0 < 60_000, `detected after ${Date.now() - t0} ms, not left halted`);
    vm.close();
  }));

test('strict I/O: an unowned port stops the VM with status 4 and names the port', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    vm.setStrict({ io: true });
    load(vm, 0x1000, [0xb0, 0x01, 0xe6, 0x99, 0xf4]); // mov al, 1; out 0x99, al; hlt
    enterRealMode(vm, 0x1000);
    const r = await vm.run();
    t.equal(r.status, 4, 'status 4');
    t.equal(r.error, 'Unhandled outb 0x0099', 'the error names the access in bhyve\'s words');
    vm.close();
  }));

test('a handler that throws stops the VM with status 4', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    load(vm, 0x1000, [0xe6, 0x70, 0xf4]); // out 0x70, al; hlt
    vm.registerPio(0x70, 2, () => {
      throw new Error('device exploded');
    });
    enterRealMode(vm, 0x1000);
    const r = await vm.run();
    t.equal(r.status, 4, 'status 4');
    t.match(r.error, /port handler at 0x70 threw: device exploded/, 'the error carries the exception');
    vm.close();
  }));

// rdmsr 0x4b564dff... is a KVM paravirt range; 0x12345 is unknown to every CPU and to KVM.
// prettier-ignore
const RDMSR_GUEST = [
  0xb9, 0x45, 0x23, 0x01, 0x00,   // mov ecx, 0x12345
  0xb8, 0x11, 0x11, 0x11, 0x11,   // mov eax, 0x11111111
  0x0f, 0x32,                     // rdmsr
  0xe7, 0x84,                     // out 0x84, eax -> the handler records eax and suspends
  0xf4,
];

for (const strict of [true, false]) {
  test(`unknown MSR with strictmsr=${strict}`, (t) =>
    withKvm(t, async () => {
      const vm = newVm();
      if (!vm.userMsrExits) t.comment('KVM_CAP_X86_USER_SPACE_MSR unavailable: KVM applies its own MSR policy');
      vm.setStrict({ msr: strict });
      load(vm, 0x1000, RDMSR_GUEST);
      let eax: number | undefined;
      vm.registerPio(0x84, 4, (_c, _p, _s, _w, v) => {
        eax = v;
        vm.suspend(SuspendHow.Poweroff);
      });
      enterLongMode(vm, 0x1000);
      const c = vm.vcpus[0]!;
      c.setSregs({ ...c.getSregs(), idt: { base: 0n, limit: 0 } });
      const r = await vm.run();
      if (strict) {
        t.equal(r.status, 3, '#GP with no IDT escalates to a triple fault');
        t.equal(eax, undefined, 'the instruction after RDMSR never ran');
      } else {
        t.equal(r.status, 1, 'the guest continued');
        t.equal(eax, 0, 'the unknown MSR read as 0');
      }
      vm.close();
    }));
}

test('close() from inside a handler tears the running VM down; run() resolves with status 4', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    load(vm, 0x1000, [0xe6, 0x80, 0xeb, 0xfc]); // out 0x80, al; jmp back
    let calls = 0;
    vm.registerPio(0x80, 1, () => {
      if (++calls === 3) vm.close();
    });
    enterRealMode(vm, 0x1000);
    const r = await vm.run();
    t.deepEqual(r, { status: 4, error: 'VM closed while running' }, 'status 4 with the reason');
    t.equal(calls, 3, 'no handler ran after close');
  }));
