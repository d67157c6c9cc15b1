// RFB pixel formats (RFC 6143 §7.4): the 16-byte PIXEL_FORMAT, its validation, and the conversion of
// XRGB8888 framebuffer pixels into whatever true-colour format a client asked for.
import type { FramebufferSource, Rect } from './framebuffer.js';

export interface PixelFormat {
  bitsPerPixel: number;
  depth: number;
  bigEndian: boolean;
  trueColour: boolean;
  redMax: number;
  greenMax: number;
  blueMax: number;
  redShift: number;
  greenShift: number;
  blueShift: number;
}

/**
 * The format ServerInit announces: exactly the bytes bhyve's fbuf holds (a little-endian 32-bit word
 * 0x00RRGGBB), so Raw updates in it are plain row copies.
 */
export const NATIVE_PIXEL_FORMAT: Readonly<PixelFormat> = Object.freeze({
  bitsPerPixel: 32,
  depth: 24,
  bigEndian: false,
  trueColour: true,
  redMax: 255,
  greenMax: 255,
  blueMax: 255,
  redShift: 16,
  greenShift: 8,
  blueShift: 0,
});

export const PIXEL_FORMAT_SIZE = 16;

/** Decodes a 16-byte PIXEL_FORMAT at `off`. Flags are true when non-zero (RFC 6143 §7.4); padding is ignored. */
export function decodePixelFormat(b: Uint8Array, off = 0): PixelFormat {
  const v = new DataView(b.buffer, b.byteOffset + off, PIXEL_FORMAT_SIZE);
  return {
    bitsPerPixel: v.getUint8(0),
    depth: v.getUint8(1),
    bigEndian: v.getUint8(2) !== 0,
    trueColour: v.getUint8(3) !== 0,
    redMax: v.getUint16(4),
    greenMax: v.getUint16(6),
    blueMax: v.getUint16(8),
    redShift: v.getUint8(10),
    greenShift: v.getUint8(11),
    blueShift: v.getUint8(12),
  };
}

export function encodePixelFormat(pf: PixelFormat): Buffer {
  const b = Buffer.alloc(PIXEL_FORMAT_SIZE);
  b[0] = pf.bitsPerPixel;
  b[1] = pf.depth;
  b[2] = pf.bigEndian ? 1 : 0;
  b[3] = pf.trueColour ? 1 : 0;
  b.writeUInt16BE(pf.redMax, 4);
  b.writeUInt16BE(pf.greenMax, 6);
  b.writeUInt16BE(pf.blueMax, 8);
  b[10] = pf.redShift;
  b[11] = pf.greenShift;
  b[12] = pf.blueShift;
  return b;
}

/** Number of bits in a channel whose maximum is 2^n - 1, or -1 when `max` is not of that form. */
function channelBits(max: number): number {
  if (max < 1) return -1;
  const n = 32 - Math.clz32(max);
  return max === 2 ** n - 1 ? n : -1;
}

/**
 * Why a client's format cannot be served, or null when it can. Colour-map formats are refused: this server
 * never sends SetColourMapEntries (RFC 6143 §7.6.2), so a client in that mode could not show anything.
 */
export function pixelFormatProblem(pf: PixelFormat): string | null {
  if (pf.bitsPerPixel !== 8 && pf.bitsPerPixel !== 16 && pf.bitsPerPixel !== 32) {
    return `bits-per-pixel ${pf.bitsPerPixel} is not 8, 16 or 32`;
  }
  if (pf.depth < 1 || pf.depth > pf.bitsPerPixel) return `depth ${pf.depth} is not 1..${pf.bitsPerPixel}`;
  if (!pf.trueColour) return 'colour-map pixel formats are not supported';
  let used = 0;
  for (const [name, max, shift] of [
    ['red', pf.redMax, pf.redShift],
    ['green', pf.greenMax, pf.greenShift],
    ['blue', pf.blueMax, pf.blueShift],
  ] as const) {
    const bits = channelBits(max);
    if (bits < 0) return `${name}-max ${max} is not 2^n - 1`;
    if (shift + bits > pf.bitsPerPixel) return `${name} channel (${bits} bits at shift ${shift}) does not fit in ${pf.bitsPerPixel} bits`;
    const mask = bits === 32 ? 0xffffffff : ((2 ** bits - 1) * 2 ** shift) >>> 0;
    if ((used & mask) !== 0) return `${name} channel overlaps another`;
    used = (used | mask) >>> 0;
  }
  return null;
}

