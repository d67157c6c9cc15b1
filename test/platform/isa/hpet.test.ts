// The HPET as Linux's hpet driver programs it: capabilities, enable, main counter, one-shot and periodic timers on
// IOAPIC pins, level interrupts with write-1-to-clear status, LegacyReplacement, FSB (MSI), malformed accesses.
import test from 'tape';
import { TestMachine } from '../../harness/machine.js';
import { Hpet, hpetCapabilities, HPET_FREQ_HZ, HPET_PERIOD_FS } from '../../../src/platform/isa/hpet.js';
import { HPET_BASE } from '../../../src/vm/memmap.js';

const B = HPET_BASE;
const CFG = B + 0x10;
const ISR = B + 0x20;
const CNT = B + 0xf0;
const tcfg = (n: number): number => B + 0x100 + 0x20 * n;
const tcmp = (n: number): number => B + 0x108 + 0x20 * n;
const tfsb = (n: number): number => B + 0x110 + 0x20 * n;
const ms = (n: number): bigint => BigInt(Math.round((HPET_FREQ_HZ * n) / 1000));
const sleep = (n: number): Promise<void> => new Promise((r) => setTimeout(r, n));

test('hpet: capabilities as the ACPI table gets them', (t) => {
  const m = new TestMachine();
  const hpet = new Hpet(m);
  const cap = m.read64(B);
  t.equal(Number(cap & 0xffff_ffffn), hpetCapabilities(), 'low half = hpetCapabilities()');
  t.equal(Number(cap >> 32n), HPET_PERIOD_FS, 'period in fs (2^24 Hz, as bhyve)');
  t.equal(HPET_PERIOD_FS, 59604644);
  const lo = hpetCapabilities();
  t.equal(lo & 0xff, 1, 'revision 1');
  t.equal(((lo >> 8) & 0x1f) + 1, 8, 'eight timers, as bhyve');
  t.ok(lo & (1 << 13), '64-bit counter');
  t.ok(lo & (1 << 15), 'LegacyReplacement capable');
  t.equal(lo >>> 16, 0x8086, 'vendor');
  t.equal(Number(m.read64(tcfg(0)) >> 32n), 0x00f0_0000, 'timers may route to IOAPIC pins 20-23');
  m.write64(B, 0n);
  t.equal(m.read64(B), cap, 'read-only');
  hpet.close();
  t.end();
});

test('hpet: the main counter runs only while enabled, at 2^24 Hz', async (t) => {
  const m = new TestMachine();
  const hpet = new Hpet(m);
  t.equal(m.read64(CNT), 0n, 'halted at 0');
  await sleep(20);
  t.equal(m.read64(CNT), 0n, 'still 0 while disabled');
  const h0 = process.hrtime.bigint();
  m.write(CFG, 1);
  await sleep(40);
  const c = m.read64(CNT);
  const el = Number(process.hrtime.bigint() - h0) / 1e9;
  const rate = Number(c) / el;
  t.ok(Math.abs(rate - HPET_FREQ_HZ) / HPET_FREQ_HZ < 0.05, `rate ${rate.toFixed(0)} Hz`);
  m.write(CFG, 0);
  const frozen = m.read64(CNT);
  await sleep(15);
  t.equal(m.read64(CNT), frozen, 'frozen once disabled');
  m.write64(CNT, 0x1_0000_0000n);
  t.equal(m.read64(CNT), 0x1_0000_0000n, 'writable while halted, all 64 bits');
  m.write(CFG, 1);
  await sleep(5);
  t.ok(m.read64(CNT) > 0x1_0000_0000n, 'counts on from the written value');
  hpet.close();
  t.end();
});

test('hpet: a one-shot edge timer pulses its IOAPIC pin on time; bad routes are refused', async (t) => {
  const m = new TestMachine();
  const hpet = new Hpet(m);
  m.write(tcfg(0), (5 << 9) | 0x4);
  t.equal((m.read(tcfg(0)) >> 9) & 0x1f, 0, 'pin 5 is not in the route mask: route reset to 0');
  m.write(tcfg(0), (20 << 9) | 0x4); // edge, enabled, pin 20
  t.equal((m.read(tcfg(0)) >> 9) & 0x1f, 20, 'pin 20 accepted');
  m.write(CFG, 1);
  const start = process.hrtime.bigint();
  m.write64(tcmp(0), m.read64(CNT) + ms(30));
  // Generous: a loaded host may be late, which is allowed; early is not.
  await m.irq.waitFor(() => m.irq.pinEdgeCount(20) >= 1, 30_000, 'timer 0 on pin 20');
  const took = Number(process.hrtime.bigint() - start) / 1e6;
  t.ok(took >= 29, `fired after ${took.toFixed(1)} ms, not before the 30 asked for`);
  t.ok(m.irq.events.some((e) => e.kind === 'ioapicPulse' && e.pin === 20), 'an edge: pulse');
  await sleep(60);
  t.equal(m.irq.pinEdgeCount(20), 1, 'one-shot: fires once');
  t.equal(m.read(ISR), 0, 'edge interrupts leave no status');
  hpet.close();
  t.end();
});

