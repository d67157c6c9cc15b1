// test-needs: kvm
// While vCPUs run, the JavaScript event loop keeps running timers: both when the guest is idle in HLT
// and when it floods the main thread with exits. Two vCPUs: the BSP starts the AP with INIT/SIPI.
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import test from 'tape';

import { SuspendHow } from '../../src/vm/index.js';
import { enterLongMode, enterRealMode, load, newVm, withKvm } from './guest.js';

test('timers fire while the guest idles in HLT with interrupts enabled', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    load(vm, 0x1000, [0xfb, 0xf4, 0xeb, 0xfd]); // sti; hlt; jmp back
    enterRealMode(vm, 0x1000);
    // The interval ends the run from its fifth tick: the run ending at all shows the timers ran meanwhile, with no
    // bound on how long that took. The watchdog only turns a loop that never yields into a failure, not a hang.
    let ticks = 0;
    const iv = setInterval(() => {
      if (++ticks === 5) vm.suspend(SuspendHow.Poweroff);
    }, 10);
    const watchdog = setTimeout(() => vm.suspend(SuspendHow.Halt), 120_000);
    const r = await vm.run();
    clearInterval(iv);
    clearTimeout(watchdog);
    t.deepEqual(r, { status: 1, error: '' }, `suspended from the interval timer's fifth tick (${ticks} ticks)`);
    vm.close();
  }));

test('timers fire while the guest floods JS with port exits', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    load(vm, 0x1000, [0xe6, 0x80, 0xeb, 0xfc]); // out 0x80, al; jmp back
    let exits = 0;
    vm.registerPio(0x80, 1, () => {
      exits++;
    });
    enterRealMode(vm, 0x1000);
    // The interval ends the run once it has ticked 5 times and the guest has made 100 exits: both kept going
    // together. Known weakness (issue 3 note): a flood sometimes holds the loop for tens of milliseconds, which
    // only makes this slower, so no time is asserted.
    let ticks = 0;
    const iv = setInterval(() => {
      if (++ticks >= 5 && exits >= 100) vm.suspend(SuspendHow.Reset);
    }, 10);
    const watchdog = setTimeout(() => vm.suspend(SuspendHow.Halt), 120_000);
    const r = await vm.run();
    clearInterval(iv);
    clearTimeout(watchdog);
    t.equal(r.status, 0, `suspended from the interval timer (${ticks} ticks) during the flood`);
    t.ok(exits >= 100, `${exits} exits handled`);
    vm.close();
  }));

test('two vCPUs: INIT/SIPI starts the AP; status 2 only once both halt with interrupts off', (t) =>
  withKvm(t, async () => {
    const vm = newVm(16 * 1024 * 1024, 2);
    // BSP (64-bit): INIT then SIPI to all-but-self through the LAPIC ICR, then cli; hlt.
    // prettier-ignore
    load(vm, 0x1000, [
      0xbb, 0x00, 0x00, 0xe0, 0xfe,                               // mov ebx, 0xfee00000
      0xc7, 0x83, 0x00, 0x03, 0x00, 0x00, 0x00, 0x45, 0x0c, 0x00, // mov dword [rbx+0x300], 0xc4500 (INIT, all but self)
      0xc7, 0x83, 0x00, 0x03, 0x00, 0x00, 0x03, 0x46, 0x0c, 0x00, // mov dword [rbx+0x300], 0xc4603 (SIPI vector 3 -> 0x3000)
      0xe6, 0x86,                                                 // out 0x86, al (BSP checkpoint)
      0xfa, 0xf4, 0xeb, 0xfd,                                     // cli; hlt; jmp back
    ]);
    // AP (real mode at 0x3000): report, then cli; hlt.
    load(vm, 0x3000, [0xe6, 0x86, 0xfa, 0xf4, 0xeb, 0xfd]);
    const who: number[] = [];
    const affinity = new Map<string, string>();
    vm.registerPio(0x86, 1, (vcpu) => {
      who.push(vcpu);
      // The vCPU threads are named "vcpu N" and pinned as asked.
      for (const task of readdirSync('/proc/self/task')) {
        const comm = readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim();
        if (!comm.startsWith('vcpu ')) continue;
        const m = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/self/task/${task}/status`, 'utf8'));
        affinity.set(comm, m?.[1] ?? '?');
      }
    });
    enterLongMode(vm, 0x1000);
    const t0 = Date.now();
    // One host CPU each where there are two (the nested L1 has one: both share it).
    const second = availableParallelism() > 1 ? 1 : 0;
    const r = await vm.run({ cpusets: [[0], [second]] });
    t.deepEqual(r, { status: 2, error: '' }, 'status 2 after both halted');
    t.deepEqual([...who].sort(), [0, 1], 'both vCPUs reached their checkpoint');
    t.equal(affinity.get('vcpu 0'), '0', 'vcpu 0 pinned to host CPU 0');
    t.equal(affinity.get('vcpu 1'), String(second), `vcpu 1 pinned to host CPU ${second}`);
    t.comment(`run took ${Date.now() - t0} ms`);
    vm.close();
  }));

test('two vCPUs flooding TypeScript handlers at once: every exit handled, none lost or mixed up', (t) =>
  withKvm(t, async () => {
    const vm = newVm(16 * 1024 * 1024, 2);
    // BSP (64-bit): wake the AP, then 300 x out 0x80 with al = 0xb0, then cli; hlt.
    // prettier-ignore
    load(vm, 0x1000, [
      0xbb, 0x00, 0x00, 0xe0, 0xfe,                               // mov ebx, 0xfee00000
      0xc7, 0x83, 0x00, 0x03, 0x00, 0x00, 0x00, 0x45, 0x0c, 0x00, // INIT to all but self
      0xc7, 0x83, 0x00, 0x03, 0x00, 0x00, 0x03, 0x46, 0x0c, 0x00, // SIPI vector 3 -> 0x3000
      0xb9, 0x2c, 0x01, 0x00, 0x00,                               // mov ecx, 300
      0xb0, 0xb0,                                                 // mov al, 0xb0
      0xe6, 0x80,                                                 // l: out 0x80, al
      0xe2, 0xfc,                                                 // loop l
      0xfa, 0xf4, 0xeb, 0xfd,                                     // cli; hlt; jmp back
    ]);
    // AP (real mode): 300 x out 0x80 with al = 0xa9, then cli; hlt.
    // prettier-ignore
    load(vm, 0x3000, [0xb9, 0x2c, 0x01, 0xb0, 0xa9, 0xe6, 0x80, 0xe2, 0xfc, 0xfa, 0xf4, 0xeb, 0xfd]);
    const counts = new Map<string, number>();
    vm.registerPio(0x80, 1, (vcpu, _p, _s, _w, v) => {
      const k = `${vcpu}:${v.toString(16)}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    });
    enterLongMode(vm, 0x1000);
    const r = await vm.run();
    t.deepEqual(r, { status: 2, error: '' }, 'status 2 once both are done');
    t.deepEqual(Object.fromEntries(counts), { '0:b0': 300, '1:a9': 300 }, 'each vCPU delivered its 300 writes with its own value');
    vm.close();
  }));
