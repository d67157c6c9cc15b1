// virtio-rnd through the native worker without a VM: bhyve's identity, requests filled with random bytes, chains
// the device cannot write, and the rate limit engaging once the burst is spent.
import test from 'tape';
import { VTRND_RINGSZ, RND_BURST_BYTES, type VirtioRndDevice } from '../../../devices/virtio-rnd/device.js';
import { PCIR_CLASS, PCIR_DEVICE, PCIR_SUBDEV_0, PCIR_VENDOR } from '../../../src/platform/pci/regs.js';
import { GuestAlloc, virtioMachine } from '../../harness/virtio-driver.js';

function rig() {
  const { m, dev } = virtioMachine(['-s', '3,virtio-rnd'], 3);
  const q = dev.start(dev.hostFeatures());
  const alloc = new GuestAlloc(0x40000, m.memory.size);
  const device = () => (dev.fn.model as unknown as { device: VirtioRndDevice }).device;
  return { m, dev, q, alloc, device };
}

test('identity as bhyve presents virtio-rnd', (t) => {
  const r = rig();
  try {
    t.equal(r.dev.cfgRead(PCIR_VENDOR, 2), 0x1af4);
    t.equal(r.dev.cfgRead(PCIR_DEVICE, 2), 0x1005);
    t.equal(r.dev.cfgRead(PCIR_SUBDEV_0, 2), 4, 'subsystem = virtio type 4 (entropy)');
    t.equal(r.dev.cfgRead(PCIR_CLASS, 1), 0x10, 'class PCIC_CRYPTO');
    t.equal(r.dev.queueSize(0), VTRND_RINGSZ, 'one queue of 64 (VTRND_RINGSZ)');
  } finally {
    r.m.close();
  }
  t.end();
});

test('requests come back filled with random bytes; unwritable chains come back empty', async (t) => {
  const r = rig();
  try {
    const a = r.alloc.alloc(4096);
    const b = r.alloc.alloc(4096);
    r.m.memory.bytes.fill(0, a, a + 4096);
    r.q.publish(r.q.addChain([{ addr: a, len: 100, write: true }, { addr: a + 100, len: 3996, write: true }]));
    r.q.publish(r.q.addChain([{ addr: b, len: 64, write: false }]));
    r.q.publish(r.q.addChain([{ addr: 0x7fff_0000_0000, len: 64, write: true }]));
    r.dev.notify(0);
    const used = await r.q.waitUsed(3);
    t.deepEqual(used.map((u) => u.len), [4096, 0, 0], 'the good chain filled across both descriptors; the bad ones empty');
    const bytes = r.m.memory.read(a, 4096);
    const counts = new Array(256).fill(0);
    for (const x of bytes) counts[x]++;
    t.ok(Math.max(...counts) < 64, `no byte value dominates (max count ${Math.max(...counts)} of 4096)`);
    t.equal(r.device().stats()?.badChains, 2);
  } finally {
    r.m.close();
  }
});

test('past the burst the worker throttles instead of filling as fast as the guest asks', async (t) => {
  const r = rig();
  try {
    // 32 requests of 4 KiB = 128 KiB, twice the 64 KiB burst.
    const n = 32;
    for (let i = 0; i < n; i++) r.q.publish(r.q.addChain([{ addr: r.alloc.alloc(4096), len: 4096, write: true }]));
    r.dev.notify(0);
    const used = await r.q.waitUsed(n, 10_000);
    t.equal(used.length, n, 'every request completed');
    const s = r.device().stats()!;
    t.equal(s.bytes, n * 4096);
    t.ok(s.throttledMs > 0, `the rate limit engaged after ${RND_BURST_BYTES} bytes (waited ${s.throttledMs.toFixed(1)} ms)`);
  } finally {
    r.m.close();
  }
});
