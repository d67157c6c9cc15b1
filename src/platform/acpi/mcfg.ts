// MCFG (PCI Firmware Specification 3.2 §4.1.2): one ECAM allocation for segment 0, buses 0-255.
import { ECAM_BASE } from '../../vm/memmap.js';
import { TableWriter, sealSdt } from './sdt.js';

export const MCFG_SIZE = 60;

export function buildMcfg(): Buffer {
  const w = new TableWriter(MCFG_SIZE);
  w.u64(44, ECAM_BASE);
  w.u16(52, 0); // segment group
  w.u8(54, 0); // start bus
  w.u8(55, 255); // end bus
  return sealSdt(w, 'MCFG', 1);
}
