// A minimal 8042 keyboard controller (ports 0x60 data, 0x64 status/command; IBM PC/AT Technical Reference,
// "Keyboard/Auxiliary Device Controller") with a PS/2 keyboard that answers commands and types the keys the VNC
// server delivers (keyEvent), and no mouse on the auxiliary port. It is there so the OS's probe finishes quickly
// with a sane answer, for the reset line (command 0xFE, or any pulse of output-port bit 0, resets the machine), and
// for keyboard input on an fbuf console.
import type { Machine, PortSize } from '../machine.js';
import { keysymToKey, set1Bytes, set2Bytes } from './ps2-keymap.js';

export const KBC_DATA_PORT = 0x60;
export const KBC_CMD_PORT = 0x64;
export const KBD_IRQ = 1;
export const AUX_IRQ = 12;

// Status register.
export const STS_OBF = 0x01; // output buffer full
export const STS_SYS = 0x04; // system flag (copied from CTR bit 2)
export const STS_CMD = 0x08; // last write went to 0x64
export const STS_UNLOCKED = 0x10; // keyboard not inhibited by the key lock
export const STS_AUX_OBF = 0x20; // the byte in the output buffer came from the auxiliary port
export const STS_TIMEOUT = 0x40;

// Controller configuration byte (RAM byte 0).
export const CTR_KBD_INT = 0x01;
export const CTR_AUX_INT = 0x02;
export const CTR_SYS = 0x04;
export const CTR_KBD_DISABLE = 0x10;
export const CTR_AUX_DISABLE = 0x20;
export const CTR_XLATE = 0x40;

// Output port bits.
const OUT_RESET = 0x01; // low = reset the CPU
const OUT_A20 = 0x02;
const OUT_KBD_OBF = 0x10;
const OUT_AUX_OBF = 0x20;

// PS/2 keyboard replies.
export const KBD_ACK = 0xfa;
export const KBD_RESEND = 0xfe;
export const KBD_BAT_OK = 0xaa;
export const KBD_ECHO = 0xee;

/** A byte waiting for the guest in the output buffer. */
interface OutByte {
  value: number;
  aux: boolean;
}

/** Commands whose parameter comes through the next write to 0x60. */
type PendingController = 'ram' | 'outport' | 'kbdOut' | 'auxOut' | 'aux';
type PendingKeyboard = 'leds' | 'typematic' | 'scanset';

const OUTPUT_LIMIT = 16;
/** Key bytes held for a guest that reads slowly (a few dozen keystrokes). */
const KEY_QUEUE_LIMIT = 256;

/** The keyboard controller of each machine, for the devices that deliver keys to it (fbuf's VNC server). */
const controllers = new WeakMap<Machine, KeyboardController>();
export function keyboardOf(machine: Machine): KeyboardController | undefined {
  return controllers.get(machine);
}
/** Makes `kbc` the keyboard of `machine` too (the ISA devices see the machine through a wrapper). */
export function setKeyboardOf(machine: Machine, kbc: KeyboardController): void {
  controllers.set(machine, kbc);
}

/**
 * Replies the keyboard can send that the 8042's set 2 -> set 1 translation changes. Scan codes would be translated
 * too, but this keyboard sends none; these are the identify and scan-set answers.
 */
const XLATE: Record<number, number> = { 0x01: 0x43, 0x02: 0x41, 0x03: 0x3f, 0x83: 0x41 };

export class KeyboardController {
  private readonly ram = new Uint8Array(32);
  private status = STS_UNLOCKED;
  private outport = OUT_RESET | OUT_A20;
  private output: OutByte[] = [];
  private pendingCtl: PendingController | undefined;
  private pendingRamIndex = 0;
  private pendingKbd: PendingKeyboard | undefined;
  private scanSet = 2;
  private lastKbdByte = KBD_ACK;
  private lastOut = 0;
  /** Whether the keyboard sends keys (enabled by 0xF4 and by reset, disabled by 0xF5). */
  keyboardScanning = true;
  /** Key bytes waiting to enter the output buffer, one at a time, so command replies are never stuck behind them. */
  private keyQueue: number[] = [];

  constructor(private readonly machine: Machine) {
    // The state the firmware leaves: keyboard interrupt on, translation on, system flag set (POST passed).
    this.ram[0] = CTR_KBD_INT | CTR_SYS | CTR_XLATE;
    this.status |= STS_SYS;
    machine.io.registerPort(KBC_DATA_PORT, 1, (w, _p, size, v) => this.dataAccess(w, size, v));
    machine.io.registerPort(KBC_CMD_PORT, 1, (w, _p, size, v) => this.commandAccess(w, size, v));
    controllers.set(machine, this);
  }

