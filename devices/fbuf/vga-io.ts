// The VGA register ports 0x3C0-0x3DF that `vga=io` (fbuf's default) answers, as bhyve's vga_init(io only) does:
// a guest or its firmware probing for VGA finds registers that keep what is written and a status register whose
// retrace bits move, so wait-for-retrace loops end. Nothing is rendered from them (the framebuffer is what VNC shows).
import type { IoSpace, PortSize } from '../../src/platform/machine.js';

export const VGA_IO_BASE = 0x3c0;
export const VGA_IO_LEN = 0x20;

export class VgaIo {
  private misc = 0x01; // I/O address select: colour (0x3Dx)
  private readonly seq = new Uint8Array(8);
  private seqIndex = 0;
  private readonly gc = new Uint8Array(16);
  private gcIndex = 0;
  private readonly crtc = new Uint8Array(32);
  private crtcIndex = 0;
  private readonly attr = new Uint8Array(32);
  private attrIndex = 0;
  private attrFlip = false; // false: the next 0x3C0 write is an index
  private readonly dac = new Uint8Array(256 * 3);
  private dacMask = 0xff;
  private dacRead = 0; // palette entry * 3 + component
  private dacWrite = 0;
  private dacState = 0; // 0x3C7 read: 0 after a write index, 3 after a read index
  private status1 = 0;

  attach(io: IoSpace): void {
    io.registerPort(VGA_IO_BASE, VGA_IO_LEN, (write, port, size, value) => this.access(write, port, size, value));
  }

  /** One access; 16-bit accesses are an index write and a data write (outw to 0x3C4/0x3CE/0x3D4), as on VGA. */
  access(write: boolean, port: number, size: PortSize, value: number): number {
    if (size === 2 && write) {
      this.byte(true, port, value & 0xff);
      this.byte(true, port + 1, (value >>> 8) & 0xff);
      return 0;
    }
    if (size !== 1) return write ? 0 : 0xffffffff;
    return this.byte(write, port, value & 0xff);
  }

  private byte(write: boolean, port: number, v: number): number {
    switch (port) {
      case 0x3c0:
        if (!write) return this.attrIndex;
        if (!this.attrFlip) this.attrIndex = v & 0x3f;
        else this.attr[this.attrIndex & 0x1f] = v;
        this.attrFlip = !this.attrFlip;
        return 0;
      case 0x3c1:
        return write ? 0 : this.attr[this.attrIndex & 0x1f]!;
      case 0x3c2:
        if (write) this.misc = v;
        return 0; // input status 0: no switch sense, no interrupt
      case 0x3c4:
        if (write) this.seqIndex = v & 7;
        return this.seqIndex;
      case 0x3c5:
        if (write) this.seq[this.seqIndex] = v;
        return this.seq[this.seqIndex]!;
      case 0x3c6:
        if (write) this.dacMask = v;
        return this.dacMask;
      case 0x3c7:
        if (write) {
          this.dacRead = v * 3;
          this.dacState = 3;
          return 0;
        }
        return this.dacState;
      case 0x3c8:
        if (write) {
          this.dacWrite = v * 3;
          this.dacState = 0;
        }
        return this.dacWrite / 3;
      case 0x3c9:
        if (write) {
          this.dac[this.dacWrite] = v & 0x3f;
          this.dacWrite = (this.dacWrite + 1) % this.dac.length;
          return 0;
        } else {
          const r = this.dac[this.dacRead]!;
          this.dacRead = (this.dacRead + 1) % this.dac.length;
          return r;
        }
      case 0x3cc:
        return write ? 0 : this.misc;
      case 0x3ce:
        if (write) this.gcIndex = v & 0xf;
        return this.gcIndex;
      case 0x3cf:
        if (write) this.gc[this.gcIndex] = v;
        return this.gc[this.gcIndex]!;
      case 0x3d4:
        if (write) this.crtcIndex = v & 0x1f;
        return this.crtcIndex;
      case 0x3d5:
        if (write) this.crtc[this.crtcIndex] = v;
        return this.crtc[this.crtcIndex]!;
      case 0x3da:
        if (write) return 0;
        // Input status 1: alternate retrace (bit 3) and display-disable (bit 0) on each read; resets the flip-flop.
        this.attrFlip = false;
        this.status1 ^= 0x09;
        return this.status1;
      default:
        return write ? 0 : 0xff;
    }
  }
}
