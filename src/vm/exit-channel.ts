// The TypeScript end of the vCPU exit channel (native/vmm/exit_channel.h). The native side parks each
// exit that a TS device owns in its vCPU's slot; the main thread drains slots in short bursts:
//   pump(done, budget) completes the previous exit and spins up to `budget` ns for the next one,
//   returning its vCPU index, -1 (nothing came: go back to the event loop) or -2 (all vCPUs stopped).
// While idle, a vCPU wakes the main thread through a thread-safe function, so sockets, stdio and timers
// keep running between exits. Handlers are called synchronously with plain numbers (no allocation).

/** Port I/O handler: called once per element (string I/O calls it `count` times). Return the value for
 *  reads; returning undefined from a read leaves the default (all ones). */
export type PioHandler = (vcpu: number, port: number, size: 1 | 2 | 4, write: boolean, value: number) => number | void;
/** MMIO handler: values are numbers for 1..4-byte accesses and bigint for 8-byte ones. */
export type MmioHandler = (
  vcpu: number,
  gpa: number,
  size: 1 | 2 | 4 | 8,
  write: boolean,
  value: number | bigint,
) => number | bigint | void;

// Slot layout (bytes), see ExitSlot.
export const SLOT_SIZE = 4160;
const W_KIND = 2, W_HANDLER = 3, W_SIZE = 4, W_WRITE = 5, W_COUNT = 6, W_RESULT = 7;
const F_ADDR = 5; // byte 40 as a Float64Array index
const DATA = 64;
const KIND_PIO = 1;
const RESULT_HANDLED = 0, RESULT_UNHANDLED = 1, RESULT_ABORT = 2;

export interface ChannelHost {
  /** records a fatal handler error (status 4) */
  fail(message: string): void;
}

export class ExitChannel {
  private readonly u32: Uint32Array;
  private readonly f64: Float64Array;
  private readonly dv: DataView;

  constructor(
    buf: ArrayBuffer,
    private readonly pio: Map<number, PioHandler>,
    private readonly mmio: Map<number, MmioHandler>,
    private readonly host: ChannelHost,
  ) {
    if (buf.byteLength % SLOT_SIZE !== 0) throw new Error(`exit slot buffer of ${buf.byteLength} bytes does not match the layout`);
    this.u32 = new Uint32Array(buf);
    this.f64 = new Float64Array(buf);
    this.dv = new DataView(buf);
  }

  /** Runs the handler for the exit parked in slot `i` and stores its result there. */
  dispatch(i: number): void {
    const base = i * SLOT_SIZE;
    const w = base >> 2;
    const u32 = this.u32;
    let result = RESULT_HANDLED;
    try {
      if (u32[w + W_KIND] === KIND_PIO) result = this.pioExit(i, base, w);
      else result = this.mmioExit(i, base, w);
    } catch (e) {
      const kind = u32[w + W_KIND] === KIND_PIO ? 'port' : 'MMIO';
      const addr = this.f64[(base >> 3) + F_ADDR]!;
      this.host.fail(`${kind} handler at 0x${addr.toString(16)} threw: ${e instanceof Error ? e.message : String(e)}`);
      result = RESULT_ABORT;
    }
    u32[w + W_RESULT] = result;
  }

  private pioExit(vcpu: number, base: number, w: number): number {
    const u32 = this.u32, dv = this.dv;
    const h = this.pio.get(u32[w + W_HANDLER]!);
    if (!h) return RESULT_UNHANDLED;
    const size = u32[w + W_SIZE]! as 1 | 2 | 4;
    const write = u32[w + W_WRITE] === 1;
    const count = u32[w + W_COUNT]!;
    const port = this.f64[(base >> 3) + F_ADDR]!;
    for (let k = 0, at = base + DATA; k < count; k++, at += size) {
      if (write) {
        const v = size === 1 ? dv.getUint8(at) : size === 2 ? dv.getUint16(at, true) : dv.getUint32(at, true);
        h(vcpu, port, size, true, v);
      } else {
        const r = h(vcpu, port, size, false, 0);
        if (typeof r !== 'number') continue; // stays all ones
        if (size === 1) dv.setUint8(at, r & 0xff);
        else if (size === 2) dv.setUint16(at, r & 0xffff, true);
        else dv.setUint32(at, r >>> 0, true);
      }
    }
    return RESULT_HANDLED;
  }

  private mmioExit(vcpu: number, base: number, w: number): number {
    const u32 = this.u32, dv = this.dv;
    const h = this.mmio.get(u32[w + W_HANDLER]!);
    if (!h) return RESULT_UNHANDLED;
    const size = u32[w + W_SIZE]! as 1 | 2 | 4 | 8;
    const write = u32[w + W_WRITE] === 1;
    const gpa = this.f64[(base >> 3) + F_ADDR]!;
    const at = base + DATA;
    if (write) {
      const v =
        size === 1 ? dv.getUint8(at) : size === 2 ? dv.getUint16(at, true) : size === 4 ? dv.getUint32(at, true) : dv.getBigUint64(at, true);
      h(vcpu, gpa, size, true, v);
      return RESULT_HANDLED;
    }
    const r = h(vcpu, gpa, size, false, size === 8 ? 0n : 0);
    if (r === undefined) return RESULT_HANDLED; // data already holds all ones
    if (size === 8) dv.setBigUint64(at, BigInt.asUintN(64, BigInt(r)), true);
    else {
      const n = Number(typeof r === 'bigint' ? BigInt.asUintN(32, r) : r);
      if (size === 1) dv.setUint8(at, n & 0xff);
      else if (size === 2) dv.setUint16(at, n & 0xffff, true);
      else dv.setUint32(at, n >>> 0, true);
    }
    return RESULT_HANDLED;
  }
}
