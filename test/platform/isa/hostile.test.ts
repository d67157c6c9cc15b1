// A hostile guest: random IN/OUT and loads/stores of every size over all ISA ranges (and their neighbours), from a
// seeded generator so a failure can be replayed. Nothing may throw, and the devices must still work afterwards.
import test from 'tape';
import { TestMachine } from '../../harness/machine.js';
import { createIsaDevices } from '../../../src/platform/isa/index.js';
import { defaultConfigTree } from '../../../src/config/defaults.js';
import { memoryLayout, MiB, HPET_BASE } from '../../../src/vm/memmap.js';
import type { PortSize } from '../../../src/platform/machine.js';

/** xorshift32: small, deterministic. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

const PORT_RANGES: Array<[number, number]> = [
  [0x5e, 0x0a], [0x6e, 0x08], [0x7e, 0x04], [0xb0, 0x04], [0x2e6, 0x0c], [0x2f6, 0x0c], [0x3e6, 0x0c], [0x3f6, 0x0c],
  [0x3fe, 0x14], [0x50e, 0x06], [0xcf7, 0x04],
];

test('isa: 50000 random guest accesses do not throw and leave working devices', (t) => {
  const seed = 0x15a15a;
  const next = rng(seed);
  const m = new TestMachine();
  const tree = defaultConfigTree();
  tree.set('lpc.fwcfg', 'qemu');
  const dev = createIsaDevices(m, tree, { layout: memoryLayout(512 * MiB), ncpus: 2, sigtermPowerButton: false });
  const sizes: PortSize[] = [1, 2, 4];
  let failure: unknown;
  let i = 0;
  try {
    for (; i < 50_000; i++) {
      const r = next();
      const size = sizes[r % 3]!;
      const write = (r & 4) !== 0;
      const value = next();
      if (r & 8) {
        const [base, len] = PORT_RANGES[(r >>> 4) % PORT_RANGES.length]!;
        const port = base + ((r >>> 8) % len);
        // Skip the two writes that end the run on purpose; they are tested elsewhere.
        if (write && (port === 0x404 || port === 0x405)) continue;
        if (write) m.out(port, value, size);
        else m.in(port, size);
      } else {
        const addr = HPET_BASE - 8 + ((r >>> 4) % 0x410);
        if (write) m.write(addr, value, size);
        else m.read(addr, size);
      }
    }
  } catch (e) {
    failure = e;
  }
  t.equal(failure, undefined, `no exception (seed ${seed.toString(16)}, access ${i})`);
  t.ok(m.suspends.every((s) => s === 'reset'), 'the only suspends are resets a random guest may legitimately cause');

  // Still usable afterwards.
  m.outb(0x3fb, 0x03); // clear DLAB
  m.outb(0x3ff, 0x77);
  t.equal(m.inb(0x3ff), 0x77, 'UART scratch register');
  m.outw(0x510, 0);
  t.equal(String.fromCharCode(m.inb(0x511), m.inb(0x511), m.inb(0x511), m.inb(0x511)), 'QEMU', 'fw_cfg signature');
  m.write(HPET_BASE + 0x10, 0);
  t.equal(m.read(HPET_BASE) >>> 16, 0x8086, 'HPET capabilities');
  m.outb(0x70, 0x0e);
  m.outb(0x71, 0x5a);
  m.outb(0x70, 0x0e);
  t.equal(m.inb(0x71), 0x5a, 'CMOS byte write and read');
  dev.close();
  t.end();
});
