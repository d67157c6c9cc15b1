// The PCI bus driven as a guest drives it: configuration mechanism #1 and ECAM, BAR sizing and moving, decode
// enables, MSI/MSI-X, INTx routing through the LPC PIRQ registers, and hostile accesses.
import test from 'tape';
import { TestMachine } from '../../harness/machine.js';
import { PciBus } from '../../../src/platform/pci/bus.js';
import { PciFunction, type PciDeviceModel } from '../../../src/platform/pci/function.js';
import { initPci } from '../../../src/platform/pci/init.js';
import { memoryLayout, GiB, ECAM_BASE } from '../../../src/vm/memmap.js';
import { parseCommandLine } from '../../../src/cli/parse.js';
import { BhyveError } from '../../../src/config/errors.js';
import { createLpc } from '../../../devices/lpc/device.js';

const cf8 = (bus: number, slot: number, func: number, off: number): number =>
  (0x80000000 | (bus << 16) | (slot << 11) | (func << 8) | (off & 0xfc)) >>> 0;

/** A guest-side config read through 0xCF8/0xCFC. */
function cfgRead(m: TestMachine, bus: number, slot: number, func: number, off: number, size: 1 | 2 | 4 = 4): number {
  m.outl(0xcf8, cf8(bus, slot, func, off));
  return m.in(0xcfc + (off & 3), size) >>> 0;
}
function cfgWrite(m: TestMachine, bus: number, slot: number, func: number, off: number, value: number, size: 1 | 2 | 4 = 4): void {
  m.outl(0xcf8, cf8(bus, slot, func, off));
  m.out(0xcfc + (off & 3), value, size);
}
const rd = (m: TestMachine, addr: number, size: 1 | 2 | 4): number => m.read(addr, size) >>> 0;
const ecam = (bus: number, slot: number, func: number, off: number): number => ECAM_BASE + ((bus << 20) | (slot << 15) | (func << 12) | off);

function machineFromArgs(args: string): { m: TestMachine; bus: PciBus } {
  const m = new TestMachine();
  const { tree } = parseCommandLine([...args.split(' '), 'vm'], () => {});
  const bus = initPci({ tree, machine: m, layout: memoryLayout(GiB), bootrom: false, warn: () => {} });
  return { m, bus };
}

/** A test device: an I/O BAR, a 4 KiB MEM32 BAR, a 64 MiB MEM64 BAR, MSI with 4 messages and 3 MSI-X vectors. */
function testDevice(bus: PciBus, slot: number, log: string[]): PciFunction {
  const fn = new PciFunction(0, slot, 0, 'testdev');
  bus.add(fn);
  fn.set16(0, 0x1af4);
  fn.set16(2, 0xbeef);
  const regs = new Uint32Array(1024);
  const model: PciDeviceModel = {
    barRead: (bar, off, size) => {
      log.push(`r${bar}:${off}:${size}`);
      return regs[off >> 2]! & (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1);
    },
    barWrite: (bar, off, size, v) => {
      log.push(`w${bar}:${off}:${size}=${v}`);
      regs[off >> 2] = v;
    },
  };
  fn.model = model;
  bus.allocBar(fn, 0, 'io', 32);
  bus.allocBar(fn, 1, 'mem32', 4096);
  bus.allocBar(fn, 2, 'mem64', 64 * 2 ** 20);
  fn.addMsiCapability(4);
  const msixSize = fn.addMsixCapability(3, 4);
  bus.allocBar(fn, 4, 'mem32', msixSize);
  fn.requestLintr();
  return fn;
}

