// The RFB handshake (RFC 6143 §7.1-§7.3): ProtocolVersion, security, ClientInit and ServerInit, as pure
// functions over bytes. The connection (connection.ts) drives them as a state machine.
import { RfbProtocolError } from './errors.js';
import { encodePixelFormat, type PixelFormat } from './pixel-format.js';

/** The three published protocol versions (RFC 6143 §7.1.1), by minor number. */
export type RfbVersion = 3 | 7 | 8;

export const PROTOCOL_VERSION_SIZE = 12;
/** This server offers 3.8, the newest; the client answers with what it speaks. */
export const SERVER_VERSION = Buffer.from('RFB 003.008\n', 'latin1');

export const SECURITY_INVALID = 0;
export const SECURITY_NONE = 1;
export const SECURITY_VNC_AUTH = 2;

export const SECURITY_RESULT_OK = 0;
export const SECURITY_RESULT_FAILED = 1;

/**
 * The version to speak with a client that sent `msg`, or a typed error. RFC 6143 §7.1.1: versions other than
 * 3.3, 3.7 and 3.8 behave as 3.3, because only those three changed the handshake; a client newer than the
 * offered 3.8 (Apple's 3.889, for one) gets 3.8, the most this server knows.
 */
export function negotiateVersion(msg: Uint8Array): RfbVersion | RfbProtocolError {
  const text = Buffer.from(msg).toString('latin1');
  const m = /^RFB (\d{3})\.(\d{3})\n$/.exec(text);
  if (m === null) return new RfbProtocolError('bad-version', `not an RFB ProtocolVersion: ${JSON.stringify(text)}`);
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (major < 3) return new RfbProtocolError('bad-version', `client protocol version ${major}.${minor} is older than 3.3`);
  if (major > 3 || minor >= 8) return 8;
  if (minor === 7) return 7;
  return 3;
}

/** The security types offered: VNC Authentication when a password is set, otherwise None only. */
export function offeredSecurityTypes(hasPassword: boolean): number[] {
  return hasPassword ? [SECURITY_VNC_AUTH] : [SECURITY_NONE];
}

/** RFB 3.7 and 3.8: U8 count, then the types (RFC 6143 §7.1.2). */
export function securityTypesMessage(types: readonly number[]): Buffer {
  return Buffer.from([types.length, ...types]);
}

/** RFB 3.3: the server picks, and sends it as one U32 (RFC 6143 appendix A). */
export function securityType33Message(type: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(type);
  return b;
}

/** A U32 length and the text, the "reason string" of RFC 6143 §7.1.2 and §7.1.3. */
export function reasonString(reason: string, encoding: 'latin1' | 'utf8' = 'latin1'): Buffer {
  const text = Buffer.from(reason, encoding);
  const b = Buffer.alloc(4 + text.length);
  b.writeUInt32BE(text.length);
  text.copy(b, 4);
  return b;
}

/**
 * SecurityResult (RFC 6143 §7.1.3). Only 3.8 follows a failure with a reason; 3.3 and 3.7 clients just see the
 * connection close.
 */
export function securityResultMessage(ok: boolean, version: RfbVersion, reason = 'authentication failed'): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ok ? SECURITY_RESULT_OK : SECURITY_RESULT_FAILED);
  return ok || version !== 8 ? b : Buffer.concat([b, reasonString(reason)]);
}

/** Whether the security handshake ends with a SecurityResult for `type` (RFC 6143 §7.1.3, appendix A). */
export function sendsSecurityResult(type: number, version: RfbVersion): boolean {
  return type === SECURITY_VNC_AUTH || version === 8;
}

/**
 * ServerInit (RFC 6143 §7.3.2): U16 width, U16 height, PIXEL_FORMAT, U32 name length, name. The RFC leaves the
 * name's encoding open and suggests UTF-8.
 */
export function serverInitMessage(width: number, height: number, format: PixelFormat, name: string): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(width, 0);
  head.writeUInt16BE(height, 2);
  return Buffer.concat([head, encodePixelFormat(format), reasonString(name, 'utf8')]);
}
