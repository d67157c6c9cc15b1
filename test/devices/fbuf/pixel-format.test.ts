// Converting bhyve's XRGB8888 into client pixel formats (RFC 6143 §7.4): 32, 16 and 8 bpp, both byte orders,
// odd shifts, rounding at the channel ends, and the PIXEL_FORMAT bytes.
import test from 'tape';
import {
  decodePixelFormat, encodePixelFormat, NATIVE_PIXEL_FORMAT, PixelConverter, pixelFormatProblem, type PixelFormat,
} from '../../../devices/fbuf/rfb/pixel-format.js';
import { expectedPixel, readPixel, TestFramebuffer } from './helpers.js';

const formats: Array<[string, PixelFormat]> = [
  ['native', { ...NATIVE_PIXEL_FORMAT }],
  ['32 bpp big-endian BGR', { ...NATIVE_PIXEL_FORMAT, bigEndian: true, redShift: 0, blueShift: 16 }],
  ['32 bpp RGBX (shifts 24/16/8)', { ...NATIVE_PIXEL_FORMAT, redShift: 24, greenShift: 16, blueShift: 8 }],
  ['30-bit 10:10:10', { bitsPerPixel: 32, depth: 30, bigEndian: false, trueColour: true, redMax: 1023, greenMax: 1023, blueMax: 1023, redShift: 20, greenShift: 10, blueShift: 0 }],
  ['RGB565 little-endian', { bitsPerPixel: 16, depth: 16, bigEndian: false, trueColour: true, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 }],
  ['RGB565 big-endian', { bitsPerPixel: 16, depth: 16, bigEndian: true, trueColour: true, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 }],
  ['RGB555', { bitsPerPixel: 16, depth: 15, bigEndian: false, trueColour: true, redMax: 31, greenMax: 31, blueMax: 31, redShift: 10, greenShift: 5, blueShift: 0 }],
  ['BGR233', { bitsPerPixel: 8, depth: 8, bigEndian: false, trueColour: true, redMax: 7, greenMax: 7, blueMax: 3, redShift: 0, greenShift: 3, blueShift: 6 }],
  ['RGB111 in 8 bpp', { bitsPerPixel: 8, depth: 3, bigEndian: false, trueColour: true, redMax: 1, greenMax: 1, blueMax: 1, redShift: 2, greenShift: 1, blueShift: 0 }],
];

test('PIXEL_FORMAT round-trips through its 16 bytes', (t) => {
  for (const [name, pf] of formats) t.deepEqual(decodePixelFormat(encodePixelFormat(pf)), pf, name);
  const b = encodePixelFormat(NATIVE_PIXEL_FORMAT);
  t.deepEqual([...b], [32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0], 'the native format on the wire');
  t.end();
});

test('a rectangle converts pixel for pixel into each format', (t) => {
  const fb = new TestFramebuffer(37, 23).pattern(11);
  // The channel ends must map to 0 and max exactly.
  fb.set(0, 0, 255, 255, 255);
  fb.set(1, 0, 0, 0, 0);
  fb.set(2, 0, 128, 127, 1);
  const rect = { x: 3, y: 2, w: 30, h: 19 };
  for (const [name, pf] of formats) {
    const conv = new PixelConverter(pf);
    const out = Buffer.alloc(conv.rectBytes(rect) + 4, 0xee);
    const end = conv.convert(fb, rect, out, 4);
    t.equal(end, 4 + rect.w * rect.h * (pf.bitsPerPixel / 8), `${name}: length`);
    let bad = 0;
    for (let y = 0; y < rect.h; y++) {
      for (let x = 0; x < rect.w; x++) {
        const [r, g, b] = fb.rgb(rect.x + x, rect.y + y);
        if (readPixel(pf, out, 4 + (y * rect.w + x) * (pf.bitsPerPixel / 8)) !== expectedPixel(pf, r, g, b)) bad++;
      }
    }
    t.equal(bad, 0, `${name}: every pixel`);
    const white = conv.pixel(0xffffff);
    t.equal(white, ((pf.redMax << pf.redShift) | (pf.greenMax << pf.greenShift) | (pf.blueMax << pf.blueShift)) >>> 0, `${name}: white is all maxima`);
    t.equal(conv.pixel(0), 0, `${name}: black is 0`);
  }
  t.end();
});

test('the native format is a plain copy of each row (stride padding left out)', (t) => {
  const fb = new TestFramebuffer(8, 4).pattern(3);
  const conv = new PixelConverter(NATIVE_PIXEL_FORMAT);
  t.ok(conv.native);
  t.ok(new PixelConverter({ ...NATIVE_PIXEL_FORMAT, depth: 32 }).native, 'depth alone does not change the bytes');
  t.notOk(new PixelConverter({ ...NATIVE_PIXEL_FORMAT, bigEndian: true }).native);
  const out = Buffer.alloc(8 * 4 * 4);
  conv.convert(fb, { x: 0, y: 0, w: 8, h: 4 }, out);
  for (let y = 0; y < 4; y++) t.deepEqual(out.subarray(y * 32, y * 32 + 32), fb.pixels.subarray(y * fb.stride, y * fb.stride + 32), `row ${y}`);
  t.end();
});

test('pixelFormatProblem explains refusals and the converter will not take them', (t) => {
  t.equal(pixelFormatProblem(NATIVE_PIXEL_FORMAT), null);
  t.match(pixelFormatProblem({ ...NATIVE_PIXEL_FORMAT, trueColour: false }) ?? '', /colour-map/);
  t.match(pixelFormatProblem({ ...NATIVE_PIXEL_FORMAT, bitsPerPixel: 16 }) ?? '', /does not fit|depth/);
  t.throws(() => new PixelConverter({ ...NATIVE_PIXEL_FORMAT, redMax: 100 }), RangeError);
  t.end();
});
