// test-needs: kvm
// 64-bit guests: MMIO writes and reads of each size through a TS handler, an unowned MMIO read (all
// ones), a write into the read-only boot ROM (an MMIO exit, ROM unchanged), and a native sink port.
import test from 'tape';

import { BOOTROM_BASE, BOOTROM_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE, SuspendHow } from '../../src/vm/index.js';
import { enterLongMode, load, newVm, withKvm } from './guest.js';

test('long mode: MMIO of 1, 2, 4 and 8 bytes, default MMIO, result stored in RAM', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    // prettier-ignore
    load(vm, 0x1000, [
      0x48, 0xbb, 0x00, 0x00, 0x00, 0xc0, 0, 0, 0, 0,  // mov rbx, 0xc0000000 (MMIO window)
      0x48, 0xbf, 0x00, 0x20, 0, 0, 0, 0, 0, 0,       // mov rdi, 0x2000 (results in RAM)
      0xc6, 0x03, 0x11,                               // mov byte [rbx], 0x11
      0x66, 0xc7, 0x43, 0x02, 0x33, 0x22,             // mov word [rbx+2], 0x2233
      0xc7, 0x43, 0x04, 0x77, 0x66, 0x55, 0x44,       // mov dword [rbx+4], 0x44556677
      0x48, 0xb8, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // mov rax, 0x8877665544332211
      0x48, 0x89, 0x43, 0x08,                         // mov [rbx+8], rax
      0x8a, 0x43, 0x10,                               // mov al, [rbx+0x10]
      0x88, 0x07,                                     // mov [rdi], al
      0x66, 0x8b, 0x43, 0x12,                         // mov ax, [rbx+0x12]
      0x66, 0x89, 0x47, 0x02,                         // mov [rdi+2], ax
      0x8b, 0x43, 0x14,                               // mov eax, [rbx+0x14]
      0x89, 0x47, 0x04,                               // mov [rdi+4], eax
      0x48, 0x8b, 0x43, 0x18,                         // mov rax, [rbx+0x18]
      0x48, 0x89, 0x47, 0x08,                         // mov [rdi+8], rax
      0x48, 0xb9, 0x00, 0x00, 0x00, 0xd0, 0, 0, 0, 0, // mov rcx, 0xd0000000 (nobody owns it)
      0x8b, 0x01,                                     // mov eax, [rcx]
      0x89, 0x47, 0x10,                               // mov [rdi+16], eax
      0xe6, 0x84,                                     // out 0x84, al -> suspend(RESET)
      0xf4,                                           // hlt
    ]);
    const seen: string[] = [];
    vm.registerMmio(0xc000_0000, 0x1000, (_c, gpa, size, write, value) => {
      seen.push(`${write ? 'w' : 'r'} ${(gpa - 0xc000_0000).toString(16)}/${size}${write ? ' ' + value.toString(16) : ''}`);
      if (write) return;
      return size === 1 ? 0xa1 : size === 2 ? 0xb2b3 : size === 4 ? 0xc4c5c6c7 : 0xd8d9dadbdcdddedfn;
    });
    vm.registerPio(0x84, 1, () => vm.suspend(SuspendHow.Reset));
    enterLongMode(vm, 0x1000);
    const r = await vm.run();
    t.deepEqual(r, { status: 0, error: '' }, 'vm_suspend(RESET) gives status 0');
    t.deepEqual(
      seen,
      ['w 0/1 11', 'w 2/2 2233', 'w 4/4 44556677', 'w 8/8 8877665544332211', 'r 10/1', 'r 12/2', 'r 14/4', 'r 18/8'],
      'each MMIO access reached the handler with its offset, size and value',
    );
    const m = vm.memory;
    t.equal(m.readU8(0x2000), 0xa1, '1-byte MMIO read value');
    t.equal(m.readU16(0x2002), 0xb2b3, '2-byte MMIO read value');
    t.equal(m.readU32(0x2004), 0xc4c5c6c7, '4-byte MMIO read value');
    t.equal(m.readU64(0x2008), 0xd8d9dadbdcdddedfn, '8-byte MMIO read value');
    t.equal(m.readU32(0x2010), 0xffffffff, 'an MMIO read nobody handles returns all ones');
    vm.close();
  }));

