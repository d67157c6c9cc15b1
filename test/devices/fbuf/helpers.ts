// Test utilities for the VNC server: framebuffer patterns, an RFB client written for the tests (it trusts
// nothing it receives and times every wait out), and decoders for the images real clients write.
import { connect, type Socket } from 'node:net';
import { constants as zc, createInflate, inflateSync, type Inflate } from 'node:zlib';
import type { FramebufferSource } from '../../../devices/fbuf/rfb/framebuffer.js';
import { decodePixelFormat, encodePixelFormat, type PixelFormat } from '../../../devices/fbuf/rfb/pixel-format.js';
import { vncAuthResponse } from '../../../devices/fbuf/rfb/vnc-auth.js';

/** A mutable framebuffer in bhyve's layout, with some padding per row so stride != width * 4 is exercised. */
export class TestFramebuffer implements FramebufferSource {
  width: number;
  height: number;
  stride: number;
  pixels: Buffer;

  constructor(width: number, height: number, pad = 16) {
    this.width = width;
    this.height = height;
    this.stride = width * 4 + pad;
    this.pixels = Buffer.alloc(this.stride * height);
  }

  /** Fills with a pattern in which every channel varies and neighbouring pixels differ. */
  pattern(seed = 0): this {
    for (let y = 0; y < this.height; y++) {
      for (let x = 0; x < this.width; x++) this.set(x, y, (x * 7 + seed) & 255, (y * 5 + seed * 3) & 255, ((x ^ y) * 3 + seed) & 255);
    }
    return this;
  }

  set(x: number, y: number, r: number, g: number, b: number): void {
    const o = y * this.stride + x * 4;
    this.pixels[o] = b;
    this.pixels[o + 1] = g;
    this.pixels[o + 2] = r;
    this.pixels[o + 3] = 0;
  }

  /** [r, g, b] of a pixel. */
  rgb(x: number, y: number): [number, number, number] {
    const o = y * this.stride + x * 4;
    return [this.pixels[o + 2]!, this.pixels[o + 1]!, this.pixels[o]!];
  }

  fillRect(x0: number, y0: number, w: number, h: number, r: number, g: number, b: number): void {
    for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) this.set(x, y, r, g, b);
  }

  /** Changes the size in place, as a guest mode change would, and repaints. */
  resize(width: number, height: number): void {
    this.width = width;
    this.height = height;
    this.stride = width * 4 + 16;
    this.pixels = Buffer.alloc(this.stride * height);
  }
}

/** The value a client in format `pf` should see for 8-bit channels r, g, b (rounded scaling, as the RFC's max). */
export function expectedPixel(pf: PixelFormat, r: number, g: number, b: number): number {
  const s = (v: number, max: number) => Math.round((v * max) / 255);
  return ((s(r, pf.redMax) * 2 ** pf.redShift) + (s(g, pf.greenMax) * 2 ** pf.greenShift) + (s(b, pf.blueMax) * 2 ** pf.blueShift)) >>> 0;
}

export function readPixel(pf: PixelFormat, data: Uint8Array, off: number): number {
  const n = pf.bitsPerPixel / 8;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const byte = data[off + (pf.bigEndian ? i : n - 1 - i)]!;
    v = v * 256 + byte;
  }
  return v >>> 0;
}

export interface DecodedRect {
  x: number;
  y: number;
  w: number;
  h: number;
  encoding: number;
  /** Pixels in the client's format (inflated for zlib); empty for pseudo-encodings. */
  data: Buffer;
}

export interface ServerInit {
  width: number;
  height: number;
  format: PixelFormat;
  name: string;
}

export class ClientClosedError extends Error {}

