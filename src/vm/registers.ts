// Typed vCPU register state. 64-bit values are bigint; the flat layouts match native/vmm/vmm.h
// (kRegCount, kSregCount) and are filled by KVM_GET_REGS / KVM_GET_SREGS.

export const REG_NAMES = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags',
] as const;
export type RegName = (typeof REG_NAMES)[number];
export type Regs = Record<RegName, bigint>;

export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  /** descriptor type field (4 bits) */
  type: number;
  present: boolean;
  dpl: number;
  /** default operation size (D/B) */
  db: boolean;
  /** code/data (true) or system (false) */
  s: boolean;
  /** 64-bit code segment */
  l: boolean;
  /** granularity */
  g: boolean;
  avl: boolean;
  unusable: boolean;
}

export interface DescriptorTable {
  base: bigint;
  limit: number;
}

export const SEG_NAMES = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
export type SegName = (typeof SEG_NAMES)[number];

export interface Sregs extends Record<SegName, Segment> {
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
}

export const REG_COUNT = 18;
export const SREG_COUNT = 43;

export function unpackRegs(a: BigUint64Array): Regs {
  const r = {} as Regs;
  REG_NAMES.forEach((n, i) => (r[n] = a[i]!));
  return r;
}

export function packRegs(r: Regs): BigUint64Array {
  const a = new BigUint64Array(REG_COUNT);
  REG_NAMES.forEach((n, i) => (a[i] = BigInt.asUintN(64, r[n])));
  return a;
}

function unpackSeg(a: BigUint64Array, o: number): Segment {
  const f = Number(a[o + 3]!);
  return {
    base: a[o]!, limit: Number(a[o + 1]!), selector: Number(a[o + 2]!),
    type: f & 15, present: !!(f & 0x10), dpl: (f >> 5) & 3, db: !!(f & 0x80), s: !!(f & 0x100),
    l: !!(f & 0x200), g: !!(f & 0x400), avl: !!(f & 0x800), unusable: !!(f & 0x1000),
  };
}

function packSeg(s: Segment, a: BigUint64Array, o: number): void {
  a[o] = BigInt.asUintN(64, s.base);
  a[o + 1] = BigInt(s.limit >>> 0);
  a[o + 2] = BigInt(s.selector & 0xffff);
  a[o + 3] = BigInt(
    (s.type & 15) | (s.present ? 0x10 : 0) | ((s.dpl & 3) << 5) | (s.db ? 0x80 : 0) | (s.s ? 0x100 : 0) |
      (s.l ? 0x200 : 0) | (s.g ? 0x400 : 0) | (s.avl ? 0x800 : 0) | (s.unusable ? 0x1000 : 0),
  );
}

export function unpackSregs(a: BigUint64Array): Sregs {
  const s = {} as Sregs;
  SEG_NAMES.forEach((n, i) => (s[n] = unpackSeg(a, 4 * i)));
  s.gdt = { base: a[32]!, limit: Number(a[33]!) };
  s.idt = { base: a[34]!, limit: Number(a[35]!) };
  s.cr0 = a[36]!; s.cr2 = a[37]!; s.cr3 = a[38]!; s.cr4 = a[39]!; s.cr8 = a[40]!; s.efer = a[41]!; s.apicBase = a[42]!;
  return s;
}

export function packSregs(s: Sregs): BigUint64Array {
  const a = new BigUint64Array(SREG_COUNT);
  SEG_NAMES.forEach((n, i) => packSeg(s[n], a, 4 * i));
  a[32] = s.gdt.base; a[33] = BigInt(s.gdt.limit & 0xffff);
  a[34] = s.idt.base; a[35] = BigInt(s.idt.limit & 0xffff);
  a[36] = s.cr0; a[37] = s.cr2; a[38] = s.cr3; a[39] = s.cr4; a[40] = s.cr8; a[41] = s.efer; a[42] = s.apicBase;
  return a;
}