test('long mode: writes into the boot ROM region are MMIO exits and leave the ROM unchanged', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    const rom = vm.createDevmem(0, 'bootrom', BOOTROM_SIZE);
    rom.bytes.fill(0xa5, BOOTROM_SIZE - 0x1000); // the top page of the ROM
    vm.mapMemseg(BOOTROM_BASE, 0, 0, BOOTROM_SIZE, PROT_READ | PROT_EXEC);
    // prettier-ignore
    load(vm, 0x1000, [
      0x48, 0xbb, 0x00, 0xf0, 0xff, 0xff, 0, 0, 0, 0, // mov rbx, 0xfffff000 (top ROM page)
      0xc7, 0x03, 0x78, 0x56, 0x34, 0x12,             // mov dword [rbx], 0x12345678
      0x8b, 0x03,                                     // mov eax, [rbx]   (a plain memory read)
      0x89, 0x04, 0x25, 0x00, 0x20, 0x00, 0x00,       // mov [0x2000], eax
      0xe6, 0x84,                                     // out 0x84, al -> suspend(HALT)
      0xf4,
    ]);
    const writes: string[] = [];
    vm.registerMmio(BOOTROM_BASE, BOOTROM_SIZE, (_c, gpa, size, write, value) => {
      writes.push(`${write ? 'w' : 'r'} ${gpa.toString(16)}/${size} ${value.toString(16)}`);
    });
    vm.registerPio(0x84, 1, () => vm.suspend(SuspendHow.Halt));
    enterLongMode(vm, 0x1000);
    const r = await vm.run();
    t.deepEqual(r, { status: 2, error: '' }, 'vm_suspend(HALT) gives status 2');
    t.deepEqual(writes, ['w fffff000/4 12345678'], 'the ROM write arrived as one 4-byte MMIO write');
    t.equal(vm.memory.readU32(0x2000), 0xa5a5a5a5, 'the guest reads the ROM contents back, not its write');
    t.equal(rom.bytes[BOOTROM_SIZE - 0x1000], 0xa5, 'the ROM bytes are unchanged');
    const romRegion = vm.regions().find((x) => x.gpa === BOOTROM_BASE);
    t.deepEqual(romRegion, { gpa: BOOTROM_BASE, size: BOOTROM_SIZE, kind: 'rom', writable: false }, 'ROM region listed read-only');
    vm.close();
  }));

test('long mode: a native sink port counts OUTs without leaving the vCPU thread', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    // prettier-ignore
    load(vm, 0x1000, [
      0xb9, 0x64, 0x00, 0x00, 0x00,   // mov ecx, 100
      0x89, 0xc8,                     // loop: mov eax, ecx
      0xe6, 0xe0,                     // out 0xe0, al   (native sink)
      0xe2, 0xfa,                     // loop loop
      0xe6, 0x84,                     // out 0x84, al -> suspend(POWEROFF)
      0xf4,
    ]);
    const sink = vm.addNativeSink('pio', 0xe0, 1);
    let jsCalls = 0;
    vm.registerPio(0x84, 1, () => {
      jsCalls++;
      vm.suspend(SuspendHow.Poweroff);
    });
    enterLongMode(vm, 0x1000);
    const r = await vm.run();
    t.equal(r.status, 1, 'status 1');
    t.deepEqual(sink.stats(), { writes: 100, reads: 0, last: 1 }, '100 writes counted natively, the last value 1');
    t.equal(jsCalls, 1, 'only the final port reached JavaScript');
    const st = vm.vcpus[0]!.stats();
    t.deepEqual([st.io, st.native, st.js, st.mmio], [101, 100, 1, 0], 'exit counters: 101 port exits, 100 native, 1 JS');
    t.ok(st.runs >= 101, 'every exit was a return from KVM_RUN');
    vm.close();
  }));

test('a writable device segment mapped as a BAR takes guest stores directly; unmapped, they exit', (t) =>
  withKvm(t, async () => {
    const vm = newVm();
    const fb = vm.createDevmem(1, 'framebuffer', 0x2000);
    vm.mapMemseg(0xc100_0000, 1, 0, 0x2000, PROT_READ | PROT_WRITE);
    // prettier-ignore
    load(vm, 0x1000, [
      0x48, 0xbb, 0x00, 0x10, 0x00, 0xc1, 0, 0, 0, 0, // mov rbx, 0xc1001000 (second page of the segment)
      0xc7, 0x03, 0xef, 0xbe, 0xad, 0xde,             // mov dword [rbx], 0xdeadbeef
      0xe6, 0x84,                                     // out 0x84, al -> the test unmaps the segment
      0xc7, 0x03, 0x0d, 0xf0, 0xad, 0x0b,             // mov dword [rbx], 0x0badf00d (now an MMIO exit)
      0xe6, 0x85,                                     // out 0x85, al -> suspend
      0xf4,
    ]);
    const exits: string[] = [];
    vm.registerMmio(0xc100_0000, 0x2000, (_c, gpa, _s, write, value) => {
      exits.push(`${write ? 'w' : 'r'} ${gpa.toString(16)} ${value.toString(16)}`);
    });
    let sawDirect = 0;
    vm.registerPio(0x84, 1, () => {
      sawDirect = new DataView(fb.bytes.buffer).getUint32(0x1000, true);
      vm.unmapMemseg(0xc100_0000, 0x2000);
    });
    vm.registerPio(0x85, 1, () => vm.suspend(SuspendHow.Poweroff));
    enterLongMode(vm, 0x1000);
    const r = await vm.run();
    t.equal(r.status, 1, 'status 1');
    t.equal(sawDirect, 0xdeadbeef, 'the store landed in the segment without an exit');
    t.deepEqual(exits, ['w c1001000 badf00d'], 'after unmapping, the store is an MMIO exit');
    t.equal(new DataView(fb.bytes.buffer).getUint32(0x1000, true), 0xdeadbeef, 'the segment kept its contents');
    vm.close();
  }));
