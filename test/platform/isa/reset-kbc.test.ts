// Reset paths (0xCF9, the 8042's reset line), the 8042 as Linux's i8042 and atkbd drivers probe it, the POST port.
import test from 'tape';
import { TestMachine } from '../../harness/machine.js';
import { ResetControl } from '../../../src/platform/isa/reset.js';
import { KeyboardController } from '../../../src/platform/isa/i8042.js';
import { PostPort } from '../../../src/platform/isa/post.js';

test('reset: 0xCF9 with bit 2 resets; other values do not', (t) => {
  const m = new TestMachine();
  new ResetControl(m);
  m.outb(0xcf9, 0x02);
  t.deepEqual(m.suspends, [], 'SYS_RST alone selects the type, no reset');
  t.equal(m.inb(0xcf9), 0x02, 'reads back');
  m.outb(0xcf9, 0x06);
  t.deepEqual(m.suspends, ['reset'], 'the FADT reset value 6 resets');
  m.outb(0xcf9, 0x04);
  t.deepEqual(m.suspends, ['reset', 'reset'], 'soft reset is treated the same');
  t.doesNotThrow(() => m.outw(0xcf9, 0x0606));
  t.equal(m.suspends.length, 2, 'a word write is not a reset-register write');
  t.equal(m.inl(0xcf9), 0xffff_ffff);
  t.notOk(m.io.claimsPort(0xcf8), 'CONFIG_ADDRESS is left to the PCI code');
  t.end();
});

/** i8042_wait_read + read, as the driver polls. */
function readData(m: TestMachine): number | undefined {
  for (let i = 0; i < 10; i++) if (m.inb(0x64) & 0x01) return m.inb(0x60);
  return undefined;
}

test('8042: controller commands the Linux i8042 driver issues', (t) => {
  const m = new TestMachine();
  const kbc = new KeyboardController(m);
  t.equal(m.inb(0x64) & 0x01, 0, 'output buffer empty at start');
  m.outb(0x64, 0x20);
  const ctr = readData(m)!;
  t.equal(ctr & 0x45, 0x45, 'CTR after firmware: translation, system flag, keyboard interrupt');
  t.equal(m.inb(0x64) & 0x04, 0x04, 'status system flag');
  m.outb(0x64, 0xaa);
  t.equal(readData(m), 0x55, 'self-test passes');
  m.outb(0x64, 0xab);
  t.equal(readData(m), 0x00, 'keyboard interface test passes');
  m.outb(0x64, 0x60);
  t.equal(m.inb(0x64) & 0x08, 0x08, 'status: last write was a command');
  m.outb(0x60, 0x74); // kbd int off, aux int off, keep others
  m.outb(0x64, 0x20);
  t.equal(readData(m), 0x74, 'CTR written and read back');
  t.equal(kbc.configByte, 0x74);
  m.outb(0x64, 0xad);
  m.outb(0x64, 0x20);
  t.equal(readData(m)! & 0x10, 0x10, '0xAD disables the keyboard interface');
  m.outb(0x64, 0xae);
  m.outb(0x64, 0x20);
  t.equal(readData(m)! & 0x10, 0, '0xAE enables it');
  // AUX loop (i8042_check_aux): the byte comes back marked as auxiliary data.
  m.outb(0x64, 0xd3);
  m.outb(0x60, 0x5a);
  t.equal(m.inb(0x64) & 0x21, 0x21, 'OBF with AUXDATA');
  t.equal(m.inb(0x60), 0x5a, 'loopback byte');
  // A command to the (absent) mouse times out.
  m.outb(0x64, 0xd4);
  m.outb(0x60, 0xf2);
  t.equal(m.inb(0x64) & 0x61, 0x61, 'timeout reported on the aux channel');
  t.equal(m.inb(0x60), 0xfe);
  t.equal(m.inb(0x64) & 0x41, 0, 'timeout bit clears once read');
  m.outb(0x64, 0xd1);
  m.outb(0x60, 0xdd); // A20 off, reset line high
  t.notOk(kbc.a20, 'A20 through the output port');
  m.outb(0x64, 0xd0);
  t.equal(readData(m)! & 0x03, 0x01, 'output port reads back');
  t.deepEqual(m.suspends, [], 'no reset so far');
  t.end();
});

test('8042: the keyboard answers the atkbd probe, with translation', (t) => {
  const m = new TestMachine();
  new KeyboardController(m);
  m.outb(0x60, 0xf2); // GETID
  t.deepEqual([readData(m), readData(m), readData(m)], [0xfa, 0xab, 0x41], 'ACK, AB 83 translated to AB 41');
  t.ok(m.irq.isaEdgeCount(1) >= 1, 'IRQ 1 edges for keyboard bytes');
  m.outb(0x60, 0xf0);
  m.outb(0x60, 0x00);
  t.deepEqual([readData(m), readData(m), readData(m)], [0xfa, 0xfa, 0x41], 'get scan set: set 2 (0x41 translated)');
  m.outb(0x60, 0xed);
  m.outb(0x60, 0x07);
  t.deepEqual([readData(m), readData(m)], [0xfa, 0xfa], 'set LEDs: two ACKs');
  m.outb(0x60, 0xff);
  t.deepEqual([readData(m), readData(m)], [0xfa, 0xaa], 'reset: ACK, self-test passed');
  m.outb(0x60, 0xee);
  t.equal(readData(m), 0xee, 'echo');
  m.outb(0x60, 0x12);
  t.equal(readData(m), 0xfe, 'an unknown command asks for a resend');
  t.equal(readData(m), undefined, 'nothing left');
  // Without translation the raw ID comes through.
  m.outb(0x64, 0x60);
  m.outb(0x60, 0x05);
  m.outb(0x60, 0xf2);
  t.deepEqual([readData(m), readData(m), readData(m)], [0xfa, 0xab, 0x83], 'untranslated ID');
  const edges = m.irq.isaEdgeCount(1);
  m.outb(0x64, 0x60);
  m.outb(0x60, 0x04); // keyboard interrupt off
  m.outb(0x60, 0xf4);
  t.equal(readData(m), 0xfa);
  t.equal(m.irq.isaEdgeCount(1), edges, 'no IRQ 1 with the interrupt disabled in the CTR');
  t.end();
});

