// test-needs: kvm
// Durability of flushed writes through tsbhyve's NVMe controller (NVMe 1.4 §6.8: once a Flush completes, every
// write completed before it is on non-volatile media): test=nvme-durable under SIGKILL at random moments
// (durability.ts). The rounds cycle through the write paths: io_uring with the page cache, O_DIRECT (nocache),
// io_uring with one slot, and the one-at-a-time worker (aio=threads).
import test from 'tape';
import { tsbhyveSkipReason } from '../../firmware/testguest/index.js';
import { durabilityRounds } from './durability.js';

const ROUNDS = 12;
const variants = ['', ',nocache', ',ioslots=1', ',aio=threads'];

test(`tsbhyve nvme: flushed records survive SIGKILL (${ROUNDS} rounds)`, async (t) => {
  const why = tsbhyveSkipReason();
  if (why) {
    t.comment(`skipped: ${why}`);
    t.skip(why);
    return;
  }
  await durabilityRounds(t, {
    rounds: ROUNDS,
    suite: 'nvme-durable',
    slot: (file, round) => {
      const v = variants[round % variants.length]!;
      return { arg: `4,nvme,${file}${v}`, label: v };
    },
  });
});