export function samePixelFormat(a: PixelFormat, b: PixelFormat): boolean {
  return (
    a.bitsPerPixel === b.bitsPerPixel && a.depth === b.depth && a.bigEndian === b.bigEndian && a.trueColour === b.trueColour &&
    a.redMax === b.redMax && a.greenMax === b.greenMax && a.blueMax === b.blueMax &&
    a.redShift === b.redShift && a.greenShift === b.greenShift && a.blueShift === b.blueShift
  );
}

/** A channel value 0..255 scaled to 0..max, rounded to nearest. */
function scale(v: number, max: number): number {
  return Math.floor((v * max + 127) / 255);
}

/**
 * Turns framebuffer rectangles into a client's pixel format. Tables per channel are built once per format,
 * so a pixel costs three look-ups and an OR.
 */
export class PixelConverter {
  readonly format: PixelFormat;
  readonly bytesPerPixel: number;
  /** Raw copies are possible: the client's format is the framebuffer's. */
  readonly native: boolean;
  private readonly red = new Uint32Array(256);
  private readonly green = new Uint32Array(256);
  private readonly blue = new Uint32Array(256);

  constructor(format: PixelFormat) {
    const problem = pixelFormatProblem(format);
    if (problem !== null) throw new RangeError(`unusable pixel format: ${problem}`);
    this.format = { ...format };
    this.bytesPerPixel = format.bitsPerPixel / 8;
    // Depth does not change the bytes (RFC 6143 §7.4: it is advisory), so any depth with the native layout is native.
    this.native = samePixelFormat({ ...format, depth: 24 }, NATIVE_PIXEL_FORMAT);
    for (let v = 0; v < 256; v++) {
      this.red[v] = (scale(v, format.redMax) * 2 ** format.redShift) >>> 0;
      this.green[v] = (scale(v, format.greenMax) * 2 ** format.greenShift) >>> 0;
      this.blue[v] = (scale(v, format.blueMax) * 2 ** format.blueShift) >>> 0;
    }
  }

  /** One XRGB8888 value in the client's format, as a number (for tests and single pixels). */
  pixel(xrgb: number): number {
    return (this.red[(xrgb >>> 16) & 0xff]! | this.green[(xrgb >>> 8) & 0xff]! | this.blue[xrgb & 0xff]!) >>> 0;
  }

  /** Size in bytes of `r` in the client's format. */
  rectBytes(r: Rect): number {
    return r.w * r.h * this.bytesPerPixel;
  }

  /** Writes rectangle `r` (already inside `fb`) row by row into `out` at `off`; returns the end offset. */
  convert(fb: FramebufferSource, r: Rect, out: Uint8Array, off = 0): number {
    const src = fb.pixels;
    const rowBytes = r.w * 4;
    if (this.native) {
      for (let y = 0; y < r.h; y++) {
        const s = (r.y + y) * fb.stride + r.x * 4;
        out.set(src.subarray(s, s + rowBytes), off);
        off += rowBytes;
      }
      return off;
    }
    const { red, green, blue } = this;
    const bpp = this.bytesPerPixel;
    const big = this.format.bigEndian;
    for (let y = 0; y < r.h; y++) {
      let s = (r.y + y) * fb.stride + r.x * 4;
      for (let x = 0; x < r.w; x++, s += 4) {
        const p = (red[src[s + 2]!]! | green[src[s + 1]!]! | blue[src[s]!]!) >>> 0;
        if (bpp === 4) {
          if (big) {
            out[off] = p >>> 24; out[off + 1] = p >>> 16; out[off + 2] = p >>> 8; out[off + 3] = p;
          } else {
            out[off] = p; out[off + 1] = p >>> 8; out[off + 2] = p >>> 16; out[off + 3] = p >>> 24;
          }
        } else if (bpp === 2) {
          if (big) {
            out[off] = p >>> 8; out[off + 1] = p;
          } else {
            out[off] = p; out[off + 1] = p >>> 8;
          }
        } else {
          out[off] = p;
        }
        off += bpp;
      }
    }
    return off;
  }
}
