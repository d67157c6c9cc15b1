// An independent view of what a BootPlan leaves in guest memory: the writes applied in order over
// zeroed RAM (what a fresh KVM memory slot holds), read back by address.
import type { BootPlan } from '../../src/loader/index.js';

export class PlanMemory {
  constructor(private readonly plan: BootPlan) {}

  read(gpa: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (const w of this.plan.writes) {
      const start = Math.max(gpa, w.gpa);
      const end = Math.min(gpa + len, w.gpa + w.bytes.length);
      if (start < end) out.set(w.bytes.subarray(start - w.gpa, end - w.gpa), start - gpa);
    }
    return out;
  }

  view(gpa: number, len: number): DataView {
    const b = this.read(gpa, len);
    return new DataView(b.buffer);
  }

  u32(gpa: number): number {
    return this.view(gpa, 4).getUint32(0, true);
  }

  u64(gpa: number): bigint {
    return this.view(gpa, 8).getBigUint64(0, true);
  }

  /** A NUL-terminated string at gpa (at most `max` bytes). */
  cstring(gpa: number, max = 0x10000): string {
    const b = this.read(gpa, max);
    const nul = b.indexOf(0);
    return new TextDecoder().decode(nul >= 0 ? b.subarray(0, nul) : b);
  }

  /** True when some write covers gpa. */
  written(gpa: number): boolean {
    return this.plan.writes.some((w) => gpa >= w.gpa && gpa < w.gpa + w.bytes.length);
  }
}

/** The E820 map bhyve reports for a layout (bhyve-facts §4.1), with the BIOS area marked reserved. */
export function bhyveE820(lowmem: number, highmem: number): { base: number; length: number; type: number }[] {
  const map = [
    { base: 0, length: 0xa0000, type: 1 },
    { base: 0xf0000, length: 0x10000, type: 2 },
    { base: 0x100000, length: lowmem - 0x100000, type: 1 },
  ];
  if (highmem > 0) map.push({ base: 2 ** 32, length: highmem, type: 1 });
  return map;
}
