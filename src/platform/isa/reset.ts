// The reset control register at I/O port 0xCF9 (Intel ICH10 datasheet §13.7.5 "RST_CNT"), which the FADT names as
// the ACPI reset register (value 6). Bit 2 (RST_CPU) starts a reset; bit 1 (SYS_RST) picks hard or soft, which a
// VM treats the same (bhyve-facts §4.9): the run ends with the reset status and the caller restarts it.
import type { Machine } from '../machine.js';

export const RESET_CONTROL_PORT = 0xcf9;
export const RST_CPU = 0x04;
export const SYS_RST = 0x02;

export class ResetControl {
  private value = 0;

  constructor(private readonly machine: Machine) {
    // 0xCF9 is the second byte of the PCI CONFIG_ADDRESS dword at 0xCF8; a dword access there starts at 0xCF8 and
    // belongs to the PCI code, which must claim 0xCF8 as a 1-port range (as bhyve does) so this byte stays ours.
    machine.io.registerPort(RESET_CONTROL_PORT, 1, (write, _port, size, v) => {
      if (size !== 1) return write ? 0 : 0xffff_ffff;
      if (!write) return this.value;
      this.value = v & 0xff & (RST_CPU | SYS_RST | 0x08);
      if (v & RST_CPU) this.machine.suspend('reset');
      return 0;
    });
  }
}