function busWithTestDevice(): { m: TestMachine; bus: PciBus; fn: PciFunction; log: string[] } {
  const m = new TestMachine();
  const { tree } = parseCommandLine(['-s', '0,hostbridge', '-s', '31,lpc', 'vm'], () => {});
  // Build by hand so the test device sits beside real hostbridge/lpc models.
  const bus = new PciBus({ machine: m, layout: memoryLayout(GiB), bootrom: false, enableBars: true, warn: () => {} });
  const log: string[] = [];
  bus.beginBus(0);
  const fn = testDevice(bus, 3, log);
  const lpc = new PciFunction(0, 31, 0, 'lpc');
  bus.add(lpc);
  lpc.model = createLpc({ fn: lpc, bus, tree, node: tree.findNode('pci.0.31.0')!, machine: m, bootrom: false, warn: () => {} });
  const big = new PciFunction(0, 4, 0, 'bigbar');
  bus.add(big);
  bus.allocBar(big, 0, 'mem64', 512 * 2 ** 20);
  bus.endBus(0);
  bus.routeInterrupts();
  bus.install();
  return { m, bus, fn, log };
}

test('pci: configuration mechanism #1 and ECAM read the same registers; empty functions read all ones', (t) => {
  const { m } = machineFromArgs('-s 0,hostbridge -s 31,lpc -s 0:2:0,amd_hostbridge');
  t.equal(cfgRead(m, 0, 0, 0, 0), 0x12751275, 'hostbridge 1275:1275');
  t.equal(rd(m, ecam(0, 0, 0, 0), 4), 0x12751275, 'the same through ECAM');
  t.equal(cfgRead(m, 0, 31, 0, 0), 0x70008086, 'LPC 8086:7000');
  t.equal(cfgRead(m, 0, 31, 0, 0x0a, 2), 0x0601, 'LPC class bridge/ISA');
  t.equal(cfgRead(m, 0, 2, 0, 0), 0x74321022, 'amd_hostbridge 1022:7432');
  t.equal(cfgRead(m, 0, 5, 0, 0), 0xffffffff, 'an empty slot');
  t.equal(cfgRead(m, 3, 0, 0, 0), 0xffffffff, 'an empty bus');
  t.equal(cfgRead(m, 0, 0, 0, 2, 2), 0x1275, 'a word read at offset 2');
  t.equal(cfgRead(m, 0, 0, 0, 1, 1), 0x12, 'a byte read');
  m.outl(0xcf8, cf8(0, 0, 0, 0) & 0x7fffffff);
  t.equal(m.inl(0xcfc) >>> 0, 0xffffffff, 'with the enable bit clear');
  t.equal(m.inw(0xcf8), 0xffff, '0xCF8 only takes dword accesses');
  m.outl(0xcf8, 0x80001234);
  t.equal(m.inl(0xcf8) >>> 0, 0x80001234, 'the address register reads back');
  t.equal(rd(m, ecam(0, 0, 0, 0x100), 4), 0, 'an empty extended capability list at 0x100');
  t.equal(rd(m, ecam(0, 0, 0, 0x200), 4), 0xffffffff, 'all ones past it');
  t.equal(rd(m, ecam(0, 0, 0, 1), 2), 0xffffffff & 0xffff, 'a misaligned ECAM read is all ones');
  // Status has the capability bit and the pointer leads to the PCIe capability.
  t.ok(cfgRead(m, 0, 0, 0, 6, 2) & 0x10, 'capabilities present');
  const cap = cfgRead(m, 0, 0, 0, 0x34, 1);
  t.equal(cap, 0x40);
  t.equal(cfgRead(m, 0, 0, 0, cap, 1), 0x10, 'PCI Express capability');
  t.end();
});

test('pci: identification registers are read-only and odd writes are ignored', (t) => {
  const { m } = machineFromArgs('-s 0,hostbridge');
  cfgWrite(m, 0, 0, 0, 0, 0xdeadbeef);
  t.equal(cfgRead(m, 0, 0, 0, 0), 0x12751275);
  cfgWrite(m, 0, 0, 0, 0x3c, 0x0b, 1);
  t.equal(cfgRead(m, 0, 0, 0, 0x3c, 1), 0x0b, 'interrupt line is storage');
  m.write(ecam(0, 0, 0, 0x300), 0x12345678, 4);
  m.write(ecam(0, 9, 0, 0), 0x12345678, 4);
  cfgWrite(m, 0, 0, 0, 0x06, 0xffff, 2);
  t.equal(cfgRead(m, 0, 0, 0, 6, 2) & 0xf800, 0, 'status error bits cannot be set by the guest');
  t.end();
});

