// test-needs: kvm
// bhyve's memory layout (lowmem below 3 GiB, the rest from 4 GiB) as KVM memslots, and the checked
// accessor refusing every range that is not guest RAM.
import { readFileSync } from 'node:fs';
import test from 'tape';

import { GiB, GuestMemoryError, HIGHMEM_BASE, MiB, memoryLayout, MAX_VIEW, Vm } from '../../src/vm/index.js';
import { lockDir, newVm, withKvm } from './guest.js';

test('memoryLayout splits at 3 GiB and places the 64-bit window at the next 32 GiB boundary', (t) => {
  t.deepEqual(memoryLayout(2 * GiB), { size: 2 * GiB, lowmem: 2 * GiB, highmem: 0, pci64Base: 32 * GiB });
  t.deepEqual(memoryLayout(3 * GiB), { size: 3 * GiB, lowmem: 3 * GiB, highmem: 0, pci64Base: 32 * GiB });
  t.deepEqual(memoryLayout(3 * GiB + 4 * MiB), { size: 3 * GiB + 4 * MiB, lowmem: 3 * GiB, highmem: 4 * MiB, pci64Base: 32 * GiB });
  t.deepEqual(memoryLayout(40 * GiB).pci64Base, 64 * GiB);
  t.end();
});

const isFault = (fault: string) => (e: unknown) => e instanceof GuestMemoryError && e.fault === fault;

for (const size of [2 * GiB, 3 * GiB, 3 * GiB + 4 * MiB]) {
  test(`guest RAM of ${size / MiB} MiB is mapped as bhyve maps it`, (t) =>
    withKvm(t, () => {
      const vm = newVm(size);
      const l = vm.memory.layout;
      const ram = vm.regions().filter((r) => r.kind === 'ram');
      const expect = [{ gpa: 0, size: l.lowmem, kind: 'ram', writable: true }];
      if (l.highmem) expect.push({ gpa: HIGHMEM_BASE, size: l.highmem, kind: 'ram', writable: true });
      t.deepEqual(ram, expect, 'RAM regions');
      const m = vm.memory;
      // the last byte of lowmem and the first byte after it
      m.writeU8(l.lowmem - 1, 0x5a);
      t.equal(m.readU8(l.lowmem - 1), 0x5a, 'last byte of lowmem is RAM');
      t.throws(() => m.readU8(l.lowmem), isFault('out-of-range'), 'first byte above lowmem (the hole) is refused');
      t.throws(() => m.read(l.lowmem - 2, 4), isFault('out-of-range'), 'a range straddling lowmem and the hole is refused');
      t.throws(() => m.check(0xfee0_0000, 4), isFault('out-of-range'), 'the LAPIC page is not RAM');
      if (l.highmem) {
        m.writeU32(HIGHMEM_BASE + l.highmem - 4, 0xdeadbeef);
        t.equal(m.readU32(HIGHMEM_BASE + l.highmem - 4), 0xdeadbeef, 'last dword of highmem is RAM');
        t.throws(() => m.readU32(HIGHMEM_BASE + l.highmem - 2), isFault('out-of-range'), 'a read past the end of highmem is refused');
        const v = m.view(HIGHMEM_BASE, 16);
        v[0] = 7;
        t.equal(m.readU8(HIGHMEM_BASE), 7, 'a view of highmem aliases guest memory');
      } else {
        t.throws(() => m.check(HIGHMEM_BASE, 1), isFault('out-of-range'), 'nothing at 4 GiB without highmem');
      }
      t.throws(() => m.check(2n ** 64n - 16n, 32), isFault('overflow'), 'gpa + len wrapping past 2^64 is an overflow');
      t.throws(() => m.check(Number.MAX_SAFE_INTEGER, 1), isFault('out-of-range'), 'a huge gpa is out of range');
      t.throws(() => m.view(0, MAX_VIEW + 1), RangeError, 'views are capped at 1 GiB');
      const big = m.view(l.lowmem - MAX_VIEW, MAX_VIEW);
      t.equal(big.byteLength, MAX_VIEW, 'a 1 GiB view ending at the top of lowmem');
      t.equal(big[MAX_VIEW - 1], 0x5a, 'whose last byte is the last byte of lowmem');
      t.doesNotThrow(() => m.check(0, 0), 'an empty range inside RAM is fine');
      vm.close();
    }));
}