test('hpet: a level timer holds its pin until the status bit is written back', async (t) => {
  const m = new TestMachine();
  const hpet = new Hpet(m);
  m.write(CFG, 1);
  m.write(tcfg(1), (21 << 9) | 0x4 | 0x2); // level, enabled, pin 21
  m.write64(tcmp(1), m.read64(CNT) + ms(10));
  await m.irq.waitFor(() => m.irq.pinHigh(21), 1000, 'pin 21 asserted');
  t.equal(m.read(ISR), 0x2, 'ISR bit 1');
  m.write(ISR, 0x1);
  t.ok(m.irq.pinHigh(21), 'writing another bit changes nothing');
  m.write(ISR, 0x2);
  t.notOk(m.irq.pinHigh(21), 'write-1-to-clear releases the pin');
  t.equal(m.read(ISR), 0);
  // Disabling the interrupt while held also releases it.
  m.write64(tcmp(1), m.read64(CNT) + ms(5));
  await m.irq.waitFor(() => m.irq.pinHigh(21), 1000, 'asserted again');
  m.write(tcfg(1), (21 << 9) | 0x2);
  t.notOk(m.irq.pinHigh(21), 'INT_ENB cleared: line released');
  hpet.close();
  t.end();
});

test('hpet: a periodic timer fires repeatedly at its period', async (t) => {
  const m = new TestMachine();
  const hpet = new Hpet(m);
  m.write(CFG, 1);
  m.write(tcfg(2), (22 << 9) | 0x4 | 0x8 | 0x40); // edge, enabled, periodic, VAL_SET
  const period = ms(10);
  m.write64(tcmp(2), m.read64(CNT) + period); // first comparator
  m.write64(tcmp(2), period); // then the period
  t.equal(m.read(tcfg(2)) & 0x40, 0, 'VAL_SET self-clears');
  const start = Date.now();
  await m.irq.waitFor(() => m.irq.pinEdgeCount(22) >= 8, 2000, '8 periodic interrupts');
  const el = Date.now() - start;
  // 8 edges 10 ms apart span 70 ms; the bound leaves room for Date.now() and timer jitter on a loaded host while
  // still catching edges delivered in a burst.
  t.ok(el >= 55, `8 periods took ${el} ms`);
  t.ok(m.read64(tcmp(2)) > m.read64(CNT) - period, 'comparator advances past the counter');
  m.write(tcfg(2), 0);
  const n = m.irq.pinEdgeCount(22);
  await sleep(40);
  t.equal(m.irq.pinEdgeCount(22), n, 'stops once disabled');
  hpet.close();
  t.end();
});

test('hpet: Linux hpet_set_periodic sequence in 32-bit mode', async (t) => {
  const m = new TestMachine();
  const hpet = new Hpet(m);
  m.write(CFG, 1);
  const delta = Number(ms(5));
  m.write(tcfg(5), (23 << 9) | 0x4 | 0x8 | 0x40 | 0x100); // enabled, periodic, VAL_SET, 32-bit
  m.write(tcmp(5), (m.read(CNT) + delta) >>> 0);
  m.write(tcmp(5), delta);
  await m.irq.waitFor(() => m.irq.pinEdgeCount(23) >= 5, 2000, '5 interrupts on pin 23');
  t.pass('periodic in 32-bit mode');
  hpet.close();
  t.end();
});

