// The VNC server's dirty-tile scan in C++ (native/fbuf/tile_scanner.cc): each tile's rows compared with a shadow
// copy of the previous frame, exact and several times faster than hashing the tiles in TypeScript (bench/fbuf).
// It has the shape of the server's DirtyScanner, so RfbServer takes it as its `scanner`.
import { loadAddon } from '../../src/native.js';

interface FramebufferView {
  readonly width: number;
  readonly height: number;
  readonly stride: number;
  readonly pixels: Uint8Array;
}

interface TileScannerHandle {
  scan(pixels: Uint8Array, width: number, height: number, stride: number): Uint8Array;
  reset(): void;
}

export class NativeTileScanner {
  readonly tileSize: number;
  cols = 0;
  rows = 0;
  private readonly native: TileScannerHandle;

  constructor(tileSize = 32) {
    const fbuf = loadAddon()['fbuf'] as { TileScanner: new (t: number) => TileScannerHandle } | undefined;
    if (!fbuf) throw new Error('tsbhyve: the native addon has no fbuf module; rebuild with npm run build:native');
    this.native = new fbuf.TileScanner(tileSize);
    this.tileSize = tileSize;
  }

  /** One byte per tile, row-major: 1 where the tile changed since the last scan (all 1 first and after a resize). */
  scan(fb: FramebufferView): Uint8Array {
    const map = this.native.scan(fb.pixels, fb.width, fb.height, fb.stride);
    this.cols = Math.ceil(fb.width / this.tileSize);
    this.rows = Math.ceil(fb.height / this.tileSize);
    return map;
  }

  /** The next scan reports every tile. */
  reset(): void {
    this.native.reset();
  }
}
