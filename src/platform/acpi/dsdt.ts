// The DSDT (ACPI 6.4 §5.2.11.1) of a bhyve guest, encoded straight to AML. It holds the same namespace bhyve
// writes as ASL (acpi.c, pci_emul.c, pci_lpc.c, pci_irq.c): \_S5, the PIC/APIC mode switch, one PCI root
// bridge per configured bus with its windows and _PRT, the legacy devices behind the LPC bridge, and HPET.
import { ECAM_BASE, ECAM_SIZE, HPET_BASE } from '../../vm/memmap.js';
import * as A from './aml.js';
import { PM } from './fadt.js';
import * as R from './resources.js';
import { SDT_HEADER_SIZE, TableWriter, sealSdt } from './sdt.js';

/** One routed INTx pin of a PCI slot (bhyve-facts §4.4). */
export interface IntxRoute {
  slot: number;
  /** 1 = INTA .. 4 = INTD */
  pin: number;
  /** PIRQ link 1 = LNKA .. 8 = LNKH */
  pirqLink: number;
  /** I/O APIC input (GSI) */
  gsi: number;
}

export interface PciRootBridge {
  bus: number;
  /** Resource windows decoded below this bridge; absent for an empty bus 0 (bhyve still describes it). */
  windows?: { io: R.Window; mem32: R.Window; mem64: R.Window };
  intx: readonly IntxRoute[];
}

export interface ComPort {
  /** ACPI device name, e.g. COM1 */
  name: string;
  iobase: number;
  irq: number;
}

export interface DsdtInput {
  buses: readonly PciRootBridge[];
  /** The LPC bridge (always on bus 0); the ISA devices and PIRQ links exist only with it. */
  lpc?: { slot: number; func: number; comPorts: readonly ComPort[] };
  /** 'qemu' adds the QEMU0002 fw_cfg device; 'bhyve' reserves the fwctl ports instead. */
  fwcfg: 'bhyve' | 'qemu';
}

/** First I/O port of the PCI BAR window (PCI_EMUL_IOBASE); below it bus 0 decodes the ISA range. */
export const PCI_IO_BASE = 0x2000;
/** ICH10-style PIRQ links: IRQs 3-7, 9-12, 14 and 15 may be routed (bhyve-facts §4.4). */
export const PIRQ_PERMITTED_IRQS = [3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15] as const;
const PIRQ_DISABLE = 0x80;
const PIRQ_IRQ_MASK = 0x0f;
const FWCFG_PORT = 0x510;

const LPC_PATH = '\\_SB.PC00.ISA';
export const linkName = (link: number): string => `LNK${String.fromCharCode(0x40 + link)}`;
const pirqField = (link: number): string => `PIR${String.fromCharCode(0x40 + link)}`;
export const bridgeName = (bus: number): string => `PC${bus.toString(16).toUpperCase().padStart(2, '0')}`;

export function buildDsdt(input: DsdtInput): Buffer {
  validate(input);
  const body = A.concat([
    // S5 soft-off: SLP_TYPa = 5 as bhyve's PM1a_CNT handler expects (bhyve-facts §4.9).
    A.name('_S5', A.pkg([A.byteConst(5), A.zero])),
    // The OS calls \_PIC(1) when it switches to APIC mode; _PRT reads PICM to pick the routing table.
    A.name('PICM', A.zero),
    A.method('_PIC', 1, false, [A.store(A.arg(0), A.ref('PICM'))]),
    A.scope('_SB', input.buses.map((b) => rootBridge(b, input))),
    A.scope('_SB.PC00', [hpetDevice(), ...(input.fwcfg === 'qemu' ? [fwcfgDevice()] : [])]),
  ]);
  const w = new TableWriter(SDT_HEADER_SIZE + body.length);
  w.bytes.set(body, SDT_HEADER_SIZE);
  // Revision 2: integers are 64 bits wide (needed for the QWordMemory window arithmetic by the OS).
  return sealSdt(w, 'DSDT', 2);
}

function validate(input: DsdtInput): void {
  const seen = new Set<number>();
  if (!input.buses.some((b) => b.bus === 0)) throw new RangeError('DSDT: bus 0 must be described');
  for (const b of input.buses) {
    if (!Number.isInteger(b.bus) || b.bus < 0 || b.bus > 255 || seen.has(b.bus)) throw new RangeError(`DSDT: bad or duplicate bus ${b.bus}`);
    seen.add(b.bus);
    if (!b.windows && (b.bus !== 0 || b.intx.length > 0)) throw new RangeError(`DSDT: bus ${b.bus} has devices but no windows`);
    for (const r of b.intx) {
      if (r.slot < 0 || r.slot > 31 || r.pin < 1 || r.pin > 4 || r.pirqLink < 1 || r.pirqLink > 8 || r.gsi < 0) {
        throw new RangeError(`DSDT: bad INTx route ${JSON.stringify(r)}`);
      }
    }
  }
}

