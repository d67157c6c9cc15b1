// struct virtio_blk_config (virtio 1.2 §5.2.4) as this device fills it, and the feature bits that go with it.
import { bit, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../virtio/constants.js';

// §5.2.3 feature bits
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_GEOMETRY = 4;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_TOPOLOGY = 10;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

/** Byte offsets in the configuration structure. */
export const BLK_CFG = {
  capacity: 0,
  sizeMax: 8,
  segMax: 12,
  geometry: 16,
  blkSize: 20,
  physicalBlockExp: 24,
  alignmentOffset: 25,
  minIoSize: 26,
  optIoSize: 28,
  writeback: 32,
  numQueues: 34,
  maxDiscardSectors: 36,
  maxDiscardSeg: 40,
  discardSectorAlignment: 44,
  maxWriteZeroesSectors: 48,
  maxWriteZeroesSeg: 52,
  writeZeroesMayUnmap: 56,
} as const;
export const BLK_CONFIG_SIZE = 60;

/** bhyve's ring size and segment limit (pci_virtio_block.c VTBLK_RINGSZ, VTBLK_MAXSEGS). */
export const VTBLK_RINGSZ = 128;
export const VTBLK_MAXSEGS = 126;
/** Discard and write-zeroes limits: one range per request of at most 16 MiB (bhyve's discard limits). */
export const VTBLK_MAX_DISCARD_SECT = (16 << 20) / 512;
export const VTBLK_MAX_DISCARD_SEG = 1;

export interface BlkGeometry {
  /** bytes */
  size: number;
  logicalSector: number;
  physicalSector: number;
  readOnly: boolean;
  /** discard and write-zeroes are offered */
  canDelete: boolean;
}

export function blkFeatures(g: BlkGeometry): number {
  let f = bit(VIRTIO_BLK_F_SEG_MAX) | bit(VIRTIO_BLK_F_BLK_SIZE) | bit(VIRTIO_BLK_F_FLUSH) | bit(VIRTIO_BLK_F_TOPOLOGY);
  f |= bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_RING_F_EVENT_IDX);
  if (g.readOnly) f |= bit(VIRTIO_BLK_F_RO);
  if (g.canDelete) f |= bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES);
  return f >>> 0;
}

export function blkConfigBytes(g: BlkGeometry): Uint8Array {
  const b = new Uint8Array(BLK_CONFIG_SIZE);
  const dv = new DataView(b.buffer);
  // capacity is in 512-byte sectors whatever the logical block size (§5.2.4).
  dv.setBigUint64(BLK_CFG.capacity, BigInt(Math.floor(g.size / 512)), true);
  dv.setUint32(BLK_CFG.segMax, VTBLK_MAXSEGS, true);
  dv.setUint32(BLK_CFG.blkSize, g.logicalSector, true);
  // topology: physical block = 2^exp logical blocks (§5.2.4)
  b[BLK_CFG.physicalBlockExp] = Math.log2(Math.max(1, g.physicalSector / g.logicalSector));
  b[BLK_CFG.alignmentOffset] = 0;
  dv.setUint16(BLK_CFG.numQueues, 1, true);
  if (g.canDelete) {
    dv.setUint32(BLK_CFG.maxDiscardSectors, VTBLK_MAX_DISCARD_SECT, true);
    dv.setUint32(BLK_CFG.maxDiscardSeg, VTBLK_MAX_DISCARD_SEG, true);
    dv.setUint32(BLK_CFG.discardSectorAlignment, Math.max(g.logicalSector, g.physicalSector) / 512, true);
    dv.setUint32(BLK_CFG.maxWriteZeroesSectors, VTBLK_MAX_DISCARD_SECT, true);
    dv.setUint32(BLK_CFG.maxWriteZeroesSeg, VTBLK_MAX_DISCARD_SEG, true);
    b[BLK_CFG.writeZeroesMayUnmap] = 1;
  }
  return b;
}
