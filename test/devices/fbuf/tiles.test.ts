// The tile-hash dirty scanner and the merging of dirty tiles into rectangles.
import test from 'tape';
import { markTiles, TileScanner, tilesToRects } from '../../../devices/fbuf/rfb/tiles.js';
import { TestFramebuffer } from './helpers.js';

function dirtyIndices(map: Uint8Array): number[] {
  return [...map.keys()].filter((i) => map[i] !== 0);
}

test('the first scan reports every tile; an unchanged framebuffer then reports none', (t) => {
  const fb = new TestFramebuffer(100, 70).pattern(1);
  const s = new TileScanner(32);
  const first = s.scan(fb);
  t.equal(s.cols, 4, '100 px = 4 columns of 32 (the last one partial)');
  t.equal(s.rows, 3);
  t.equal(dirtyIndices(first).length, 12);
  t.equal(dirtyIndices(s.scan(fb)).length, 0);
  t.end();
});

test('a one-pixel change marks exactly its tile, including the partial edge tiles', (t) => {
  const fb = new TestFramebuffer(100, 70).pattern(2);
  const s = new TileScanner(32);
  s.scan(fb);
  for (const [x, y, tile] of [[0, 0, 0], [33, 5, 1], [99, 69, 11], [64, 40, 6]] as const) {
    const [r, g, b] = fb.rgb(x, y);
    fb.set(x, y, r ^ 1, g, b);
    t.deepEqual(dirtyIndices(s.scan(fb)), [tile], `pixel ${x},${y} -> tile ${tile}`);
  }
  // The padding between rows is not part of the picture.
  fb.pixels[fb.width * 4 + 3] = 0x55;
  t.deepEqual(dirtyIndices(s.scan(fb)), [], 'bytes in the stride padding are ignored');
  t.end();
});

test('a changed size or a reset reports everything again', (t) => {
  const fb = new TestFramebuffer(64, 64).pattern(3);
  const s = new TileScanner(32);
  s.scan(fb);
  s.reset();
  t.equal(dirtyIndices(s.scan(fb)).length, 4);
  fb.resize(96, 64);
  t.equal(dirtyIndices(s.scan(fb)).length, 6);
  t.end();
});

test('an unaligned pixel buffer is scanned the same way', (t) => {
  const fb = new TestFramebuffer(40, 40).pattern(4);
  const shifted = Buffer.alloc(fb.pixels.length + 1);
  fb.pixels.copy(shifted, 1);
  const view = { width: 40, height: 40, stride: fb.stride, pixels: shifted.subarray(1) };
  t.notEqual(view.pixels.byteOffset % 4, 0, 'really unaligned');
  const a = new TileScanner(16);
  const b = new TileScanner(16);
  a.scan(fb);
  b.scan(view);
  fb.set(20, 20, 1, 2, 3);
  view.pixels[20 * fb.stride + 20 * 4] = 3;
  view.pixels[20 * fb.stride + 20 * 4 + 1] = 2;
  view.pixels[20 * fb.stride + 20 * 4 + 2] = 1;
  t.deepEqual(dirtyIndices(b.scan(view)), dirtyIndices(a.scan(fb)));
  t.end();
});

test('dirty tiles merge into row runs and runs stack into rectangles, clipped to the framebuffer', (t) => {
  // 4 x 3 tiles of 10 px over a 35 x 25 framebuffer:
  //   . X X .
  //   . X X X
  //   X . . X
  const map = Uint8Array.from([0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1]);
  const rects = tilesToRects(map, 4, 3, 10, 35, 25);
  t.deepEqual(rects, [
    { x: 10, y: 0, w: 20, h: 10 },
    { x: 10, y: 10, w: 25, h: 10 },
    { x: 0, y: 20, w: 10, h: 5 },
    { x: 30, y: 20, w: 5, h: 5 },
  ]);
  const full = tilesToRects(new Uint8Array(12).fill(1), 4, 3, 10, 35, 25);
  t.deepEqual(full, [{ x: 0, y: 0, w: 35, h: 25 }], 'all dirty is one rectangle');
  t.deepEqual(tilesToRects(new Uint8Array(12), 4, 3, 10, 35, 25), [], 'nothing dirty, nothing to send');
  t.end();
});

test('markTiles marks every tile a rectangle touches', (t) => {
  const map = new Uint8Array(12);
  markTiles(map, 4, 10, { x: 9, y: 9, w: 2, h: 2 });
  t.deepEqual(dirtyIndices(map), [0, 1, 4, 5]);
  markTiles(map, 4, 10, { x: 5, y: 5, w: 0, h: 7 });
  t.deepEqual(dirtyIndices(map), [0, 1, 4, 5], 'an empty rectangle marks nothing');
  t.end();
});

test('scanning a 1024x768 framebuffer takes milliseconds, not a frame', (t) => {
  const fb = new TestFramebuffer(1024, 768, 0).pattern(5);
  const s = new TileScanner(32);
  s.scan(fb);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 5; i++) s.scan(fb);
  const ms = Number(process.hrtime.bigint() - t0) / 5e6;
  t.ok(ms < 100, `one scan: ${ms.toFixed(2)} ms`);
  t.end();
});
