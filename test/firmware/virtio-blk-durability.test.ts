// test-needs: kvm
// Durability of flushed writes through tsbhyve's virtio-blk (virtio 1.2 §5.2.6: a completed FLUSH covers every write
// completed before it). The guest (test=virtio-blk-durable) writes numbered 4 KiB records in small batches and prints
// "TESTGUEST durable flushed=N" only after each batch's FLUSH completed; the host SIGKILLs tsbhyve at a random
// moment and then every record 0..N-1 must be in the file. Skipped, saying why, when tsbhyve's virtio-blk is not
// available.
import test from 'tape';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { directIoDir, makeDisk, patternMismatches } from '../../firmware/testguest/disk.js';
import { runTestguestInTsbhyve, tsbhyveSkipReason } from '../../firmware/testguest/index.js';

const ROUNDS = 20;
const DISK_BYTES = 4 << 20; // 1024 records of 4 KiB
const RECORD_SECTORS = 8;

test(`tsbhyve virtio-blk: flushed records survive SIGKILL (${ROUNDS} rounds)`, async (t) => {
  const why = tsbhyveSkipReason();
  if (why) {
    t.comment(`skipped: ${why}`);
    t.skip(why);
    return;
  }
  const dir = directIoDir('testguest-durable-');
  let killedMidway = 0;
  let totalFlushed = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const file = join(dir, `round${round}.img`);
      makeDisk(file, DISK_BYTES);
      const seed = 0x10000 + round * 7919 + Math.floor(Math.random() * 1000);
      const cache = round % 2 === 0 ? '' : ',nocache';
      // Kill once the guest reported at least `target` records (1-200 of 1024), a further 0-30 ms later: the kill
      // lands at a random point of a later batch's writes or FLUSH, independent of how fast this host is.
      const target = 1 + Math.floor(Math.random() * 200);
      const delayMs = Math.floor(Math.random() * 30);
      let armed = false;
      const r = await runTestguestInTsbhyve({
        append: `test=virtio-blk-durable,seed=${seed},batch=4`,
        extraArgs: ['-s', `3,virtio-blk,${file}${cache}`],
        timeoutMs: 30000,
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
      const image = readFileSync(file);
      const bad = patternMismatches(image, 0, flushed * RECORD_SECTORS, seed);
      const midway = r.signal === 'SIGKILL';
      if (midway) killedMidway++;
      totalFlushed += flushed;
      t.ok(flushed > 0, `round ${round}${cache}: ${flushed} records reported flushed (${midway ? `SIGKILL ${delayMs} ms after ${target}` : `finished, exit ${r.code}`})`);
      t.deepEqual(bad.slice(0, 5), [], `round ${round}: every flushed record is in the file`);
      t.notOk(r.timedOut, `round ${round}: ended before the time limit`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.ok(killedMidway >= ROUNDS / 2, `${killedMidway} of ${ROUNDS} rounds were killed mid-run`);
  t.comment(`${totalFlushed} flushed records checked in total`);
});
