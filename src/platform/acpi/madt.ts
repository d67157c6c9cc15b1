// MADT, the Multiple APIC Description Table (ACPI 6.4 §5.2.12): one local APIC per vCPU, bhyve's single
// I/O APIC, the two interrupt source overrides and the LINT1 NMI (bhyve-facts §4.7).
import { IOAPIC_BASE, LAPIC_BASE } from '../../vm/memmap.js';
import { PM } from './fadt.js';
import { TableWriter, sealSdt } from './sdt.js';

export interface MadtInput {
  ncpus: number;
  ioapicId: number;
}

/** MPS INTI flags (§5.2.12.5): polarity in bits 0-1, trigger mode in bits 2-3. */
const ACTIVE_HIGH = 0x1;
const ACTIVE_LOW = 0x3;
const EDGE = 0x1 << 2;
const LEVEL = 0x3 << 2;

/** Processor Local APIC entries carry an 8-bit APIC ID; 0xFF is the broadcast ID. */
export const MADT_MAX_CPUS = 255;

export function buildMadt(a: MadtInput): Buffer {
  if (!Number.isInteger(a.ncpus) || a.ncpus < 1 || a.ncpus > MADT_MAX_CPUS) {
    throw new RangeError(`MADT: vCPU count ${a.ncpus} outside 1..${MADT_MAX_CPUS}`);
  }
  const size = 44 + 8 * a.ncpus + 12 + 2 * 10 + 6;
  const w = new TableWriter(size);
  w.u32(36, LAPIC_BASE);
  w.u32(40, 1); // PCAT_COMPAT: dual 8259s are present and must be masked when using APIC mode
  let o = 44;
  for (let i = 0; i < a.ncpus; i++) {
    // Processor Local APIC: ACPI processor UID = APIC ID = vCPU index, enabled.
    w.u8(o, 0);
    w.u8(o + 1, 8);
    w.u8(o + 2, i);
    w.u8(o + 3, i);
    w.u32(o + 4, 1);
    o += 8;
  }
  // I/O APIC: GSIs 0.. map to its pins.
  w.u8(o, 1);
  w.u8(o + 1, 12);
  w.u8(o + 2, a.ioapicId);
  w.u32(o + 4, IOAPIC_BASE);
  w.u32(o + 8, 0);
  o += 12;
  // ISA IRQ 0 (the PIT) arrives on pin 2, edge/high as ISA.
  o = override(w, o, 0, 2, ACTIVE_HIGH | EDGE);
  // The SCI is level-triggered, active-low (FADT SCI_INT).
  o = override(w, o, PM.sciIrq, PM.sciIrq, ACTIVE_LOW | LEVEL);
  // Local APIC NMI on LINT1 of every processor (UID 0xFF).
  w.u8(o, 4);
  w.u8(o + 1, 6);
  w.u8(o + 2, 0xff);
  w.u16(o + 3, ACTIVE_HIGH | EDGE);
  w.u8(o + 5, 1);
  return sealSdt(w, 'APIC', 1);
}

function override(w: TableWriter, o: number, source: number, gsi: number, flags: number): number {
  w.u8(o, 2);
  w.u8(o + 1, 10);
  w.u8(o + 2, 0); // bus: ISA
  w.u8(o + 3, source);
  w.u32(o + 4, gsi);
  w.u16(o + 8, flags);
  return o + 10;
}
