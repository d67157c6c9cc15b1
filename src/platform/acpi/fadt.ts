// FADT, the Fixed ACPI Description Table (ACPI 6.4 §5.2.9): where the PM register blocks, the SCI, the SMI
// command port and the reset register live. Values are bhyve's (amd64/pm.c, acpi.c), see bhyve-facts §4.7.
import { AccessSize, TableWriter, ioGas, sealSdt, writeGas } from './sdt.js';

/** ACPI 6.0 and later FADT size, up to and including the Hypervisor Vendor Identity. */
export const FADT_SIZE = 276;
export const FADT_REVISION = 6;

/** The fixed I/O map of bhyve's ACPI hardware (bhyve-facts §4.10). */
export const PM = {
  sciIrq: 9,
  smiCmd: 0xb2,
  acpiEnable: 0xa0,
  acpiDisable: 0xa1,
  pm1aEvt: 0x400,
  pm1aCnt: 0x404,
  pmTimer: 0x408,
  gpe0: 0x40c,
  gpe0Length: 2,
  resetPort: 0xcf9,
  resetValue: 6,
  /** CMOS index of the century byte. */
  century: 0x32,
} as const;

/** IA-PC boot architecture flags (§5.2.9.3): no VGA, ASPM not to be enabled by the OS. */
const BOOT_NO_VGA = 1 << 2;
const BOOT_NO_ASPM = 1 << 4;

/** Fixed feature flags (§5.2.9, Table 5.10). */
const FLAGS =
  (1 << 0) | // WBINVD works
  (1 << 2) | // C1 supported on all processors
  (1 << 5) | // SLP_BUTTON: no fixed-feature sleep button
  (1 << 8) | // TMR_VAL_EXT: the PM timer is 32 bits wide
  (1 << 10) | // RESET_REG_SUP
  (1 << 12) | // HEADLESS: no local video or input devices are required
  (1 << 19); // FORCE_APIC_PHYSICAL_DESTINATION_MODE

export interface FadtInput {
  facs: number;
  dsdt: number;
}

/** Byte offsets of the FADT's pointer fields, for the fw_cfg table loader. */
export const FADT_POINTERS = [
  { offset: 36, size: 4, target: 'FACS' },
  { offset: 40, size: 4, target: 'DSDT' },
  { offset: 132, size: 8, target: 'FACS' },
  { offset: 140, size: 8, target: 'DSDT' },
] as const;

export function buildFadt(a: FadtInput): Buffer {
  const w = new TableWriter(FADT_SIZE);
  w.u32(36, a.facs);
  w.u32(40, a.dsdt);
  w.u8(45, 0); // preferred PM profile: unspecified
  w.u16(46, PM.sciIrq);
  w.u32(48, PM.smiCmd);
  w.u8(52, PM.acpiEnable);
  w.u8(53, PM.acpiDisable);
  w.u32(56, PM.pm1aEvt);
  w.u32(64, PM.pm1aCnt);
  w.u32(76, PM.pmTimer);
  w.u32(80, PM.gpe0);
  w.u8(88, 4); // PM1_EVT_LEN: status + enable, 2 bytes each
  w.u8(89, 2); // PM1_CNT_LEN
  w.u8(91, 4); // PM_TMR_LEN
  w.u8(92, PM.gpe0Length);
  w.u8(108, PM.century);
  w.u16(109, BOOT_NO_VGA | BOOT_NO_ASPM);
  w.u32(112, FLAGS);
  writeGas(w, 116, ioGas(PM.resetPort, 8, AccessSize.Byte));
  w.u8(128, PM.resetValue);
  w.u8(131, 0); // FADT minor version: ACPI 6.0
  w.u64(132, a.facs);
  w.u64(140, a.dsdt);
  writeGas(w, 148, ioGas(PM.pm1aEvt, 32, AccessSize.Word));
  writeGas(w, 172, ioGas(PM.pm1aCnt, 16, AccessSize.Word));
  writeGas(w, 208, ioGas(PM.pmTimer, 32, AccessSize.DWord));
  writeGas(w, 220, ioGas(PM.gpe0, PM.gpe0Length * 8, AccessSize.Byte));
  // PM1b, PM2, GPE1 and the sleep control/status registers stay all-zero: not implemented.
  return sealSdt(w, 'FACP', FADT_REVISION);
}
