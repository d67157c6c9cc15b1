// test-needs: kvm
// Durability of flushed writes through tsbhyve's virtio-blk (virtio 1.2 §5.2.6: a completed FLUSH covers every write
// completed before it): test=virtio-blk-durable under SIGKILL at random moments (durability.ts), with and without
// nocache. Skipped, saying why, when tsbhyve's virtio-blk is not available.
import test from 'tape';
import { tsbhyveSkipReason } from '../../firmware/testguest/index.js';
import { durabilityRounds } from './durability.js';

const ROUNDS = 20;

test(`tsbhyve virtio-blk: flushed records survive SIGKILL (${ROUNDS} rounds)`, async (t) => {
  const why = tsbhyveSkipReason();
  if (why) {
    t.comment(`skipped: ${why}`);
    t.skip(why);
    return;
  }
  await durabilityRounds(t, {
    rounds: ROUNDS,
    suite: 'virtio-blk-durable',
    slot: (file, round) => {
      const cache = round % 2 === 0 ? '' : ',nocache';
      return { arg: `3,virtio-blk,${file}${cache}`, label: cache };
    },
  });
});
