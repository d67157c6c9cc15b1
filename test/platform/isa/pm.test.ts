// The ACPI PM block as an OS drives it: the PM timer, S5 through PM1a_CNT, ACPI enable through SMI_CMD, the power
// button and the SCI, GPE0, the SIGTERM rule (in-process and in a real child process), malformed accesses.
import test from 'tape';
import { EventEmitter } from 'node:events';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { TestMachine } from '../../harness/machine.js';
import { PowerManagement, installSigtermPowerButton, PM_TIMER_HZ, type SignalSource } from '../../../src/platform/isa/pm.js';

const here = dirname(fileURLToPath(import.meta.url));

test('pm: the PM timer counts at 3.579545 MHz and never goes backwards', async (t) => {
  const m = new TestMachine();
  const pm = new PowerManagement(m);
  let prev = m.inl(0x408);
  let monotonic = true;
  for (let i = 0; i < 2000; i++) {
    const v = m.inl(0x408);
    if (v < prev) monotonic = false;
    prev = v;
  }
  t.ok(monotonic, '2000 back-to-back reads never decrease');
  const h0 = process.hrtime.bigint();
  const c0 = m.inl(0x408);
  await new Promise((r) => setTimeout(r, 50));
  const c1 = m.inl(0x408);
  const h1 = process.hrtime.bigint();
  const seconds = Number(h1 - h0) / 1e9;
  const rate = (c1 - c0) / seconds;
  t.ok(Math.abs(rate - PM_TIMER_HZ) / PM_TIMER_HZ < 0.02, `measured ${rate.toFixed(0)} Hz over ${(seconds * 1000).toFixed(1)} ms`);
  m.outl(0x408, 0);
  t.ok(m.inl(0x408) >= c1, 'writes do not reset it');
  pm.close();
  t.end();
});

test('pm: the timer is 32 bits wide and its MSB toggle latches TMR_STS', (t) => {
  const m = new TestMachine();
  let ns = 0n;
  const pm = new PowerManagement(m, () => ns);
  const ticksToNs = (ticks: number): bigint => (BigInt(ticks) * 1_000_000_000n) / BigInt(PM_TIMER_HZ) + 1n;
  ns = ticksToNs(0x1234_5678);
  t.equal(m.inl(0x408), 0x1234_5678, 'count from the clock');
  t.equal(m.inb(0x408), 0x78, 'a byte read gives the low byte');
  t.equal(m.inw(0x40a), 0x1234, 'a word read at +2 gives the high half');
  ns = ticksToNs(2 ** 31 - 10);
  t.equal(m.inw(0x400) & 1, 0, 'no TMR_STS before bit 31 changes');
  ns = ticksToNs(2 ** 31 + 5);
  t.equal(m.inw(0x400) & 1, 1, 'TMR_STS after bit 31 set');
  m.outw(0x400, 1);
  t.equal(m.inw(0x400) & 1, 0, 'write-1-to-clear');
  ns = ticksToNs(2 ** 32 + 3);
  t.ok(m.inl(0x408) < 10, 'the count wraps at 2^32');
  t.equal(m.inw(0x400) & 1, 1, 'and the wrap toggles bit 31 again');
  m.outw(0x402, 1); // TMR_EN
  t.ok(m.irq.isaHigh(9), 'an enabled TMR_STS raises the SCI');
  pm.close();
  t.end();
});

test('pm: S5 through PM1a_CNT powers off; other sleep types do not', (t) => {
  const m = new TestMachine();
  const pm = new PowerManagement(m);
  m.outw(0x404, (1 << 10) | 0x2000); // S1
  t.deepEqual(m.suspends, [], 'SLP_TYP 1 is not offered');
  m.outw(0x404, 5 << 10); // type without SLP_EN
  t.deepEqual(m.suspends, [], 'no SLP_EN, no sleep');
  t.equal(m.inw(0x404), 5 << 10, 'SLP_TYP reads back');
  m.outw(0x404, (5 << 10) | 0x2000);
  t.deepEqual(m.suspends, ['poweroff'], 'SLP_TYP 5 + SLP_EN -> poweroff');
  t.equal(m.inw(0x404) & 0x2000, 0, 'SLP_EN reads as 0');
  pm.close();
  t.end();
});

test('pm: SMI_CMD 0xA0 sets SCI_EN, 0xA1 clears it; the OS cannot write SCI_EN', (t) => {
  const m = new TestMachine();
  const pm = new PowerManagement(m);
  t.equal(m.inw(0x404) & 1, 0, 'legacy mode at start');
  m.outw(0x404, 1);
  t.equal(m.inw(0x404) & 1, 0, 'OS write of SCI_EN has no effect');
  m.outb(0xb2, 0x55);
  t.equal(m.inw(0x404) & 1, 0, 'other SMI commands do nothing');
  m.outb(0xb2, 0xa0);
  t.equal(m.inw(0x404) & 1, 1, 'ACPI_ENABLE');
  t.ok(pm.acpiEnabled);
  m.outw(0x404, 0);
  t.equal(m.inw(0x404) & 1, 1, 'OS cannot clear it either');
  m.outb(0xb2, 0xa1);
  t.equal(m.inw(0x404) & 1, 0, 'ACPI_DISABLE');
  pm.close();
  t.end();
});

