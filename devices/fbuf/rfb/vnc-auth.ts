// VNC Authentication (RFC 6143 §7.2.2): the server sends 16 random bytes; the client returns them DES-encrypted
// (ECB, two blocks) with a key made from the password. The key is the first 8 password bytes, zero padded, with
// each byte's bits reversed: the original VNC code fed DES its key least significant bit first, and every
// client since does the same. The scheme is weak (8 characters, no salt); it is what bhyve offers.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { desEncryptEcb } from './des.js';

export const VNC_CHALLENGE_SIZE = 16;
/** Passwords longer than this are cut, as every VNC implementation cuts them. */
export const VNC_PASSWORD_MAX = 8;

function reverseBits(b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((b >> i) & 1) << (7 - i);
  return r;
}

/** The DES key VNC derives from `password` (its UTF-8 bytes; real clients type Latin-1/ASCII). */
export function vncAuthKey(password: string | Uint8Array): Buffer {
  const bytes = typeof password === 'string' ? Buffer.from(password, 'utf8') : Buffer.from(password);
  const key = Buffer.alloc(8);
  for (let i = 0; i < Math.min(VNC_PASSWORD_MAX, bytes.length); i++) key[i] = reverseBits(bytes[i]!);
  return key;
}

export function vncAuthChallenge(): Buffer {
  return randomBytes(VNC_CHALLENGE_SIZE);
}

/** The response a client holding `password` sends for `challenge`. */
export function vncAuthResponse(password: string | Uint8Array, challenge: Uint8Array): Buffer {
  if (challenge.length !== VNC_CHALLENGE_SIZE) throw new RangeError(`a VNC challenge is ${VNC_CHALLENGE_SIZE} bytes`);
  return desEncryptEcb(vncAuthKey(password), challenge);
}

/** True when `response` answers `challenge` for `password`; the comparison takes the same time either way. */
export function vncAuthVerify(password: string | Uint8Array, challenge: Uint8Array, response: Uint8Array): boolean {
  if (response.length !== VNC_CHALLENGE_SIZE) return false;
  return timingSafeEqual(vncAuthResponse(password, challenge), response);
}