  /**
   * A key going down or up on the PS/2 keyboard (from the VNC server's KeyEvent): its scan codes in the set the
   * guest reads (set 1 when the controller translates or the keyboard is in set 1, else set 2). Returns false when
   * the key was not sent: unknown keysym, keyboard disabled or not scanning, or a full key queue (a guest that
   * does not read its keyboard loses keys rather than VMM memory).
   */
  keyEvent(down: boolean, keysym: number): boolean {
    const k = keysymToKey(keysym);
    if (!k || !this.keyboardScanning || this.ram[0]! & CTR_KBD_DISABLE) return false;
    const bytes = this.ram[0]! & CTR_XLATE || this.scanSet === 1 ? set1Bytes(k, down) : set2Bytes(k, down);
    if (this.keyQueue.length + bytes.length > KEY_QUEUE_LIMIT) return false;
    this.keyQueue.push(...bytes);
    this.pumpKeys();
    return true;
  }

  private pumpKeys(): void {
    if (this.output.length === 0 && this.keyQueue.length > 0) this.push(this.keyQueue.shift()!, false);
  }

  /** True when the A20 gate is open (output port bit 1); KVM guests always see A20 enabled anyway. */
  get a20(): boolean {
    return (this.outport & OUT_A20) !== 0;
  }

  get configByte(): number {
    return this.ram[0]!;
  }

  private dataAccess(write: boolean, size: PortSize, value: number): number {
    if (size !== 1) return write ? 0 : 0xffff_ffff;
    if (!write) return this.readOutput();
    this.status &= ~STS_CMD;
    const v = value & 0xff;
    const pending = this.pendingCtl;
    this.pendingCtl = undefined;
    switch (pending) {
      case 'ram':
        this.writeRam(this.pendingRamIndex, v);
        return 0;
      case 'outport':
        this.writeOutport(v);
        return 0;
      case 'kbdOut':
        this.push(v, false);
        return 0;
      case 'auxOut':
        this.push(v, true);
        return 0;
      case 'aux':
        // No mouse: the controller times out waiting for the device and reports it (status bit 6, 0xFE).
        this.status |= STS_TIMEOUT;
        this.push(KBD_RESEND, true);
        return 0;
      default:
        this.keyboardWrite(v);
        return 0;
    }
  }

  private commandAccess(write: boolean, size: PortSize, value: number): number {
    if (size !== 1) return write ? 0 : 0xffff_ffff;
    if (!write) return this.status;
    const cmd = value & 0xff;
    this.status |= STS_CMD;
    this.pendingCtl = undefined;
    if (cmd >= 0x20 && cmd <= 0x3f) {
      this.reply(this.ram[cmd - 0x20]!);
      return 0;
    }
    if (cmd >= 0x60 && cmd <= 0x7f) {
      this.pendingCtl = 'ram';
      this.pendingRamIndex = cmd - 0x60;
      return 0;
    }
    if (cmd >= 0xf0) {
      // Pulse output-port bits 0-3 low where the command's low nibble has zeros; bit 0 is the CPU reset line.
      if ((cmd & 0x01) === 0) this.machine.suspend('reset');
      return 0;
    }
    switch (cmd) {
      case 0xa7:
        this.ram[0] = this.ram[0]! | CTR_AUX_DISABLE;
        break;
      case 0xa8:
        this.ram[0] = this.ram[0]! & ~CTR_AUX_DISABLE;
        break;
      case 0xa9: // auxiliary interface test: lines OK
      case 0xab: // keyboard interface test: lines OK
        this.reply(0x00);
        break;
      case 0xaa: // controller self-test passed
        this.reply(0x55);
        break;
      case 0xad:
        this.ram[0] = this.ram[0]! | CTR_KBD_DISABLE;
        break;
      case 0xae:
        this.ram[0] = this.ram[0]! & ~CTR_KBD_DISABLE;
        break;
      case 0xc0: // input port: keyboard not inhibited
        this.reply(0x80);
        break;
      case 0xd0:
        this.reply(this.currentOutport());
        break;
      case 0xd1:
        this.pendingCtl = 'outport';
        break;
      case 0xd2:
        this.pendingCtl = 'kbdOut';
        break;
      case 0xd3:
        this.pendingCtl = 'auxOut';
        break;
      case 0xd4:
        this.pendingCtl = 'aux';
        break;
      case 0xdd: // A20 off / on (a common extension)
        this.outport &= ~OUT_A20;
        break;
      case 0xdf:
        this.outport |= OUT_A20;
        break;
      default:
        // Unknown commands are ignored, as real controllers do.
        break;
    }
    return 0;
  }

