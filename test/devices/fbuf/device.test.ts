// The fbuf PCI function without a VM: bhyve's IDs and BARs, the mode block, framebuffer writes through BAR1,
// mode changes reported to the display side, the VGA I/O ports, and bhyve's option errors.
import test from 'tape';
import { FB_MEM_BAR, FB_REGS, FB_SIZE, findFbuf, type Scanout } from '../../../devices/fbuf/device.js';
import { parseRfbAddress } from '../../../devices/fbuf/options.js';
import { BhyveError } from '../../../src/config/errors.js';
import { PCIR_CLASS, PCIR_DEVICE, PCIR_SUBCLASS, PCIR_VENDOR } from '../../../src/platform/pci/regs.js';
import { virtioMachine } from '../../harness/virtio-driver.js';
import { KeyboardController } from '../../../src/platform/isa/i8042.js';
import { TestClient } from './helpers.js';

function barSize(dev: ReturnType<typeof virtioMachine>['dev'], reg: number): number {
  const orig = dev.cfgRead(reg, 4);
  dev.cfgWrite(reg, 4, 0xffffffff);
  const size = (~(dev.cfgRead(reg, 4) & ~0xf) + 1) >>> 0;
  dev.cfgWrite(reg, 4, orig);
  return size;
}

test('fbuf: FB5D:40FB class 03/00, a 128-byte mode block, a 32 MiB framebuffer BAR and MSI', (t) => {
  const { m, dev } = virtioMachine(['-s', '29,fbuf,tcp=127.0.0.1:0,w=800,h=600'], 29);
  try {
    t.equal(dev.cfgRead(PCIR_VENDOR, 2), 0xfb5d);
    t.equal(dev.cfgRead(PCIR_DEVICE, 2), 0x40fb);
    t.equal(dev.cfgRead(PCIR_CLASS, 1), 0x03, 'display');
    t.equal(dev.cfgRead(PCIR_SUBCLASS, 1), 0x00, 'VGA-compatible');
    t.equal(barSize(dev, 0x10), 128, 'BAR0: the mode block');
    t.equal(barSize(dev, 0x14), FB_SIZE, 'BAR1: 32 MiB');
    t.ok(dev.findCap(0x05) !== 0, 'an MSI capability');
    const regs = (dev.cfgRead(0x10, 4) & ~0xf) >>> 0;
    t.equal(m.mmioRead(regs + FB_REGS.fbsize, 4), FB_SIZE, 'fbsize');
    t.equal(m.mmioRead(regs + FB_REGS.width, 2), 800, 'width from w=');
    t.equal(m.mmioRead(regs + FB_REGS.height, 2), 600, 'height from h=');
    t.equal(m.mmioRead(regs + FB_REGS.depth, 2), 32, 'depth 32');
    t.equal(m.mmioRead(regs + 200, 4), 0xffffffff, 'nothing past the block');
  } finally {
    m.close();
  }
  t.end();
});

test('fbuf: pixels written through BAR1 are the scanout; mode writes reach the display side', (t) => {
  const { m, dev, bus } = virtioMachine(['-s', '29,fbuf,tcp=127.0.0.1:0,w=640,h=480'], 29);
  try {
    const fb = findFbuf(m)!;
    t.ok(fb, 'the machine has its fbuf');
    t.equal(fb.memory, undefined, 'no device segment without a VM: BAR1 served by its handlers');
    const bar1 = (dev.cfgRead(0x14, 4) & ~0xf) >>> 0;
    m.mmioWrite(bar1 + (10 * 640 + 20) * 4, 0x00ff8040, 4);
    const s = fb.scanout()!;
    t.deepEqual([s.width, s.height, s.stride], [640, 480, 2560]);
    const at = (10 * 640 + 20) * 4;
    t.deepEqual([...s.pixels.subarray(at, at + 4)], [0x40, 0x80, 0xff, 0x00], 'blue, green, red, unused');
    t.equal(m.mmioRead(bar1 + at, 4), 0x00ff8040, 'read back through BAR1');
    const modes: Array<Scanout | undefined> = [];
    fb.onModeChange((x) => modes.push(x));
    const regs = (dev.cfgRead(0x10, 4) & ~0xf) >>> 0;
    m.mmioWrite(regs + FB_REGS.width, 1024, 2);
    m.mmioWrite(regs + FB_REGS.height, 768, 2);
    t.deepEqual(modes.map((x) => x && `${x.width}x${x.height}`), ['1024x480', '1024x768'], 'each change reported');
    m.mmioWrite(regs + FB_REGS.width, 0, 4); // width and height 0: bhyve's VGA mode
    t.equal(fb.scanout(), undefined, 'nothing to scan out in VGA mode');
    m.mmioWrite(regs + FB_REGS.width, 0xffff, 2);
    m.mmioWrite(regs + FB_REGS.height, 0xffff, 2);
    t.equal(fb.scanout(), undefined, 'a mode larger than the framebuffer is not scanned out');
    t.equal(bus.find(0, 29, 0)!.model, fb);
    void FB_MEM_BAR;
  } finally {
    m.close();
  }
  t.end();
});

