// Random corruption of real images: flipping bytes in the headers must end in a plan or a LoaderError,
// never in another exception (a RangeError from a DataView, a TypeError, ...). Seeded, so a failure
// reproduces.
import test from 'tape';
import type { DirectBootInput } from '../../src/loader/index.js';
import { LoaderError, planDirectBoot } from '../../src/loader/index.js';
import { memoryLayout } from '../../src/vm/memmap.js';
import { bhyveE820 } from './guest-memory.js';
import { syntheticBzImage } from './synthetic.js';
import { buildAoutKernel, buildMultibootElf, buildPvhKernel, toolchainMissing } from './toolchain.js';

const layout = memoryLayout(64 * 2 ** 20);
const e820 = bhyveE820(layout.lowmem, 0);

/** xorshift32: a small deterministic generator. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function fuzz(t: test.Test, name: string, image: Uint8Array, span: number, rounds: number, seed: number): void {
  const next = rng(seed);
  let planned = 0;
  let rejected = 0;
  const others: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const copy = new Uint8Array(image);
    const flips = 1 + (next() % 4);
    for (let f = 0; f < flips; f++) {
      const at = next() % Math.min(span, copy.length);
      // Mostly small random bytes; sometimes the extreme values that break arithmetic.
      const pick = next() % 4;
      copy[at] = pick === 0 ? 0xff : pick === 1 ? 0 : next() & 0xff;
    }
    const input: DirectBootInput = { kernel: copy, initrd: new Uint8Array(4096), cmdline: 'x', layout, e820 };
    try {
      planDirectBoot(input);
      planned++;
    } catch (e) {
      if (e instanceof LoaderError && !e.message.includes('\n')) rejected++;
      else if (others.length < 3) others.push(`round ${i}: ${(e as Error).name}: ${(e as Error).message}`);
    }
  }
  t.deepEqual(others, [], `${name}: ${rounds} corrupted images gave ${planned} plans and ${rejected} LoaderErrors, nothing else`);
}

test('mutation: bzImage header', (t) => {
  fuzz(t, 'synthetic bzImage', syntheticBzImage(), 0x300, 3000, 1);
  t.end();
});

test('mutation: ELF and Multiboot headers', { skip: toolchainMissing() !== undefined }, (t) => {
  fuzz(t, 'PVH ELF64', buildPvhKernel(64).bytes, 0x200, 3000, 2);
  fuzz(t, 'PVH ELF32', buildPvhKernel(32).bytes, 0x200, 3000, 3);
  fuzz(t, 'Multiboot ELF32', buildMultibootElf().bytes, 0x1100, 3000, 4);
  fuzz(t, 'Multiboot a.out', buildAoutKernel().bytes, 0x40, 3000, 5);
  t.end();
});
