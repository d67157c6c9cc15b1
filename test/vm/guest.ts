// Helpers for tests that run tiny guest programs under KVM. Not a test file itself.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tape';

import { Vm } from '../../src/vm/index.js';
import { kvmHostStatus } from '../../src/vm/kvm-host.js';
import type { Segment, Sregs } from '../../src/vm/registers.js';

/**
 * Reason to skip guest tests, or undefined when /dev/kvm is usable. `npm test` never gets here without KVM: it runs
 * files marked `// test-needs: kvm` inside the nested-KVM L1 when the host cannot (scripts/test.ts).
 */
export function kvmSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  const kvm = kvmHostStatus();
  if (kvm.level === 'none') return `${kvm.reason} (npm test runs this file inside the nested-KVM L1)`;
  if (!existsSync(fileURLToPath(new URL('../../build/Release/tsbhyve.node', import.meta.url)))) return 'native addon not built';
  return undefined;
}

/** Runs `fn` only where KVM exists; otherwise records a skip with the reason. */
export async function withKvm(t: Test, fn: () => Promise<void> | void): Promise<void> {
  const why = kvmSkipReason();
  if (why) {
    t.skip(`skipped: ${why}`);
    return;
  }
  await fn();
}

export const lockDir = mkdtempSync(join(tmpdir(), 'tsbhyve-test-lock-'));
let serial = 0;

/** A fresh VM with one vCPU and `mem` bytes of RAM. */
export function newVm(mem = 16 * 1024 * 1024, vcpus = 1): Vm {
  const vm = Vm.open(`test-${process.pid}-${serial++}`, { create: true, lockDir });
  vm.setTopology({ sockets: 1, cores: vcpus, threads: 1 });
  vm.createVcpus(vcpus);
  vm.setupMemory(mem);
  return vm;
}

function seg(selector: number, type: number, l = false): Segment {
  return { base: 0n, limit: 0xffff, selector, type, present: true, dpl: 0, db: false, s: true, l, g: false, avl: false, unusable: false };
}

/** Real mode, all segment bases 0, execution at `ip`. */
export function enterRealMode(vm: Vm, ip: number): void {
  const c = vm.vcpus[0]!;
  const s = c.getSregs();
  for (const n of ['ds', 'es', 'fs', 'gs', 'ss'] as const) s[n] = seg(0, 3);
  s.cs = seg(0, 11);
  c.setSregs(s);
  c.setRegs({ ...c.getRegs(), rip: BigInt(ip), rflags: 2n, rsp: 0x8000n });
}

/**
 * 64-bit mode at `rip` with the first 4 GiB identity-mapped by 2 MiB pages. The page tables live at
 * 0x10000 (PML4), 0x11000 (PDPT) and 0x12000..0x15fff (four page directories).
 */
export function enterLongMode(vm: Vm, rip: number): void {
  const m = vm.memory;
  m.writeU64(0x10000, 0x11000n | 3n);
  for (let i = 0; i < 4; i++) {
    m.writeU64(0x11000 + i * 8, BigInt(0x12000 + i * 0x1000) | 3n);
    for (let j = 0; j < 512; j++) {
      const phys = (BigInt(i) << 30n) | (BigInt(j) << 21n);
      m.writeU64(0x12000 + i * 0x1000 + j * 8, phys | 0x83n); // present, writable, 2 MiB page
    }
  }
  const c = vm.vcpus[0]!;
  const s: Sregs = c.getSregs();
  const code: Segment = { ...seg(8, 11, true), limit: 0xfffff, g: true };
  const data: Segment = { ...seg(16, 3), limit: 0xfffff, g: true, db: true };
  s.cs = code;
  for (const n of ['ds', 'es', 'fs', 'gs', 'ss'] as const) s[n] = data;
  s.cr3 = 0x10000n;
  s.cr4 = 0x20n; // PAE
  s.cr0 = 0x80000011n; // PG, ET, PE
  s.efer = 0x500n; // LME, LMA
  c.setSregs(s);
  c.setRegs({ ...c.getRegs(), rip: BigInt(rip), rflags: 2n, rsp: 0x8000n });
}

/** Writes guest code bytes at `gpa`. */
export function load(vm: Vm, gpa: number, bytes: number[]): void {
  vm.memory.write(gpa, Uint8Array.from(bytes));
}
