// The IDENTIFY DEVICE data of an AHCI disk port and the IDENTIFY PACKET DEVICE data of a CD port (ACS-3 §7.12
// and §7.13), as 256 little-endian words. The HBA fills in at command time what changes while the VM runs (the
// capacity, the write cache state and the checksum in word 255); everything else is fixed here from the options.

export interface DiskIdentity {
  serial: string;
  firmware: string;
  model: string;
  /** logical sectors */
  sectors: bigint;
  logicalSector: number;
  physicalSector: number;
  /** the backend can deallocate: TRIM is offered */
  trim: boolean;
  /** nominal media rotation rate (word 217): 0 not reported, 1 non-rotating, else RPM */
  rotationRate: number;
  /** NCQ queue depth, 1-32 */
  queueDepth: number;
}

export interface PacketIdentity {
  serial: string;
  firmware: string;
  model: string;
}

/** DATA SET MANAGEMENT payload limit in 512-byte blocks (word 105); native/ahci/hba.cc holds the same limit. */
export const DSM_MAX_BLOCKS = 8;

class Words {
  readonly bytes = new Uint8Array(512);
  private readonly view = new DataView(this.bytes.buffer);
  set(word: number, value: number): void {
    this.view.setUint16(word * 2, value & 0xffff, true);
  }
  /** An ATA string: two characters a word, the first in the high byte, padded with spaces. */
  string(word: number, words: number, s: string): void {
    const padded = s.padEnd(words * 2, ' ');
    for (let i = 0; i < words; i++) this.set(word + i, (padded.charCodeAt(2 * i) << 8) | padded.charCodeAt(2 * i + 1));
  }
  /** A value over consecutive words, least significant word first. */
  wide(word: number, words: number, value: bigint): void {
    for (let i = 0; i < words; i++) this.set(word + i, Number((value >> BigInt(16 * i)) & 0xffffn));
  }
}

/** Words common to both kinds of device: strings, PIO/DMA timing, SATA capabilities, transport version. */
function common(w: Words, id: { serial: string; firmware: string; model: string }): void {
  w.string(10, 10, id.serial);
  w.string(23, 4, id.firmware);
  w.string(27, 20, id.model);
  w.set(53, 0x0006); // words 64-70 and 88 are valid
  w.set(63, 0x0007); // multiword DMA modes 0-2
  w.set(64, 0x0003); // PIO modes 3 and 4
  for (const word of [65, 66, 67, 68]) w.set(word, 120); // cycle times in ns
  w.set(80, 0x03f0); // ATA/ATAPI-4 to ACS-2
  w.set(88, 0x207f); // Ultra DMA modes 0-6 supported, mode 5 selected
  w.set(222, 0x103f); // serial transport, SATA 1.0a to 3.0
}

export function identifyDevice(d: DiskIdentity): Uint8Array {
  const w = new Words();
  const lba28 = d.sectors > 0x0fffffffn ? 0x0fffffffn : d.sectors;
  w.set(0, 0x0040); // fixed device
  w.set(1, 16383);
  w.set(3, 16);
  w.set(6, 63);
  common(w, d);
  w.set(47, 0x8010); // READ/WRITE MULTIPLE: up to 16 sectors
  w.set(49, (1 << 11) | (1 << 10) | (1 << 9) | (1 << 8)); // IORDY, LBA, DMA
  w.set(50, 0x4000);
  w.set(59, 0x0110); // multiple sector setting valid: 16
  w.wide(60, 2, lba28);
  w.set(69, d.trim ? (1 << 14) | (1 << 5) : 0); // deterministic zeros after TRIM
  w.set(75, d.queueDepth - 1);
  w.set(76, (1 << 8) | (1 << 3) | (1 << 2) | (1 << 1)); // NCQ; SATA Gen1-3
  w.set(82, (1 << 14) | (1 << 6) | (1 << 5)); // NOP, look-ahead, write cache
  w.set(83, (1 << 14) | (1 << 13) | (1 << 12) | (1 << 10)); // FLUSH CACHE EXT, FLUSH CACHE, 48-bit
  w.set(84, (1 << 14) | (1 << 6)); // WRITE DMA FUA EXT
  w.set(85, (1 << 14) | (1 << 6) | (1 << 5)); // enabled: as word 82 (write cache bit follows SET FEATURES)
  w.set(86, (1 << 13) | (1 << 12) | (1 << 10));
  w.set(87, (1 << 14) | (1 << 6));
  w.wide(100, 4, d.sectors);
  if (d.trim) w.set(105, DSM_MAX_BLOCKS);
  const perPhysical = Math.max(1, d.physicalSector / d.logicalSector);
  let w106 = 1 << 14;
  if (perPhysical > 1) w106 |= (1 << 13) | Math.log2(perPhysical);
  if (d.logicalSector > 512) {
    w106 |= 1 << 12; // logical sectors longer than 256 words: their size is in words 117-118
    w.wide(117, 2, BigInt(d.logicalSector / 2));
  }
  w.set(106, w106);
  w.set(169, d.trim ? 1 : 0);
  w.set(217, d.rotationRate);
  return w.bytes;
}

export function identifyPacketDevice(d: PacketIdentity): Uint8Array {
  const w = new Words();
  // ATAPI, CD-ROM, removable, DRQ within 50 us, 12-byte packets
  w.set(0, (2 << 14) | (5 << 8) | (1 << 7) | (2 << 5));
  common(w, d);
  w.set(49, (1 << 9) | (1 << 8)); // LBA, DMA
  w.set(76, (1 << 3) | (1 << 2) | (1 << 1));
  w.set(82, (1 << 14) | (1 << 4)); // NOP, PACKET
  w.set(83, 1 << 14);
  w.set(84, 1 << 14);
  w.set(85, (1 << 14) | (1 << 4));
  w.set(87, 1 << 14);
  return w.bytes;
}