test('hpet: LegacyReplacement routes timer 0 to IRQ0/pin 2 and timer 1 to IRQ8', async (t) => {
  const m = new TestMachine();
  const hpet = new Hpet(m);
  m.write(CFG, 0x3);
  t.equal(m.read(CFG), 0x3, 'LEG_RT_CNF sticks');
  m.write(tcfg(0), 0x4);
  m.write(tcfg(1), 0x4);
  const c = m.read64(CNT);
  m.write64(tcmp(0), c + ms(5));
  m.write64(tcmp(1), c + ms(5));
  await m.irq.waitFor(() => m.irq.pinEdgeCount(2) >= 1 && m.irq.pinEdgeCount(8) >= 1, 1000, 'legacy IRQs');
  t.ok(m.irq.events.some((e) => e.kind === 'isaPulse' && e.irq === 0 && e.pin === 2), 'timer 0: IRQ0 = pin 2');
  t.ok(m.irq.events.some((e) => e.kind === 'isaPulse' && e.irq === 8 && e.pin === 8), 'timer 1: IRQ8');
  hpet.close();
  t.end();
});

test('hpet: FSB delivery sends the programmed MSI; 32-bit mode', async (t) => {
  const m = new TestMachine();
  const hpet = new Hpet(m);
  m.write(CFG, 1);
  m.write64(tfsb(3), (0xfee0_0000n << 32n) | 0x41n);
  m.write(tcfg(3), 0x4 | (1 << 14)); // enabled, FSB
  m.write64(tcmp(3), m.read64(CNT) + ms(5));
  await m.irq.waitFor(() => m.irq.events.some((e) => e.kind === 'msi'), 1000, 'MSI');
  const e = m.irq.events.find((x) => x.kind === 'msi');
  t.deepEqual(e, { kind: 'msi', addr: 0xfee0_0000n, data: 0x41 }, 'address from the high half, data from the low');
  m.write(tcfg(4), 1 << 8);
  m.write64(tcmp(4), 0x1_2345_6789n);
  t.equal(m.read64(tcmp(4)), 0x2345_6789n, '32-bit mode truncates the comparator');
  hpet.close();
  t.end();
});

test('hpet: malformed accesses are harmless', (t) => {
  const m = new TestMachine();
  const hpet = new Hpet(m);
  t.doesNotThrow(() => {
    t.equal(m.read(B, 1), 0xff, 'byte read: all-ones');
    t.equal(m.read(B + 2, 2), 0xffff, 'word read: all-ones');
    t.equal(m.read(B + 2, 4), 0xffff_ffff, 'misaligned dword: all-ones');
    t.equal(m.read(B + 0x30), 0, 'reserved register reads 0');
    t.equal(m.read(B + 0x3fc), 0, 'last dword (past the timers) reads 0');
    m.write(CFG, 1, 1);
    m.write(CFG + 1, 0xff, 4);
    m.write(B + 0x3fc, 0xffff_ffff);
    m.write(tcfg(7) + 4, 0xffff_ffff); // the read-only route capability
  });
  t.equal(m.read(CFG), 0, 'no stray enable');
  t.equal(m.read(tcfg(7) + 4), 0x00f0_0000, 'route capability unchanged');
  hpet.close();
  t.end();
});

test('hpet: the route mask follows the IOAPIC size, as vhpet computes it', (t) => {
  const m32 = new TestMachine({ ioapicPins: 32 });
  const h32 = new Hpet(m32);
  t.equal(m32.read(tcfg(0) + 4), 0xff00_0000, '32 pins: routes 24-31');
  h32.close();
  const m16 = new TestMachine({ ioapicPins: 16 });
  const h16 = new Hpet(m16);
  t.equal(m16.read(tcfg(0) + 4), 0, 'fewer than 20 pins: no IOAPIC routes');
  m16.write(tcfg(0), (3 << 9) | 4);
  t.equal((m16.read(tcfg(0)) >> 9) & 0x1f, 0, 'any route is refused');
  h16.close();
  t.end();
});

test('hpet: a periodic timer whose comparator is already behind the counter catches up by whole periods', async (t) => {
  const m = new TestMachine();
  const hpet = new Hpet(m);
  m.write(CFG, 1);
  await sleep(20);
  const period = ms(5);
  m.write(tcfg(6), (20 << 9) | 0x4 | 0x8 | 0x40);
  m.write64(tcmp(6), 1n); // long past
  m.write64(tcmp(6), period);
  const ahead = m.read64(tcmp(6)) - m.read64(CNT);
  t.ok(ahead > 0n && ahead <= period, 'comparator moved to within one period ahead of the counter');
  await m.irq.waitFor(() => m.irq.pinEdgeCount(20) >= 3, 1000, 'periodic interrupts');
  t.pass('fires without waiting for a counter wrap');
  hpet.close();
  t.end();
});