test('fbuf vga=io: the VGA registers keep what is written and the retrace bit moves', (t) => {
  const { m } = virtioMachine(['-s', '29,fbuf,tcp=127.0.0.1:0'], 29);
  try {
    m.out(0x3c4, 0x02, 1);
    m.out(0x3c5, 0x0f, 1);
    m.out(0x3c4, 0x02, 1);
    t.equal(m.in(0x3c5, 1), 0x0f, 'sequencer map mask');
    m.out(0x3d4, 0x0e, 1);
    m.out(0x3d5, 0x12, 1);
    m.out(0x3d4, 0x0e, 1);
    t.equal(m.in(0x3d5, 1), 0x12, 'CRTC cursor location');
    m.out(0x3c8, 5, 1);
    for (const c of [10, 20, 30]) m.out(0x3c9, c, 1);
    m.out(0x3c7, 5, 1);
    t.deepEqual([m.in(0x3c9, 1), m.in(0x3c9, 1), m.in(0x3c9, 1)], [10, 20, 30], 'DAC entry 5');
    const a = m.in(0x3da, 1) & 8;
    const b = m.in(0x3da, 1) & 8;
    t.notEqual(a, b, 'vertical retrace toggles');
  } finally {
    m.close();
  }
  const off = virtioMachine(['-s', '29,fbuf,tcp=127.0.0.1:0,vga=off'], 29);
  t.equal(off.m.in(0x3c5, 1), 0xff, 'vga=off: no VGA ports');
  off.m.close();
  t.end();
});

test("fbuf options: bhyve's address forms and errors; one fbuf per VM", (t) => {
  t.deepEqual(parseRfbAddress('0.0.0.0:5901'), { host: '0.0.0.0', port: 5901 });
  t.deepEqual(parseRfbAddress('5902'), { host: '127.0.0.1', port: 5902 }, 'a bare port listens on localhost');
  t.deepEqual(parseRfbAddress('[::1]:5903'), { host: '::1', port: 5903 });
  t.deepEqual(parseRfbAddress('[fe80::1%lo]:5904'), { host: 'fe80::1%lo', port: 5904 }, 'IPv6 with a zone');
  const err = (args: string[], re: RegExp, what: string): void => {
    t.throws(() => virtioMachine(args, 29), (e: unknown) => e instanceof BhyveError && e.status === 4 && re.test(e.message), what);
  };
  err(['-s', '29,fbuf,tcp=[::1'], /fbuf: Invalid IPv6 address: "\[::1"/, 'unterminated IPv6');
  err(['-s', '29,fbuf,tcp=[::1]x'], /Invalid IPv6 address/, 'junk after ]');
  err(['-s', '29,fbuf,tcp=1.2.3.4:'], /fbuf: Missing port number: "1.2.3.4:"/, 'no port');
  err(['-s', '29,fbuf,vga=maybe'], /fbuf: Invalid vga setting: "maybe"/, 'vga value');
  err(['-s', '29,fbuf,vga=on'], /VGA rendering not enabled/, 'vga=on');
  err(['-s', '29,fbuf,w=4000'], /fbuf: max resolution is 3840x2160/, 'too wide');
  err(['-s', '29,fbuf,h=479'], /fbuf: minimum resolution is 640x480/, 'too short');
  err(['-s', '29,fbuf,w=abc'], /minimum resolution/, 'a width that is not a number is 0');
  err(['-s', '29,fbuf,tcp=127.0.0.1:0', '-s', '30,fbuf,tcp=127.0.0.1:0'], /Only one frame buffer device is allowed\./, 'a second fbuf');
  t.end();
});

test('fbuf: a VNC KeyEvent types on the PS/2 keyboard; the server serves the scanout', async (t) => {
  const { m } = virtioMachine(['-s', '29,fbuf,tcp=127.0.0.1:0,w=640,h=480'], 29);
  const kbc = new KeyboardController(m);
  const fb = findFbuf(m)!;
  try {
    await fb.ready;
    const port = (fb.server!.address() as { port: number }).port;
    const c = await TestClient.connect(port);
    const init = await c.handshake();
    t.deepEqual([init.width, init.height], [640, 480], 'ServerInit carries the mode');
    // KeyEvent (RFC 6143 §7.5.4): type 4, down flag, 2 padding, keysym; 'h' down then up.
    c.write([4, 1, 0, 0, 0, 0, 0, 0x68]);
    c.write([4, 0, 0, 0, 0, 0, 0, 0x68]);
    const got: number[] = [];
    const deadline = Date.now() + 3000;
    while (got.length < 2 && Date.now() < deadline) {
      if (m.in(0x64, 1) & 1) got.push(m.in(0x60, 1));
      else await new Promise((r) => setTimeout(r, 5));
    }
    t.deepEqual(got, [0x23, 0xa3], 'H make and break in set 1 at port 0x60');
    void kbc;
    c.close();
  } finally {
    m.close();
  }
  t.end();
});
