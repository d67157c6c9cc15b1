// ZRLE's tile coding (RFC 6143 §7.7.6) without a network: the subencoding each kind of tile gets, CPIXEL sizes,
// and a round trip through the test's own decoder.
import test from 'tape';
import { cpixelLayout, zrleTiles } from '../../../devices/fbuf/rfb/zrle.js';
import { NATIVE_PIXEL_FORMAT, PixelConverter, type PixelFormat } from '../../../devices/fbuf/rfb/pixel-format.js';
import { decodeZrle, TestFramebuffer } from './helpers.js';

function encode(fb: TestFramebuffer, pf: PixelFormat): { tiles: Buffer; pixels: Buffer } {
  const conv = new PixelConverter(pf);
  const rect = { x: 0, y: 0, w: fb.width, h: fb.height };
  const pixels = Buffer.alloc(conv.rectBytes(rect));
  conv.convert(fb, rect, pixels);
  return { tiles: zrleTiles(pixels, fb.width, fb.height, conv.bytesPerPixel, cpixelLayout(pf)), pixels };
}

test('CPIXEL is 3 bytes only for 32 bpp, depth <= 24, colours in the low or high three bytes', (t) => {
  t.deepEqual(cpixelLayout(NATIVE_PIXEL_FORMAT), { size: 3, offset: 0 }, 'native: the low three bytes, first in little-endian');
  t.deepEqual(cpixelLayout({ ...NATIVE_PIXEL_FORMAT, bigEndian: true }), { size: 3, offset: 1 }, 'big-endian: the low bytes come last');
  t.deepEqual(cpixelLayout({ ...NATIVE_PIXEL_FORMAT, redShift: 24, greenShift: 16, blueShift: 8 }), { size: 3, offset: 1 }, 'high three bytes, little-endian');
  t.deepEqual(cpixelLayout({ ...NATIVE_PIXEL_FORMAT, depth: 32 }), { size: 4, offset: 0 }, 'depth 32: full pixels');
  t.deepEqual(cpixelLayout({ ...NATIVE_PIXEL_FORMAT, redShift: 8, greenShift: 16, blueShift: 24 }), { size: 3, offset: 1 });
  t.deepEqual(cpixelLayout({ bitsPerPixel: 16, depth: 16, bigEndian: false, trueColour: true, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 }), { size: 2, offset: 0 });
  t.end();
});

test('each kind of tile gets the subencoding that suits it, and decodes back', (t) => {
  const cases: Array<[string, (fb: TestFramebuffer) => void, (sub: number) => boolean]> = [
    ['solid', (fb) => fb.fillRect(0, 0, 64, 64, 9, 8, 7), (s) => s === 1],
    ['two colours, checkered (packed palette)', (fb) => { for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) fb.set(x, y, (x + y) & 1 ? 255 : 0, 0, 0); }, (s) => s === 2],
    ['twelve colours scattered (packed palette)', (fb) => { for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) fb.set(x, y, ((x * 7 + y * 3) % 12) * 20, 0, 0); }, (s) => s === 12],
    ['horizontal bands of many colours (RLE)', (fb) => { for (let y = 0; y < 64; y++) fb.fillRect(0, y, 64, 1, y * 4, 255 - y * 4, y); }, (s) => s >= 128],
    ['vertical stripes of three colours (palette RLE)', (fb) => { for (let x = 0; x < 64; x++) fb.fillRect(x, 0, 1, 64, [250, 0, 90][Math.floor(x / 22)]!, 10, 10); }, (s) => s === 131],
    ['noise (raw)', (fb) => { for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) fb.set(x, y, (x * 131 + y * 71) & 255, (x * y * 13) & 255, (x * 29 ^ y * 17) & 255); }, (s) => s === 0],
  ];
  for (const [name, paint, expect] of cases) {
    const fb = new TestFramebuffer(64, 64);
    paint(fb);
    for (const pf of [NATIVE_PIXEL_FORMAT, { ...NATIVE_PIXEL_FORMAT, depth: 32, bigEndian: true }]) {
      const { tiles, pixels } = encode(fb, pf);
      t.ok(expect(tiles[0]!), `${name}: subencoding ${tiles[0]}`);
      // The framebuffer's X bytes are 0, so the 3-byte CPIXEL loses nothing and the pixels must come back exactly.
      t.ok(decodeZrle(tiles, 64, 64, pf).equals(pixels), `${name} (${pf.depth === 32 ? '4-byte' : '3-byte'} CPIXEL): round trip`);
    }
  }
  t.end();
});

test('partial edge tiles and long runs (lengths past 255) round-trip', (t) => {
  const fb = new TestFramebuffer(150, 70);
  fb.fillRect(0, 0, 150, 70, 50, 60, 70);
  fb.fillRect(0, 0, 150, 3, 200, 0, 0);
  for (let x = 0; x < 150; x += 3) fb.set(x, 69, 0, 0, 255);
  const { tiles, pixels } = encode(fb, NATIVE_PIXEL_FORMAT);
  t.ok(decodeZrle(tiles, 150, 70, NATIVE_PIXEL_FORMAT).equals(pixels), '3 x 2 tiles, the last column 22 px wide and the last row 6 px high');
  t.end();
});
