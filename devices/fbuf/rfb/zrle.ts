// ZRLE (RFC 6143 §7.7.6): the rectangle cut into 64x64 tiles, each tile sent as whichever of raw, solid, packed
// palette, plain RLE or palette RLE is smallest, all of it through one deflate stream per connection (its own,
// apart from the zlib encoding's) and sent as U32 length + compressed bytes.
import { DeflateStream, ENCODING_ZRLE, rectHeader, type RectEncoder } from './encodings.js';
import type { FramebufferSource, Rect } from './framebuffer.js';
import type { PixelConverter, PixelFormat } from './pixel-format.js';

export const ZRLE_TILE = 64;

const SUB_RAW = 0;
const SUB_SOLID = 1;
const SUB_PLAIN_RLE = 128;
/** Palette RLE takes up to 127 colours (subencodings 130..255). */
const MAX_RLE_PALETTE = 127;
const MAX_PACKED_PALETTE = 16;

/**
 * How a pixel goes on the wire as a CPIXEL: the full pixel, or 3 bytes when the format is 32 bpp true colour of
 * depth 24 or less with every colour bit in the low three or the high three bytes (§7.7.6).
 */
export interface CpixelLayout {
  size: number;
  /** Offset of the CPIXEL's bytes within the full pixel's bytes. */
  offset: number;
}

export function cpixelLayout(pf: PixelFormat): CpixelLayout {
  const bpp = pf.bitsPerPixel / 8;
  if (pf.bitsPerPixel !== 32 || !pf.trueColour || pf.depth > 24) return { size: bpp, offset: 0 };
  const mask = ((pf.redMax * 2 ** pf.redShift) + (pf.greenMax * 2 ** pf.greenShift) + (pf.blueMax * 2 ** pf.blueShift)) >>> 0;
  // The low 3 bytes come first in a little-endian pixel and last in a big-endian one.
  if ((mask & 0xff000000) === 0) return { size: 3, offset: pf.bigEndian ? 1 : 0 };
  if ((mask & 0x000000ff) === 0) return { size: 3, offset: pf.bigEndian ? 0 : 1 };
  return { size: 4, offset: 0 };
}

/** Bytes of a run length: (len - 1) as a sum of 255s and a final byte below 255. */
function runLengthBytes(len: number): number {
  return Math.floor((len - 1) / 255) + 1;
}

function writeRunLength(out: number[], len: number): void {
  let n = len - 1;
  while (n >= 255) {
    out.push(255);
    n -= 255;
  }
  out.push(n);
}

/**
 * Encodes the tiles of one rectangle (before compression). `pixels` holds the rectangle in the client's pixel
 * format, `bpp` bytes per pixel, row after row.
 */
