// The PCI uart without a VM: bhyve's IDs and BAR, the 16550 behind BAR0 exchanging bytes with a real TCP client
// through the tcp= backend, the receive interrupt on the function's INTx pin, and the start-up errors.
import test from 'tape';
import { connect, createServer, type Socket } from 'node:net';
import { PCIR_CLASS, PCIR_DEVICE, PCIR_INTPIN, PCIR_SUBCLASS, PCIR_VENDOR } from '../../../src/platform/pci/regs.js';
import { virtioMachine } from '../../harness/virtio-driver.js';

const THR = 0, IER = 1, IIR = 2, LSR = 5;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

test('PCI uart: SIIG IDs, an 8-byte I/O BAR, bytes both ways over tcp= and the receive interrupt on INTx', async (t) => {
  const port = await freePort();
  const { m, dev, bus } = virtioMachine(['-s', `3,uart,tcp=127.0.0.1:${port}`], 3);
  let sock: Socket | undefined;
  try {
    await bus.find(0, 3, 0)!.model.ready;
    t.equal(dev.cfgRead(PCIR_VENDOR, 2), 0x131f, 'vendor SIIG');
    t.equal(dev.cfgRead(PCIR_DEVICE, 2), 0x2000, 'CyberSerial 1-port');
    t.equal(dev.cfgRead(PCIR_CLASS, 1), 0x07, 'simple communications');
    t.equal(dev.cfgRead(PCIR_SUBCLASS, 1), 0x00, 'serial controller');
    t.ok(dev.cfgRead(PCIR_INTPIN, 1) >= 1, 'an INTx pin');
    const bar = dev.cfgRead(0x10, 4);
    t.equal(bar & 1, 1, 'BAR0 is I/O');
    dev.cfgWrite(0x10, 4, 0xffffffff);
    t.equal((~(dev.cfgRead(0x10, 4) & ~3) + 1) & 0xffff, 8, '8 bytes');
    dev.cfgWrite(0x10, 4, bar);
    const base = (bar & ~3) >>> 0;

    const got: Buffer[] = [];
    sock = connect(port, '127.0.0.1');
    await new Promise<void>((r) => sock!.once('connect', () => r()));
    sock.on('data', (d) => got.push(d));
    await new Promise((r) => setTimeout(r, 50));
    for (const c of Buffer.from('from guest\n')) m.out(base + THR, c, 1);
    await until(() => Buffer.concat(got).toString() === 'from guest\n', 'client receives');
    t.pass('the guest\'s bytes reach the TCP client');

    m.out(base + IER, 0x01, 1); // received data available
    const before = m.irq.events.length;
    sock.write('x');
    await until(() => (m.in(base + LSR, 1) & 1) === 1, 'LSR.DR');
    t.equal(m.in(base + IIR, 1) & 0x0f, 0x04, 'IIR: received data');
        t.ok(m.irq.events.slice(before).some((e) => e.kind === 'ioapicAssert' || e.kind === 'isaAssert'), 'INTx asserted (through its PIRQ link)');
    t.equal(m.in(base + THR, 1), 'x'.charCodeAt(0), 'RBR holds the byte');
    t.equal(m.in(base + IIR, 1) & 0x0f, 0x01, 'no interrupt pending after the read');
    t.ok(m.irq.events.slice(before).some((e) => e.kind === 'ioapicDeassert' || e.kind === 'isaDeassert'), 'INTx released');
  } finally {
    sock?.destroy();
    m.close();
  }
  t.end();
});

test('PCI uart without a backend works as an unplugged port; a bad backend is bhyve\'s start-up error', (t) => {
  const { m, dev } = virtioMachine(['-s', '3,uart'], 3);
  const base = (dev.cfgRead(0x10, 4) & ~3) >>> 0;
  m.out(base + 7, 0x5a, 1);
  t.equal(m.in(base + 7, 1), 0x5a, 'scratch register');
  t.equal(m.in(base + LSR, 1) & 0x60, 0x60, 'transmitter empty');
  m.close();
  t.throws(() => virtioMachine(['-s', '3,uart,/nonexistent/tty'], 3), /Unable to initialize backend '\/nonexistent\/tty' for pci uart at 3:0/, 'a missing tty');
  t.end();
});
