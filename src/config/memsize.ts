// Memory sizes as libvmmapi's vm_parse_memsize reads them (bhyve-facts §1.1 -m).
import { cParseInteger, cParseWholeInteger } from './cnum.js';

const MiB = 1n << 20n;
const UNIT_SHIFT: Record<string, bigint> = { b: 0n, k: 10n, m: 20n, g: 30n, t: 40n, p: 50n, e: 60n };
const U64_MAX = (1n << 64n) - 1n;

/**
 * FreeBSD's expand_number(3): a number (base 0) with an optional unit B/K/M/G/T/P/E in either case.
 * Returns undefined for anything else, including overflow past 64 bits.
 */
export function expandNumber(s: string): bigint | undefined {
  const r = cParseInteger(s, 0, 0);
  if (!r.ok || r.value < 0n) return undefined;
  if (r.end === s.length) return r.value;
  const unit = s[r.end]!.toLowerCase();
  const shift = UNIT_SHIFT[unit];
  if (shift === undefined || r.end + 1 !== s.length) return undefined;
  const v = r.value << shift;
  return v > U64_MAX ? undefined : v;
}

/**
 * vm_parse_memsize: a plain number below 1 MiB means MiB (for old command lines like `-m 512`), a plain number
 * of 1 MiB or more means bytes, anything else goes through expand_number. Returns bytes, or undefined if invalid.
 */
export function parseMemsize(s: string): bigint | undefined {
  const plain = cParseWholeInteger(s, 0);
  if (s !== '' && plain !== undefined) {
    if (plain < 0n) return undefined;
    return plain < MiB ? plain * MiB : plain;
  }
  return expandNumber(s);
}
