// The MC146818 RTC as guests drive it: index/data ports, BCD and binary, 12/24 h, UIP, SET, the century byte,
// bhyve's memory-size bytes, local time vs UTC (-u), update/periodic/alarm interrupts on IRQ 8.
import test from 'tape';
import { TestMachine } from '../../harness/machine.js';
import { Rtc } from '../../../src/platform/isa/rtc.js';
import { memoryLayout, GiB, MiB } from '../../../src/vm/memmap.js';

const T0 = Date.UTC(2026, 10, 22, 13, 45, 30) + 500; // 2026-11-22 13:45:30.500 UTC

function fixedRtc(localTime = false): { m: TestMachine; rtc: Rtc; advanceMs: (ms: number) => void } {
  const m = new TestMachine();
  let mono = 1_000_000_000n;
  const rtc = new Rtc(m, { localTime, wallClockMs: () => T0, monotonicNs: () => mono });
  return { m, rtc, advanceMs: (ms) => (mono += BigInt(Math.round(ms * 1e6))) };
}

function cmos(m: TestMachine, reg: number): number {
  m.outb(0x70, reg);
  return m.inb(0x71);
}

function cmosWrite(m: TestMachine, reg: number, v: number): void {
  m.outb(0x70, reg);
  m.outb(0x71, v);
}

test('rtc: time in BCD, 24-hour (the reset format), with the century byte', (t) => {
  const { m, rtc } = fixedRtc();
  t.equal(cmos(m, 0x0b) & 0x06, 0x02, 'register B: BCD, 24-hour');
  t.equal(cmos(m, 0x00), 0x30, 'seconds');
  t.equal(cmos(m, 0x02), 0x45, 'minutes');
  t.equal(cmos(m, 0x04), 0x13, 'hours');
  t.equal(cmos(m, 0x06), new Date(T0).getUTCDay() + 1, 'day of week, Sunday = 1');
  t.equal(cmos(m, 0x07), 0x22, 'day of month');
  t.equal(cmos(m, 0x08), 0x11, 'month');
  t.equal(cmos(m, 0x09), 0x26, 'year');
  t.equal(cmos(m, 0x32), 0x20, 'century');
  t.equal(cmos(m, 0x0d), 0x80, 'register D: valid RAM and time');
  t.equal(rtc.timeMs(), T0, 'clock as given');
  rtc.close();
  t.end();
});

test('rtc: binary mode and 12-hour mode', (t) => {
  const { m, rtc } = fixedRtc();
  cmosWrite(m, 0x0b, 0x06); // binary, 24 h
  t.deepEqual([0, 2, 4, 7, 8, 9, 0x32].map((r) => cmos(m, r)), [30, 45, 13, 22, 11, 26, 20], 'binary fields');
  cmosWrite(m, 0x0b, 0x00); // BCD, 12 h
  t.equal(cmos(m, 0x04), 0x81, '13:xx is 1 PM: BCD 01 with the PM bit');
  cmosWrite(m, 0x0b, 0x04); // binary, 12 h
  t.equal(cmos(m, 0x04), 0x81, 'binary 1 with the PM bit');
  rtc.close();
  t.end();
});

test('rtc: the clock advances with the host monotonic clock; UIP is set just before the update', (t) => {
  const { m, rtc, advanceMs } = fixedRtc();
  t.equal(cmos(m, 0x0a) & 0x80, 0, 'UIP clear mid-second');
  advanceMs(499.9); // 100 us before the second boundary
  t.equal(cmos(m, 0x0a) & 0x80, 0x80, 'UIP set in the last 244 us');
  t.equal(cmos(m, 0x00), 0x30, 'seconds not yet updated');
  advanceMs(0.2);
  t.equal(cmos(m, 0x0a) & 0x80, 0, 'UIP clear after the update');
  t.equal(cmos(m, 0x00), 0x31, 'seconds updated');
  advanceMs(60_000);
  t.equal(cmos(m, 0x02), 0x46, 'a minute later');
  // Dividers held in reset stop the clock.
  cmosWrite(m, 0x0a, 0x70);
  const frozen = rtc.timeMs();
  advanceMs(5000);
  t.equal(rtc.timeMs(), frozen, 'divider reset: time stands still');
  t.equal(cmos(m, 0x0a) & 0x80, 0, 'no UIP while stopped');
  cmosWrite(m, 0x0a, 0x26);
  advanceMs(2000);
  t.equal(rtc.timeMs(), frozen + 2000, 'runs again from where it stopped');
  rtc.close();
  t.end();
});

