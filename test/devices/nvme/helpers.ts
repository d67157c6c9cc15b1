// Shared set-up for the nvme tests: a disk file in a temporary directory, a machine with the controller in
// slot 4 brought up as Linux does (admin queue, MSI-X, I/O queue pairs), and I/O command builders.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nvmeMachine, type NvmeDriver } from '../../harness/nvme-driver.js';
import type { VirtioTestMachine } from '../../harness/virtio-driver.js';

export const OP_FLUSH = 0x00;
export const OP_WRITE = 0x01;
export const OP_READ = 0x02;
export const OP_COMPARE = 0x05;
export const OP_WRITE_ZEROES = 0x08;
export const OP_DSM = 0x09;

/** The byte at `off` of the initial disk pattern. */
export const pattern = (off: number): number => (off * 7 + (off >> 9)) & 0xff;

export interface NvmeRig {
  m: VirtioTestMachine;
  drv: NvmeDriver;
  disk: string;
  dir: string;
  warnings: string[];
  close(): void;
}

export interface NvmeRigOptions {
  /** disk size in bytes (default 1 MiB), filled with pattern() unless `sparse` */
  size?: number;
  sparse?: boolean;
  /** options after the path (or the whole spec after `nvme,` when `spec` is set) */
  opts?: string;
  /** replaces `PATH[,opts]` entirely, e.g. 'ram=4' */
  spec?: string;
  /** bring the controller up: enable, MSI-X, and this many I/O queue pairs (default 1; 0 = admin only) */
  queues?: number;
  /** leave the controller disabled */
  raw?: boolean;
  entries?: number;
  msix?: boolean;
}

export function rig(o: NvmeRigOptions = {}): NvmeRig {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-nvme-'));
  const disk = join(dir, 'disk.img');
  const size = o.size ?? 1 << 20;
  const b = Buffer.alloc(size);
  if (!o.sparse) for (let i = 0; i < size; i++) b[i] = pattern(i);
  writeFileSync(disk, b);
  const spec = o.spec ?? `${disk}${o.opts ? ',' + o.opts : ''}`;
  const { m, drv, warnings } = nvmeMachine(['-s', `4,nvme,${spec}`], 4);
  const r: NvmeRig = {
    m, drv, disk, dir, warnings,
    close() {
      m.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (o.raw) return r;
  try {
    if (o.msix !== false) drv.enableMsix(drv.controller.vectors);
    const csts = drv.enable();
    if ((csts & 1) !== 1) throw new Error(`controller not ready: CSTS 0x${csts.toString(16)}; ${warnings.join('; ')}`);
    for (let q = 1; q <= (o.queues ?? 1); q++) {
      const { cq, sq } = drv.createQueuePair(q, o.entries ?? 64, o.msix === false ? 0 : q);
      if (cq.status !== 0 || sq?.status !== 0) throw new Error(`queue ${q}: CQ 0x${cq.status.toString(16)} SQ 0x${sq?.status.toString(16)}`);
    }
  } catch (e) {
    r.close();
    throw e;
  }
  return r;
}

/** Read or Write CDW10-12: starting LBA and 0's based block count (plus flag bits in CDW12). */
export const rw = (slba: number | bigint, nlb: number, cdw12Flags = 0): number[] => {
  const s = BigInt(slba);
  return [Number(s & 0xffffffffn), Number(s >> 32n), ((nlb - 1) & 0xffff) | cdw12Flags];
};

/** Reads `blocks` LBAs at `slba` into a fresh PRP buffer; returns the completion and the data. */
export async function readBlocks(r: NvmeRig, qid: number, slba: number, blocks: number, lba = 512, offset = 0) {
  const buf = r.drv.buffer(blocks * lba, offset);
  const c = await r.drv.ioCmd(qid, { opcode: OP_READ, nsid: 1, prp1: buf.prp1, prp2: buf.prp2, cdw: rw(slba, blocks) });
  return { c, data: r.drv.gather(buf, blocks * lba) };
}

export async function writeBlocks(r: NvmeRig, qid: number, slba: number, data: Uint8Array, lba = 512, offset = 0, flags = 0) {
  const buf = r.drv.buffer(data.length, offset);
  r.drv.fill(buf, data);
  return r.drv.ioCmd(qid, { opcode: OP_WRITE, nsid: 1, prp1: buf.prp1, prp2: buf.prp2, cdw: rw(slba, data.length / lba, flags) });
}
