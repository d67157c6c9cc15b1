// Finding what changed: the framebuffer is cut into square tiles, each tile's pixels are hashed, and a tile whose
// hash differs from the last scan is dirty. This is the pure-TypeScript baseline; a native scanner can replace it
// behind the same DirtyScanner interface and be benchmarked against it.
import { checkFramebuffer, type FramebufferSource, type Rect } from './framebuffer.js';

export const DEFAULT_TILE_SIZE = 32;

/** A scanner over one framebuffer: each scan reports the tiles that changed since the previous scan. */
export interface DirtyScanner {
  readonly tileSize: number;
  readonly cols: number;
  readonly rows: number;
  /** One byte per tile, row-major, 1 where the tile changed since the last scan (all 1 on the first or after a resize). */
  scan(fb: FramebufferSource): Uint8Array;
}

/**
 * The hash of one tile. Each step (xor a pixel in, multiply by an odd constant, rotate) is a bijection of the
 * running value, so a change confined to a single pixel always changes the hash; larger changes collide with
 * probability about 2^-32, the trade every hashing scanner (bhyve's CRC-32 included) makes.
 */
function hashTile(words: Uint32Array | DataView, stridePx: number, x0: number, y0: number, w: number, h: number): number {
  let hash = 0x811c9dc5;
  if (words instanceof Uint32Array) {
    for (let y = 0; y < h; y++) {
      let i = (y0 + y) * stridePx + x0;
      const end = i + w;
      for (; i < end; i++) {
        hash = Math.imul(hash ^ words[i]!, 0x9e3779b1);
        hash = (hash << 7) | (hash >>> 25);
      }
    }
  } else {
    for (let y = 0; y < h; y++) {
      let o = ((y0 + y) * stridePx + x0) * 4;
      const end = o + w * 4;
      for (; o < end; o += 4) {
        hash = Math.imul(hash ^ words.getUint32(o, true), 0x9e3779b1);
        hash = (hash << 7) | (hash >>> 25);
      }
    }
  }
  return hash >>> 0;
}

export class TileScanner implements DirtyScanner {
  readonly tileSize: number;
  private width = 0;
  private height = 0;
  private hashes = new Uint32Array(0);
  private valid = false;
  cols = 0;
  rows = 0;

  constructor(tileSize = DEFAULT_TILE_SIZE) {
    if (!Number.isInteger(tileSize) || tileSize < 8 || tileSize > 256) throw new RangeError(`tile size ${tileSize} is not 8..256`);
    this.tileSize = tileSize;
  }

  /** Forgets the previous hashes, so the next scan reports every tile. */
  reset(): void {
    this.valid = false;
  }

  scan(fb: FramebufferSource): Uint8Array {
    checkFramebuffer(fb);
    const t = this.tileSize;
    if (fb.width !== this.width || fb.height !== this.height) {
      this.width = fb.width;
      this.height = fb.height;
      this.cols = Math.ceil(fb.width / t);
      this.rows = Math.ceil(fb.height / t);
      this.hashes = new Uint32Array(this.cols * this.rows);
      this.valid = false;
    }
    const px = fb.pixels;
    // A word view needs 4-byte alignment; guest memory is page aligned, but any Uint8Array is accepted.
    const words =
      px.byteOffset % 4 === 0 ? new Uint32Array(px.buffer, px.byteOffset, px.byteLength >>> 2) : new DataView(px.buffer, px.byteOffset, px.byteLength);
    const stridePx = fb.stride / 4;
    const dirty = new Uint8Array(this.cols * this.rows);
    for (let r = 0; r < this.rows; r++) {
      const y = r * t;
      const h = Math.min(t, fb.height - y);
      for (let c = 0; c < this.cols; c++) {
        const x = c * t;
        const i = r * this.cols + c;
        const hash = hashTile(words, stridePx, x, y, Math.min(t, fb.width - x), h);
        if (!this.valid || hash !== this.hashes[i]) {
          this.hashes[i] = hash;
          dirty[i] = 1;
        }
      }
    }
    this.valid = true;
    return dirty;
  }
}

/**
 * Turns a tile map into few rectangles: runs of dirty tiles along a row, and a run merged with the one below it
 * when both cover the same columns. Rectangles are clipped to `width` x `height`.
 */
export function tilesToRects(map: Uint8Array, cols: number, rows: number, tileSize: number, width: number, height: number): Rect[] {
  const done: Rect[] = [];
  // Runs of the previous row still open for merging, keyed by "first,last" column.
  let open = new Map<string, Rect>();
  for (let r = 0; r < rows; r++) {
    const next = new Map<string, Rect>();
    let c = 0;
    while (c < cols) {
      if (map[r * cols + c] === 0) {
        c++;
        continue;
      }
      const first = c;
      while (c < cols && map[r * cols + c] !== 0) c++;
      const key = `${first},${c}`;
      const y = r * tileSize;
      const h = Math.min(tileSize, height - y);
      const above = open.get(key);
      if (above !== undefined) {
        above.h += h;
        open.delete(key);
        next.set(key, above);
      } else {
        const x = first * tileSize;
        next.set(key, { x, y, w: Math.min(c * tileSize, width) - x, h });
      }
    }
    for (const rect of open.values()) done.push(rect);
    open = next;
  }
  for (const rect of open.values()) done.push(rect);
  return done.sort((a, b) => a.y - b.y || a.x - b.x);
}

/** Marks in `map` every tile that `r` touches (r already inside the framebuffer). */
export function markTiles(map: Uint8Array, cols: number, tileSize: number, r: Rect): void {
  if (r.w <= 0 || r.h <= 0) return;
  const c0 = Math.floor(r.x / tileSize);
  const c1 = Math.floor((r.x + r.w - 1) / tileSize);
  const r0 = Math.floor(r.y / tileSize);
  const r1 = Math.floor((r.y + r.h - 1) / tileSize);
  for (let row = r0; row <= r1; row++) map.fill(1, row * cols + c0, row * cols + c1 + 1);
}
