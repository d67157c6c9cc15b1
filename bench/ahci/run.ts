// AHCI command path without a VM: the guest-driver harness (test/harness/ahci-driver.ts) resets the HBA, starts the
// disk port with MSI and keeps `depth` 4 KiB NCQ commands (READ/WRITE FPDMA QUEUED, one per command slot) in flight
// at random LBAs of one file; each completion is resubmitted at once, as fio does at its iodepth. The port's native
// worker runs them and signals MSI; the pump reaps on each interrupt from PxSACT, as Linux's ahci driver does, and
// issues the resubmissions with one PxSACT and one PxCI write. Host fio measures the same pattern on the same file
// with io_uring at the same depth and with psync (one request at a time). Prints both and the ratio tsbhyve / fio.
// Usage: node --import tsx bench/ahci/run.ts [fileMiB=64] [depth=32] [fioSeconds=5] [portopts]
//   portopts: extra options of the hd: port, comma-separated (e.g. nocache)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ahciMachine, IS, PxIS, PxSACT } from '../../test/harness/ahci-driver.js';
import { directIoDir } from '../../firmware/testguest/disk.js';
import { runFio } from '../fio.js';
import { settleDisk } from '../disk.js';
import { report } from '../report.js';
import { compareWithFio, lcg, measurePump, onMsi, type RequestPump } from '../no-vm.js';

const fileMiB = Number(process.argv[2] ?? 64);
const depth = Number(process.argv[3] ?? 32);
const fioSeconds = Number(process.argv[4] ?? 5);
const portOpts = process.argv[5] ?? '';
const noCache = portOpts.split(',').includes('nocache');
const BS = 4096;
const SECTORS_PER_IO = BS / 512;
if (!(depth >= 1 && depth <= 32)) throw new Error('depth must be 1..32 (the command slots)');

const dir = noCache ? directIoDir('tsbhyve-bench-ahci-') : mkdtempSync(join('/tmp', 'tsbhyve-bench-ahci-'));
const disk = join(dir, 'disk.img');
writeFileSync(disk, randomBytes(fileMiB << 20));
/** Each measurement starts with the file's pages clean (a write to a page under writeback waits for it). */
/** Each measurement starts with the file's pages clean (bench/disk.ts). */
const settle = (): void => settleDisk(disk);
settle();

const { m, drv } = ahciMachine(['-s', `4,ahci,hd:${disk}${portOpts ? ',' + portOpts : ''}`], 4, { memorySize: 64 << 20 });
drv.enableMsi();
drv.reset();
drv.startPort(0);
const ios = (fileMiB << 20) / BS;
const buffers = Array.from({ length: depth }, () => drv.buffer(BS));
const rnd = lcg();
let wake: (() => void) | undefined;
const irqs = onMsi(m, 0x50, () => wake?.());

/** Keeps `depth` commands in flight; a benchmark operation is `depth` more completions. */
class Pump implements RequestPump {
  private write = false;
  private running = false;
  private completed = 0;
  private outstanding = 0; // slot bits issued and not yet seen complete
  private waiter: { target: number; resolve: () => void } | undefined;

  start(write: boolean): void {
    this.write = write;
    this.running = true;
    const all = Array.from({ length: depth }, (_, s) => s);
    for (const s of all) this.build(s);
    this.issue(all);
    wake = () => this.reap();
  }

  next(): Promise<void> {
    return new Promise((resolve) => {
      this.waiter = { target: this.completed + depth, resolve };
      this.reap();
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    while (this.outstanding !== 0) {
      this.reap();
      if (this.outstanding !== 0) await new Promise((r) => setTimeout(r, 1));
    }
    wake = undefined;
  }

  private build(slot: number): void {
    const lba = (rnd() % ios) * SECTORS_PER_IO;
    drv.build(0, slot, {
      command: this.write ? 0x61 : 0x60,
      features: SECTORS_PER_IO,
      count: slot << 3,
      lba,
      write: this.write,
      prdt: [{ addr: buffers[slot]!, len: BS }],
    });
  }

  private issue(slots: number[]): void {
    for (const s of slots) this.outstanding |= 1 << s;
    drv.issue(0, slots, true);
  }

  private reap(): void {
    // Clear the port's events first, then IS: an event after this point raises a new MSI.
    drv.setPreg(0, PxIS, drv.preg(0, PxIS));
    drv.setReg(IS, 1);
    if (drv.preg(0, PxIS) & (1 << 30)) throw new Error(`a command failed: PxTFD 0x${drv.preg(0, 0x20).toString(16)}`);
    const done = (this.outstanding & ~drv.preg(0, PxSACT)) >>> 0;
    if (done === 0) return;
    const slots: number[] = [];
    for (let s = 0; s < depth; s++) if (done & (1 << s)) slots.push(s);
    this.outstanding = (this.outstanding & ~done) >>> 0;
    this.completed += slots.length;
    if (this.running) {
      for (const s of slots) this.build(s);
      this.issue(slots);
    }
    if (this.waiter && this.completed >= this.waiter.target) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve();
    }
  }
}

function fio(rw: 'randread' | 'randwrite', engine: 'psync' | 'io_uring'): number | undefined {
  return runFio({ file: disk, rw, bs: BS, engine, iodepth: engine === 'psync' ? 1 : depth, direct: noCache, seconds: fioSeconds, hugeBuffers: true })?.iops;
}

// Completions arrive through the worker's thread-safe callback, which does not hold the event loop open.
const keepAlive = setInterval(() => {}, 1000);
const rows = await compareWithFio({ unit: 'cmd/s', depth, settle, ours: (write) => measurePump('ahci', () => new Pump(), write, depth), fio });
const st = drv.controller.stats();
console.log(`commands ${st.commands} (NCQ ${st.ncqCommands}), errors ${st.errors}; MSI ${irqs()}; depth ${depth}; options "${portOpts}"; file ${fileMiB} MiB (${noCache ? 'O_DIRECT' : 'page cache warm'})`);
report(
  'ahci',
  `ahci 4 KiB random NCQ I/O, depth ${depth}, options "${portOpts}", no VM vs host fio`,
  rows,
);
clearInterval(keepAlive);
m.close();
rmSync(dir, { recursive: true, force: true });
