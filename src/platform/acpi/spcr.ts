// SPCR, the Serial Port Console Redirection table (Microsoft SPCR specification, revision 2 layout):
// COM1 at 0x3F8 on ISA IRQ 4, 115200 8N1, as bhyve publishes it.
import { AccessSize, AddressSpace, TableWriter, sealSdt, writeGas } from './sdt.js';

export const SPCR_SIZE = 80;

export interface SpcrInput {
  iobase: number;
  irq: number;
}

export function buildSpcr(a: SpcrInput): Buffer {
  const w = new TableWriter(SPCR_SIZE);
  w.u8(36, 0); // interface type: full 16550
  writeGas(w, 40, { space: AddressSpace.SystemIO, bitWidth: 8, bitOffset: 0, accessSize: AccessSize.Undefined, address: a.iobase });
  w.u8(52, 0x01); // interrupt type: dual-8259 IRQ
  w.u8(53, a.irq);
  w.u32(54, 0); // no GSI-only interrupt
  w.u8(58, 7); // 115200 baud
  w.u8(59, 0); // no parity
  w.u8(60, 1); // 1 stop bit
  w.u8(61, 0x03); // flow control: DCD and RTS/CTS
  w.u8(62, 2); // terminal type: VT-UTF8
  // Not a PCI device: the spec asks for 0xFFFF in the PCI device and vendor IDs.
  w.u16(64, 0xffff);
  w.u16(66, 0xffff);
  return sealSdt(w, 'SPCR', 2);
}
