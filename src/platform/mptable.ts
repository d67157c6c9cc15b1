// The Intel MultiProcessor Specification 1.4 table bhyve places at 0xF0000 (amd64/mptbl.c): the floating
// pointer (§4.1), the configuration table header (§4.2) and its base entries (§4.3) — processors, the PCI
// and ISA buses, the I/O APIC, I/O interrupt assignments for the 16 ISA IRQs and every routed PCI INTx, and
// the two local interrupts (LINT0 ExtINT, LINT1 NMI).
import { IOAPIC_BASE, LAPIC_BASE, MPTABLE_BASE } from '../vm/memmap.js';

export interface MpIntx {
  bus: number;
  slot: number;
  /** 1 = INTA .. 4 = INTD */
  pin: number;
  /** I/O APIC input */
  gsi: number;
}

export interface MpTableInput {
  ncpus: number;
  ioapicId: number;
  /** Every PCI bus that has devices; the MP table can only describe bus 0. */
  pciBuses: readonly number[];
  intx: readonly MpIntx[];
  sciIrq: number;
}

export class MpTableError extends Error {
  override name = 'MpTableError';
}

/** The floating pointer is followed by at most 64 KiB of configuration table (bhyve's MPTABLE_MAX_LENGTH). */
export const MPTABLE_MAX_LENGTH = 0x1_0000 + 16;
const FLOATING_SIZE = 16;
const HEADER_SIZE = 44;
const LAPIC_VERSION = 0x10;
const IOAPIC_VERSION = 0x11;
/** Bus IDs as bhyve numbers them: PCI bus 0 and one ISA bus. */
export const MP_PCI_BUS = 0;
export const MP_ISA_BUS = 1;

// Entry types (§4.3) and I/O interrupt types and flags (Table 4-10/4-11).
const ENTRY_PROCESSOR = 0;
const ENTRY_BUS = 1;
const ENTRY_IOAPIC = 2;
const ENTRY_IOINT = 3;
const ENTRY_LOCALINT = 4;
const INT_INT = 0;
const INT_NMI = 1;
const INT_EXTINT = 3;
const POLARITY_ACTIVE_LOW = 0x3;
const TRIGGER_LEVEL = 0x3 << 2;

/** Processor signature and CPUID feature flags bhyve reports (family 6 model 26 stepping 5, an i7). */
const CPU_SIGNATURE = (6 << 8) | (26 << 4) | 5;
const CPU_FEATURES = 0xbfebfbff;

const sum8 = (b: Uint8Array): number => b.reduce((s, x) => (s + x) & 0xff, 0);

