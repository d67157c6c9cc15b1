// test-needs: kvm
// 16-bit real-mode guest: OUT/IN with immediate and DX ports, byte and word sizes, REP OUTSB/INSB,
// an unhandled port reading all ones, and a JS handler ending the run with vm_suspend(POWEROFF).
import test from 'tape';

import { SuspendHow } from '../../src/vm/index.js';
import { enterRealMode, load, newVm, withKvm } from './guest.js';

test('real mode: port I/O, string I/O, default port, suspend from a handler', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    // prettier-ignore
    load(vm, 0x1000, [
      0xb0, 0x41,             // mov al, 0x41
      0xe6, 0x80,             // out 0x80, al          -> handler sees write 0x41 (1 byte)
      0xba, 0x34, 0x12,       // mov dx, 0x1234
      0xb8, 0xef, 0xbe,       // mov ax, 0xbeef
      0xef,                   // out dx, ax            -> write 0xbeef (2 bytes) at 0x1234
      0xe4, 0x80,             // in al, 0x80           -> handler returns 0x5a
      0xe6, 0x81,             // out 0x81, al          -> echo 0x5a
      0xba, 0x00, 0x03,       // mov dx, 0x300
      0xec,                   // in al, dx             -> nobody owns 0x300: all ones
      0xe6, 0x81,             // out 0x81, al          -> echo 0xff
      0xbe, 0x00, 0x20,       // mov si, 0x2000
      0xb9, 0x04, 0x00,       // mov cx, 4
      0xba, 0x90, 0x00,       // mov dx, 0x90
      0xf3, 0x6e,             // rep outsb             -> 4 writes of "WXYZ" to 0x90
      0xbf, 0x00, 0x30,       // mov di, 0x3000
      0xb9, 0x03, 0x00,       // mov cx, 3
      0xf3, 0x6c,             // rep insb              -> 3 reads of 0x90 stored at 0x3000
      0xe6, 0x84,             // out 0x84, al          -> handler suspends (POWEROFF)
      0xf4,                   // hlt (never reached)
    ]);
    load(vm, 0x2000, [0x57, 0x58, 0x59, 0x5a]);
    const seen: string[] = [];
    vm.registerPio(0x80, 2, (_c, port, size, write, value) => {
      seen.push(`${write ? 'out' : 'in'} ${port.toString(16)}/${size}${write ? ' ' + value.toString(16) : ''}`);
      return write ? undefined : 0x5a;
    });
    vm.registerPio(0x1234, 2, (_c, port, size, write, value) => {
      seen.push(`${write ? 'out' : 'in'} ${port.toString(16)}/${size}${write ? ' ' + value.toString(16) : ''}`);
    });
    const stream: number[] = [];
    let next = 0xa0;
    vm.registerPio(0x90, 1, (_c, _p, _s, write, value) => {
      if (write) stream.push(value);
      else return next++;
    });
    vm.registerPio(0x84, 1, () => vm.suspend(SuspendHow.Poweroff));
    enterRealMode(vm, 0x1000);
    const r = await vm.run();
    t.deepEqual(r, { status: 1, error: '' }, 'vm_suspend(POWEROFF) from a handler gives status 1');
    t.deepEqual(seen, ['out 80/1 41', 'out 1234/2 beef', 'in 80/1', 'out 81/1 5a', 'out 81/1 ff'], 'OUT/IN seen with port, size and value');
    t.deepEqual(stream, [0x57, 0x58, 0x59, 0x5a], 'REP OUTSB delivered each byte in order');
    t.deepEqual([...vm.memory.read(0x3000, 3)], [0xa0, 0xa1, 0xa2], 'REP INSB stored each value the handler returned');
    vm.close();
  }));
