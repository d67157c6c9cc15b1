// test-needs: kvm
// Durability of flushed writes through tsbhyve's AHCI disk (ACS-3: once FLUSH CACHE EXT completes, every write
// completed before it is on the media): test=ahci-durable, batches of NCQ writes each followed by a flush, under
// SIGKILL at random moments (durability.ts). The rounds cycle through the write paths: the page cache with the
// ring engine, O_DIRECT on the ring (nocache), and the synchronous engine (aio=threads).
import test from 'tape';
import { tsbhyveSkipReason } from '../../firmware/testguest/index.js';
import { durabilityRounds } from './durability.js';

const ROUNDS = 6;
const variants = ['', ',nocache', ',aio=threads'];

test(`tsbhyve ahci: flushed records survive SIGKILL (${ROUNDS} rounds)`, async (t) => {
  const why = tsbhyveSkipReason();
  if (why) {
    t.comment(`skipped: ${why}`);
    t.skip(why);
    return;
  }
  await durabilityRounds(t, {
    rounds: ROUNDS,
    suite: 'ahci-durable',
    slot: (file, round) => {
      const v = variants[round % variants.length]!;
      return { arg: `4,ahci,hd:${file}${v}`, label: v };
    },
  });
});
