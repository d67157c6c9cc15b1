// What the no-VM benches (bench/virtio-blk, bench/nvme) share: the guest-driver harness's machine delivers MSI
// messages to JavaScript, and the benches wake their request pumps from them; random offsets come from one LCG so
// that every run and contender sees the same sequence.
import type { VirtioTestMachine } from '../test/harness/virtio-driver.js';

/** A 32-bit linear congruential generator from `seed`. */
export function lcg(seed = 1): () => number {
  let s = seed >>> 0;
  return () => (s = (s * 1103515245 + 12345) >>> 0);
}

/**
 * Calls `onMessage` for each MSI message with data `data` (after the machine recorded it); returns a function that
 * says how many came.
 */
export function onMsi(m: VirtioTestMachine, data: number, onMessage: () => void): () => number {
  let count = 0;
  const irq = m.irq;
  const deliver = irq.msi.bind(irq);
  irq.msi = (addr, d) => {
    deliver(addr, d);
    if (d === data) {
      count++;
      onMessage();
    }
  };
  return () => count;
}
