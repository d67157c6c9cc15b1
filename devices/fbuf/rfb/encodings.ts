// Server-to-client FramebufferUpdate (RFC 6143 §7.6.1) and the encodings this server writes: Raw (§7.7.1, which
// every client takes) and zlib (encoding 6, RFB's registered zlib type: Raw pixels through one deflate stream per
// connection, flushed with Z_SYNC_FLUSH after each rectangle so the client can inflate it at once); ZRLE is in
// zrle.ts. The DesktopSize pseudo-encoding (§7.8.2) tells a client the framebuffer changed size.
import { constants as zc, createDeflate, type Deflate } from 'node:zlib';
import type { FramebufferSource, Rect } from './framebuffer.js';
import type { PixelConverter } from './pixel-format.js';

export const ENCODING_RAW = 0;
export const ENCODING_ZLIB = 6;
export const ENCODING_ZRLE = 16;
export const ENCODING_DESKTOP_SIZE = -223;
/** QEMU Extended Key Event pseudo-encoding: the server acknowledges it with an empty rectangle of this type. */
export const ENCODING_QEMU_EXTENDED_KEY = -258;

export const MSG_FRAMEBUFFER_UPDATE = 0;

/** The encodings this server can write; the order of the client's list picks among them, and Raw when it lists none. */
export const SUPPORTED_ENCODINGS: readonly number[] = [ENCODING_ZRLE, ENCODING_ZLIB, ENCODING_RAW];

/** The 4-byte FramebufferUpdate header for `count` rectangles. */
export function updateHeader(count: number): Buffer {
  const b = Buffer.alloc(4);
  b[0] = MSG_FRAMEBUFFER_UPDATE;
  b.writeUInt16BE(count, 2);
  return b;
}

/** A rectangle header: U16 x, y, w, h and S32 encoding-type. */
export function rectHeader(r: Rect, encoding: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(r.x, 0);
  b.writeUInt16BE(r.y, 2);
  b.writeUInt16BE(r.w, 4);
  b.writeUInt16BE(r.h, 6);
  b.writeInt32BE(encoding, 8);
  return b;
}

/** The DesktopSize pseudo-rectangle: the new size in w and h, no data (RFC 6143 §7.8.2). */
export function desktopSizeRect(width: number, height: number): Buffer {
  return rectHeader({ x: 0, y: 0, w: width, h: height }, ENCODING_DESKTOP_SIZE);
}

/** The pseudo-rectangle that tells a client it may send QEMU Extended Key Events (as bhyve sends it: the size, no data). */
export function extendedKeyRect(width: number, height: number): Buffer {
  return rectHeader({ x: 0, y: 0, w: width, h: height }, ENCODING_QEMU_EXTENDED_KEY);
}

/** The first encoding in the client's list (its order is its preference, §7.5.2) that this server writes. */
export function chooseEncoding(clientList: readonly number[], allowed: readonly number[] = SUPPORTED_ENCODINGS): number {
  for (const e of clientList) if (allowed.includes(e)) return e;
  return ENCODING_RAW;
}

/** Writes one rectangle (header and data) in some encoding. */
export interface RectEncoder {
  readonly encoding: number;
  encode(fb: FramebufferSource, r: Rect, conv: PixelConverter): Promise<Buffer[]>;
  close(): void;
}

export class RawEncoder implements RectEncoder {
  readonly encoding = ENCODING_RAW;

  encode(fb: FramebufferSource, r: Rect, conv: PixelConverter): Promise<Buffer[]> {
    return Promise.resolve([rectHeader(r, ENCODING_RAW), rawPixels(fb, r, conv)]);
  }

  close(): void {}
}

/** The rectangle's pixels in the client's format, row after row. */
export function rawPixels(fb: FramebufferSource, r: Rect, conv: PixelConverter): Buffer {
  const out = Buffer.allocUnsafe(conv.rectBytes(r));
  conv.convert(fb, r, out);
  return out;
}

export class EncoderClosedError extends Error {
  override readonly name = 'EncoderClosedError';
}

/**
 * One deflate stream that lives as long as the connection. Node's zlib streams are asynchronous, so `compress`
 * writes, asks for a sync flush, and returns what came out once the flush has completed; calls are queued so each
 * rectangle's output is its own.
 */
export class DeflateStream {
  private readonly z: Deflate;
  private chunks: Buffer[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private failure: Error | null = null;
  private closed = false;

  constructor(level = 6) {
    this.z = createDeflate({ level });
    this.z.on('data', (c: Buffer) => this.chunks.push(c));
    this.z.on('error', (e: Error) => (this.failure = e));
  }

  compress(data: Uint8Array): Promise<Buffer> {
    const run = this.queue.then(() => this.compressNow(data));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private compressNow(data: Uint8Array): Promise<Buffer> {
    if (this.closed) return Promise.reject(new EncoderClosedError('the deflate stream is closed'));
    if (this.failure !== null) return Promise.reject(this.failure);
    this.chunks = [];
    return new Promise<Buffer>((resolve, reject) => {
      this.z.write(data);
      this.z.flush(zc.Z_SYNC_FLUSH, () => {
        // 'data' events may still be queued on process.nextTick behind this callback; setImmediate runs after them.
        setImmediate(() => {
          if (this.failure !== null) reject(this.failure);
          else if (this.closed) reject(new EncoderClosedError('the deflate stream was closed during a flush'));
          else resolve(Buffer.concat(this.chunks));
          this.chunks = [];
        });
      });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.z.close();
  }
}

export class ZlibEncoder implements RectEncoder {
  readonly encoding = ENCODING_ZLIB;
  private readonly stream: DeflateStream;

  constructor(level = 6) {
    this.stream = new DeflateStream(level);
  }

  async encode(fb: FramebufferSource, r: Rect, conv: PixelConverter): Promise<Buffer[]> {
    const data = await this.stream.compress(rawPixels(fb, r, conv));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    return [rectHeader(r, ENCODING_ZLIB), len, data];
  }

  close(): void {
    this.stream.close();
  }
}