  private writeRam(index: number, v: number): void {
    this.ram[index & 0x1f] = v;
    if (index === 0) {
      if (v & CTR_SYS) this.status |= STS_SYS;
      else this.status &= ~STS_SYS;
      this.raiseForHead();
    }
  }

  private writeOutport(v: number): void {
    this.outport = v & ~(OUT_KBD_OBF | OUT_AUX_OBF);
    if ((v & OUT_RESET) === 0) this.machine.suspend('reset');
  }

  private currentOutport(): number {
    const head = this.output[0];
    let v = this.outport;
    if (head && !head.aux) v |= OUT_KBD_OBF;
    if (head && head.aux) v |= OUT_AUX_OBF;
    return v;
  }

  /** A PS/2 keyboard's answer to a byte from the host. */
  private keyboardWrite(v: number): void {
    const arg = this.pendingKbd;
    this.pendingKbd = undefined;
    if (arg === 'leds' || arg === 'typematic') {
      this.kbd(KBD_ACK);
      return;
    }
    if (arg === 'scanset') {
      if (v === 0) {
        this.kbd(KBD_ACK);
        this.kbd(this.scanSet);
      } else if (v >= 1 && v <= 3) {
        this.scanSet = v;
        this.kbd(KBD_ACK);
      } else {
        this.kbd(KBD_RESEND);
      }
      return;
    }
    switch (v) {
      case 0xff: // reset and self-test
        this.keyQueue = [];
        this.scanSet = 2;
        this.keyboardScanning = true;
        this.kbd(KBD_ACK);
        this.kbd(KBD_BAT_OK);
        break;
      case 0xfe:
        this.kbd(this.lastKbdByte);
        break;
      case 0xf2: // identify: MF2 keyboard
        this.kbd(KBD_ACK);
        this.kbd(0xab);
        this.kbd(0x83);
        break;
      case 0xf0:
        this.pendingKbd = 'scanset';
        this.kbd(KBD_ACK);
        break;
      case 0xed:
        this.pendingKbd = 'leds';
        this.kbd(KBD_ACK);
        break;
      case 0xf3:
        this.pendingKbd = 'typematic';
        this.kbd(KBD_ACK);
        break;
      case 0xf4:
        this.keyboardScanning = true;
        this.kbd(KBD_ACK);
        break;
      case 0xf5:
        this.keyboardScanning = false;
        this.kbd(KBD_ACK);
        break;
      case 0xee:
        this.kbd(KBD_ECHO);
        break;
      default:
        // 0xF6 defaults and the scan-set-3 key modes 0xF7-0xFD take no argument: acknowledge.
        if (v >= 0xf6 && v <= 0xfd) this.kbd(KBD_ACK);
        else this.kbd(KBD_RESEND);
        break;
    }
  }

  private kbd(v: number): void {
    this.lastKbdByte = v;
    const out = this.ram[0]! & CTR_XLATE ? (XLATE[v] ?? v) : v;
    this.push(out, false);
  }

  /** A controller reply: goes through the keyboard side of the output buffer. */
  private reply(v: number): void {
    this.push(v, false);
  }

  private push(value: number, aux: boolean): void {
    if (this.output.length >= OUTPUT_LIMIT) return; // the guest is not reading; drop as a full buffer would
    this.output.push({ value, aux });
    if (this.output.length === 1) this.raiseForHead();
  }

  private readOutput(): number {
    const head = this.output.shift();
    this.status &= ~STS_TIMEOUT;
    if (this.output.length > 0) this.raiseForHead();
    else this.syncStatus();
    this.pumpKeys();
    // With the buffer empty a real controller hands out the stale byte again.
    if (head) this.lastOut = head.value;
    return this.lastOut;
  }

  private syncStatus(): void {
    const head = this.output[0];
    this.status &= ~(STS_OBF | STS_AUX_OBF);
    if (head) this.status |= STS_OBF | (head.aux ? STS_AUX_OBF : 0);
  }

  /** Updates the status for the byte now at the head and interrupts for it if that side's interrupt is on. */
  private raiseForHead(): void {
    this.syncStatus();
    const head = this.output[0];
    if (!head) return;
    const ctr = this.ram[0]!;
    if (head.aux) {
      if (ctr & CTR_AUX_INT) this.machine.irq.isaPulse(AUX_IRQ, AUX_IRQ);
    } else if (ctr & CTR_KBD_INT) {
      this.machine.irq.isaPulse(KBD_IRQ, KBD_IRQ);
    }
  }
}
