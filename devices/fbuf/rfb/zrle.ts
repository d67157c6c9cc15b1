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

/** A growable output buffer written byte by byte without intermediate arrays. */
class Out {
  buf = Buffer.allocUnsafe(1 << 16);
  len = 0;

  reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }

  byte(b: number): void {
    this.buf[this.len++] = b;
  }

  runLength(len: number): void {
    let n = len - 1;
    while (n >= 255) {
      this.buf[this.len++] = 255;
      n -= 255;
    }
    this.buf[this.len++] = n;
  }
}

/** Reused per call: a tile's pixel values, and its runs (start index and length). */
const tileKeys = new Uint32Array(ZRLE_TILE * ZRLE_TILE);
const runStart = new Uint32Array(ZRLE_TILE * ZRLE_TILE);
const runLen = new Uint32Array(ZRLE_TILE * ZRLE_TILE);

/**
 * A tile's palette: an open-addressed table of up to MAX_RLE_PALETTE + 1 colours in 256 slots, indices in order
 * of first appearance. (A Map of pixel values was the encoder's main cost: 32-bit values are not small integers
 * to V8.)
 */
class Palette {
  private readonly keys = new Uint32Array(256);
  private readonly slots = new Int16Array(256);
  /** Tile pixel index where each palette entry first appears. */
  readonly first = new Uint32Array(MAX_RLE_PALETTE + 1);
  size = 0;

  clear(): void {
    this.slots.fill(-1);
    this.size = 0;
  }

  /** The colour's index, adding it while there is room; -1 once the palette is full and the colour is new. */
  index(v: number, k: number): number {
    let h = Math.imul(v, 0x9e3779b1) >>> 24;
    for (;;) {
      const s = this.slots[h]!;
      if (s < 0) break;
      if (this.keys[h] === v) return s;
      h = (h + 1) & 255;
    }
    if (this.size > MAX_RLE_PALETTE) return -1;
    this.keys[h] = v;
    this.slots[h] = this.size;
    this.first[this.size] = k;
    return this.size++;
  }
}
const palette = new Palette();

/**
 * Encodes the tiles of one rectangle (before compression). `pixels` holds the rectangle in the client's pixel
 * format, `bpp` bytes per pixel, row after row.
 */