/** Floating pointer plus configuration table, to be written at `base` (0xF0000). */
export function buildMpTable(input: MpTableInput, base = MPTABLE_BASE): Buffer {
  if (!Number.isInteger(input.ncpus) || input.ncpus < 1 || input.ncpus > 255) {
    throw new MpTableError(`MP table: vCPU count ${input.ncpus} outside 1..255`);
  }
  // MP spec 1.4 has one PCI hierarchy per bus entry but no way to say which root bridge a bus hangs off;
  // bhyve refuses rather than describe it wrongly.
  if (input.pciBuses.some((b) => b !== 0) || input.intx.some((r) => r.bus !== 0)) {
    throw new MpTableError('MPtable is incompatible with multiple PCI hierarchies; disable it with x86.mptable=false (-Y)');
  }
  const intx = [...input.intx].sort((a, b) => a.slot - b.slot || a.pin - b.pin);
  const entries: Buffer[] = [];
  let count = 0;
  const add = (b: Buffer): void => {
    entries.push(b);
    count++;
  };

  for (let i = 0; i < input.ncpus; i++) {
    const e = Buffer.alloc(20);
    e.writeUInt8(ENTRY_PROCESSOR, 0);
    e.writeUInt8(i, 1); // local APIC ID = vCPU index
    e.writeUInt8(LAPIC_VERSION, 2);
    e.writeUInt8(1 | (i === 0 ? 2 : 0), 3); // enabled; the BSP is vCPU 0
    e.writeUInt32LE(CPU_SIGNATURE, 4);
    e.writeUInt32LE(CPU_FEATURES, 8);
    add(e);
  }
  for (const [id, name] of [
    [MP_PCI_BUS, 'PCI'],
    [MP_ISA_BUS, 'ISA'],
  ] as const) {
    const e = Buffer.alloc(8);
    e.writeUInt8(ENTRY_BUS, 0);
    e.writeUInt8(id, 1);
    e.write(name.padEnd(6, ' '), 2, 6, 'latin1');
    add(e);
  }
  {
    const e = Buffer.alloc(8);
    e.writeUInt8(ENTRY_IOAPIC, 0);
    e.writeUInt8(input.ioapicId, 1);
    e.writeUInt8(IOAPIC_VERSION, 2);
    e.writeUInt8(1, 3); // usable
    e.writeUInt32LE(IOAPIC_BASE, 4);
    add(e);
  }
  const ioint = (type: number, flags: number, srcBus: number, srcIrq: number, pin: number): Buffer => {
    const e = Buffer.alloc(8);
    e.writeUInt8(ENTRY_IOINT, 0);
    e.writeUInt8(type, 1);
    e.writeUInt16LE(flags, 2);
    e.writeUInt8(srcBus, 4);
    e.writeUInt8(srcIrq, 5);
    e.writeUInt8(input.ioapicId, 6);
    e.writeUInt8(pin, 7);
    return e;
  };
  // The first 16 I/O APIC pins follow the MP spec's default configuration (§5.3): pin 0 is ExtINT, ISA
  // IRQ 0 arrives on pin 2, the SCI is level/active-low, every other IRQ maps to the pin of its number.
  for (let pin = 0; pin < 16; pin++) {
    if (pin === 0) add(ioint(INT_EXTINT, 0, MP_ISA_BUS, 0, 0));
    else if (pin === 2) add(ioint(INT_INT, 0, MP_ISA_BUS, 0, 2));
    else if (pin === input.sciIrq) add(ioint(INT_INT, POLARITY_ACTIVE_LOW | TRIGGER_LEVEL, MP_ISA_BUS, pin, pin));
    else add(ioint(INT_INT, 0, MP_ISA_BUS, pin, pin));
  }
  // PCI source IRQs encode the device in bits 6:2 and the pin (INTA = 0) in bits 1:0 (§D.3). Polarity and
  // trigger "conform to the bus": level, active-low for PCI.
  for (const r of intx) add(ioint(INT_INT, 0, r.bus, (r.slot << 2) | (r.pin - 1), r.gsi));
  for (const [type, lint] of [
    [INT_EXTINT, 0],
    [INT_NMI, 1],
  ] as const) {
    const e = Buffer.alloc(8);
    e.writeUInt8(ENTRY_LOCALINT, 0);
    e.writeUInt8(type, 1);
    e.writeUInt8(0, 4);
    e.writeUInt8(0, 5);
    e.writeUInt8(0xff, 6); // every local APIC
    e.writeUInt8(lint, 7);
    add(e);
  }

  const body = Buffer.concat(entries);
  const header = Buffer.alloc(HEADER_SIZE);
  header.write('PCMP', 0, 'latin1');
  header.writeUInt16LE(HEADER_SIZE + body.length, 4);
  header.writeUInt8(4, 6); // spec revision 1.4
  header.write('BHyVe   ', 8, 8, 'latin1');
  header.write('Hypervisor  ', 16, 12, 'latin1');
  header.writeUInt16LE(count, 34);
  header.writeUInt32LE(LAPIC_BASE, 36);
  const table = Buffer.concat([header, body]);
  if (FLOATING_SIZE + table.length > MPTABLE_MAX_LENGTH) throw new MpTableError(`MP table too large (${table.length} bytes)`);
  table.writeUInt8((0x100 - sum8(table)) & 0xff, 7);

  const fp = Buffer.alloc(FLOATING_SIZE);
  fp.write('_MP_', 0, 'latin1');
  fp.writeUInt32LE(base + FLOATING_SIZE, 4);
  fp.writeUInt8(1, 8); // length in 16-byte paragraphs
  fp.writeUInt8(4, 9);
  // Feature byte 1 = 0: a configuration table is present (no default configuration).
  fp.writeUInt8((0x100 - sum8(fp)) & 0xff, 10);
  return Buffer.concat([fp, table]);
}
