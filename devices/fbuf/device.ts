// fbuf (`-s S,fbuf,tcp=IP:PORT[,w=,h=,vga=,wait,password=]`): bhyve's pci_fbuf.c, the framebuffer its UEFI firmware
// (the GOP driver) and guests' generic framebuffer drivers draw on. PCI FB5D:40FB, class 03/00; BAR0 is a
// 128-byte mode block (fbsize, width, height, depth, refresh rate), BAR1 the 32 MiB framebuffer, which on a VM is a
// device memory segment mapped wherever the guest puts BAR1, so drawing never exits. 32 bits per pixel, stored
// blue, green, red, unused (XRGB8888 little-endian), one row after another with no padding (stride = width * 4).
// The VNC server (devices/fbuf/rfb) reads the same bytes in place; its keys go to the PS/2 keyboard and its pointer to
// the xhci tablet, when the VM has one. With `wait`, start-up holds the vCPUs until the first client has logged in.
import { createServer } from 'node:net';
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import type { DeviceMemory, Machine } from '../../src/platform/machine.js';
import type { PciDeviceModel } from '../../src/platform/pci/function.js';
import { PCIC_DISPLAY, PCIR_CLASS, PCIR_DEVICE, PCIR_SUBCLASS, PCIR_VENDOR } from '../../src/platform/pci/regs.js';
import type { PciDeviceContext, PciDeviceFactory } from '../device.js';
import { keyboardOf } from '../../src/platform/isa/i8042.js';
import { findUsbTablet } from '../xhci/device.js';
import { NativeTileScanner } from './native-scanner.js';
import { readFbufOptions, type FbufOptions } from './options.js';
import { RfbServer, type FramebufferSource } from './rfb/index.js';
import { VgaIo } from './vga-io.js';

export const FBUF_VENDOR = 0xfb5d;
export const FBUF_DEVICE = 0x40fb;
export const PCIS_DISPLAY_VGA = 0x00;
/** bhyve's FB_SIZE: room for 3840x2160 at 4 bytes per pixel. */
export const FB_SIZE = 32 << 20;
/** bhyve's DMEMSZ: the mode block in BAR0. */
export const FB_REGS_SIZE = 128;
export const FB_REGS = { fbsize: 0, width: 4, height: 6, depth: 8, refreshrate: 10 } as const;
export const FBUF_MSI_MESSAGES = 4;
export const FB_REG_BAR = 0;
export const FB_MEM_BAR = 1;

/** What the screen shows now: the mode the guest programmed over the framebuffer's bytes. */
export interface Scanout {
  width: number;
  height: number;
  /** bytes per row */
  stride: number;
  /** the framebuffer (XRGB8888 little-endian), at least stride * height bytes; shared with the guest */
  pixels: Uint8Array;
}

/** Devices that each machine may have only once. */
const fbufOf = new WeakMap<Machine, FbufDevice>();

export class FbufDevice implements PciDeviceModel {
  private readonly regs = new Uint8Array(FB_REGS_SIZE);
  private readonly regView = new DataView(this.regs.buffer);
  /** the framebuffer: a device memory segment on a VM, plain memory served through BAR1's handlers otherwise */
  readonly memory: DeviceMemory | undefined;
  readonly pixels: Uint8Array;
  private readonly fbView: DataView;
  private readonly modeListeners: Array<(s: Scanout | undefined) => void> = [];
  /** What VNC shows while the guest has no usable mode: black at the configured size. */
  private blank?: Scanout;
  ready?: Promise<void>;
  server?: RfbServer;
  private fbAddr?: number;

  constructor(
    readonly options: FbufOptions,
    machine: Machine,
  ) {
    this.memory = machine.deviceMemory?.('framebuffer', FB_SIZE);
    this.pixels = this.memory?.bytes ?? new Uint8Array(FB_SIZE);
    this.pixels.fill(0);
    this.fbView = new DataView(this.pixels.buffer, this.pixels.byteOffset, this.pixels.byteLength);
    this.regView.setUint32(FB_REGS.fbsize, FB_SIZE, true);
    this.regView.setUint16(FB_REGS.width, options.width, true);
    this.regView.setUint16(FB_REGS.height, options.height, true);
    this.regView.setUint16(FB_REGS.depth, 32, true);
  }

  /**
   * The current mode, or undefined while the guest has width or height at 0 (bhyve's "VGA mode": nothing to show
   * from the framebuffer) or programs a mode the framebuffer cannot hold.
   */
  scanout(): Scanout | undefined {
    const width = this.regView.getUint16(FB_REGS.width, true);
    const height = this.regView.getUint16(FB_REGS.height, true);
    const depth = this.regView.getUint16(FB_REGS.depth, true);
    if (width === 0 || height === 0 || depth !== 32 || width * height * 4 > FB_SIZE) return undefined;
    return { width, height, stride: width * 4, pixels: this.pixels };
  }

  /** The picture for the VNC server: the scanout, or black at the configured size while there is none. */
  source(): FramebufferSource {
    const s = this.scanout();
    if (s) return s;
    this.blank ??= { width: this.options.width, height: this.options.height, stride: this.options.width * 4, pixels: new Uint8Array(this.options.width * this.options.height * 4) };
    return this.blank;
  }

  /** Called after each guest write that changes the mode (width, height or depth). */
  onModeChange(fn: (s: Scanout | undefined) => void): void {
    this.modeListeners.push(fn);
  }