function rootBridge(b: PciRootBridge, input: DsdtInput): A.Aml {
  const res: R.Resource[] = [R.wordBusNumber({ base: b.bus, limit: b.bus + 1 })];
  if (b.bus === 0) {
    // Bus 0 owns the config ports and every legacy port outside the PCI BAR window.
    res.push(R.fixedPorts(0xcf8, 8), R.wordIo({ base: 0, limit: 0xcf8 }), R.wordIo({ base: 0xd00, limit: PCI_IO_BASE }));
  }
  if (b.windows) res.push(R.wordIo(b.windows.io), R.dwordMemory(b.windows.mem32), R.qwordMemory(b.windows.mem64));
  const terms: A.Aml[] = [
    A.name('_HID', A.eisaId('PNP0A03')),
    A.method('_BBN', 0, false, [A.ret(A.dwordConst(b.bus))]),
    A.name('_CRS', R.resourceTemplate(res)),
  ];
  if (b.intx.length > 0) terms.push(...routingTables(b.intx, input.lpc !== undefined));
  if (b.bus === 0 && input.lpc) terms.push(lpcDevice(input.lpc, input.fwcfg));
  return A.device(bridgeName(b.bus), terms);
}

/**
 * _PRT (ACPI 6.4 §6.2.13) in both interrupt models: PPRT routes through the PIRQ link devices (8259 mode),
 * APRT names the I/O APIC input directly. Entries address every function of a slot (0xFFFF).
 * Without an LPC bridge there are no link devices, so PPRT stays empty, as in bhyve.
 */
function routingTables(intx: readonly IntxRoute[], haveLinks: boolean): A.Aml[] {
  const sorted = [...intx].sort((x, y) => x.slot - y.slot || x.pin - y.pin);
  const entry = (r: IntxRoute, source: A.Aml, index: A.Aml): A.Aml =>
    A.pkg([A.integer(r.slot * 0x10000 + 0xffff), A.integer(r.pin - 1), source, index]);
  const pic = haveLinks ? sorted.map((r) => entry(r, A.ref(`${LPC_PATH}.${linkName(r.pirqLink)}`), A.zero)) : [];
  const apic = sorted.map((r) => entry(r, A.zero, A.integer(r.gsi)));
  return [
    A.name('PPRT', A.pkg(pic)),
    A.name('APRT', A.pkg(apic)),
    A.method('_PRT', 0, false, [A.ifThen(A.ref('PICM'), [A.ret(A.ref('APRT'))]), A.elseDo([A.ret(A.ref('PPRT'))])]),
  ];
}

/** The LPC bridge as Device (ISA): its PIRQ routing registers and the legacy devices behind it. */
function lpcDevice(lpc: NonNullable<DsdtInput['lpc']>, fwcfg: DsdtInput['fwcfg']): A.Aml {
  return A.device('ISA', [
    A.name('_ADR', A.integer(lpc.slot * 0x10000 + lpc.func)),
    // PIRQA-D at config offsets 0x60-0x63 and PIRQE-H at 0x68-0x6B, as on ICH10.
    A.operationRegion('LPCR', A.RegionSpace.PciConfig, 0, 0x100),
    A.field('LPCR', 0, [
      { skipBits: 0x60 * 8 },
      ...[1, 2, 3, 4].map((l) => ({ name: pirqField(l), bits: 8 })),
      { skipBits: 4 * 8 },
      ...[5, 6, 7, 8].map((l) => ({ name: pirqField(l), bits: 8 })),
    ]),
    sioDevice(fwcfg),
    ...lpc.comPorts.map((c, i) => comDevice(c, i + 1)),
    pirqValidMethod(),
    ...[1, 2, 3, 4, 5, 6, 7, 8].map(linkDevice),
    legacyDevice('RTC', 'PNP0B00', [R.fixedPorts(0x70, 2), R.irqNoFlags([8])]),
    legacyDevice('KBD', 'PNP0303', [R.fixedPorts(0x60, 1), R.fixedPorts(0x64, 1), R.irqNoFlags([1])]),
    legacyDevice('MOU', 'PNP0F13', [R.irqNoFlags([12])]),
    legacyDevice('PIC', 'PNP0000', [R.fixedPorts(0x20, 2), R.fixedPorts(0xa0, 2), R.irqNoFlags([2])]),
    legacyDevice('TIMR', 'PNP0100', [R.fixedPorts(0x40, 4), R.irqNoFlags([0])]),
  ]);
}

function legacyDevice(n: string, hid: string, res: R.Resource[]): A.Aml {
  return A.device(n, [A.name('_HID', A.eisaId(hid)), A.name('_CRS', R.resourceTemplate(res))]);
}

/**
 * Motherboard resources (PNP0C02) that no other device claims, so the OS keeps PCI BARs away from them:
 * NMI status, ELCR, the RTC's extra ports, the SMI command port, the PM/GPE block, the fwctl ports and ECAM.
 */
