// C library number parsing as bhyve uses it (strtol/strtoul with base 0, sscanf %d), so edge cases such as
// "0x10", "010" (octal), "3x" in a slot number and trailing garbage behave as they do under bhyve.

export interface CParse {
  /** the parsed value (BigInt so 64-bit values are exact) */
  value: bigint;
  /** index of the first character not consumed */
  end: number;
  /** false when no digits were found (C sets endptr = start) */
  ok: boolean;
}

const isSpace = (c: string | undefined): boolean => c !== undefined && ' \t\n\v\f\r'.includes(c);

/** strtol/strtoul-style parse with base 0 (or a given base), starting at `start`. */
export function cParseInteger(s: string, start = 0, base = 0): CParse {
  let i = start;
  while (isSpace(s[i])) i++;
  let neg = false;
  if (s[i] === '+' || s[i] === '-') {
    neg = s[i] === '-';
    i++;
  }
  let b = base;
  if ((b === 0 || b === 16) && s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && isDigit(s[i + 2], 16)) {
    i += 2;
    b = 16;
  } else if (b === 0) {
    b = s[i] === '0' ? 8 : 10;
  }
  const digitsStart = i;
  let v = 0n;
  while (isDigit(s[i], b)) {
    v = v * BigInt(b) + BigInt(parseInt(s[i]!, b));
    i++;
  }
  if (i === digitsStart) return { value: 0n, end: start, ok: false };
  return { value: neg ? -v : v, end: i, ok: true };
}

function isDigit(c: string | undefined, base: number): boolean {
  if (c === undefined) return false;
  const d = parseInt(c, 36);
  return !Number.isNaN(d) && d < base;
}

/** The whole string must be one integer (strtol with *endptr == '\0' and at least one digit). */
export function cParseWholeInteger(s: string, base = 0): bigint | undefined {
  const r = cParseInteger(s, 0, base);
  return r.ok && r.end === s.length ? r.value : undefined;
}

/**
 * sscanf(s, fmt) for formats made of `%d` conversions and literal characters (what bhyve's slot and -p
 * parsers use). Returns the converted ints; its length is sscanf's return value (-1 becomes 0 here).
 */
export function cScanInts(s: string, fmt: string): number[] {
  const out: number[] = [];
  let i = 0;
  for (let f = 0; f < fmt.length; f++) {
    if (fmt[f] === '%' && fmt[f + 1] === 'd') {
      f++;
      const r = cParseInteger(s, i, 10);
      if (!r.ok) return out;
      // sscanf stores an int: keep the low 32 bits as C would on overflow.
      out.push(Number(BigInt.asIntN(32, r.value)));
      i = r.end;
    } else if (isSpace(fmt[f])) {
      while (isSpace(s[i])) i++;
    } else {
      if (s[i] !== fmt[f]) return out;
      i++;
    }
  }
  return out;
}