export function zrleTiles(pixels: Uint8Array, w: number, h: number, bpp: number, cp: CpixelLayout): Buffer {
  const parts: Buffer[] = [];
  const key = (i: number): number => {
    let v = 0;
    for (let b = 0; b < bpp; b++) v = v * 256 + pixels[i * bpp + b]!;
    return v;
  };
  const cpixel = (out: number[], i: number): void => {
    for (let b = 0; b < cp.size; b++) out.push(pixels[i * bpp + cp.offset + b]!);
  };
  for (let ty = 0; ty < h; ty += ZRLE_TILE) {
    const th = Math.min(ZRLE_TILE, h - ty);
    for (let tx = 0; tx < w; tx += ZRLE_TILE) {
      const tw = Math.min(ZRLE_TILE, w - tx);
      // The tile's pixel indices in order, its palette (first pixel of each colour) and its runs.
      const order: number[] = [];
      for (let y = 0; y < th; y++) for (let x = 0; x < tw; x++) order.push((ty + y) * w + tx + x);
      const palette = new Map<number, number>();
      const runs: Array<[number, number]> = [];
      let prev = -1;
      for (const i of order) {
        const k = key(i);
        if (!palette.has(k) && palette.size <= MAX_RLE_PALETTE) palette.set(k, i);
        if (k === prev) runs[runs.length - 1]![1]++;
        else runs.push([i, 1]);
        prev = k;
      }
      const out: number[] = [];
      const n = palette.size;
      if (n === 1) {
        out.push(SUB_SOLID);
        cpixel(out, order[0]!);
        parts.push(Buffer.from(out));
        continue;
      }
      const rawSize = tw * th * cp.size;
      const plainRle = runs.reduce((s, [, len]) => s + cp.size + runLengthBytes(len), 0);
      const fits = n <= MAX_RLE_PALETTE;
      const paletteRle = fits ? n * cp.size + runs.reduce((s, [, len]) => s + (len === 1 ? 1 : 1 + runLengthBytes(len)), 0) : Infinity;
      const bits = n <= 2 ? 1 : n <= 4 ? 2 : 4;
      const packed = n <= MAX_PACKED_PALETTE ? n * cp.size + th * Math.ceil((tw * bits) / 8) : Infinity;
      const best = Math.min(rawSize, plainRle, paletteRle, packed);
      if (best === rawSize) {
        // Raw is the common case for photographic content: copy rows instead of going byte by byte.
        const raw = Buffer.allocUnsafe(1 + rawSize);
        raw[0] = SUB_RAW;
        let o = 1;
        for (let y = 0; y < th; y++) {
          const row = (ty + y) * w + tx;
          if (cp.size === bpp) {
            raw.set(pixels.subarray(row * bpp, (row + tw) * bpp), o);
            o += tw * bpp;
          } else {
            for (let x = 0; x < tw; x++, o += cp.size) raw.set(pixels.subarray((row + x) * bpp + cp.offset, (row + x) * bpp + cp.offset + cp.size), o);
          }
        }
        parts.push(raw);
        continue;
      } else if (best === packed) {
        out.push(n);
        const index = new Map<number, number>();
        for (const [k, i] of palette) {
          index.set(k, index.size);
          cpixel(out, i);
        }
        // Indices packed most significant bit first, each row padded to a whole byte.
        for (let y = 0; y < th; y++) {
          let byte = 0;
          let used = 0;
          for (let x = 0; x < tw; x++) {
            byte = (byte << bits) | index.get(key(order[y * tw + x]!))!;
            used += bits;
            if (used === 8) {
              out.push(byte);
              byte = 0;
              used = 0;
            }
          }
          if (used > 0) out.push(byte << (8 - used));
        }
      } else if (best === paletteRle) {
        out.push(128 + n);
        const index = new Map<number, number>();
        for (const [k, i] of palette) {
          index.set(k, index.size);
          cpixel(out, i);
        }
        for (const [i, len] of runs) {
          const p = index.get(key(i))!;
          if (len === 1) out.push(p);
          else {
            out.push(p | 128);
            writeRunLength(out, len);
          }
        }
      } else {
        out.push(SUB_PLAIN_RLE);
        for (const [i, len] of runs) {
          cpixel(out, i);
          writeRunLength(out, len);
        }
      }
      parts.push(Buffer.from(out));
    }
  }
  return Buffer.concat(parts);
}

export class ZrleEncoder implements RectEncoder {
  readonly encoding = ENCODING_ZRLE;
  private readonly stream: DeflateStream;

  constructor(level = 6) {
    this.stream = new DeflateStream(level);
  }

  async encode(fb: FramebufferSource, r: Rect, conv: PixelConverter): Promise<Buffer[]> {
    const pixels = Buffer.allocUnsafe(conv.rectBytes(r));
    conv.convert(fb, r, pixels);
    const tiles = zrleTiles(pixels, r.w, r.h, conv.bytesPerPixel, cpixelLayout(conv.format));
    const data = await this.stream.compress(tiles);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    return [rectHeader(r, ENCODING_ZRLE), len, data];
  }

  close(): void {
    this.stream.close();
  }
}