  barRead(bar: number, offset: number, size: 1 | 2 | 4): number {
    if (bar === FB_MEM_BAR) return this.fbRead(offset, size);
    if (bar !== FB_REG_BAR || offset + size > FB_REGS_SIZE) return 0;
    if (size === 1) return this.regs[offset]!;
    if (size === 2) return this.regView.getUint16(offset, true);
    return this.regView.getUint32(offset, true);
  }

  barWrite(bar: number, offset: number, size: 1 | 2 | 4, value: number): void {
    if (bar === FB_MEM_BAR) return this.fbWrite(offset, size, value);
    if (bar !== FB_REG_BAR || offset + size > FB_REGS_SIZE) return;
    const before = this.modeKey();
    // bhyve lets the guest write any byte of the block, fbsize included; only width/height/depth mean anything.
    if (size === 1) this.regs[offset] = value & 0xff;
    else if (size === 2) this.regView.setUint16(offset, value & 0xffff, true);
    else this.regView.setUint32(offset, value >>> 0, true);
    if (this.modeKey() !== before) {
      const s = this.scanout();
      for (const fn of this.modeListeners) fn(s);
    }
  }

  /** BAR1 moved or stopped decoding: the segment follows it (bhyve's pe_baraddr). */
  barMapped(bar: number, mapped: boolean, addr: number): void {
    if (bar !== FB_MEM_BAR) return;
    this.fbAddr = mapped ? addr : undefined;
    if (!this.memory) return;
    if (mapped) this.memory.map(addr);
    else this.memory.unmap();
  }

  /** Where the framebuffer decodes now (BAR1), or undefined while it does not. */
  framebufferAddress(): number | undefined {
    return this.fbAddr;
  }

  private modeKey(): string {
    return `${this.regView.getUint16(FB_REGS.width, true)}x${this.regView.getUint16(FB_REGS.height, true)}x${this.regView.getUint16(FB_REGS.depth, true)}`;
  }

  // Without a device segment (the harness) BAR1 is ordinary MMIO over the same bytes.
  private fbRead(offset: number, size: 1 | 2 | 4): number {
    if (offset < 0 || offset + size > FB_SIZE) return 0xffffffff;
    if (size === 1) return this.pixels[offset]!;
    if (size === 2) return this.fbView.getUint16(offset, true);
    return this.fbView.getUint32(offset, true);
  }
  private fbWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset < 0 || offset + size > FB_SIZE) return;
    if (size === 1) this.pixels[offset] = value & 0xff;
    else if (size === 2) this.fbView.setUint16(offset, value & 0xffff, true);
    else this.fbView.setUint32(offset, value >>> 0, true);
  }
}

/** The machine's fbuf, for the boot loader (screen_info) and tests. */
export function findFbuf(machine: Machine): FbufDevice | undefined {
  return fbufOf.get(machine);
}

export function createFbufDevice(ctx: PciDeviceContext): FbufDevice {
  const { fn, machine } = ctx;
  if (fbufOf.has(machine)) throw new BhyveError(ExitStatus.ERROR, 'Only one frame buffer device is allowed.', false);
  const options = readFbufOptions(ctx.tree, ctx.node);
  fn.set16(PCIR_VENDOR, FBUF_VENDOR);
  fn.set16(PCIR_DEVICE, FBUF_DEVICE);
  fn.set8(PCIR_CLASS, PCIC_DISPLAY);
  fn.set8(PCIR_SUBCLASS, PCIS_DISPLAY_VGA);
  ctx.bus.allocBar(fn, FB_REG_BAR, 'mem32', FB_REGS_SIZE);
  ctx.bus.allocBar(fn, FB_MEM_BAR, 'mem32', FB_SIZE);
  fn.addMsiCapability(FBUF_MSI_MESSAGES);
  const dev = new FbufDevice(options, machine);
  if (options.vga === 'io') new VgaIo().attach(machine.io);
  fbufOf.set(machine, dev);
  const where = options.host.includes(':') ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
  // The listener is ours so it can be unref'd: the VNC console must not keep a process alive whose VM has ended.
  const listener = createServer();
  const server = new RfbServer({
    framebuffer: () => dev.source(),
    server: listener,
    password: options.password,
    desktopName: ctx.tree.get('name') ?? 'bhyve',
    scanner: new NativeTileScanner(32),
    onKey: (down, keysym) => void keyboardOf(machine)?.keyEvent(down, keysym),
    // The tablet is looked up at each event: xhci may sit in a later slot than fbuf.
    onPointer: (buttons, x, y) => {
      const s = dev.source();
      findUsbTablet(ctx.bus)?.pointer(buttons, x, y, s.width, s.height);
    },
    log: (m) => ctx.warn(m),
  });
  dev.server = server;
  dev.onModeChange(() => server.resize());
  const listening = new Promise<void>((resolve, reject) => {
    listener.once('error', (e: Error) => reject(new BhyveError(ExitStatus.ERROR, `fbuf: cannot listen for VNC on ${where}: ${e.message}`, false)));
    listener.listen({ host: options.host, port: options.port, exclusive: true }, () => resolve());
  });
  // While start-up waits for the first client the listener is what keeps the process alive.
  if (!options.wait) listener.unref();
  dev.ready = options.wait
    ? listening.then(() => {
        ctx.warn(`fbuf: waiting for a VNC client on ${where}`);
        return server.firstClient().finally(() => listener.unref());
      })
    : listening.then(() => undefined);
  dev.ready.catch(() => undefined); // start-up awaits it; an unobserved failure must not end the process
  machine.dataPath?.onClose(() => void server.close().catch(() => undefined));
  return dev;
}

export const createFbuf: PciDeviceFactory = (ctx) => createFbufDevice(ctx);