test('pci: BARs are assigned largest first in bhyve windows; sizing and moving work as on hardware', (t) => {
  const { m, fn, log } = busWithTestDevice();
  const bar = (i: number) => cfgRead(m, 0, 3, 0, 0x10 + 4 * i);
  t.equal(bar(0) & 3, 1, 'BAR0 is I/O');
  t.ok((bar(0) & ~3) >= 0x2000, 'I/O from 0x2000');
  t.equal(bar(2) & 0xf, 0x4, 'BAR2 is 64-bit');
  t.equal(fn.bars[2]!.addr, 0xc0000000, 'a 64 MiB MEM64 BAR goes below 4 GiB, first because it is the largest there');
  t.ok(fn.bars[1]!.addr > fn.bars[2]!.addr, 'smaller BARs after it');
  // Sizing: write all ones, read back the size mask, restore.
  const saved = bar(1);
  cfgWrite(m, 0, 3, 0, 0x14, 0xffffffff);
  t.equal(bar(1) >>> 0, 0xfffff000, '4 KiB BAR reports its size');
  cfgWrite(m, 0, 3, 0, 0x14, saved);
  cfgWrite(m, 0, 3, 0, 0x10, 0xffffffff);
  t.equal(bar(0) >>> 0, 0xffe1, '32-port BAR reports its size in the 16-bit port space, with the I/O bit');
  cfgWrite(m, 0, 3, 0, 0x18, 0xffffffff);
  cfgWrite(m, 0, 3, 0, 0x1c, 0xffffffff);
  t.equal(bar(2) >>> 0, 0xfc000004, '64 MiB, 64-bit');
  t.equal(bar(3) >>> 0, 0xffffffff);
  t.equal(cfgRead(m, 0, 4, 0, 0x10) & 0xf, 0xc, 'a 512 MiB MEM64 BAR is prefetchable');
  t.equal(cfgRead(m, 0, 4, 0, 0x14), 8, '... and sits in the 64-bit window at 32 GiB');
  // Access through the MEM32 BAR reaches the device.
  m.write(fn.bars[1]!.addr + 8, 77, 4);
  t.equal(rd(m, fn.bars[1]!.addr + 8, 4), 77);
  t.deepEqual(log.slice(-2), ['w1:8:4=77', 'r1:8:4']);
  // Move BAR1; the old address stops decoding.
  const old = fn.bars[1]!.addr;
  cfgWrite(m, 0, 3, 0, 0x14, 0xd0000000);
  t.equal(fn.bars[1]!.addr, 0xd0000000);
  t.equal(rd(m, 0xd0000008, 4), 77, 'the device answers at the new address');
  t.equal(rd(m, old + 8, 4), 0xffffffff, 'and not at the old one');
  // A byte write to a BAR register is ignored.
  cfgWrite(m, 0, 3, 0, 0x14, 0x12, 1);
  t.equal(fn.bars[1]!.addr, 0xd0000000);
  t.end();
});

test('pci: the COMMAND register switches decoding on and off', (t) => {
  const { m, fn } = busWithTestDevice();
  const addr = fn.bars[1]!.addr;
  const cmd = cfgRead(m, 0, 3, 0, 4, 2);
  t.equal(cmd & 7, 7, 'I/O, memory and bus master enabled without a boot ROM');
  cfgWrite(m, 0, 3, 0, 4, cmd & ~2, 2);
  t.notOk(m.io.mmio.some((c) => c.base === addr), 'memory BARs released');
  t.ok(m.io.claimsPort(fn.bars[0]!.addr), 'the I/O BAR stays');
  cfgWrite(m, 0, 3, 0, 4, cmd, 2);
  t.ok(m.io.mmio.some((c) => c.base === addr), 'memory BARs claimed again');
  t.end();
});

