// The Identify data structures (NVMe 1.4 §5.15.2): the controller page, the namespace page, the active
// namespace list and the namespace identification descriptors, built from the options and the disk.

/** PCI vendor FB5D (bhyve's NVMe function) is also the controller's VID and SSVID. */
export const NVME_VENDOR = 0xfb5d;
export const NVME_DEVICE = 0x0a0a;
export const MODEL_NUMBER = 'bhyve-NVMe';
export const FIRMWARE_REVISION = '1.0';
/** MDTS: 2^9 pages of CAP.MPSMIN (4 KiB) = 2 MiB */
export const MDTS = 9;
export const MDTS_BYTES = 4096 * 2 ** MDTS;
/** ACL and AERL, 0's based */
export const ABORT_LIMIT = 3;
export const AER_LIMIT = 3;
/** Warning and critical composite temperature thresholds, kelvin */
export const WCTEMP = 343;
export const CCTEMP = 353;
/** The temperature reported in SMART / Health (kelvin): 27 °C */
export const COMPOSITE_TEMPERATURE = 300;

export interface ControllerIdentity {
  serial: string;
  maxQueues: number;
  dsm: boolean;
  /** a volatile write cache is present (always: Flush works) */
  vwc: boolean;
}

export interface NamespaceIdentity {
  /** LBAs in the namespace */
  lbas: bigint;
  lbaShift: number;
  eui64: bigint;
  /** deallocation frees space (thin provisioning) and deallocated blocks read as zeroes */
  deallocate: boolean;
}

function ascii(page: Uint8Array, off: number, len: number, s: string): void {
  const b = Buffer.from(s.padEnd(len, ' ').slice(0, len), 'latin1');
  page.set(b, off);
}

const hex4 = (n: number): string => n.toString(16).padStart(4, '0');

export function identifyController(c: ControllerIdentity): Uint8Array {
  const p = new Uint8Array(4096);
  const v = new DataView(p.buffer);
  v.setUint16(0, NVME_VENDOR, true); // VID
  v.setUint16(2, NVME_VENDOR, true); // SSVID
  ascii(p, 4, 20, c.serial); // SN
  ascii(p, 24, 40, MODEL_NUMBER); // MN
  ascii(p, 64, 8, FIRMWARE_REVISION); // FR
  p[72] = 4; // RAB: 16 commands
  p.set([0xfc, 0x9c, 0x58], 73); // IEEE OUI 58-9C-FC, least significant byte first
  p[77] = MDTS;
  v.setUint16(78, 0, true); // CNTLID
  v.setUint32(80, 0x00010400, true); // VER
  v.setUint32(92, 1 << 8, true); // OAES: namespace attribute notices
  p[111] = 1; // CNTRLTYPE: I/O controller
  // OACS: Format NVM (bit 1) and Doorbell Buffer Config (bit 8)
  v.setUint16(256, (1 << 1) | (1 << 8), true);
  p[258] = ABORT_LIMIT;
  p[259] = AER_LIMIT;
  p[260] = (1 << 1) | 1; // FRMW: one slot, read-only
  p[261] = 1 << 2; // LPA: extended data (NUMDU, LPOL/LPOU) for Get Log Page
  p[262] = 0; // ELPE: one error log entry (0's based)
  p[263] = 0; // NPSS: one power state
  v.setUint16(266, WCTEMP, true);
  v.setUint16(268, CCTEMP, true);
  p[512] = (6 << 4) | 6; // SQES: 64 bytes
  p[513] = (4 << 4) | 4; // CQES: 16 bytes
  v.setUint32(516, 1, true); // NN: one namespace
  // ONCS: Compare (0), Dataset Management (2), Write Zeroes (3)
  v.setUint16(520, 1 | (c.dsm ? 1 << 2 : 0) | (1 << 3), true);
  p[523] = 1; // FNA: a format applies to all namespaces
  // VWC: present, and Flush with NSID FFFFFFFFh is supported (bits 2:1 = 11b)
  p[525] = c.vwc ? 1 | (3 << 1) : 0;
  p[530] = 1; // NVSCC: the standard vendor-specific command format
  // SUBNQN without a UUID (§7.9): the prefix, then VID, SSVID, serial and model
  const nqn = `nqn.2014-08.org.nvmexpress:${hex4(NVME_VENDOR)}${hex4(NVME_VENDOR)}${c.serial.padEnd(20, ' ')}${MODEL_NUMBER.padEnd(40, ' ')}`;
  p.set(Buffer.from(nqn, 'latin1').subarray(0, 256), 768);
  // Power state 0: 25 W maximum, entry/exit latencies not reported
  v.setUint16(2048, 2500, true);
  return p;
}

export function identifyNamespace(n: NamespaceIdentity): Uint8Array {
  const p = new Uint8Array(4096);
  const v = new DataView(p.buffer);
  v.setBigUint64(0, n.lbas, true); // NSZE
  v.setBigUint64(8, n.lbas, true); // NCAP
  v.setBigUint64(16, n.lbas, true); // NUSE
  p[24] = n.deallocate ? 1 : 0; // NSFEAT: thin provisioning
  p[25] = 0; // NLBAF: one format (0's based)
  p[26] = 0; // FLBAS: format 0, no metadata
  // DLFEAT: deallocated blocks read as zeroes (001b), Write Zeroes may deallocate (bit 3)
  p[33] = n.deallocate ? 1 | (1 << 3) : 0;
  v.setBigUint64(120, n.eui64, false); // EUI64, big-endian
  v.setUint32(128, n.lbaShift << 16, true); // LBAF0: LBADS, MS = 0, RP = 0 (best)
  return p;
}

/** Active NSIDs greater than `after` (the only namespace is 1). */
export function activeNamespaceList(after: number): Uint8Array {
  const p = new Uint8Array(4096);
  if (after < 1) new DataView(p.buffer).setUint32(0, 1, true);
  return p;
}

/** Namespace identification descriptors: the EUI-64 (NIDT 1). */
export function namespaceDescriptors(eui64: bigint): Uint8Array {
  const p = new Uint8Array(4096);
  p[0] = 1; // NIDT: IEEE EUI-64
  p[1] = 8; // NIDL
  new DataView(p.buffer).setBigUint64(4, eui64, false);
  return p;
}
