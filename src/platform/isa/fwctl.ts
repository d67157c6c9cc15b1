// bhyve's own firmware control channel (usr.sbin/bhyve/amd64/fwctl.c), used by bhyve's UEFI firmware when
// lpc.fwcfg=bhyve and a boot ROM is loaded. It shares QEMU fw_cfg's ports but speaks request/response messages:
//
//   identify   OUT word 0 (to either port) resets the channel; four byte INs then return "BHYV".
//   request    dword OUTs: total size (>= 12, header included), operation, transaction id, then the payload
//              in dwords. A request is complete once fewer than 4 payload bytes remain (as in bhyve, a trailing
//              1-3 bytes are never sent, so senders pad).
//   response   dword INs: total size (16 + payload rounded up to dwords), operation, transaction id, errno, then
//              the payload, the last dword zero-padded. Then the next request may start.
//
// Operations: GET_LEN (4) answers the length of a named value as a 64-bit little-endian size; GET (3) answers that
// size followed by the value. The only name is "hw.ncpu" (a 32-bit int). Anything else fails with ENOENT.
import type { Machine, PortSize } from '../machine.js';

export const FWCTL_OUT_PORT = 0x510;
export const FWCTL_IN_PORT = 0x511;
export const FWCTL_SIGNATURE = 'BHYV';

export const OP_GET = 3;
export const OP_GET_LEN = 4;
const HEADER_BYTES = 12;
/** Longest name a GET may carry (bhyve's FGET_STRSZ). */
const MAX_NAME_BYTES = 80;
/** FreeBSD errno values reported in responses. */
export const ENOENT = 2;
export const E2BIG = 7;

type State = 'ident' | 'request' | 'response';

export class Fwctl {
  private state: State = 'ident';
  private identIndex = 0;
  // Request being received.
  private reqWords = 0;
  private reqRemaining = 0;
  private reqOp = 0;
  private reqTxid = 0;
  private reqError = 0;
  private name: number[] = [];
  // Response being sent: header words then payload words.
  private response: number[] = [];

  constructor(
    machine: Machine,
    private readonly values: ReadonlyMap<string, Uint8Array>,
  ) {
    machine.io.registerPort(FWCTL_OUT_PORT, 2, (w, _port, size, v) => this.access(w, size, v));
  }

  /** bhyve's value table: hw.ncpu as a native int. */
  static defaultValues(ncpus: number): Map<string, Uint8Array> {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, ncpus >>> 0, true);
    return new Map([['hw.ncpu', b]]);
  }

  // Both ports lead to one handler in bhyve: what matters is the access width and direction.
  private access(write: boolean, size: PortSize, value: number): number {
    if (write) {
      if (size === 2 && (value & 0xffff) === 0) this.reset();
      else if (size === 4 && this.state === 'request') this.requestWord(value >>> 0);
      return 0;
    }
    if (size === 1) {
      if (this.state !== 'ident') return 0xff;
      const b = FWCTL_SIGNATURE.charCodeAt(this.identIndex++);
      if (this.identIndex >= FWCTL_SIGNATURE.length) this.state = 'request';
      return b;
    }
    if (size === 4 && this.state === 'response') {
      const v = this.response.shift() ?? 0;
      if (this.response.length === 0) this.startRequest();
      return v >>> 0;
    }
    return 0xffff_ffff;
  }

  private reset(): void {
    this.startRequest();
    this.state = 'ident';
    this.identIndex = 0;
  }

  private startRequest(): void {
    this.state = 'request';
    this.reqWords = 0;
    this.reqRemaining = 0;
    this.reqError = 0;
    this.name = [];
    this.response = [];
  }

  private requestWord(v: number): void {
    switch (this.reqWords++) {
      case 0:
        // bhyve exits on a size below the header; a hostile guest only gets its request dropped here.
        if (v < HEADER_BYTES) {
          this.startRequest();
          return;
        }
        this.reqRemaining = v - HEADER_BYTES;
        return;
      case 1:
        this.reqOp = v;
        return;
      case 2:
        this.reqTxid = v;
        if (this.reqOp !== OP_GET && this.reqOp !== OP_GET_LEN) this.reqError = ENOENT;
        else if (this.reqRemaining > MAX_NAME_BYTES) this.reqError = E2BIG;
        if (this.reqRemaining === 0) this.finishRequest();
        return;
      default:
        this.reqRemaining = this.reqRemaining <= 4 ? 0 : this.reqRemaining - 4;
        if (this.reqError === 0) this.name.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
        if (this.reqRemaining < 4) this.finishRequest();
        return;
    }
  }

  private finishRequest(): void {
    let payload: Uint8Array = new Uint8Array(0);
    let error = this.reqError;
    if (error === 0) {
      const value = this.lookup();
      if (!value) {
        error = ENOENT;
      } else {
        // A 64-bit size (size_t on amd64), then for GET the value itself.
        const size = new Uint8Array(8);
        new DataView(size.buffer).setBigUint64(0, BigInt(value.length), true);
        payload = this.reqOp === OP_GET ? concat(size, value) : size;
      }
    }
    const words = Math.ceil(payload.length / 4);
    const padded = new Uint8Array(words * 4);
    padded.set(payload);
    const view = new DataView(padded.buffer);
    this.response = [16 + words * 4, this.reqOp, this.reqTxid, error];
    for (let i = 0; i < words; i++) this.response.push(view.getUint32(i * 4, true));
    this.state = 'response';
  }

  /** strncmp(received, name, received length) == 0, as bhyve matches names. */
  private lookup(): Uint8Array | undefined {
    const got = this.name;
    for (const [name, value] of this.values) {
      const want = new TextEncoder().encode(name);
      let match = true;
      for (let i = 0; i < got.length; i++) {
        const a = got[i]!;
        const b = i < want.length ? want[i]! : 0;
        if (a !== b) {
          match = false;
          break;
        }
        if (a === 0) break;
      }
      if (match) return value;
    }
    return undefined;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