export function zrleTiles(pixels: Uint8Array, w: number, h: number, bpp: number, cp: CpixelLayout): Buffer {
  const out = new Out();
  const cps = cp.size;
  /** Copies the CPIXEL of pixel (x, y) of the rectangle. */
  const cpixel = (pi: number): void => {
    const s = pi * bpp + cp.offset;
    for (let b = 0; b < cps; b++) out.buf[out.len++] = pixels[s + b]!;
  };
  for (let ty = 0; ty < h; ty += ZRLE_TILE) {
    const th = Math.min(ZRLE_TILE, h - ty);
    for (let tx = 0; tx < w; tx += ZRLE_TILE) {
      const tw = Math.min(ZRLE_TILE, w - tx);
      const n = tw * th;
      // One pass: each pixel's value (its bytes as a number, bpp <= 4), the palette (value -> first pixel) up
      // to one past the largest usable, and the runs.
      palette.clear();
      let runs = 0;
      let prev = -1;
      for (let y = 0, k = 0; y < th; y++) {
        let o = ((ty + y) * w + tx) * bpp;
        for (let x = 0; x < tw; x++, k++, o += bpp) {
          let v = pixels[o]!;
          for (let b = 1; b < bpp; b++) v = v * 256 + pixels[o + b]!;
          tileKeys[k] = v;
          if (v === prev) runLen[runs - 1]!++;
          else {
            // A colour is looked up once per run, not per pixel.
            if (palette.size <= MAX_RLE_PALETTE) palette.index(v, k);
            runStart[runs] = k;
            runLen[runs] = 1;
            runs++;
            prev = v;
          }
        }
      }
      /** Rectangle pixel index of tile pixel k. */
      const at = (k: number): number => (ty + Math.floor(k / tw)) * w + tx + (k % tw);
      const colours = palette.size;
      out.reserve(1 + n * 5 + 2 * MAX_RLE_PALETTE * 4);
      if (colours === 1) {
        out.byte(SUB_SOLID);
        cpixel(at(0));
        continue;
      }
      let lenBytes = 0;
      let singles = 0;
      for (let r = 0; r < runs; r++) {
        const len = runLen[r]!;
        lenBytes += runLengthBytes(len);
        if (len === 1) singles++;
      }
      const rawSize = n * cps;
      const plainRle = runs * cps + lenBytes;
      const paletteRle = colours <= MAX_RLE_PALETTE ? colours * cps + runs + lenBytes - singles : Infinity;
      const bits = colours <= 2 ? 1 : colours <= 4 ? 2 : 4;
      const packed = colours <= MAX_PACKED_PALETTE ? colours * cps + th * Math.ceil((tw * bits) / 8) : Infinity;
      const best = Math.min(rawSize, plainRle, paletteRle, packed);
      if (best === rawSize) {
        out.byte(SUB_RAW);
        for (let y = 0; y < th; y++) {
          const row = (ty + y) * w + tx;
          if (cps === bpp) {
            out.buf.set(pixels.subarray(row * bpp, (row + tw) * bpp), out.len);
            out.len += tw * bpp;
          } else {
            for (let x = 0; x < tw; x++) cpixel(row + x);
          }
        }
        continue;
      }
      if (best === plainRle) {
        out.byte(SUB_PLAIN_RLE);
        for (let r = 0; r < runs; r++) {
          cpixel(at(runStart[r]!));
          out.runLength(runLen[r]!);
        }
        continue;
      }
      // Both palette forms: the palette in order of first appearance, then indices.
      out.byte(best === packed ? colours : 128 + colours);
      for (let i = 0; i < colours; i++) cpixel(at(palette.first[i]!));
      if (best === packed) {
        // Indices packed most significant bit first, each row padded to a whole byte.
        for (let y = 0, k = 0; y < th; y++) {
          let byte = 0;
          let used = 0;
          for (let x = 0; x < tw; x++, k++) {
            byte = (byte << bits) | palette.index(tileKeys[k]!, k);
            used += bits;
            if (used === 8) {
              out.byte(byte);
              byte = 0;
              used = 0;
            }
          }
          if (used > 0) out.byte((byte << (8 - used)) & 255);
        }
      } else {
        for (let r = 0; r < runs; r++) {
          const p = palette.index(tileKeys[runStart[r]!]!, runStart[r]!);
          const len = runLen[r]!;
          if (len === 1) out.byte(p);
          else {
            out.byte(p | 128);
            out.runLength(len);
          }
        }
      }
    }
  }
  return out.buf.subarray(0, out.len);
}

export class ZrleEncoder implements RectEncoder {
  readonly encoding = ENCODING_ZRLE;
  private readonly stream: DeflateStream;

  constructor(level = 6) {
    this.stream = new DeflateStream(level);
  }

  async encode(fb: FramebufferSource, r: Rect, conv: PixelConverter): Promise<Buffer[]> {
    // Tiles go row of tiles by row of tiles, so the work is cut there and the event loop (which also serves the
    // guest's exits) gets a turn between rows instead of waiting for a whole screen.
    const layout = cpixelLayout(conv.format);
    const strips: Buffer[] = [];
    for (let y = 0; y < r.h; y += ZRLE_TILE) {
      if (y > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const strip = { x: r.x, y: r.y + y, w: r.w, h: Math.min(ZRLE_TILE, r.h - y) };
      const pixels = Buffer.allocUnsafe(conv.rectBytes(strip));
      conv.convert(fb, strip, pixels);
      strips.push(zrleTiles(pixels, strip.w, strip.h, conv.bytesPerPixel, layout));
    }
    const data = await this.stream.compress(Buffer.concat(strips));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    return [rectHeader(r, ENCODING_ZRLE), len, data];
  }

  close(): void {
    this.stream.close();
  }
}