test('rtc: setting the time with SET moves the guest clock; invalid time stops it', (t) => {
  const { m, rtc, advanceMs } = fixedRtc();
  cmosWrite(m, 0x0b, 0x82); // SET, BCD, 24 h
  advanceMs(3000);
  t.equal(cmos(m, 0x00), 0x30, 'fields frozen while SET');
  const fields: Array<[number, number]> = [[0, 0x59], [2, 0x59], [4, 0x23], [7, 0x31], [8, 0x12], [9, 0x99], [0x32, 0x19]];
  for (const [r, v] of fields) cmosWrite(m, r, v);
  cmosWrite(m, 0x0b, 0x02);
  t.equal(rtc.timeMs(), Date.UTC(1999, 11, 31, 23, 59, 59), 'new time taken when SET clears');
  advanceMs(1000);
  t.deepEqual([0, 2, 4, 7, 8, 9, 0x32].map((r) => cmos(m, r)), [0, 0, 0, 1, 1, 0, 0x20], 'rolls over into 2000');
  // Writing one field while running changes the clock too (OpenBSD writes the century that way).
  cmosWrite(m, 0x32, 0x21);
  t.equal(new Date(rtc.timeMs()).getUTCFullYear(), 2100, 'century write moved the year');
  cmosWrite(m, 0x0b, 0x82);
  cmosWrite(m, 0x08, 0x13); // month 13
  cmosWrite(m, 0x0b, 0x02);
  t.ok(Number.isNaN(rtc.timeMs()), 'invalid date stops the clock');
  advanceMs(5000);
  t.equal(cmos(m, 0x08), 0x13, 'the bytes stay as the guest wrote them');
  rtc.close();
  t.end();
});

test('rtc: UF latches each second; IRQF only while the matching enable is set', (t) => {
  const { m, rtc, advanceMs } = fixedRtc();
  advanceMs(1000);
  t.equal(cmos(m, 0x0c), 0x10, 'UF without UIE: flag only, no IRQF');
  t.equal(m.irq.isaEdgeCount(8), 0, 'and no interrupt');
  t.equal(cmos(m, 0x0c), 0x00, 'cleared by the read, no new second yet');
  cmosWrite(m, 0x0b, 0x12); // UIE
  advanceMs(1000);
  t.equal(cmos(m, 0x0c), 0x90, 'UF with UIE: IRQF too');
  t.equal(m.irq.isaEdgeCount(8), 1, 'one IRQ 8 edge');
  advanceMs(1000);
  cmosWrite(m, 0x0b, 0x02); // UIE off before the guest looks
  t.equal(cmos(m, 0x0c), 0x10, 'IRQF drops with its enable');
  rtc.close();
  t.end();
});

test('rtc: memory-size bytes as bhyve sets them', (t) => {
  const cases: Array<[string, number, number[]]> = [
    // [0x34, 0x35, 0x5b, 0x5c, 0x5d]
    ['256 MiB', 256 * MiB, [0x00, 0x0f, 0, 0, 0]],
    ['3 GiB', 3 * GiB, [0x00, 0xbf, 0, 0, 0]],
    ['8 GiB', 8 * GiB, [0x00, 0xbf, 0x00, 0x40, 0x01]],
  ];
  for (const [name, size, want] of cases) {
    const m = new TestMachine();
    const rtc = new Rtc(m, { localTime: false });
    rtc.setMemorySize(memoryLayout(size));
    t.deepEqual([0x34, 0x35, 0x5b, 0x5c, 0x5d].map((r) => cmos(m, r)), want, name);
    rtc.close();
  }
  t.end();
});

test('rtc: host local time by default, UTC with rtc.use_localtime=false', (t) => {
  const saved = process.env.TZ;
  process.env.TZ = 'Asia/Kolkata'; // UTC+05:30, no daylight saving
  try {
    const local = fixedRtc(true);
    t.equal(cmos(local.m, 0x04), 0x19, 'local hour 19 (13:45 UTC + 5:30)');
    t.equal(cmos(local.m, 0x02), 0x15, 'local minutes');
    local.rtc.close();
    const utc = fixedRtc(false);
    t.equal(cmos(utc.m, 0x04), 0x13, 'UTC hour');
    utc.rtc.close();
  } finally {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  }
  t.end();
});

