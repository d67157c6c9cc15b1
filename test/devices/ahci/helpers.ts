// Shared set-up for the ahci tests: disk and disc files in a temporary directory, a machine with the controller
// in slot 4, the HBA reset and the ports started as Linux does it, and the ATA and ATAPI command builders.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ahciMachine, type AhciDriver, type AtaCommand, type CommandResult } from '../../harness/ahci-driver.js';
import type { VirtioTestMachine } from '../../harness/virtio-driver.js';

/** The byte at `off` of the initial disk pattern. */
export const pattern = (off: number): number => (off * 7 + (off >> 9)) & 0xff;

export interface AhciRig {
  m: VirtioTestMachine;
  drv: AhciDriver;
  dir: string;
  files: string[];
  warnings: string[];
  close(): void;
}

export interface PortSpec {
  type: 'hd' | 'cd';
  /** file size in bytes (default 1 MiB), filled with pattern() unless sparse */
  size?: number;
  sparse?: boolean;
  opts?: string;
}

/**
 * `ports` become `-s 4,ahci,hd:F[,opts],cd:F[,opts],...`; the HBA is reset and each port started unless `raw`.
 * `spec` replaces the whole device argument (with FILE0, FILE1... for the files).
 */
export function rig(ports: PortSpec[] = [{ type: 'hd' }], o: { raw?: boolean; spec?: string; msi?: boolean } = {}): AhciRig {
  const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-ahci-'));
  const files = ports.map((p, i) => {
    const file = join(dir, `${p.type}${i}.img`);
    const size = p.size ?? 1 << 20;
    const b = Buffer.alloc(size);
    if (!p.sparse) for (let j = 0; j < size; j++) b[j] = pattern(j);
    writeFileSync(file, b);
    return file;
  });
  const arg = o.spec
    ? files.reduce((s, f, i) => s.replace(`FILE${i}`, f), o.spec)
    : `4,ahci,${ports.map((p, i) => `${p.type}:${files[i]}${p.opts ? ',' + p.opts : ''}`).join(',')}`;
  const { m, drv, warnings } = ahciMachine(['-s', arg], 4);
  const r: AhciRig = {
    m, drv, dir, files, warnings,
    close() {
      m.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (o.raw) return r;
  try {
    if (o.msi !== false) drv.enableMsi();
    drv.reset();
    for (let p = 0; p < ports.length; p++) drv.startPort(p);
  } catch (e) {
    r.close();
    throw e;
  }
  return r;
}

export const ATA_READ_DMA_EXT = 0x25;
export const ATA_WRITE_DMA_EXT = 0x35;
export const ATA_READ_FPDMA = 0x60;
export const ATA_WRITE_FPDMA = 0x61;
export const ATA_IDENTIFY = 0xec;
export const ATA_IDENTIFY_PACKET = 0xa1;
export const ATA_FLUSH_EXT = 0xea;
export const ATA_DSM = 0x06;
export const ATA_SET_FEATURES = 0xef;
export const ATA_READ_LOG_EXT = 0x2f;
export const ATA_PACKET = 0xa0;

/**
 * Lets reports from the native workers (MSI and INTx changes reach JavaScript through the event loop) arrive:
 * resolves once `done()` holds, or after `ms` regardless (for checks that something did not happen).
 */
export async function settle(done: () => boolean = () => false, ms = 200): Promise<void> {
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 2));
}

/** IDENTIFY data as words. */
export const words = (b: Uint8Array): number[] => Array.from({ length: 256 }, (_, i) => b[2 * i]! | (b[2 * i + 1]! << 8));
/** An ATA string from IDENTIFY words (two characters a word, high byte first), trimmed. */
export function ataString(w: number[], first: number, count: number): string {
  let s = '';
  for (let i = first; i < first + count; i++) s += String.fromCharCode(w[i]! >> 8, w[i]! & 0xff);
  return s.trimEnd();
}

/** Runs IDENTIFY (or IDENTIFY PACKET) DEVICE on `port`; the data and the result. */
export async function identify(drv: AhciDriver, port: number, command = ATA_IDENTIFY): Promise<{ r: CommandResult; data: Uint8Array }> {
  const buf = drv.buffer(512);
  drv.m.memory.bytes.fill(0, buf, buf + 512);
  const r = await drv.command(port, { command, prdt: [{ addr: buf, len: 512 }] });
  return { r, data: drv.bytes(buf, 512) };
}

/** An ATAPI packet command with a data-in buffer of `len` bytes. */
export async function packet(drv: AhciDriver, port: number, cdb: number[], len = 0, slot = 0): Promise<{ r: CommandResult; data: Uint8Array }> {
  const buf = len ? drv.buffer(len) : 0;
  if (len) drv.m.memory.bytes.fill(0xee, buf, buf + len);
  const c: AtaCommand = { command: ATA_PACKET, features: 1, cdb: [...cdb, ...new Array(12 - cdb.length).fill(0)], prdt: len ? [{ addr: buf, len }] : [] };
  const r = await drv.command(port, c, slot);
  return { r, data: len ? drv.bytes(buf, len) : new Uint8Array() };
}

/**
 * REQUEST SENSE: [sense key, ASC, ASCQ]. A CHECK CONDITION stops the port like any task file error, so this first
 * restarts it, as Linux's error handler does before it asks for the sense.
 */
export async function sense(drv: AhciDriver, port: number): Promise<[number, number, number]> {
  drv.recover(port);
  const { data } = await packet(drv, port, [0x03, 0, 0, 0, 18], 18);
  return [data[2]! & 0xf, data[12]!, data[13]!];
}
