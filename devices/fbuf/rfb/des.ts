// DES (FIPS 46-3) on single 8-byte blocks, written out here because Node's OpenSSL 3 offers DES only through
// its legacy provider, which is not loaded by default. It exists for VNC Authentication alone (RFC 6143 §7.2.2),
// handles two blocks per login, and so favours plainness over speed: bits are kept one per array element.
// Tables are numbered from 1 for the most significant bit, as FIPS 46-3 prints them.

const PC1 = [
  57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
  63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
];
const PC2 = [
  14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
  41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
];
const ROTATIONS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];
const IP = [
  58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
  57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3, 61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
];
/** The final permutation is IP's inverse. */
const FP = (() => {
  const fp = new Array<number>(64);
  IP.forEach((src, i) => (fp[src - 1] = i + 1));
  return fp;
})();
/** Expansion: each 4-bit group with its neighbours' edge bits, wrapping around (32 1 2 3 4 5, 4 5 ... 1). */
const E = Array.from({ length: 48 }, (_, i) => ((Math.floor(i / 6) * 4 + (i % 6) - 1 + 32) % 32) + 1);
const P = [16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25];
const SBOX = [
  [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
    4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13],
  [15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
    0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9],
  [10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
    13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12],
  [7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
    10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14],
  [2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
    4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3],
  [12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
    9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13],
  [4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
    1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12],
  [13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
    7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11],
];

type Bits = number[];

function toBits(b: Uint8Array): Bits {
  const out: Bits = [];
  for (const byte of b) for (let i = 7; i >= 0; i--) out.push((byte >> i) & 1);
  return out;
}

function fromBits(bits: Bits): Buffer {
  const out = Buffer.alloc(bits.length / 8);
  bits.forEach((bit, i) => (out[i >> 3]! |= bit << (7 - (i & 7))));
  return out;
}

function permute(bits: Bits, table: readonly number[]): Bits {
  return table.map((pos) => bits[pos - 1]!);
}

function rotateLeft(half: Bits, n: number): Bits {
  return half.slice(n).concat(half.slice(0, n));
}

/** The 16 48-bit round keys; the parity bits (the low bit of each key byte) are ignored, as PC-1 drops them. */
function roundKeys(key: Uint8Array): Bits[] {
  let cd = permute(toBits(key), PC1);
  let c = cd.slice(0, 28);
  let d = cd.slice(28);
  return ROTATIONS.map((n) => {
    c = rotateLeft(c, n);
    d = rotateLeft(d, n);
    cd = c.concat(d);
    return permute(cd, PC2);
  });
}

function feistel(r: Bits, k: Bits): Bits {
  const x = permute(r, E).map((bit, i) => bit ^ k[i]!);
  const out: Bits = [];
  for (let s = 0; s < 8; s++) {
    const g = x.slice(s * 6, s * 6 + 6);
    const row = (g[0]! << 1) | g[5]!;
    const col = (g[1]! << 3) | (g[2]! << 2) | (g[3]! << 1) | g[4]!;
    const v = SBOX[s]![row * 16 + col]!;
    out.push((v >> 3) & 1, (v >> 2) & 1, (v >> 1) & 1, v & 1);
  }
  return permute(out, P);
}

function cryptBlock(key: Uint8Array, block: Uint8Array, decrypt: boolean): Buffer {
  if (key.length !== 8) throw new RangeError(`a DES key is 8 bytes, not ${key.length}`);
  if (block.length !== 8) throw new RangeError(`a DES block is 8 bytes, not ${block.length}`);
  const keys = roundKeys(key);
  if (decrypt) keys.reverse();
  const x = permute(toBits(block), IP);
  let l = x.slice(0, 32);
  let r = x.slice(32);
  for (const k of keys) {
    const f = feistel(r, k);
    [l, r] = [r, l.map((bit, i) => bit ^ f[i]!)];
  }
  // The halves are not swapped back after round 16 (FIPS 46-3: the pre-output is R16 L16).
  return fromBits(permute(r.concat(l), FP));
}

/** DES-encrypts one 8-byte block. */
export function desEncryptBlock(key: Uint8Array, block: Uint8Array): Buffer {
  return cryptBlock(key, block, false);
}

/** DES-decrypts one 8-byte block. */
export function desDecryptBlock(key: Uint8Array, block: Uint8Array): Buffer {
  return cryptBlock(key, block, true);
}

/** DES in ECB mode over a whole number of blocks. */
export function desEncryptEcb(key: Uint8Array, data: Uint8Array): Buffer {
  if (data.length % 8 !== 0) throw new RangeError(`DES-ECB data of ${data.length} bytes is not whole blocks`);
  const out = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i += 8) out.set(desEncryptBlock(key, data.subarray(i, i + 8)), i);
  return out;
}