test('rtc: index port, NMI mask bit, NVRAM, upper bank, read-only registers, bad sizes', (t) => {
  const { m, rtc } = fixedRtc();
  m.outb(0x70, 0x80 | 0x0e);
  t.ok(rtc.nmiMasked, 'bit 7 of the index is the NMI mask');
  m.outb(0x71, 0xa5);
  t.equal(cmos(m, 0x0e), 0xa5, 'NVRAM byte through a masked index');
  t.equal(m.inb(0x70), 0xff, 'index port is write-only');
  m.outb(0x72, 0x05);
  m.outb(0x73, 0x3c);
  m.outb(0x72, 0x85); // bit 7 ignored: same byte
  t.equal(m.inb(0x73), 0x3c, 'upper 128 bytes through 0x72/0x73');
  t.equal(cmos(m, 0x05), 0x00, 'lower bank untouched');
  cmosWrite(m, 0x0c, 0xff);
  cmosWrite(m, 0x0d, 0x00);
  t.equal(cmos(m, 0x0c), 0x00, 'C is read-only');
  t.equal(cmos(m, 0x0d), 0x80, 'D is read-only');
  t.doesNotThrow(() => {
    t.equal(m.inw(0x70), 0xffff);
    t.equal(m.inl(0x71), 0xffff_ffff);
    m.outw(0x70, 0x0b0b);
    m.outl(0x71, 0);
  }, 'wide accesses are ignored');
  t.equal(cmos(m, 0x0b), 0x02, 'register B unchanged by the wide write');
  rtc.close();
  t.end();
});

test('rtc: update-ended interrupt on IRQ 8, acknowledged by reading C', async (t) => {
  const m = new TestMachine();
  const rtc = new Rtc(m, { localTime: false });
  cmosWrite(m, 0x0b, 0x12); // UIE, 24 h
  await m.irq.waitFor(() => m.irq.isaEdgeCount(8) >= 1, 2500, 'IRQ 8');
  t.ok(m.irq.events.some((e) => e.kind === 'isaPulse' && e.irq === 8 && e.pin === 8), 'pulsed on the PIC and IOAPIC');
  const c = cmos(m, 0x0c);
  t.equal(c & 0x90, 0x90, 'C: IRQF and UF');
  t.equal(cmos(m, 0x0c) & 0x80, 0, 'cleared by the read');
  await m.irq.waitFor(() => m.irq.isaEdgeCount(8) >= 2, 2500, 'the next update interrupt');
  t.pass('fires again the next second');
  rtc.close();
  t.end();
});

test('rtc: periodic and alarm interrupts', async (t) => {
  const m = new TestMachine();
  const rtc = new Rtc(m, { localTime: false });
  cmosWrite(m, 0x0a, 0x26); // 1024 Hz
  cmosWrite(m, 0x0b, 0x42); // PIE
  await m.irq.waitFor(() => m.irq.isaEdgeCount(8) >= 1, 500, 'periodic interrupt');
  t.equal(cmos(m, 0x0c) & 0xc0, 0xc0, 'C: IRQF and PF');
  await m.irq.waitFor(() => m.irq.isaEdgeCount(8) >= 2, 500, 'next periodic interrupt');
  cmosWrite(m, 0x0b, 0x02);
  cmos(m, 0x0c);
  const edges = m.irq.isaEdgeCount(8);
  await new Promise((r) => setTimeout(r, 30));
  cmos(m, 0x0c);
  await new Promise((r) => setTimeout(r, 30));
  t.equal(m.irq.isaEdgeCount(8), edges, 'no interrupts once PIE is off');
  // Alarm with every field "don't care" (0xC0-0xFF) matches each second.
  for (const r of [1, 3, 5]) cmosWrite(m, r, 0xff);
  cmosWrite(m, 0x0b, 0x22); // AIE
  await m.irq.waitFor(() => m.irq.isaEdgeCount(8) > edges, 2500, 'alarm interrupt');
  t.equal(cmos(m, 0x0c) & 0xa0, 0xa0, 'C: IRQF and AF');
  rtc.close();
  t.end();
});
