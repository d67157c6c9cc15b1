// The fbuf VNC server's update path without a network: for a 1024x768 framebuffer, the tile scan, and the cost and
// size of one update per encoding (Raw, zlib, ZRLE) for a full-screen change and for a small one (a 64x32 area,
// what a blinking cursor or a typed character touches), in the native pixel format and in RGB565.
// Then the dirty scan alone, native (native/fbuf: rows against a shadow copy) against the TypeScript tile hashes, in
// the same run: no change, a small change, a full-screen change.
// Usage: node --import tsx bench/fbuf/encode.ts [frames=10]
import { RawEncoder, ZlibEncoder, type RectEncoder } from '../../devices/fbuf/rfb/encodings.js';
import { ZrleEncoder } from '../../devices/fbuf/rfb/zrle.js';
import { NATIVE_PIXEL_FORMAT, PixelConverter, type PixelFormat } from '../../devices/fbuf/rfb/pixel-format.js';
import { TileScanner, tilesToRects, type DirtyScanner } from '../../devices/fbuf/rfb/tiles.js';
import { NativeTileScanner } from '../../devices/fbuf/native-scanner.js';
import type { FramebufferSource, Rect } from '../../devices/fbuf/rfb/framebuffer.js';

const frames = Number(process.argv[2] ?? 10);
const W = 1024;
const H = 768;
const pixels = Buffer.alloc(W * H * 4);
const fb: FramebufferSource = { width: W, height: H, stride: W * 4, pixels };

/** A desktop-like picture: flat areas, text-like strokes and a gradient, redrawn with a shift per frame. */
function paint(frame: number, area: Rect): void {
  const px = pixels;
  for (let y = area.y; y < area.y + area.h; y++) {
    for (let x = area.x; x < area.x + area.w; x++) {
      const o = (y * W + x) * 4;
      const band = ((x + frame * 7) >> 6) % 4;
      if (band === 0) px.writeUInt32LE(0x003366cc, o);
      else if (band === 1) px.writeUInt32LE(((x * 3 + y + frame) & 7) < 2 ? 0x00000000 : 0x00f0f0f0, o);
      else px.writeUInt32LE(((x + frame) & 255) | ((y & 255) << 8) | (((x ^ y) & 255) << 16), o);
    }
  }
}

const rgb565: PixelFormat = { bitsPerPixel: 16, depth: 16, bigEndian: false, trueColour: true, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 };

async function measure(name: string, make: () => RectEncoder, pf: PixelFormat, area: Rect): Promise<string> {
  const enc = make();
  const conv = new PixelConverter(pf);
  const scanner = new TileScanner(32);
  paint(0, { x: 0, y: 0, w: W, h: H });
  scanner.scan(fb);
  let ms = 0;
  let scanMs = 0;
  let bytes = 0;
  for (let f = 1; f <= frames; f++) {
    paint(f, area);
    const t0 = process.hrtime.bigint();
    const map = scanner.scan(fb);
    const t1 = process.hrtime.bigint();
    const rects = tilesToRects(map, scanner.cols, scanner.rows, 32, W, H);
    for (const r of rects) for (const b of await enc.encode(fb, r, conv)) bytes += b.length;
    const t2 = process.hrtime.bigint();
    scanMs += Number(t1 - t0) / 1e6;
    ms += Number(t2 - t1) / 1e6;
  }
  enc.close();
  const kb = bytes / frames / 1024;
  return `| ${name} | ${pf === NATIVE_PIXEL_FORMAT ? '32 bpp' : 'RGB565'} | ${area.w}x${area.h} | ${(scanMs / frames).toFixed(2)} | ${(ms / frames).toFixed(2)} | ${kb.toFixed(1)} |`;
}

const full = { x: 0, y: 0, w: W, h: H };
const small = { x: 500, y: 300, w: 64, h: 32 };
console.log(`fbuf VNC update path, ${W}x${H}, mean of ${frames} frames (ms per frame; KiB per update)`);
console.log('| encoding | format | change | scan ms | encode ms | KiB |');
console.log('|---|---|---|---|---|---|');
for (const [name, make] of [['Raw', () => new RawEncoder()], ['zlib (level 1)', () => new ZlibEncoder(1)], ['ZRLE (level 1)', () => new ZrleEncoder(1)]] as const) {
  for (const pf of [NATIVE_PIXEL_FORMAT, rgb565]) {
    for (const area of [full, small]) console.log(await measure(name, make, pf, area));
  }
}

/** Mean ms of one scan after `change` repainted (or not) the frame, for the scanner `make` builds. */
function scanCost(make: () => DirtyScanner, change: Rect | undefined, rounds: number): { ms: number; dirty: number } {
  const scanner = make();
  paint(0, full);
  scanner.scan(fb);
  let ms = 0;
  let dirty = 0;
  for (let f = 1; f <= rounds; f++) {
    if (change) paint(f, change);
    const t0 = process.hrtime.bigint();
    const map = scanner.scan(fb);
    ms += Number(process.hrtime.bigint() - t0) / 1e6;
    dirty += map.reduce((a, b) => a + b, 0);
  }
  return { ms: ms / rounds, dirty: dirty / rounds };
}

const scanRounds = Math.max(50, frames * 5);
console.log(`\ndirty scan of ${W}x${H} (32x32 tiles), mean of ${scanRounds} scans: native vs TypeScript, same run`);
console.log('| change | native ms | TypeScript ms | TypeScript / native | dirty tiles |');
console.log('|---|---|---|---|---|');
for (const [label, change] of [['none', undefined], ['64x32', small], ['full screen', full]] as const) {
  const n = scanCost(() => new NativeTileScanner(32), change, scanRounds);
  const j = scanCost(() => new TileScanner(32), change, scanRounds);
  console.log(`| ${label} | ${n.ms.toFixed(3)} | ${j.ms.toFixed(3)} | ${(j.ms / n.ms).toFixed(1)} | ${n.dirty.toFixed(0)} / ${j.dirty.toFixed(0)} |`);
}
