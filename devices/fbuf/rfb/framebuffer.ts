// What the VNC server reads: a view of the guest's framebuffer (never a copy) and the rectangles it works in.
// bhyve's fbuf presents 32-bit little-endian XRGB8888 pixels (blue byte first), `stride` bytes per row.

/** A rectangle in framebuffer pixels; `w` and `h` may be 0 (empty). */
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * The pixels the server serves. The object is read at every update, so the device may swap `pixels` or change
 * the size in place; a size change must be announced with `RfbServer.resize()` so clients learn of it.
 */
export interface FramebufferSource {
  readonly width: number;
  readonly height: number;
  /** Bytes from one row to the next; at least width * 4 and a multiple of 4. */
  readonly stride: number;
  /** At least stride * (height - 1) + width * 4 bytes of XRGB8888, little-endian. */
  readonly pixels: Uint8Array;
}

/** Largest framebuffer side RFB can describe (U16 fields, RFC 6143 §7.3.2). */
export const RFB_MAX_SIDE = 0xffff;

export class FramebufferError extends Error {
  override readonly name = 'FramebufferError';
}

/** Throws FramebufferError when `fb` cannot be read as it claims (checked at every use: the device may change it). */
export function checkFramebuffer(fb: FramebufferSource): void {
  const { width, height, stride, pixels } = fb;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > RFB_MAX_SIDE || height > RFB_MAX_SIDE) {
    throw new FramebufferError(`framebuffer size ${width}x${height} is outside 1..${RFB_MAX_SIDE}`);
  }
  if (!Number.isInteger(stride) || stride < width * 4 || stride % 4 !== 0) {
    throw new FramebufferError(`framebuffer stride ${stride} is not a multiple of 4 of at least ${width * 4}`);
  }
  const need = stride * (height - 1) + width * 4;
  if (pixels.byteLength < need) {
    throw new FramebufferError(`framebuffer has ${pixels.byteLength} bytes, ${width}x${height} at stride ${stride} needs ${need}`);
  }
}

/** The part of `r` inside a `width` x `height` framebuffer (w or h 0 when nothing is). */
export function clipRect(r: Rect, width: number, height: number): Rect {
  const x0 = Math.min(Math.max(r.x, 0), width);
  const y0 = Math.min(Math.max(r.y, 0), height);
  const x1 = Math.min(Math.max(r.x + r.w, 0), width);
  const y1 = Math.min(Math.max(r.y + r.h, 0), height);
  return { x: x0, y: y0, w: Math.max(0, x1 - x0), h: Math.max(0, y1 - y0) };
}

export function rectIsEmpty(r: Rect): boolean {
  return r.w <= 0 || r.h <= 0;
}

/** The intersection of two rectangles (empty when they do not meet). */
export function intersectRect(a: Rect, b: Rect): Rect {
  const x0 = Math.max(a.x, b.x);
  const y0 = Math.max(a.y, b.y);
  const x1 = Math.min(a.x + a.w, b.x + b.w);
  const y1 = Math.min(a.y + a.h, b.y + b.h);
  return { x: x0, y: y0, w: Math.max(0, x1 - x0), h: Math.max(0, y1 - y0) };
}

/** The smallest rectangle holding both (an empty one does not count). */
export function unionRect(a: Rect, b: Rect): Rect {
  if (rectIsEmpty(a)) return { ...b };
  if (rectIsEmpty(b)) return { ...a };
  const x0 = Math.min(a.x, b.x);
  const y0 = Math.min(a.y, b.y);
  const x1 = Math.max(a.x + a.w, b.x + b.w);
  const y1 = Math.max(a.y + a.h, b.y + b.h);
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}
