// Placement rules in isolation: claims must be inside E820 RAM and disjoint; the searches respect
// alignment, limits, the 1 MiB floor and earlier claims.
import test from 'tape';
import { GuestRam } from '../../src/loader/guest-ram.js';
import { LoaderError } from '../../src/loader/index.js';
import { memoryLayout } from '../../src/vm/memmap.js';
import { bhyveE820 } from './guest-memory.js';

const MiB = 2 ** 20;

function ram(size = 64 * MiB): GuestRam {
  const l = memoryLayout(size);
  return new GuestRam(bhyveE820(l.lowmem, l.highmem), l);
}

function code(fn: () => void): string {
  try {
    fn();
    return 'none';
  } catch (e) {
    return e instanceof LoaderError ? e.code : `not a LoaderError: ${(e as Error).message}`;
  }
}

test('GuestRam: claims', (t) => {
  const r = ram();
  r.claim(2 * MiB, MiB, 'a');
  t.equal(code(() => r.claim(2 * MiB + 4096, 10, 'b')), 'overlap', 'overlapping an earlier claim');
  t.equal(code(() => r.claim(3 * MiB, 10, 'c')), 'none', 'adjacent claim is fine');
  t.equal(code(() => r.claim(0x9f000, 0x2000, 'd')), 'out-of-ram', 'crossing the end of conventional RAM');
  t.equal(code(() => r.claim(0xf2400, 0x100, 'e')), 'out-of-ram', 'the BIOS area is not RAM in this map');
  t.equal(code(() => r.claim(0x500, 4, 'f')), 'overlap', 'the IVT/BDA page is reserved');
  t.equal(code(() => r.claim(64 * MiB - 8, 16, 'g')), 'out-of-ram', 'past the top of RAM');
  t.equal(code(() => r.claim(5 * MiB, 0, 'h')), 'out-of-ram', 'empty claims are refused');
  t.equal(code(() => r.claim(2 ** 60, 2 ** 60, 'i')), 'out-of-ram', 'unsafe integers are refused');
  t.deepEqual(r.claimed().map((c) => c.what), ['the real-mode IVT/BIOS data area', "bhyve's BIOS tables area (MP table, SMBIOS, ACPI)", 'a', 'c'], 'claims kept in address order');
  t.end();
});

test('GuestRam: findHigh and findLow', (t) => {
  const r = ram(64 * MiB);
  t.equal(r.findHigh(MiB, 4096, 2 ** 32, MiB), 63 * MiB, 'highest spot ends at the top of RAM');
  t.equal(r.findHigh(MiB, 4096, 32 * MiB, MiB), 31 * MiB, 'limit respected');
  r.claim(60 * MiB, 4 * MiB, 'top');
  t.equal(r.findHigh(MiB + 1, 4096, 2 ** 32, MiB), 60 * MiB - MiB - 4096, 'goes below a claim, aligned down');
  t.equal(r.findHigh(100 * MiB, 4096, 2 ** 32, MiB), undefined, 'too big: nothing');
  t.equal(r.findHigh(4096, 4096, 0x100000, MiB), undefined, 'never below the floor');
  t.equal(r.findLow(2 * MiB, 2 * MiB, MiB), 2 * MiB, 'lowest aligned spot above 1 MiB');
  r.claim(2 * MiB, 4096, 'small');
  t.equal(r.findLow(2 * MiB, 2 * MiB, MiB), 4 * MiB, 'skips past a claim to the next aligned spot');
  t.equal(r.findLow(58 * MiB, 2 * MiB, MiB), undefined, 'nothing fits');
  t.end();
});