test('pci: MSI-X table through the BAR; masked vectors held in the PBA and sent on unmask', (t) => {
  const { m, fn } = busWithTestDevice();
  const base = fn.bars[4]!.addr;
  // Program vector 1 like a guest: address, data, unmask.
  m.write(base + 16, 0xfee00000, 4);
  m.write(base + 20, 0, 4);
  m.write(base + 24, 0x4041, 4);
  m.write(base + 28, 0, 4);
  t.equal(rd(m, base + 24, 4), 0x4041);
  t.equal(rd(m, base + 28, 4), 0, 'unmasked');
  t.equal(rd(m, base + 12, 4), 1, 'vector 0 still masked');
  t.equal(rd(m, base + 4096, 4), 0, 'PBA reads 0');
  t.notOk(fn.generateMsix(1), 'nothing before MSI-X is enabled');
  const cap = fn.msix!.capOff;
  cfgWrite(m, 0, 3, 0, cap, 0x80000000 | cfgRead(m, 0, 3, 0, cap), 4);
  t.ok(fn.msixEnabled());
  t.equal(cfgRead(m, 0, 3, 0, cap + 2, 2) & 0x7ff, 2, 'table size is read-only (3 vectors)');
  t.ok(fn.generateMsix(1));
  t.deepEqual(m.irq.events.at(-1), { kind: 'msi', addr: 0xfee00000n, data: 0x4041 });
  const sent = m.irq.events.length;
  t.notOk(fn.generateMsix(0), 'a masked vector is not sent...');
  t.equal(rd(m, base + 4096, 4), 1, '...its pending bit is set in the PBA');
  t.equal(rd(m, base + 4096, 1), 1, 'the PBA reads by byte too');
  t.notOk(fn.generateMsix(7), 'an index past the table is dropped');
  t.equal(rd(m, base + 4096, 4), 1, 'without touching the PBA');
  // Unmasking vector 0 (a dword write to its vector control) sends the held message once.
  m.write(base + 0, 0xfee00000, 4);
  m.write(base + 8, 0x4040, 4);
  t.equal(m.irq.events.length, sent, 'programming the masked entry sends nothing');
  m.write(base + 12, 0, 4);
  t.deepEqual(m.irq.events.slice(sent), [{ kind: 'msi', addr: 0xfee00000n, data: 0x4040 }], 'unmasking sent the pending message');
  t.equal(rd(m, base + 4096, 4), 0, 'and cleared its pending bit');
  cfgWrite(m, 0, 3, 0, cap + 3, 0xc0, 1);
  t.notOk(fn.generateMsix(1), 'the function mask holds everything');
  t.notOk(fn.generateMsix(1), 'a second message while pending is the same pending bit');
  t.equal(rd(m, base + 4096, 4), 2, 'vector 1 pending');
  const before = m.irq.events.length;
  cfgWrite(m, 0, 3, 0, cap + 3, 0x80, 1);
  t.deepEqual(m.irq.events.slice(before), [{ kind: 'msi', addr: 0xfee00000n, data: 0x4041 }], 'clearing the function mask sent vector 1 once');
  t.equal(rd(m, base + 4096, 4), 0, 'the PBA is clear again');
  m.write(base + 4096, 0xffffffff, 4);
  t.equal(rd(m, base + 4096, 4), 0, 'the PBA is read-only');
  m.write(base + 2, 0xffff, 2);
  t.equal(rd(m, base + 2, 2), 0xffff, 'a word access to the table reads all ones');
  t.end();
});

test('pci: MSI enable, message count clamped to the capability, data + index', (t) => {
  const { m, fn } = busWithTestDevice();
  const cap = fn.msi!.capOff;
  cfgWrite(m, 0, 3, 0, cap + 4, 0xfee01000);
  cfgWrite(m, 0, 3, 0, cap + 8, 0);
  cfgWrite(m, 0, 3, 0, cap + 12, 0x30, 2);
  cfgWrite(m, 0, 3, 0, cap + 2, 0x0071, 2); // enable, ask for 128 messages
  t.equal(fn.msiEnabledCount(), 4, 'clamped to the 4 the device offers');
  t.ok(fn.generateMsi(2));
  t.deepEqual(m.irq.events.at(-1), { kind: 'msi', addr: 0xfee01000n, data: 0x32 });
  t.notOk(fn.generateMsi(4));
  t.end();
});