test('copies spanning nothing invalid touch nothing; read-only ROM refuses writes', (t) =>
  withKvm(t, () => {
    const vm = newVm(4 * MiB);
    const m = vm.memory;
    const dst = new Uint8Array(8).fill(9);
    t.throws(() => m.readInto(4 * MiB - 4, dst), isFault('out-of-range'));
    t.deepEqual([...dst], [9, 9, 9, 9, 9, 9, 9, 9], 'a refused read leaves the destination untouched');
    vm.createDevmem(0, 'bootrom', 0x10000);
    vm.mapMemseg(0xffff_0000, 0, 0, 0x10000, 5);
    t.throws(() => m.write(0xffff_0000, new Uint8Array(1)), isFault('out-of-range'), 'the RAM accessor does not serve ROM');
    t.equal(m.viewAny(0xffff_0000, 16).byteLength, 16, 'the loader view reaches the ROM');
    vm.unmapMemseg(0xffff_0000, 0x10000);
    t.throws(() => m.viewAny(0xffff_0000, 16), isFault('out-of-range'), 'unmapped segment is gone from the map');
    t.throws(() => vm.mapMemseg(0x1000, 0, 0, 0x1000, 5), /overlaps/, 'a segment cannot cover RAM');
    vm.close();
  }));

function vmLockedKiB(): number {
  const m = /VmLck:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : 0;
}

test('wired memory is locked and in-core memory is populated up front', (t) =>
  withKvm(t, () => {
    const before = vmLockedKiB();
    const vm = Vm.open(`wired-${process.pid}`, { create: true, lockDir });
    vm.createVcpus(1);
    vm.setupMemory(8 * MiB, { wired: true, inCore: true });
    t.ok(vmLockedKiB() - before >= 8 * 1024, `VmLck grew by ${vmLockedKiB() - before} KiB for 8 MiB of wired RAM`);
    vm.memory.writeU32(8 * MiB - 4, 1);
    t.equal(vm.memory.readU32(8 * MiB - 4), 1, 'wired RAM is usable');
    vm.close();
  }));

/** The /proc/self/smaps entries (start address, size in KiB, huge-page KiB, flags) of mappings of `kib` KiB. */
function mappingsOfSize(kib: number): Array<{ start: bigint; anonHugeKiB: number; flags: string[] }> {
  const out: Array<{ start: bigint; anonHugeKiB: number; flags: string[] }> = [];
  for (const block of readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const size = /^Size:\s+(\d+) kB/m.exec(block);
    if (!size || Number(size[1]) !== kib) continue;
    out.push({
      start: BigInt('0x' + block.slice(0, block.indexOf('-'))),
      anonHugeKiB: Number(/^AnonHugePages:\s+(\d+) kB/m.exec(block)?.[1] ?? 0),
      flags: (/^VmFlags:(.*)$/m.exec(block)?.[1] ?? '').trim().split(/\s+/),
    });
  }
  return out;
}

test('guest RAM sits on 2 MiB boundaries and is backed by transparent huge pages where the host has them', (t) =>
  withKvm(t, () => {
    const size = 42 * MiB; // a size no other mapping of this process has
    const vm = Vm.open(`thp-${process.pid}`, { create: true, lockDir });
    vm.createVcpus(1);
    vm.setupMemory(size, { inCore: true });
    const ram = mappingsOfSize(size / 1024).filter((m) => m.flags.includes('hg'));
    t.equal(ram.length, 1, 'one guest RAM mapping, marked MADV_HUGEPAGE');
    if (ram[0]) {
      t.equal(ram[0].start % BigInt(2 * MiB), 0n, 'its host address is 2 MiB aligned, like its guest address');
      let thp = '[never]';
      try {
        thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
      } catch {
        // a kernel built without THP
      }
      if (/\[never\]/.test(thp)) t.comment('transparent huge pages are off on this host: RAM stays in 4 KiB pages');
      else t.ok(ram[0].anonHugeKiB > 0, `populated RAM came in huge pages (${ram[0].anonHugeKiB} KiB of ${size / 1024})`);
    }
    vm.close();
  }));