function sioDevice(fwcfg: DsdtInput['fwcfg']): A.Aml {
  const res: R.Resource[] = [
    R.fixedPorts(0x61, 1),
    R.fixedPorts(0x4d0, 2),
    R.fixedPorts(0x72, 6),
    R.fixedPorts(PM.smiCmd, 1),
    R.fixedPorts(PM.pm1aEvt, 0x10),
  ];
  if (fwcfg === 'bhyve') res.push(R.fixedPorts(FWCFG_PORT, 2));
  res.push(R.memory32Fixed(ECAM_BASE, ECAM_SIZE));
  return A.device('SIO', [A.name('_HID', A.eisaId('PNP0C02')), A.name('_CRS', R.resourceTemplate(res))]);
}

function comDevice(c: ComPort, uid: number): A.Aml {
  return A.device(c.name, [
    A.name('_HID', A.eisaId('PNP0501')),
    A.name('_UID', A.integer(uid)),
    A.name('_CRS', R.resourceTemplate([R.fixedPorts(c.iobase, 8), R.irqNoFlags([c.irq])])),
  ]);
}

/**
 * PIRV(reg): 1 when a PIRQ register routes to a usable IRQ (enable bit clear, IRQ permitted). It mirrors the
 * check the LPC bridge applies when the guest writes the register.
 */
function pirqValidMethod(): A.Aml {
  const r0 = A.ret(A.zero);
  return A.method('PIRV', 1, false, [
    A.ifThen(A.and(A.arg(0), A.byteConst(PIRQ_DISABLE)), [r0]),
    A.and(A.arg(0), A.byteConst(PIRQ_IRQ_MASK), A.local(0)),
    A.ifThen(A.lLess(A.local(0), A.byteConst(3)), [r0]),
    A.ifThen(A.lEqual(A.local(0), A.byteConst(8)), [r0]),
    A.ifThen(A.lEqual(A.local(0), A.byteConst(13)), [r0]),
    A.ret(A.one),
  ]);
}

/**
 * A PCI interrupt link (PNP0C0F, ACPI 6.4 §6.2.13): _CRS reads the current IRQ out of the LPC PIRQ register,
 * _SRS writes the chosen IRQ, _DIS sets the disable bit. Level, active-low, shareable as PCI INTx is.
 */
function linkDevice(link: number): A.Aml {
  const letter = String.fromCharCode(0x40 + link);
  const reg = A.ref(pirqField(link));
  const cb = `CB${link.toString(16).toUpperCase().padStart(2, '0')}`;
  const pciIrq = { level: true, activeLow: true, shared: true };
  return A.device(linkName(link), [
    A.name('_HID', A.eisaId('PNP0C0F')),
    A.name('_UID', A.integer(link)),
    A.method('_STA', 0, false, [
      A.ifThen(A.call('PIRV', [reg]), [A.ret(A.byteConst(0x0b))]),
      A.elseDo([A.ret(A.byteConst(0x09))]),
    ]),
    A.name('_PRS', R.resourceTemplate([R.irq(pciIrq, PIRQ_PERMITTED_IRQS)])),
    A.name(cb, R.resourceTemplate([R.irq(pciIrq, [])])),
    A.createWordField(A.ref(cb), 1, `CIR${letter}`),
    A.method('_CRS', 0, false, [
      A.and(reg, A.byteConst(PIRQ_DISABLE | PIRQ_IRQ_MASK), A.local(0)),
      A.ifThen(A.call('PIRV', [A.local(0)]), [A.shiftLeft(A.one, A.local(0), A.ref(`CIR${letter}`))]),
      A.elseDo([A.store(A.zero, A.ref(`CIR${letter}`))]),
      A.ret(A.ref(cb)),
    ]),
    A.method('_DIS', 0, false, [A.store(A.byteConst(PIRQ_DISABLE), reg)]),
    A.method('_SRS', 1, false, [
      A.createWordField(A.arg(0), 1, `SIR${letter}`),
      A.findSetRightBit(A.ref(`SIR${letter}`), A.local(0)),
      A.store(A.decrement(A.local(0)), reg),
    ]),
  ]);
}

function hpetDevice(): A.Aml {
  return A.device('HPET', [
    A.name('_HID', A.eisaId('PNP0103')),
    A.name('_UID', A.zero),
    A.name('_CRS', R.resourceTemplate([R.memory32Fixed(HPET_BASE, 0x400)])),
  ]);
}

/** QEMU's fw_cfg device (selector 0x510, data 0x511; no DMA interface in bhyve). */
function fwcfgDevice(): A.Aml {
  return A.device('FWCF', [
    A.name('_HID', A.string('QEMU0002')),
    A.name('_STA', A.byteConst(0x0b)),
    A.name('_CRS', R.resourceTemplate([R.fixedPorts(FWCFG_PORT, 2)])),
  ]);
}
