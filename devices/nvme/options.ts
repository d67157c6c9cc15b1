// The options of an nvme function (bhyve_config(5) keys as pci_nvme.c reads them): the namespace's backing
// (a block device/file with the block keys, or `ram=MiB`), queue limits, LBA size, serial, EUI-64 and
// Dataset Management. Defaults and clamping follow bhyve (except ioslots, see NVME_DEFAULT_IOSLOTS); bad values get bhyve's one-line message.
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import { cParseInteger } from '../../src/config/cnum.js';
import type { ConfigNode, ConfigTree } from '../../src/config/tree.js';
import { readBlockOptions, type BlockOptions } from '../virtio-blk/options.js';

/** NVME_QUEUES: I/O queue pairs at most (and the default). */
export const NVME_MAX_QUEUES = 16;
/** NVME_MAX_QENTRIES: the default queue size limit (CAP.MQES + 1). */
export const NVME_DEFAULT_QENTRIES = 2048;
/** CAP.MQES is 16 bits wide: no queue can be larger. */
export const NVME_QENTRIES_LIMIT = 65536;
/**
 * Commands in flight per controller when `ioslots` is not given. bhyve's NVME_IOSLOTS is 8, which matches its 8
 * blockif threads; here a slot is an io_uring entry, not a thread, and 8 held a QD32 guest on O_DIRECT to 1.1-1.4x
 * QEMU's nvme where 32 gave 1.9-2.5x (bench/testguest/nvme.ts). The guest cannot see the difference.
 */
export const NVME_DEFAULT_IOSLOTS = 32;
/** The most commands tsbhyve keeps in flight per controller (bhyve has no upper bound; its slots are structs). */
export const NVME_IOSLOTS_LIMIT = 1024;
/** The serial number field of Identify Controller. */
export const NVME_SERIAL_BYTES = 20;
/** The FreeBSD OUI (58-9C-FC) as the top 24 bits of a derived EUI-64. */
const OUI_FREEBSD = 0x589cfcn;

export type DsmMode = 'auto' | 'enable' | 'disable';

export interface NvmeOptions {
  /** the disk; undefined for a RAM namespace */
  block?: BlockOptions;
  /** bytes of a RAM namespace (`ram=MiB`) */
  ramBytes?: number;
  maxQueues: number;
  queueEntries: number;
  ioSlots: number;
  /** `sectsz` when it is one bhyve accepts (512, 4096, 8192), else undefined: the backend's sector size */
  sectorSize?: number;
  serial: string;
  /** undefined: derived from the VM name and PCI address when the namespace is built */
  eui64?: bigint;
  dsm: DsmMode;
}

const fail = (message: string): BhyveError => new BhyveError(ExitStatus.ERROR, message, false);

/** atoi(3): leading blanks, an optional sign, digits; anything else ends the number (0 if none). */
function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  return m ? Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Number(m[1]))) : 0;
}

/** CRC-16 as FreeBSD's crc16(9) computes it (reflected polynomial 0xA001, initial value 0). */
export function crc16(data: Uint8Array, crc = 0): number {
  for (const b of data) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc & 0xffff;
}

/**
 * The EUI-64 of namespace `nsid` when none was given: the FreeBSD OUI, then a CRC-16 of the VM name and
 * the function's PCI address (so two controllers or two VMs differ), then the NSID.
 */
export function defaultEui64(vmName: string, bus: number, slot: number, func: number, nsid = 1): bigint {
  const crc = crc16(Buffer.from(`${vmName}${bus}${slot}${func}`));
  return (OUI_FREEBSD << 40n) | (BigInt(crc) << 16n) | BigInt(nsid & 0xffff);
}

