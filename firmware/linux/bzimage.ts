// The kernel ELF (vmlinux) inside a bzImage. Under TCG every boot of a bzImage spends seconds
// decompressing it, and its real-mode setup reports a CGA text screen whose emulated writes are slow;
// QEMU boots the ELF directly through its PVH entry (Xen PVH note) and skips both.
// Layout (Linux Documentation/arch/x86/boot.rst): the protected-mode part starts after
// (setup_sects + 1) * 512 bytes; payload_offset/payload_length (protocol 2.08+) locate the compressed
// kernel inside it, whose last 4 bytes give the uncompressed size.
import { execFileSync } from 'node:child_process';

export class BzImageError extends Error {
  override name = 'BzImageError';
}

const HDRS = 0x53726448; // "HdrS" at 0x202
const ELF = 0x7f454c46;

/** The compressed payload of a bzImage and the size it decompresses to. */
export function bzImagePayload(bz: Buffer): { data: Buffer; size: number } {
  if (bz.length < 0x260 || bz.readUInt32LE(0x202) !== HDRS) throw new BzImageError('not a bzImage (no HdrS)');
  if (bz.readUInt16LE(0x206) < 0x208) throw new BzImageError('boot protocol before 2.08 has no payload fields');
  const setupSects = bz[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + bz.readUInt32LE(0x248);
  const length = bz.readUInt32LE(0x24c);
  if (start + length > bz.length || length < 8) throw new BzImageError('payload out of range');
  const payload = bz.subarray(start, start + length);
  return { data: payload.subarray(0, length - 4), size: payload.readUInt32LE(length - 4) };
}

const LZ4_LEGACY_MAGIC = 0x184c2102;

/** LZ4 block format: sequences of literals then a back-reference (lz4 Block_format.md). */
function lz4Block(src: Buffer, out: Buffer, outAt: number): number {
  let ip = 0;
  let op = outAt;
  const extend = (n: number): number => {
    let b: number;
    do {
      b = src[ip++]!;
      n += b;
    } while (b === 255 && ip < src.length);
    return n;
  };
  while (ip < src.length) {
    const token = src[ip++]!;
    let literals = token >> 4;
    if (literals === 15) literals = extend(literals);
    if (ip + literals > src.length || op + literals > out.length) throw new BzImageError('lz4 literals overrun');
    src.copy(out, op, ip, ip + literals);
    ip += literals;
    op += literals;
    if (ip >= src.length) break; // the last sequence carries literals only
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw new BzImageError('lz4 bad match offset');
    let match = (token & 15) + 4;
    if ((token & 15) === 15) match = extend(match);
    if (op + match > out.length) throw new BzImageError('lz4 match overrun');
    // Byte by byte: a match may overlap the bytes it is producing.
    for (let i = 0; i < match; i++, op++) out[op] = out[op - offset]!;
  }
  return op;
}

/** The "legacy" LZ4 frame the kernel build uses (lz4 -l): magic, then size-prefixed blocks. */
export function lz4LegacyDecompress(src: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size);
  let ip = 0;
  let op = 0;
  while (ip + 4 <= src.length) {
    const word = src.readUInt32LE(ip);
    ip += 4;
    if (word === LZ4_LEGACY_MAGIC) continue; // a (possibly repeated) frame header
    if (ip + word > src.length) throw new BzImageError('lz4 block runs past the payload');
    op = lz4Block(src.subarray(ip, ip + word), out, op);
    ip += word;
  }
  if (op !== size) throw new BzImageError(`lz4 produced ${op} bytes, expected ${size}`);
  return out;
}

/** The vmlinux ELF inside `bz` (xz via xz(1), lz4 in process: Debian's generic and cloud kernels). */
export function unpackBzImage(bz: Buffer): Buffer {
  const { data, size } = bzImagePayload(bz);
  let elf: Buffer;
  if (data.readUInt32LE(0) === LZ4_LEGACY_MAGIC) elf = lz4LegacyDecompress(data, size);
  else if (data.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
    elf = execFileSync('xz', ['-dc'], { input: data, maxBuffer: size + 1 });
  } else throw new BzImageError('unsupported kernel compression (expected lz4 or xz)');
  if (elf.length !== size || elf.readUInt32BE(0) !== ELF) throw new BzImageError('the payload is not the expected ELF');
  return elf;
}
