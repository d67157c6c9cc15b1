// Client-to-server messages (RFC 6143 §7.5), parsed from a byte stream that TCP may split or join anywhere.
// The parser never trusts a length: every variable part is bounded before it is waited for, so a hostile client
// cannot make the server buffer more than MAX_CUT_TEXT plus a header.
import { RfbProtocolError } from './errors.js';
import { decodePixelFormat, pixelFormatProblem, type PixelFormat } from './pixel-format.js';

export const MSG_SET_PIXEL_FORMAT = 0;
export const MSG_SET_ENCODINGS = 2;
export const MSG_FRAMEBUFFER_UPDATE_REQUEST = 3;
export const MSG_KEY_EVENT = 4;
export const MSG_POINTER_EVENT = 5;
export const MSG_CLIENT_CUT_TEXT = 6;
/** QEMU's client message (rfbproto's "QEMU Client Message"); subtype 0 is the Extended Key Event. */
export const MSG_QEMU = 255;
export const QEMU_EXTENDED_KEY_EVENT = 0;

/** Real clients list a few dozen encodings; more than this is not a client we want. */
export const MAX_ENCODINGS = 1024;
/** ClientCutText longer than this (1 MiB) drops the client instead of being buffered. */
export const MAX_CUT_TEXT = 1 << 20;

export type ClientMessage =
  | { type: 'set-pixel-format'; format: PixelFormat }
  | { type: 'set-encodings'; encodings: number[] }
  | { type: 'update-request'; incremental: boolean; x: number; y: number; w: number; h: number }
  | { type: 'key'; down: boolean; keysym: number }
  | { type: 'pointer'; buttonMask: number; x: number; y: number }
  | { type: 'cut-text'; text: string }
  | { type: 'extended-key'; down: boolean; keysym: number; keycode: number };

export type ParseResult =
  | { kind: 'message'; message: ClientMessage; length: number }
  | { kind: 'incomplete' }
  | { kind: 'error'; error: RfbProtocolError };

const INCOMPLETE: ParseResult = { kind: 'incomplete' };

function fail(code: ConstructorParameters<typeof RfbProtocolError>[0], message: string): ParseResult {
  return { kind: 'error', error: new RfbProtocolError(code, message) };
}

/**
 * Parses the message at the start of `b`. Returns it with its length, or 'incomplete' when more bytes are
 * needed (and can arrive: sizes are checked first), or the error that must close the connection.
 */
export function parseClientMessage(b: Uint8Array): ParseResult {
  if (b.length < 1) return INCOMPLETE;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (b[0]) {
    case MSG_SET_PIXEL_FORMAT: {
      // U8 type, 3 padding, PIXEL_FORMAT (RFC 6143 §7.5.1)
      if (b.length < 20) return INCOMPLETE;
      const format = decodePixelFormat(b, 4);
      const problem = pixelFormatProblem(format);
      if (problem !== null) return fail('bad-pixel-format', `SetPixelFormat: ${problem}`);
      return { kind: 'message', message: { type: 'set-pixel-format', format }, length: 20 };
    }
    case MSG_SET_ENCODINGS: {
      // U8 type, padding, U16 count, count x S32 (§7.5.2)
      if (b.length < 4) return INCOMPLETE;
      const count = v.getUint16(2);
      if (count > MAX_ENCODINGS) return fail('too-many-encodings', `SetEncodings lists ${count} encodings (at most ${MAX_ENCODINGS})`);
      const length = 4 + count * 4;
      if (b.length < length) return INCOMPLETE;
      const encodings: number[] = [];
      for (let i = 0; i < count; i++) encodings.push(v.getInt32(4 + i * 4));
      return { kind: 'message', message: { type: 'set-encodings', encodings }, length };
    }
    case MSG_FRAMEBUFFER_UPDATE_REQUEST: {
      // U8 type, U8 incremental, U16 x, y, w, h (§7.5.3)
      if (b.length < 10) return INCOMPLETE;
      const message: ClientMessage = {
        type: 'update-request',
        incremental: b[1] !== 0,
        x: v.getUint16(2),
        y: v.getUint16(4),
        w: v.getUint16(6),
        h: v.getUint16(8),
      };
      return { kind: 'message', message, length: 10 };
    }
    case MSG_KEY_EVENT:
      // U8 type, U8 down-flag, 2 padding, U32 keysym (§7.5.4)
      if (b.length < 8) return INCOMPLETE;
      return { kind: 'message', message: { type: 'key', down: b[1] !== 0, keysym: v.getUint32(4) }, length: 8 };
    case MSG_POINTER_EVENT:
      // U8 type, U8 button-mask, U16 x, U16 y (§7.5.5)
      if (b.length < 6) return INCOMPLETE;
      return { kind: 'message', message: { type: 'pointer', buttonMask: b[1]!, x: v.getUint16(2), y: v.getUint16(4) }, length: 6 };
    case MSG_CLIENT_CUT_TEXT: {
      // U8 type, 3 padding, U32 length, Latin-1 text (§7.5.6). A length with the top bit set is the
      // Extended Clipboard form, which is only legal after the server offers it; this one never does.
      if (b.length < 8) return INCOMPLETE;
      const n = v.getUint32(4);
      if (n > MAX_CUT_TEXT) return fail('cut-text-too-long', `ClientCutText of ${n} bytes (at most ${MAX_CUT_TEXT})`);
      if (b.length < 8 + n) return INCOMPLETE;
      const text = Buffer.from(b.buffer, b.byteOffset + 8, n).toString('latin1');
      return { kind: 'message', message: { type: 'cut-text', text }, length: 8 + n };
    }
    case MSG_QEMU: {
      // U8 255, U8 subtype; Extended Key Event: U16 down-flag, U32 keysym, U32 keycode. Other subtypes (audio)
      // cannot be sized without having been negotiated, so they end the connection like unknown types.
      if (b.length < 2) return INCOMPLETE;
      if (b[1] !== QEMU_EXTENDED_KEY_EVENT) return fail('unknown-message', `unknown QEMU client message subtype ${b[1]}`);
      if (b.length < 12) return INCOMPLETE;
      return { kind: 'message', message: { type: 'extended-key', down: v.getUint16(2) !== 0, keysym: v.getUint32(4), keycode: v.getUint32(8) }, length: 12 };
    }
    default:
      // A message we cannot size: nothing after it can be framed, so the connection ends (§7.5).
      return fail('unknown-message', `unknown client message type ${b[0]}`);
  }
}

/**
 * Accumulates socket chunks and hands out whole messages. Consumed bytes are dropped as soon as a batch is
 * parsed, so the buffer holds at most one partial message.
 */
export class ClientMessageReader {
  private pending: Buffer = Buffer.alloc(0);

  /** Bytes received but not yet part of a whole message. */
  get buffered(): number {
    return this.pending.length;
  }

  /**
   * Adds `chunk` and returns the whole messages now available, and the error that ends the stream if one came
   * after them (the messages before a bad one are still good and are handed out).
   */
  push(chunk: Uint8Array): { messages: ClientMessage[]; error?: RfbProtocolError } {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const out: ClientMessage[] = [];
    let off = 0;
    for (;;) {
      const r = parseClientMessage(this.pending.subarray(off));
      if (r.kind === 'incomplete') break;
      if (r.kind === 'error') {
        this.pending = Buffer.alloc(0);
        return { messages: out, error: r.error };
      }
      out.push(r.message);
      off += r.length;
    }
    this.pending = off === 0 ? this.pending : Buffer.from(this.pending.subarray(off));
    return { messages: out };
  }
}