export function readNvmeOptions(
  tree: ConfigTree,
  node: ConfigNode,
  where: { slot: number; func: number },
  warn: (message: string) => void,
): NvmeOptions {
  const get = (k: string): string | undefined => tree.getIn(node, k);
  let maxQueues = NVME_MAX_QUEUES;
  const maxq = get('maxq');
  if (maxq !== undefined) {
    maxQueues = atoi(maxq);
    if (maxQueues <= 0 || maxQueues > NVME_MAX_QUEUES) maxQueues = NVME_MAX_QUEUES;
  }
  let queueEntries = NVME_DEFAULT_QENTRIES;
  const qsz = get('qsz');
  if (qsz !== undefined) {
    queueEntries = atoi(qsz);
    if (queueEntries <= 0) throw fail(`nvme: Invalid qsz option ${queueEntries}`);
    if (queueEntries > NVME_QENTRIES_LIMIT) {
      warn(`nvme: qsz ${queueEntries} is more than a queue can hold; using ${NVME_QENTRIES_LIMIT}`);
      queueEntries = NVME_QENTRIES_LIMIT;
    }
    // A queue of one entry cannot hold a command (full at head == tail + 1).
    if (queueEntries < 2) queueEntries = 2;
  }
  let ioSlots = NVME_DEFAULT_IOSLOTS;
  const ios = get('ioslots');
  if (ios !== undefined) {
    ioSlots = atoi(ios);
    if (ioSlots <= 0) throw fail(`Invalid ioslots option ${ioSlots}`);
    if (ioSlots > NVME_IOSLOTS_LIMIT) {
      warn(`nvme: ioslots ${ioSlots} is more than tsbhyve keeps in flight; using ${NVME_IOSLOTS_LIMIT}`);
      ioSlots = NVME_IOSLOTS_LIMIT;
    }
  }
  let sectorSize: number | undefined;
  const ss = get('sectsz');
  if (ss !== undefined) {
    const n = atoi(ss);
    if (n === 512 || n === 4096 || n === 8192) sectorSize = n;
    else warn(`nvme: sectsz ${ss} is not 512, 4096 or 8192; using the disk's sector size`);
  }
  const ser = get('ser');
  if (ser !== undefined && Buffer.byteLength(ser) > NVME_SERIAL_BYTES) {
    throw fail(`nvme: serial "${ser}" is longer than ${NVME_SERIAL_BYTES} characters`);
  }
  if (ser !== undefined && !/^[\x20-\x7e]*$/.test(ser)) throw fail(`nvme: serial "${ser}" is not printable ASCII`);
  let eui64: bigint | undefined;
  const eui = get('eui64');
  if (eui !== undefined) {
    const r = cParseInteger(eui, 0, 0);
    // strtoull with no end check: a bad string is 0, and 0 means "derive one"
    eui64 = r.ok ? BigInt.asUintN(64, r.value) : 0n;
    if (eui64 === 0n) eui64 = undefined;
  }
  let dsm: DsmMode = 'auto';
  const d = get('dsm');
  if (d !== undefined) {
    if (d !== 'auto' && d !== 'enable' && d !== 'disable') throw fail(`nvme: Invalid dsm option "${d}" (auto, enable or disable)`);
    dsm = d;
  }
  const opts: NvmeOptions = {
    maxQueues,
    queueEntries,
    ioSlots,
    sectorSize,
    serial: ser ?? `NVME-${where.slot}-${where.func}`,
    eui64,
    dsm,
  };
  const ram = get('ram');
  if (ram !== undefined) {
    const r = cParseInteger(ram, 0, 10);
    const mib = r.ok ? Number(r.value) : 0;
    if (!r.ok || mib <= 0 || !Number.isSafeInteger(mib * 2 ** 20)) throw fail('backing store not specified');
    opts.ramBytes = mib * 2 ** 20;
    if (opts.sectorSize === undefined) opts.sectorSize = 4096;
    return opts;
  }
  if (get('path') === undefined) throw fail('backing store not specified');
  opts.block = readBlockOptions(tree, node, 'nvme');
  return opts;
}
