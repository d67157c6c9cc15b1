// NVMe data path without a VM: the guest-driver harness (test/harness/nvme-driver.ts) brings the controller up,
// creates one I/O queue pair on its own MSI-X vector and keeps `depth` 4 KiB commands in flight (random LBAs of one
// file; each completion is resubmitted at once, as fio does at its iodepth). The native queue worker serves them and
// raises the vector; the pump reaps on each interrupt and rings the SQ tail and CQ head doorbells once per batch,
// as Linux's nvme driver does. Host fio measures the same pattern on the same file with io_uring at the same depth
// (the host's best there) and with psync (one request at a time). Prints both and the ratio tsbhyve / fio io_uring.
// TSBHYVE_BENCH_NVME_POLL=1 reaps as Linux's poll queues do (nvme.poll_queues with io_uring IOPOLL): the CQ is
// created with interrupts off and the pump polls it, so no interrupt is handed to JavaScript per batch (with
// interrupts, that handoff and the worker's wake-up bound the rate on this host, not the queue path).
// Usage: node --import tsx bench/nvme/run.ts [fileMiB=64] [depth=32] [fioSeconds=5] [devopts]
//   devopts: extra nvme options, comma-separated (e.g. nocache, ioslots=32, aio=threads)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { nvmeMachine, PAGE } from '../../test/harness/nvme-driver.js';
import { directIoDir } from '../../firmware/testguest/disk.js';
import { runFio } from '../fio.js';
import { settleDisk } from '../disk.js';
import { report } from '../report.js';
import { compareWithFio, lcg, measurePump, onMsi, type RequestPump } from '../no-vm.js';

const fileMiB = Number(process.argv[2] ?? 64);
const depth = Number(process.argv[3] ?? 32);
const fioSeconds = Number(process.argv[4] ?? 5);
const devOpts = process.argv[5] ?? '';
const noCache = devOpts.split(',').includes('nocache');
const BS = 4096;
const QID = 1;
const ENTRIES = 1024;
if (!(depth >= 1 && depth < ENTRIES)) throw new Error(`depth must be 1..${ENTRIES - 1}`);

// O_DIRECT needs a file system that takes it (tmpfs does not).
const dir = noCache ? directIoDir('tsbhyve-bench-nvme-') : mkdtempSync(join('/tmp', 'tsbhyve-bench-nvme-'));
const disk = join(dir, 'disk.img');
writeFileSync(disk, randomBytes(fileMiB << 20));
/** Each measurement starts with the file's pages clean (bench/disk.ts). */
const settle = (): void => settleDisk(disk);
settle();

const { m, drv } = nvmeMachine(['-s', `4,nvme,${disk}${devOpts ? ',' + devOpts : ''}`], 4, { memorySize: 64 << 20 });
drv.enableMsix(2);
if ((drv.enable() & 1) !== 1) throw new Error('the controller did not become ready');
const polled = process.env.TSBHYVE_BENCH_NVME_POLL === '1';
const { cq, sq } = drv.createQueuePair(QID, ENTRIES, 1, !polled);
if (cq.status !== 0 || sq?.status !== 0) throw new Error(`creating the I/O queue pair failed: ${cq.status}/${sq?.status}`);
const lbaBytes = 1 << (drv.identify(0, 1).data[128 + 2] ?? 9); // LBA format 0's LBADS (bits 23:16)
const lbasPerIo = BS / lbaBytes;
const ios = (fileMiB << 20) / BS;
const buffers = Array.from({ length: depth }, () => drv.alloc.alloc(PAGE, PAGE));
const queue = drv.io.get(QID)!;

const rnd = lcg();
let wake: (() => void) | undefined;
const queueIrqs = onMsi(m, 0x41, () => wake?.());

/** Keeps `depth` commands in flight; a benchmark operation is `depth` more completions. */
class Pump implements RequestPump {
  private write = false;
  private running = false;
  private completed = 0;
  private inflight = 0;
  private readonly slotOfCid = new Map<number, number>();
  private waiter: { target: number; resolve: () => void } | undefined;

  start(write: boolean): void {
    this.write = write;
    this.running = true;
    for (let s = 0; s < depth; s++) this.submit(s);
    drv.ring(QID);
    wake = () => this.reap();
    if (polled) {
      const poll = (): void => {
        if (!this.running && this.inflight === 0) return;
        this.reap();
        setImmediate(poll);
      };
      setImmediate(poll);
    }
  }

  next(): Promise<void> {
    return new Promise((resolve) => {
      this.waiter = { target: this.completed + depth, resolve };
      this.reap();
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    while (this.inflight > 0) {
      this.reap();
      if (this.inflight > 0) await new Promise((r) => setTimeout(r, 1));
    }
    wake = undefined;
  }

  private submit(slot: number): void {
    const slba = (rnd() % ios) * lbasPerIo;
    const cid = drv.queue(QID, { opcode: this.write ? 0x01 : 0x02, nsid: 1, prp1: buffers[slot]!, cdw: [slba >>> 0, 0, lbasPerIo - 1] });
    this.slotOfCid.set(cid, slot);
    this.inflight++;
  }

  private reap(): void {
    let reaped = 0;
    for (let c = drv.poll(QID, false); c; c = drv.poll(QID, false)) {
      if (c.status !== 0) throw new Error(`command ${c.cid} failed with status 0x${c.status.toString(16)}`);
      const slot = this.slotOfCid.get(c.cid)!;
      this.slotOfCid.delete(c.cid);
      this.inflight--;
      this.completed++;
      reaped++;
      if (this.running) this.submit(slot);
    }
    if (reaped > 0) {
      drv.setReg(0x1000 + 8 * QID + 4, queue.cqHead);
      if (this.running) drv.ring(QID);
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
const rows = await compareWithFio({ unit: 'cmd/s', depth, settle, ours: (write) => measurePump('nvme', () => new Pump(), write, depth), fio });
const st = drv.controller.stats();
console.log(`engine ${st?.engine}${st?.engineNote ? ` (${st.engineNote})` : ''}; queue interrupts: ${queueIrqs()}; depth ${depth}; options "${devOpts}"; file ${fileMiB} MiB (${noCache ? 'O_DIRECT' : 'page cache warm'})`);
report(
  'nvme',
  `nvme 4 KiB random I/O, depth ${depth}, options "${devOpts}", ${polled ? 'polled CQ' : 'MSI-X'}, no VM vs host fio`,
  rows,
);
clearInterval(keepAlive);
m.close();
rmSync(dir, { recursive: true, force: true });
