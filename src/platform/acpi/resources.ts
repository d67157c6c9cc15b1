// ACPI resource descriptors (ACPI 6.4 §6.4) and ResourceTemplate, the Buffer that _CRS/_PRS return.
import { AmlError, buffer, concat, le, type Aml } from './aml.js';

/** One encoded resource descriptor, without the End Tag. */
export type Resource = Uint8Array;

const u16 = (v: number): Uint8Array => le(BigInt(checkRange(v, 0xffff)), 2);
const u32 = (v: number): Uint8Array => le(BigInt(checkRange(v, 0xffff_ffff)), 4);
const u64 = (v: number | bigint): Uint8Array => le(BigInt(v), 8);

function checkRange(v: number, max: number): number {
  if (!Number.isSafeInteger(v) || v < 0 || v > max) throw new AmlError(`resource field ${v} out of range 0..${max}`);
  return v;
}

function irqMask(irqs: readonly number[]): Uint8Array {
  let mask = 0;
  for (const irq of irqs) mask |= 1 << checkRange(irq, 15);
  return u16(mask);
}

/** IO (Decode16, min, max, alignment, length): small item 0x8, 7 bytes (§6.4.2.5). */
export function io(min: number, max: number, alignment: number, length: number): Resource {
  return concat([Uint8Array.of(0x47, 0x01), u16(min), u16(max), Uint8Array.of(checkRange(alignment, 0xff), checkRange(length, 0xff))]);
}

/** The fixed-port form bhyve writes for every legacy device: min = max = base, alignment 1. */
export const fixedPorts = (base: number, length: number): Resource => io(base, base, 1, length);

/** FixedIO (base, length): small item 0x9, 10-bit decode (§6.4.2.6). */
export function fixedIo(base: number, length: number): Resource {
  return concat([Uint8Array.of(0x4b), u16(checkRange(base, 0x3ff)), Uint8Array.of(checkRange(length, 0xff))]);
}

/** IRQNoFlags () {irqs}: the 2-byte IRQ form, edge-triggered active-high exclusive (§6.4.2.1). */
export function irqNoFlags(irqs: readonly number[]): Resource {
  return concat([Uint8Array.of(0x22), irqMask(irqs)]);
}

export interface IrqFlags {
  level: boolean;
  activeLow: boolean;
  shared: boolean;
}

/** IRQ (trigger, polarity, sharing) {irqs}: the 3-byte IRQ form. */
export function irq(flags: IrqFlags, irqs: readonly number[]): Resource {
  const info = (flags.level ? 0 : 0x01) | (flags.activeLow ? 0x08 : 0) | (flags.shared ? 0x10 : 0);
  return concat([Uint8Array.of(0x23), irqMask(irqs), Uint8Array.of(info)]);
}

/** Interrupt (ResourceConsumer, trigger, polarity, sharing) {gsis}: extended interrupt, large item 0x09 (§6.4.3.6). */
export function extendedInterrupt(flags: IrqFlags, gsis: readonly number[]): Resource {
  if (gsis.length === 0 || gsis.length > 255) throw new AmlError('Interrupt() needs 1..255 interrupt numbers');
  const info = 0x01 /* consumer */ | (flags.level ? 0 : 0x02) | (flags.activeLow ? 0x04 : 0) | (flags.shared ? 0x08 : 0);
  const body = concat([Uint8Array.of(info, gsis.length), ...gsis.map(u32)]);
  return concat([Uint8Array.of(0x89), u16(body.length), body]);
}

/** Memory32Fixed (ReadWrite|ReadOnly, base, length): large item 0x06 (§6.4.3.4). */
export function memory32Fixed(base: number, length: number, writable = true): Resource {
  return concat([Uint8Array.of(0x86), u16(9), Uint8Array.of(writable ? 1 : 0), u32(base), u32(length)]);
}

// Address space descriptors (§6.4.3.5). The general flags byte used here is the one bhyve's root bridges
// use: ResourceProducer, PosDecode, MinFixed, MaxFixed.
const PRODUCER_FIXED = 0x0c;
const TYPE_MEMORY = 0;
const TYPE_IO = 1;
const TYPE_BUS = 2;
/** Memory type-specific flags: ReadWrite, NonCacheable, AddressRangeMemory, TypeStatic. */
const MEM_RW_NONCACHEABLE = 0x01;
/** I/O type-specific flags: EntireRange, TypeStatic. */
const IO_ENTIRE_RANGE = 0x03;

/** A half-open range [base, limit) described by min = base, max = limit - 1, length = limit - base. */
export interface Window {
  base: number;
  limit: number;
}

function checkWindow(w: Window): void {
  if (!(w.limit > w.base)) throw new AmlError(`empty or inverted window [${w.base}, ${w.limit})`);
}

function word(type: number, typeFlags: number, w: Window): Resource {
  checkWindow(w);
  const body = concat([Uint8Array.of(type, PRODUCER_FIXED, typeFlags), u16(0), u16(w.base), u16(w.limit - 1), u16(0), u16(w.limit - w.base)]);
  return concat([Uint8Array.of(0x88), u16(body.length), body]);
}

function dword(type: number, typeFlags: number, w: Window): Resource {
  checkWindow(w);
  const body = concat([Uint8Array.of(type, PRODUCER_FIXED, typeFlags), u32(0), u32(w.base), u32(w.limit - 1), u32(0), u32(w.limit - w.base)]);
  return concat([Uint8Array.of(0x87), u16(body.length), body]);
}

function qword(type: number, typeFlags: number, w: Window): Resource {
  checkWindow(w);
  const body = concat([
    Uint8Array.of(type, PRODUCER_FIXED, typeFlags),
    u64(0),
    u64(w.base),
    u64(w.limit - 1),
    u64(0),
    u64(w.limit - w.base),
  ]);
  return concat([Uint8Array.of(0x8a), u16(body.length), body]);
}

export const wordBusNumber = (w: Window): Resource => word(TYPE_BUS, 0, w);
export const wordIo = (w: Window): Resource => word(TYPE_IO, IO_ENTIRE_RANGE, w);
export const dwordIo = (w: Window): Resource => dword(TYPE_IO, IO_ENTIRE_RANGE, w);
export const dwordMemory = (w: Window): Resource => dword(TYPE_MEMORY, MEM_RW_NONCACHEABLE, w);
export const qwordMemory = (w: Window): Resource => qword(TYPE_MEMORY, MEM_RW_NONCACHEABLE, w);

/**
 * ResourceTemplate () {...}: the descriptors followed by an End Tag whose checksum makes the whole template
 * sum to zero (§6.4.2.9), wrapped in an AML Buffer.
 */
export function resourceTemplate(resources: readonly Resource[]): Aml {
  const body = concat([...resources, Uint8Array.of(0x79, 0x00)]);
  let sum = 0;
  for (const b of body) sum = (sum + b) & 0xff;
  body[body.length - 1] = (0x100 - sum) & 0xff;
  return buffer(body);
}
