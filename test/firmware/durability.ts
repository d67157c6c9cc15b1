// The SIGKILL durability rounds that the block devices share. The guest (a test=*-durable suite of the test
// guest) writes numbered 4 KiB records in small batches and prints "TESTGUEST durable flushed=N" only after each
// batch's flush completed; the host SIGKILLs tsbhyve at a random moment, and then every record 0..N-1 must be in
// the file.
import type { Test } from 'tape';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { directIoDir, makeDisk, patternMismatches } from '../../firmware/testguest/disk.js';
import { runTestguestInTsbhyve } from '../../firmware/testguest/index.js';

const DISK_BYTES = 4 << 20; // 1024 records of 4 KiB
const RECORD_SECTORS = 8;
/**
 * Only a hung guest or VMM reaches this. A round takes about 1 s on KVM; in the nested L1 about 11 s of it is boot
 * and a round takes 11-20 s alone, over 30 s while the full suite loads the host, and up to 60 s with three L1s.
 */
const TIME_LIMIT_MS = 180_000;

export interface DurabilityRounds {
  rounds: number;
  /** The guest's suite, e.g. 'virtio-blk-durable'. */
  suite: string;
  /** The device's -s argument for a round, on the disk file `file`, and a label for what the round varies. */
  slot: (file: string, round: number) => { arg: string; label: string };
}

export async function durabilityRounds(t: Test, { rounds, suite, slot }: DurabilityRounds): Promise<void> {
  const dir = directIoDir('testguest-durable-');
  let killedMidway = 0;
  let totalFlushed = 0;
  try {
    for (let round = 0; round < rounds; round++) {
      const file = join(dir, `round${round}.img`);
      makeDisk(file, DISK_BYTES);
      const seed = 0x10000 + round * 7919 + Math.floor(Math.random() * 1000);
      const { arg, label } = slot(file, round);
      // Kill once the guest reported at least `target` records (1-200 of 1024), a further 0-30 ms later: the kill
      // lands at a random point of a later batch's writes or flush, independent of how fast this host is.
      const target = 1 + Math.floor(Math.random() * 200);
      const delayMs = Math.floor(Math.random() * 30);
      let armed = false;
      const r = await runTestguestInTsbhyve({
        append: `test=${suite},seed=${seed},batch=4`,
        extraArgs: ['-s', arg],
        timeoutMs: TIME_LIMIT_MS,
        onOutput: (output, child) => {
          if (armed) return;
          const complete = output.slice(0, output.lastIndexOf('\n') + 1); // whole lines only
          const last = complete.lastIndexOf('TESTGUEST durable flushed=');
          const m = last < 0 ? null : /flushed=(\d+)/.exec(complete.slice(last));
          if (!m || Number(m[1]) < target) return;
          armed = true;
          setTimeout(() => child.kill('SIGKILL'), delayMs);
        },
      });
      const reported = [...r.stdout.matchAll(/TESTGUEST durable flushed=(\d+)\r?\n/g)].map((m) => Number(m[1]));
      const flushed = reported.length ? Math.max(...reported) : 0;
      const bad = patternMismatches(readFileSync(file), 0, flushed * RECORD_SECTORS, seed);
      const midway = r.signal === 'SIGKILL';
      if (midway) killedMidway++;
      totalFlushed += flushed;
      t.ok(flushed > 0, `round ${round}${label}: ${flushed} records reported flushed (${midway ? `SIGKILL ${delayMs} ms after ${target}` : `finished, exit ${r.code}`})`);
      t.deepEqual(bad.slice(0, 5), [], `round ${round}: every flushed record is in the file`);
      if (r.timedOut) {
        // Say what the guest was doing when the limit hit: its last lines and tsbhyve's messages.
        const tail = r.output.split('\n').slice(-6).join(' | ');
        t.comment(`round ${round}: killed at the ${TIME_LIMIT_MS} ms limit after ${flushed} of 1024 records (target ${target}); last output: ${tail}`);
      }
      t.notOk(r.timedOut, `round ${round}: ended before the time limit (${r.elapsedMs} ms)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.ok(killedMidway >= rounds / 2, `${killedMidway} of ${rounds} rounds were killed mid-run`);
  t.comment(`${totalFlushed} flushed records checked in total`);
}
