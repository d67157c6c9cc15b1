// The 16550 as Linux's 8250 driver programs it: divisor latch, FIFO control, interrupt enables, IIR priorities,
// loopback, overrun, back-pressure from a backend, shared IRQ lines and malformed accesses.
import test from 'tape';
import { TestMachine } from '../../harness/machine.js';
import { COM_PORTS, Uart16550, type UartBackend } from '../../../src/platform/isa/uart16550.js';

/** A backend the test drives by hand. */
class ScriptedBackend implements UartBackend {
  written: number[] = [];
  paused = false;
  pauses = 0;
  closed = false;
  private onData: ((d: Uint8Array) => void) | undefined;
  write(d: Uint8Array): void {
    this.written.push(...d);
  }
  start(f: (d: Uint8Array) => void): void {
    this.onData = f;
  }
  pause(): void {
    this.paused = true;
    this.pauses++;
  }
  resume(): void {
    this.paused = false;
  }
  close(): void {
    this.closed = true;
  }
  send(s: string | Uint8Array): void {
    this.onData!(typeof s === 'string' ? new TextEncoder().encode(s) : s);
  }
}

const COM1 = 0x3f8;
const THR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

function setup(): { m: TestMachine; b: ScriptedBackend; uart: Uart16550 } {
  const m = new TestMachine();
  const b = new ScriptedBackend();
  const uart = Uart16550.attach(m, COM1, 4, b);
  return { m, b, uart };
}

/** serial8250_do_startup's programming: 115200 8N1, FIFOs on and cleared, OUT2 (IRQ gate) and RTS/DTR. */
function linuxInit(m: TestMachine, base = COM1): void {
  m.outb(base + LCR, 0x80);
  m.outb(base + 0, 0x01);
  m.outb(base + 1, 0x00);
  m.outb(base + LCR, 0x03);
  m.outb(base + FCR, 0xc7);
  m.outb(base + MCR, 0x0b);
}

test('uart: COM1-4 exist without backends and answer like empty 16550s', (t) => {
  const m = new TestMachine();
  for (const c of COM_PORTS) Uart16550.attach(m, c.base, c.irq);
  for (const c of COM_PORTS) {
    m.outb(c.base + SCR, 0x5a);
    t.equal(m.inb(c.base + SCR), 0x5a, `${c.name} scratch register holds a value`);
    t.equal(m.inb(c.base + LSR), 0x60, `${c.name} LSR: transmitter empty, no data`);
    t.equal(m.inb(c.base + IIR), 0x01, `${c.name} IIR: nothing pending`);
    m.outb(c.base + THR, 0x41); // no backend: the byte goes nowhere
  }
  t.deepEqual(
    m.io.portRanges(),
    [[0x2e8, 8], [0x2f8, 8], [0x3e8, 8], [0x3f8, 8]],
    'claims exactly the four 8-port ranges',
  );
  t.end();
});

test('uart: divisor latch is behind DLAB and leaves IER and the data path alone', (t) => {
  const { m, b } = setup();
  m.outb(COM1 + IER, 0x05);
  m.outb(COM1 + LCR, 0x83);
  m.outb(COM1 + 0, 0x0c); // 9600 baud
  m.outb(COM1 + 1, 0x00);
  t.equal(m.inb(COM1 + 0), 0x0c, 'DLL reads back');
  t.equal(m.inb(COM1 + 1), 0x00, 'DLM reads back');
  t.deepEqual(b.written, [], 'a DLL write is not transmitted');
  m.outb(COM1 + LCR, 0x03);
  t.equal(m.inb(COM1 + IER), 0x05, 'IER kept its value');
  t.equal(m.inb(COM1 + LCR), 0x03, 'LCR reads back');
  t.end();
});

