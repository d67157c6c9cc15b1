// A small AML (ACPI Machine Language) encoder: enough of ACPI 6.4 §20 to build bhyve's DSDT directly,
// instead of writing ASL and running iasl at start-up as bhyve does.
//
// Every builder returns the encoded bytes of one term. Terms nest by concatenation, so a DSDT is built as
// an expression tree that mirrors the ASL it replaces.

/** An encoded AML term (a TermObj, a DataObject or a name reference). */
export type Aml = Uint8Array;

export class AmlError extends Error {
  override name = 'AmlError';
}

export function concat(parts: readonly Aml[]): Aml {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const bytes = (...b: number[]): Aml => Uint8Array.from(b);

// ---- PkgLength (§20.2.4) ----

/**
 * Encodes a PkgLength for a body of `bodyLength` bytes. The encoded value counts its own bytes too, so the
 * size of the encoding is chosen first: 1 byte holds up to 63, then 2, 3 or 4 bytes hold 12, 20 or 28 bits.
 */
export function pkgLength(bodyLength: number): Aml {
  for (let n = 1; n <= 4; n++) {
    const total = bodyLength + n;
    const limit = n === 1 ? 0x3f : 2 ** (4 + 8 * (n - 1)) - 1;
    if (total <= limit) {
      if (n === 1) return bytes(total);
      const out = new Uint8Array(n);
      out[0] = ((n - 1) << 6) | (total & 0x0f);
      let rest = Math.floor(total / 16);
      for (let i = 1; i < n; i++) {
        out[i] = rest & 0xff;
        rest = Math.floor(rest / 256);
      }
      return out;
    }
  }
  throw new AmlError(`package too long for PkgLength: ${bodyLength} bytes`);
}

/** A PkgLength followed by its body. */
function sized(body: Aml): Aml {
  return concat([pkgLength(body.length), body]);
}

// ---- Names (§20.2.2) ----

const SEG = /^[A-Z_][A-Z0-9_]{0,3}$/;

/** One 4-character NameSeg; shorter names are padded with '_' as ASL does. */
export function nameSeg(seg: string): Aml {
  if (!SEG.test(seg)) throw new AmlError(`invalid ACPI name segment '${seg}'`);
  const padded = seg.padEnd(4, '_');
  return Uint8Array.from(padded, (c) => c.charCodeAt(0));
}

/**
 * A NameString: an optional root ('\') or parent ('^') prefix and dot-separated segments, e.g.
 * `\_SB.PC00.ISA.LNKA`. Two segments use DualNamePrefix, more use MultiNamePrefix (§20.2.2).
 */
export function nameString(path: string): Aml {
  let i = 0;
  const prefix: number[] = [];
  if (path.startsWith('\\')) {
    prefix.push(0x5c);
    i = 1;
  } else {
    while (path[i] === '^') {
      prefix.push(0x5e);
      i++;
    }
  }
  const rest = path.slice(i);
  const segs = rest === '' ? [] : rest.split('.');
  const enc = segs.map(nameSeg);
  let body: Aml;
  if (segs.length === 0) body = bytes(0x00); // NullName
  else if (segs.length === 1) body = enc[0]!;
  else if (segs.length === 2) body = concat([bytes(0x2e), ...enc]);
  else if (segs.length <= 255) body = concat([bytes(0x2f, segs.length), ...enc]);
  else throw new AmlError(`name path too long: ${path}`);
  return concat([Uint8Array.from(prefix), body]);
}

// ---- Data objects (§20.2.3) ----

/**
 * The shortest integer encoding: Zero, One, Ones (all 64 bits set), or Byte/Word/DWord/QWord constants.
 * Numbers above 2^53 must be passed as bigint.
 */
export function integer(value: number | bigint): Aml {
  const v = BigInt(value);
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new AmlError(`integer out of range: ${value}`);
  if (v === 0n) return bytes(0x00);
  if (v === 1n) return bytes(0x01);
  if (v === 0xffff_ffff_ffff_ffffn) return bytes(0xff);
  if (v <= 0xffn) return bytes(0x0a, Number(v));
  if (v <= 0xffffn) return concat([bytes(0x0b), le(v, 2)]);
  if (v <= 0xffff_ffffn) return concat([bytes(0x0c), le(v, 4)]);
  return concat([bytes(0x0e), le(v, 8)]);
}

/** Integers encoded with a fixed prefix even when a shorter form exists (ASL's explicit widths). */
export const byteConst = (v: number): Aml => concat([bytes(0x0a), le(BigInt(v), 1)]);
export const wordConst = (v: number): Aml => concat([bytes(0x0b), le(BigInt(v), 2)]);
export const dwordConst = (v: number): Aml => concat([bytes(0x0c), le(BigInt(v), 4)]);
export const qwordConst = (v: number | bigint): Aml => concat([bytes(0x0e), le(BigInt(v), 8)]);

export function le(v: bigint, n: number): Aml {
  const out = new Uint8Array(n);
  let x = v;
  for (let i = 0; i < n; i++) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  if (x !== 0n) throw new AmlError(`value ${v} does not fit in ${n} bytes`);
  return out;
}

/** A null-terminated ASCII string constant. */
export function string(s: string): Aml {
  for (const c of s) {
    const code = c.charCodeAt(0);
    if (code < 0x01 || code > 0x7f) throw new AmlError(`AML strings are ASCII without NUL: ${JSON.stringify(s)}`);
  }
  return concat([bytes(0x0d), Uint8Array.from(s, (c) => c.charCodeAt(0)), bytes(0x00)]);
}

/** Buffer (§20.2.5.4): BufferOp PkgLength BufferSize ByteList. */
export function buffer(data: Uint8Array): Aml {
  return concat([bytes(0x11), sized(concat([integer(data.length), data]))]);
}

/** Package (§20.2.5.4): at most 255 elements, each a data object or a name reference. */
export function pkg(elements: readonly Aml[]): Aml {
  if (elements.length > 255) throw new AmlError('Package has more than 255 elements');
  return concat([bytes(0x12), sized(concat([bytes(elements.length), ...elements]))]);
}

/**
 * EISA ID compression of a 7-character PNP ID such as "PNP0A03" (ACPI 6.4 §6.1.5): three 5-bit letters
 * and four hex digits, stored big-endian in a DWord.
 */
export function eisaId(id: string): Aml {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new AmlError(`invalid EISA ID '${id}'`);
  const c = (i: number): number => id.charCodeAt(i) - 0x40;
  const hi = (c(0) << 10) | (c(1) << 5) | c(2);
  const lo = parseInt(id.slice(3), 16);
  const be = [(hi >> 8) & 0xff, hi & 0xff, (lo >> 8) & 0xff, lo & 0xff];
  return dwordConst(be[0]! | (be[1]! << 8) | (be[2]! << 16) | (be[3]! * 2 ** 24));
}

// ---- Namespace modifiers and named objects (§20.2.5.1, §20.2.5.2) ----

export const zero = bytes(0x00);
export const one = bytes(0x01);
export const ones = bytes(0xff);

export function name(n: string, value: Aml): Aml {
  return concat([bytes(0x08), nameString(n), value]);
}

export function scope(n: string, terms: readonly Aml[]): Aml {
  return concat([bytes(0x10), sized(concat([nameString(n), ...terms]))]);
}

export function device(n: string, terms: readonly Aml[]): Aml {
  return concat([bytes(0x5b, 0x82), sized(concat([nameString(n), ...terms]))]);
}

export function method(n: string, argCount: number, serialized: boolean, terms: readonly Aml[]): Aml {
  if (!Number.isInteger(argCount) || argCount < 0 || argCount > 7) throw new AmlError(`bad method arg count ${argCount}`);
  const flags = argCount | (serialized ? 0x08 : 0);
  return concat([bytes(0x14), sized(concat([nameString(n), bytes(flags), ...terms]))]);
}

/** Address spaces for OperationRegion (§19.6.100). */
export const RegionSpace = { SystemMemory: 0, SystemIO: 1, PciConfig: 2 } as const;

export function operationRegion(n: string, space: number, offset: number, length: number): Aml {
  return concat([bytes(0x5b, 0x80), nameString(n), bytes(space), integer(offset), integer(length)]);
}

/** One entry of a Field list: a named field of `bits`, or an Offset() expressed as a reserved gap. */
export type FieldUnit = { name: string; bits: number } | { skipBits: number };

/**
 * Field (§20.2.5.2). `flags` packs AccessType (bits 0-3), LockRule (bit 4) and UpdateRule (bits 5-6);
 * 0 is AnyAcc, NoLock, Preserve.
 */
export function field(region: string, flags: number, units: readonly FieldUnit[]): Aml {
  const list = units.map((u) =>
    'name' in u ? concat([nameSeg(u.name), pkgLengthValue(u.bits)]) : concat([bytes(0x00), pkgLengthValue(u.skipBits)]),
  );
  return concat([bytes(0x5b, 0x81), sized(concat([nameString(region), bytes(flags), ...list]))]);
}

/** Field widths reuse the PkgLength encoding for a plain number (the value does not count its own bytes). */
function pkgLengthValue(v: number): Aml {
  if (v <= 0x3f) return bytes(v);
  for (let n = 2; n <= 4; n++) {
    if (v < 2 ** (4 + 8 * (n - 1))) {
      const out = new Uint8Array(n);
      out[0] = ((n - 1) << 6) | (v & 0x0f);
      let rest = Math.floor(v / 16);
      for (let i = 1; i < n; i++) {
        out[i] = rest & 0xff;
        rest = Math.floor(rest / 256);
      }
      return out;
    }
  }
  throw new AmlError(`field width too large: ${v}`);
}

/** CreateWordField (SourceBuff, ByteIndex, Name). */
export function createWordField(source: Aml, byteIndex: number, n: string): Aml {
  return concat([bytes(0x8b), source, integer(byteIndex), nameString(n)]);
}

// ---- Statements and expressions (§20.2.5.3, §20.2.5.4) ----

export const local = (i: number): Aml => bytes(0x60 + checkIndex(i, 7));
export const arg = (i: number): Aml => bytes(0x68 + checkIndex(i, 6));
/** The empty Target of an expression whose result is only returned. */
export const noTarget = bytes(0x00);

function checkIndex(i: number, max: number): number {
  if (!Number.isInteger(i) || i < 0 || i > max) throw new AmlError(`index ${i} out of range 0..${max}`);
  return i;
}

export const ret = (value: Aml): Aml => concat([bytes(0xa4), value]);
export const store = (value: Aml, target: Aml): Aml => concat([bytes(0x70), value, target]);
export const and = (a: Aml, b: Aml, target: Aml = noTarget): Aml => concat([bytes(0x7b), a, b, target]);
export const shiftLeft = (a: Aml, b: Aml, target: Aml = noTarget): Aml => concat([bytes(0x79), a, b, target]);
export const findSetRightBit = (a: Aml, target: Aml): Aml => concat([bytes(0x82), a, target]);
export const decrement = (superName: Aml): Aml => concat([bytes(0x76), superName]);
export const lEqual = (a: Aml, b: Aml): Aml => concat([bytes(0x93), a, b]);
export const lLess = (a: Aml, b: Aml): Aml => concat([bytes(0x95), a, b]);
/** A reference to a named object, or a call when followed by the method's arguments. */
export const ref = (path: string): Aml => nameString(path);
export const call = (path: string, args: readonly Aml[]): Aml => concat([nameString(path), ...args]);

export function ifThen(predicate: Aml, body: readonly Aml[]): Aml {
  return concat([bytes(0xa0), sized(concat([predicate, ...body]))]);
}

export function elseDo(body: readonly Aml[]): Aml {
  return concat([bytes(0xa1), sized(concat(body))]);
}
