// HPET description table (IA-PC HPET specification 1.0a §3.2.4): the timer block's ID register value and
// its MMIO address.
import { HPET_BASE } from '../../vm/memmap.js';
import { AddressSpace, TableWriter, sealSdt, writeGas } from './sdt.js';

export const HPET_TABLE_SIZE = 56;

/** `capabilities` is the low 32 bits of the HPET's General Capabilities and ID register. */
export function buildHpet(capabilities: number): Buffer {
  const w = new TableWriter(HPET_TABLE_SIZE);
  w.u32(36, capabilities >>> 0);
  writeGas(w, 40, { space: AddressSpace.SystemMemory, bitWidth: 0, bitOffset: 0, accessSize: 0, address: HPET_BASE });
  w.u8(52, 0); // HPET number
  w.u16(53, 0); // minimum clock tick in periodic mode: no constraint
  w.u8(55, 1); // page protection: 4 KiB
  return sealSdt(w, 'HPET', 1);
}