test('pm: the power button raises the level-triggered SCI only when enabled; W1C lowers it', (t) => {
  const m = new TestMachine();
  const pm = new PowerManagement(m);
  t.equal(m.irq.isaTrigger.get(9), true, 'IRQ 9 set level-triggered');
  pm.pressPowerButton();
  t.equal(m.inw(0x400) & 0x100, 0x100, 'PWRBTN_STS latched');
  t.notOk(m.irq.isaHigh(9), 'no SCI while PWRBTN_EN is clear');
  m.outw(0x402, 0x0100);
  t.ok(m.irq.isaHigh(9) && m.irq.pinHigh(9), 'enabling the event raises the SCI (8259 IRQ 9 and IOAPIC pin 9)');
  t.equal(m.inw(0x402), 0x0100, 'PWRBTN_EN reads back');
  m.outw(0x400, 0x0001); // clearing another bit leaves it
  t.ok(m.irq.isaHigh(9), 'SCI held while PWRBTN_STS is set');
  m.outw(0x400, 0x0100);
  t.equal(m.inw(0x400) & 0x100, 0, 'write-1-to-clear');
  t.notOk(m.irq.isaHigh(9), 'SCI released');
  pm.pressPowerButton();
  t.ok(m.irq.isaHigh(9), 'pressed again: SCI again');
  m.outb(0x400, 0x00);
  m.outb(0x401, 0x01); // byte write to the status high byte also clears
  t.notOk(m.irq.isaHigh(9), 'byte-wide W1C works');
  t.equal(m.inl(0x400), 0x0100 << 16, 'a dword read returns enable:status');
  m.outw(0x402, 0xffff);
  t.equal(m.inw(0x402), 0x0521, 'only TMR/GBL/PWRBTN/RTC enables stick');
  pm.close();
  t.end();
});

test('pm: GPE0 is byte-wide; an enabled GPE raises the SCI', (t) => {
  const m = new TestMachine();
  const pm = new PowerManagement(m);
  pm.raiseGpe(0);
  t.equal(m.inb(0x40c), 1, 'GPE0_STS bit 0');
  t.notOk(m.irq.isaHigh(9));
  m.outb(0x40d, 0xff);
  t.equal(m.inb(0x40d), 1, 'only wired GPEs can be enabled');
  t.ok(m.irq.isaHigh(9), 'SCI');
  m.outb(0x40c, 1);
  t.notOk(m.irq.isaHigh(9), 'W1C releases it');
  t.throws(() => pm.raiseGpe(5), RangeError, 'unwired GPE refused');
  t.equal(m.inw(0x40c), 0xffff, '16-bit access refused');
  pm.close();
  t.end();
});

test('pm: the SIGTERM rule in-process: nothing until ACPI is on, then the power button', (t) => {
  const m = new TestMachine();
  const pm = new PowerManagement(m);
  const sig = new EventEmitter();
  const remove = installSigtermPowerButton(pm, sig as unknown as SignalSource);
  t.equal(sig.listenerCount('SIGTERM'), 0, 'before ACPI: default action (no listener)');
  m.outb(0xb2, 0xa0);
  t.equal(sig.listenerCount('SIGTERM'), 1, 'after ACPI_ENABLE: handled');
  m.outw(0x402, 0x0100);
  sig.emit('SIGTERM');
  t.equal(m.inw(0x400) & 0x100, 0x100, 'SIGTERM pressed the button');
  t.ok(m.irq.isaHigh(9), 'SCI raised');
  m.outb(0xb2, 0xa1);
  t.equal(sig.listenerCount('SIGTERM'), 0, 'ACPI_DISABLE restores the default');
  m.outb(0xb2, 0xa0);
  remove();
  t.equal(sig.listenerCount('SIGTERM'), 0, 'removing the rule removes the listener');
  pm.close();
  t.end();
});

function runSigtermChild(arg: string): Promise<{ out: string; code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'fixtures/sigterm-guest.ts'), arg], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    let sent = false;
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (!sent && out.includes('READY')) {
        sent = true;
        child.kill('SIGTERM');
      }
      if (out.includes('PWRBTN')) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => resolve({ out, code, signal }));
  });
}

test('pm: the SIGTERM rule in a real process', async (t) => {
  const before = await runSigtermChild('none');
  t.equal(before.signal, 'SIGTERM', 'before ACPI is enabled SIGTERM kills the VM');
  t.notOk(before.out.includes('PWRBTN'));
  const after = await runSigtermChild('acpi');
  t.ok(after.out.includes('PWRBTN'), 'after ACPI_ENABLE SIGTERM presses the power button and the VM lives on');
  t.equal(after.signal, 'SIGKILL', 'it had to be killed by the test');
  t.end();
});

test('pm: malformed accesses are harmless', (t) => {
  const m = new TestMachine();
  const pm = new PowerManagement(m);
  t.doesNotThrow(() => {
    t.equal(m.inl(0x404), 0xffff_ffff, 'dword read of the 16-bit control register');
    t.equal(m.inb(0xb2), 0xff, 'SMI_CMD is write-only');
    m.outw(0xb2, 0xa0);
    m.outl(0x404, 0xffff_ffff);
    m.outl(0x403, 0xffff_ffff);
    m.outw(0x405, 0xffff);
    m.outl(0x40c, 0xffff_ffff);
  });
  t.deepEqual(m.suspends, [], 'no suspend from dropped writes');
  t.equal(m.inw(0x404) & 1, 0, 'a 16-bit SMI_CMD write did not enable ACPI');
  pm.close();
  t.end();
});