test('pci: INTx routed through a PIRQ link, masked by INTxDIS and by MSI, re-routed by the LPC registers', (t) => {
  const { m, fn, bus } = busWithTestDevice();
  t.equal(fn.lintrPin, 1, 'INTA');
  t.equal(fn.ioapicPin, 16, 'first PCI IOAPIC pin');
  t.equal(cfgRead(m, 0, 3, 0, 0x3c, 1), 5, 'INTLINE reports the link IRQ: 5 is the first free (3 and 4 are the COM ports)');
  t.equal(cfgRead(m, 0, 3, 0, 0x3d, 1), 1);
  fn.assertLintr();
  t.deepEqual(m.irq.events.at(-1), { kind: 'isaAssert', irq: 5, pin: 16 });
  fn.deassertLintr();
  t.deepEqual(m.irq.events.at(-1), { kind: 'isaDeassert', irq: 5, pin: 16 });
  // INTx disable: the line is held pending and delivered when re-enabled.
  const cmd = cfgRead(m, 0, 3, 0, 4, 2);
  cfgWrite(m, 0, 3, 0, 4, cmd | 0x400, 2);
  const before = m.irq.events.length;
  fn.assertLintr();
  t.equal(m.irq.events.length, before, 'nothing while disabled');
  t.ok(cfgRead(m, 0, 3, 0, 6, 2) & 0x8, 'status shows the pending interrupt');
  cfgWrite(m, 0, 3, 0, 4, cmd, 2);
  t.deepEqual(m.irq.events.at(-1), { kind: 'isaAssert', irq: 5, pin: 16 }, 'delivered on re-enable');
  // The guest moves link A to IRQ 11 while the line is high.
  const link = fn.pirqPin;
  t.equal(bus.pirq.readRegister(link), 5);
  bus.pirq.writeRegister(link, 11);
  t.deepEqual(m.irq.events.slice(-2), [
    { kind: 'isaDeassert', irq: 5, pin: -1 },
    { kind: 'isaAssert', irq: 11, pin: -1 },
  ]);
  fn.deassertLintr();
  t.end();
});

test('pci: the LPC bridge exposes the PIRQ registers in its config space', (t) => {
  const { m, bus } = machineFromArgs('-s 0,hostbridge -s 31,lpc');
  t.equal(cfgRead(m, 0, 31, 0, 0x60), 0x80808080, 'PIRQA-D disabled until a device uses them');
  cfgWrite(m, 0, 31, 0, 0x61, 0x0a, 1);
  t.equal(bus.pirq.readRegister(2), 0x0a);
  t.equal(cfgRead(m, 0, 31, 0, 0x68), 0x80808080, 'PIRQE-H');
  t.end();
});

test('pci: multi-function slots set the header-type bit', (t) => {
  const { m } = machineFromArgs('-s 0,hostbridge -s 4:0,hostbridge -s 4:1,hostbridge');
  t.equal(cfgRead(m, 0, 4, 0, 0x0e, 1) & 0x80, 0x80);
  t.equal(cfgRead(m, 0, 0, 0, 0x0e, 1) & 0x80, 0);
  t.end();
});

test('pci: start-up errors carry bhyve wording and status 4', (t) => {
  const fail = (args: string) => {
    try {
      machineFromArgs(args);
      return 'no error';
    } catch (e) {
      return e instanceof BhyveError ? `${e.status} ${e.message}` : String(e);
    }
  };
  t.equal(fail('-s 1:0:0,lpc'), '4 LPC bridge can only be on bus 0');
  t.equal(fail('-s 1,lpc -s 2,lpc'), '4 Only one LPC bridge is allowed.');
  t.equal(fail('-o pci.0.3.0.device=ahci-hd'), '4 pci slot 0:3:0: legacy device "ahci-hd", use "ahci" instead');
  t.equal(fail('-o pci.0.3.0.device=nope'), '4 pci slot 0:3:0: unknown device "nope"');
  t.equal(fail('-o pci.0.3.0.path=x'), '4 pci slot 0:3:0: missing "device" value');
  t.end();
});