/** A minimal RFB client over a real TCP connection. */
export class TestClient {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private ended = false;
  readonly closedPromise: Promise<void>;
  format: PixelFormat | null = null;
  /** One inflate stream per encoding that has one (zlib 6 and ZRLE 16 each keep their own). */
  private readonly inflaters = new Map<number, { z: Inflate; out: Buffer[] }>();

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.wake?.();
    });
    this.closedPromise = new Promise((resolve) => socket.on('close', () => resolve()));
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on('error', () => {});
  }

  static connect(port: number, host = '127.0.0.1'): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host }, () => resolve(new TestClient(s)));
      s.once('error', reject);
    });
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** Bytes received and not read yet. */
  get available(): number {
    return this.buf.length;
  }

  write(b: Uint8Array | number[]): void {
    this.socket.write(Buffer.from(b));
  }

  /** Exactly n bytes, or ClientClosedError if the server closes first, or a timeout error. */
  async read(n: number, timeoutMs = 3000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended) throw new ClientClosedError(`connection closed with ${this.buf.length} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.buf.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return Buffer.from(out);
  }

  /** Resolves true when the server closes the connection within `ms`. */
  async closesWithin(ms: number): Promise<boolean> {
    return Promise.race([this.closedPromise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  }

  close(): void {
    this.socket.destroy();
  }

  /** The whole handshake; `minor` is what the client claims (3, 7, 8 or anything for mapping tests). */
  async handshake(opts: { version?: string; password?: string; shared?: boolean } = {}): Promise<ServerInit> {
    const server = (await this.read(12)).toString('latin1');
    if (server !== 'RFB 003.008\n') throw new Error(`server version ${JSON.stringify(server)}`);
    const version = opts.version ?? '003.008';
    this.write(Buffer.from(`RFB ${version}\n`, 'latin1'));
    const minor = Number(version.slice(4));
    const major = Number(version.slice(0, 3));
    const effective = major > 3 || minor >= 8 ? 8 : minor === 7 ? 7 : 3;
    let type: number;
    if (effective === 3) {
      type = (await this.read(4)).readUInt32BE();
    } else {
      const count = (await this.read(1))[0]!;
      const types = [...(await this.read(count))];
      type = types.includes(2) && opts.password !== undefined ? 2 : types[0]!;
      this.write([type]);
    }
    if (type === 2) {
      const challenge = await this.read(16);
      this.write(vncAuthResponse(opts.password ?? '', challenge));
    }
    if (type === 2 || effective === 8) {
      const result = (await this.read(4)).readUInt32BE();
      if (result !== 0) {
        const reason = effective === 8 ? (await this.read((await this.read(4)).readUInt32BE())).toString('latin1') : '';
        throw new Error(`security failed: ${reason}`);
      }
    }
    this.write([opts.shared === false ? 0 : 1]);
    const head = await this.read(24);
    const name = (await this.read(head.readUInt32BE(20))).toString('utf8');
    this.format = decodePixelFormat(head, 4);
    return { width: head.readUInt16BE(0), height: head.readUInt16BE(2), format: this.format, name };
  }

  setPixelFormat(pf: PixelFormat): void {
    this.write(Buffer.concat([Buffer.from([0, 0, 0, 0]), encodePixelFormat(pf)]));
    this.format = pf;
  }

  setEncodings(list: number[]): void {
    const b = Buffer.alloc(4 + list.length * 4);
    b[0] = 2;
    b.writeUInt16BE(list.length, 2);
    list.forEach((e, i) => b.writeInt32BE(e, 4 + i * 4));
    this.write(b);
  }

  requestUpdate(incremental: boolean, x: number, y: number, w: number, h: number): void {
    const b = Buffer.alloc(10);
    b[0] = 3;
    b[1] = incremental ? 1 : 0;
    b.writeUInt16BE(x, 2);
    b.writeUInt16BE(y, 4);
    b.writeUInt16BE(w, 6);
    b.writeUInt16BE(h, 8);
    this.write(b);
  }

  /** Reads one FramebufferUpdate (skipping Bell and cut text), decoding Raw and zlib. */
  async readUpdate(timeoutMs = 3000): Promise<DecodedRect[]> {
    for (;;) {
      const type = (await this.read(1, timeoutMs))[0]!;
      if (type === 2) continue;
      if (type === 3) {
        const n = (await this.read(7, timeoutMs)).readUInt32BE(3);
        await this.read(n, timeoutMs);
        continue;
      }
      if (type !== 0) throw new Error(`unexpected server message ${type}`);
      break;
    }
    const count = (await this.read(3, timeoutMs)).readUInt16BE(1);
    const rects: DecodedRect[] = [];
    for (let i = 0; i < count; i++) {
      const h = await this.read(12, timeoutMs);
      const r = { x: h.readUInt16BE(0), y: h.readUInt16BE(2), w: h.readUInt16BE(4), h: h.readUInt16BE(6), encoding: h.readInt32BE(8) };
      const size = r.w * r.h * (this.format!.bitsPerPixel / 8);
      let data: Buffer = Buffer.alloc(0);
      if (r.encoding === 0) data = await this.read(size, timeoutMs);
      else if (r.encoding === 6) {
        data = await this.inflate(6, await this.read((await this.read(4, timeoutMs)).readUInt32BE(), timeoutMs));
        if (data.length !== size) throw new Error(`zlib rectangle inflated to ${data.length} bytes, expected ${size}`);
      } else if (r.encoding === 16) {
        const tiles = await this.inflate(16, await this.read((await this.read(4, timeoutMs)).readUInt32BE(), timeoutMs));
        data = decodeZrle(tiles, r.w, r.h, this.format!);
      } else if (r.encoding !== -223 && r.encoding !== -258) throw new Error(`unexpected encoding ${r.encoding}`);
      rects.push({ ...r, data });
    }
    return rects;
  }

  /** Feeds the encoding's stream and returns what came out once a sync flush has completed. */
  private async inflate(encoding: number, compressed: Buffer): Promise<Buffer> {
    let st = this.inflaters.get(encoding);
    if (st === undefined) {
      const z = createInflate();
      const entry = { z, out: [] as Buffer[] };
      z.on('data', (c: Buffer) => entry.out.push(c));
      this.inflaters.set(encoding, entry);
      st = entry;
    }
    const { z } = st;
    await new Promise<void>((resolve) => {
      z.write(compressed);
      z.flush(zc.Z_SYNC_FLUSH, () => setImmediate(resolve));
    });
    const all = Buffer.concat(st.out);
    st.out = [];
    return all;
  }
}

/**
 * Decodes ZRLE tiles (RFC 6143 §7.7.6) into full pixels of format `pf`, written here apart from the server's
 * encoder so the two check each other.
 */
export function decodeZrle(data: Buffer, w: number, h: number, pf: PixelFormat): Buffer {
  const bpp = pf.bitsPerPixel / 8;
  const mask = (pf.redMax * 2 ** pf.redShift + pf.greenMax * 2 ** pf.greenShift + pf.blueMax * 2 ** pf.blueShift) >>> 0;
  let cpSize = bpp;
  let cpAt = 0;
  if (bpp === 4 && pf.trueColour && pf.depth <= 24) {
    if (mask <= 0xffffff) [cpSize, cpAt] = [3, pf.bigEndian ? 1 : 0];
    else if ((mask & 0xff) === 0) [cpSize, cpAt] = [3, pf.bigEndian ? 0 : 1];
  }
  const out = Buffer.alloc(w * h * bpp);
  let p = 0;
  const need = (n: number) => {
    if (p + n > data.length) throw new Error(`ZRLE data ends at ${data.length}, needed ${p + n}`);
  };
  const cpixel = (): Buffer => {
    need(cpSize);
    const full = Buffer.alloc(bpp);
    data.copy(full, cpAt, p, p + cpSize);
    p += cpSize;
    return full;
  };
  const runLength = (): number => {
    let len = 1;
    for (;;) {
      need(1);
      const b = data[p++]!;
      len += b;
      if (b !== 255) return len;
    }
  };
  for (let ty = 0; ty < h; ty += 64) {
    const th = Math.min(64, h - ty);
    for (let tx = 0; tx < w; tx += 64) {
      const tw = Math.min(64, w - tx);
      const put = (i: number, px: Buffer) => {
        if (i >= tw * th) throw new Error('ZRLE run past the tile');
        px.copy(out, ((ty + Math.floor(i / tw)) * w + tx + (i % tw)) * bpp);
      };
      need(1);
      const sub = data[p++]!;
      if (sub === 0) for (let i = 0; i < tw * th; i++) put(i, cpixel());
      else if (sub === 1) {
        const c = cpixel();
        for (let i = 0; i < tw * th; i++) put(i, c);
      } else if (sub <= 16) {
        const pal = Array.from({ length: sub }, cpixel);
        const bits = sub === 2 ? 1 : sub <= 4 ? 2 : 4;
        for (let y = 0; y < th; y++) {
          let byte = 0;
          let left = 0;
          for (let x = 0; x < tw; x++) {
            if (left === 0) {
              need(1);
              byte = data[p++]!;
              left = 8;
            }
            left -= bits;
            const idx = (byte >> left) & ((1 << bits) - 1);
            if (idx >= sub) throw new Error('ZRLE palette index out of range');
            put(y * tw + x, pal[idx]!);
          }
        }
      } else if (sub === 128) {
        let i = 0;
        while (i < tw * th) {
          const c = cpixel();
          const n = runLength();
          for (let k = 0; k < n; k++) put(i++, c);
        }
      } else if (sub >= 130) {
        const pal = Array.from({ length: sub - 128 }, cpixel);
        let i = 0;
        while (i < tw * th) {
          need(1);
          const b = data[p++]!;
          const c = pal[b & 127];
          if (c === undefined) throw new Error('ZRLE palette index out of range');
          const n = b & 128 ? runLength() : 1;
          for (let k = 0; k < n; k++) put(i++, c);
        }
      } else throw new Error(`ZRLE subencoding ${sub} is not defined`);
    }
  }
  if (p !== data.length) throw new Error(`ZRLE: ${data.length - p} bytes left over`);
  return out;
}

/** Counts pixels of `rect` whose value differs from what `fb` holds in the client's format. */
export function mismatches(fb: TestFramebuffer, pf: PixelFormat, rect: DecodedRect): number {
  let bad = 0;
  const bpp = pf.bitsPerPixel / 8;
  for (let y = 0; y < rect.h; y++) {
    for (let x = 0; x < rect.w; x++) {
      const [r, g, b] = fb.rgb(rect.x + x, rect.y + y);
      if (readPixel(pf, rect.data, (y * rect.w + x) * bpp) !== expectedPixel(pf, r, g, b)) bad++;
    }
  }
  return bad;
}

export interface Image {
  width: number;
  height: number;
  /** RGB, 3 bytes per pixel. */
  rgb: Buffer;
}

/** Decodes an 8-bit RGB or RGBA, non-interlaced PNG (what gvnccapture writes), with node:zlib for IDAT. */
export function decodePng(file: Buffer): Image {
  if (!file.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]))) throw new Error('not a PNG');
  let off = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (off + 8 <= file.length) {
    const len = file.readUInt32BE(off);
    const type = file.toString('latin1', off + 4, off + 8);
    const body = file.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const depth = body[8];
      const colour = body[9];
      if (depth !== 8 || (colour !== 2 && colour !== 6) || body[12] !== 0) throw new Error(`PNG depth ${depth} colour type ${colour} interlace ${body[12]} not handled`);
      channels = colour === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const rowBytes = width * channels;
  const cur = Buffer.alloc(rowBytes);
  const prev = Buffer.alloc(rowBytes);
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (rowBytes + 1)]!;
    const line = raw.subarray(y * (rowBytes + 1) + 1, (y + 1) * (rowBytes + 1));
    for (let i = 0; i < rowBytes; i++) {
      const a = i >= channels ? cur[i - channels]! : 0;
      const b = prev[i]!;
      const c = i >= channels ? prev[i - channels]! : 0;
      let pred = 0;
      if (filter === 1) pred = a;
      else if (filter === 2) pred = b;
      else if (filter === 3) pred = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) throw new Error(`PNG filter ${filter}`);
      cur[i] = (line[i]! + pred) & 255;
    }
    for (let x = 0; x < width; x++) cur.copy(rgb, (y * width + x) * 3, x * channels, x * channels + 3);
    cur.copy(prev);
  }
  return { width, height, rgb };
}

/** Decodes a binary PPM (P6, maxval 255), which djpeg writes. */
export function decodePpm(file: Buffer): Image {
  const m = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(file.toString('latin1', 0, 64));
  if (m === null) throw new Error('not a P6 PPM with maxval 255');
  const width = Number(m[1]);
  const height = Number(m[2]);
  return { width, height, rgb: file.subarray(m[0].length, m[0].length + width * height * 3) };
}