test('uart: transmit goes to the backend; THRE interrupt on enable and after each byte, cleared by reading IIR', (t) => {
  const { m, b } = setup();
  linuxInit(m);
  for (const ch of 'hi\n') m.outb(COM1 + THR, ch.charCodeAt(0));
  t.equal(Buffer.from(b.written).toString(), 'hi\n', 'bytes reached the backend in order');
  t.notOk(m.irq.isaHigh(4), 'no interrupt while IER is 0');
  m.outb(COM1 + IER, 0x02);
  t.ok(m.irq.isaHigh(4) && m.irq.pinHigh(4), 'enabling ETBEI raises IRQ 4 at once (THR is empty)');
  t.equal(m.inb(COM1 + IIR), 0xc2, 'IIR: THR empty, FIFOs enabled');
  t.notOk(m.irq.isaHigh(4), 'reading IIR acknowledged it; line low');
  t.equal(m.inb(COM1 + IIR), 0xc1, 'nothing pending afterwards');
  m.outb(COM1 + THR, 0x21);
  t.ok(m.irq.isaHigh(4), 'THR empties again after a write: THRE interrupt');
  t.equal(m.inb(COM1 + IIR) & 0x0f, 0x02);
  // Linux's UART_BUG_THRE probe: IER off and on again must re-raise the THRE cause.
  m.outb(COM1 + IER, 0);
  m.outb(COM1 + IER, 0x02);
  t.equal(m.inb(COM1 + IIR) & 0x0f, 0x02, 're-enabling ETBEI re-raises THRE');
  t.equal(m.inb(COM1 + LSR) & 0x60, 0x60, 'THRE and TEMT always set');
  t.end();
});

test('uart: receive through the FIFO with RX interrupts', (t) => {
  const { m, b } = setup();
  linuxInit(m);
  m.outb(COM1 + IER, 0x01);
  t.notOk(m.irq.isaHigh(4));
  b.send('abc');
  t.ok(m.irq.isaHigh(4), 'data raises IRQ 4');
  t.equal(m.inb(COM1 + IIR), 0xc4, 'IIR: received data available');
  t.equal(m.inb(COM1 + LSR) & 0x01, 0x01, 'LSR.DR');
  let s = '';
  while (m.inb(COM1 + LSR) & 0x01) s += String.fromCharCode(m.inb(COM1 + THR));
  t.equal(s, 'abc');
  t.notOk(m.irq.isaHigh(4), 'line drops once the FIFO is empty');
  t.equal(m.inb(COM1 + IIR), 0xc1);
  t.equal(m.irq.isaEdgeCount(4), 1, 'one rising edge for the burst');
  t.end();
});

test('uart: back-pressure: nothing is lost when the backend outruns the FIFO', (t) => {
  const { m, b, uart } = setup();
  linuxInit(m);
  const data = new Uint8Array(1000).map((_, i) => i & 0xff);
  b.send(data.subarray(0, 600));
  t.ok(b.paused, 'backend paused while bytes wait for FIFO space');
  b.send(data.subarray(600)); // a chunk already in flight still arrives
  t.equal(uart.bufferedBytes, 1000);
  const got: number[] = [];
  let guard = 0;
  while (m.inb(COM1 + LSR) & 0x01 && guard++ < 5000) got.push(m.inb(COM1 + THR));
  t.equal(got.length, 1000, 'all bytes delivered');
  t.deepEqual(got, [...data], 'in order');
  t.notOk(b.paused, 'backend resumed once everything was taken');
  t.equal(m.inb(COM1 + LSR) & 0x02, 0, 'no overrun reported');
  t.end();
});

test('uart: without FIFOs the receiver holds one byte', (t) => {
  const { m, b } = setup();
  m.outb(COM1 + FCR, 0x00);
  b.send('xy');
  t.ok(b.paused, 'second byte waits');
  t.equal(m.inb(COM1 + IIR), 0x01, 'IIR has no FIFO bits');
  t.equal(m.inb(COM1 + THR), 0x78);
  t.equal(m.inb(COM1 + THR), 0x79);
  t.equal(m.inb(COM1 + LSR) & 0x01, 0);
  t.end();
});