test('8042: 0xFE on port 0x64 and output-port bit 0 reset the machine', (t) => {
  const m = new TestMachine();
  new KeyboardController(m);
  m.outb(0x64, 0xff);
  t.deepEqual(m.suspends, [], '0xFF pulses nothing');
  m.outb(0x64, 0xfe);
  t.deepEqual(m.suspends, ['reset'], '0xFE pulses the reset line');
  m.outb(0x64, 0xd1);
  m.outb(0x60, 0x02);
  t.deepEqual(m.suspends, ['reset', 'reset'], 'output port with bit 0 low resets');
  t.end();
});

test('8042 and POST port: malformed accesses are harmless', (t) => {
  const m = new TestMachine();
  new KeyboardController(m);
  const post = new PostPort(m);
  t.doesNotThrow(() => {
    t.equal(m.inw(0x60), 0xffff);
    t.equal(m.inl(0x64), 0xffff_ffff);
    m.outw(0x64, 0xfe);
    m.outl(0x60, 0xffff_ffff);
    for (let i = 0; i < 100; i++) m.outb(0x64, 0xaa); // nobody reads: the buffer stays bounded
  });
  t.deepEqual(m.suspends, [], 'a word write of 0xFE is not a reset');
  t.equal(post.last, undefined);
  m.outb(0x80, 0x42);
  m.outb(0x80, 0x13);
  m.outw(0x80, 0xffff);
  t.equal(post.last, 0x13, 'POST code latched');
  t.equal(m.inb(0x80), 0x13, 'and readable');
  t.equal(post.writes, 2);
  t.end();
});

test('8042 keyEvent: VNC keysyms become set 1 codes through translation, set 2 without it', (t) => {
  const m = new TestMachine();
  const kbc = new KeyboardController(m);
  const drain = (): number[] => {
    const out: number[] = [];
    for (let v = readData(m); v !== undefined; v = readData(m)) out.push(v);
    return out;
  };
  t.ok(kbc.keyEvent(true, 0x61) && kbc.keyEvent(false, 0x61), "'a' down and up");
  t.deepEqual(drain(), [0x1e, 0x9e], 'translated: set 1 make and break of A');
  kbc.keyEvent(true, 0x41);
  t.deepEqual(drain(), [0x1e], "'A' is the same key (the client sends Shift itself)");
  kbc.keyEvent(true, 0xff52);
  kbc.keyEvent(false, 0xff52);
  t.deepEqual(drain(), [0xe0, 0x48, 0xe0, 0xc8], 'Up: extended');
  t.notOk(kbc.keyEvent(true, 0x20ac), 'a keysym without a key on this layout is not sent');
  // Translation off, keyboard in set 2 (what Linux's atkbd asks for when it can).
  m.outb(0x64, 0x60);
  m.outb(0x60, 0x01 | 0x04); // CTR: interrupt, system flag, no translation
  kbc.keyEvent(true, 0xff0d);
  kbc.keyEvent(false, 0xff0d);
  t.deepEqual(drain(), [0x5a, 0xf0, 0x5a], 'Return in set 2: 5A, F0 5A');
  kbc.keyEvent(false, 0xffe4);
  t.deepEqual(drain(), [0xe0, 0xf0, 0x14], 'Control_R up in set 2');
  const irqs = m.irq.events.filter((e) => e.kind === 'isaPulse' && e.irq === 1).length;
  t.ok(irqs >= 10, `each byte interrupts on IRQ 1 (${irqs})`);
  t.end();
});

test('8042 keyEvent: bytes wait for a slow guest, bounded; a disabled keyboard sends nothing', (t) => {
  const m = new TestMachine();
  const kbc = new KeyboardController(m);
  for (let i = 0; i < 20; i++) kbc.keyEvent(true, 0x62);
  m.outb(0x64, 0xaa); // a controller command in between: its reply comes after the key byte already in the buffer
  const got: number[] = [];
  for (let v = readData(m); v !== undefined; v = readData(m)) got.push(v);
  t.equal(got.filter((v) => v === 0x30).length, 20, 'twenty B make codes, none lost beyond the 16-byte buffer');
  t.ok(got.includes(0x55), 'the self-test reply got through');
  let sent = 0;
  while (kbc.keyEvent(true, 0x62)) sent++;
  t.equal(sent, 257, 'one byte in the output buffer and at most 256 waiting');
  m.outb(0x60, 0xff); // keyboard reset drops what waits
  const afterReset: number[] = [];
  for (let v = readData(m); v !== undefined; v = readData(m)) afterReset.push(v);
  t.ok(afterReset.length < 20, `the queue is gone after a keyboard reset (${afterReset.length} bytes left)`);
  m.outb(0x60, 0xf5); // disable scanning
  readData(m);
  t.notOk(kbc.keyEvent(true, 0x62), 'not sent while scanning is off');
  t.end();
});