test('uart: loopback: MSR mirrors MCR, transmitted bytes are received, overrun sets OE', (t) => {
  const { m, b } = setup();
  linuxInit(m);
  // autoconfig's loopback check: MCR = LOOP | OUT2 | RTS must read MSR = DCD | CTS.
  m.outb(COM1 + MCR, 0x10 | 0x0a);
  t.equal(m.inb(COM1 + MSR) & 0xf0, 0x90, 'MSR upper nibble = DCD|CTS');
  m.outb(COM1 + MCR, 0x1f);
  t.equal(m.inb(COM1 + MSR) & 0xf0, 0xf0, 'all four modem inputs on');
  for (let i = 0; i < 17; i++) m.outb(COM1 + THR, 0x30 + i);
  t.deepEqual(b.written, [], 'loopback bytes do not leave the UART');
  const lsr = m.inb(COM1 + LSR);
  t.equal(lsr & 0x03, 0x03, 'DR and OE after 17 bytes into a 16-byte FIFO');
  t.equal(m.inb(COM1 + LSR) & 0x02, 0, 'OE clears when LSR is read');
  const got: number[] = [];
  while (m.inb(COM1 + LSR) & 0x01) got.push(m.inb(COM1 + THR));
  t.deepEqual(got, Array.from({ length: 16 }, (_, i) => 0x30 + i), 'the first 16 bytes were kept');
  t.end();
});

test('uart: IIR reports causes by priority: line status, data, THRE, modem status', (t) => {
  const { m } = setup();
  linuxInit(m);
  m.outb(COM1 + MCR, 0x10); // loopback, all modem outputs off
  m.inb(COM1 + MSR); // clear deltas from entering loopback
  for (let i = 0; i < 17; i++) m.outb(COM1 + THR, i); // data + overrun + THRE
  m.outb(COM1 + MCR, 0x13); // DTR+RTS change -> DDSR, DCTS
  m.outb(COM1 + IER, 0x0f);
  t.equal(m.inb(COM1 + IIR) & 0x0f, 0x06, 'receiver line status first');
  m.inb(COM1 + LSR);
  t.equal(m.inb(COM1 + IIR) & 0x0f, 0x04, 'then received data');
  m.outb(COM1 + FCR, 0xc3); // clear the receiver
  t.equal(m.inb(COM1 + IIR) & 0x0f, 0x02, 'then THR empty');
  t.equal(m.inb(COM1 + IIR) & 0x0f, 0x00, 'then modem status');
  const msr = m.inb(COM1 + MSR);
  t.equal(msr & 0x03, 0x03, 'DCTS and DDSR reported');
  t.equal(m.inb(COM1 + IIR), 0xc1, 'reading MSR cleared the last cause');
  t.notOk(m.irq.isaHigh(4), 'line low');
  t.end();
});

test('uart: COM1 and COM3 share IRQ 4 without dropping each other', (t) => {
  const m = new TestMachine();
  const b1 = new ScriptedBackend();
  const b3 = new ScriptedBackend();
  Uart16550.attach(m, 0x3f8, 4, b1);
  Uart16550.attach(m, 0x3e8, 4, b3);
  m.outb(0x3f8 + IER, 1);
  m.outb(0x3e8 + IER, 1);
  b1.send('a');
  b3.send('b');
  t.ok(m.irq.isaHigh(4));
  m.inb(0x3f8);
  t.ok(m.irq.isaHigh(4), 'COM3 still requests the line after COM1 is served');
  m.inb(0x3e8);
  t.notOk(m.irq.isaHigh(4), 'line low once both are served');
  t.end();
});

test('uart: malformed accesses are harmless', (t) => {
  const { m, b } = setup();
  t.doesNotThrow(() => {
    t.equal(m.inw(COM1), 0xffff, '16-bit read of a byte register reads all-ones');
    t.equal(m.inl(COM1 + 4), 0xffff_ffff, '32-bit read reads all-ones');
    m.outw(COM1, 0x4142);
    m.outl(COM1 + 4, 0xffff_ffff);
    m.outb(COM1 + LSR, 0xff);
    m.outb(COM1 + MSR, 0xff);
  });
  t.deepEqual(b.written, [], 'wide writes were dropped, not transmitted');
  t.equal(m.inb(COM1 + MCR), 0, 'MCR untouched by the dropped write');
  t.equal(m.inb(COM1 + LSR), 0x60, 'LSR is read-only');
  t.end();
});
