// The legacy virtio PCI transport as a guest driver sees it on virtio-blk: PCI identity, BARs and
// capabilities, feature negotiation, the device configuration at offset 24 (MSI-X on) or 20 (off), queue
// set-up, reset, and the three interrupt paths (MSI-X, MSI with -W, INTx with its ISR semantics).
import test from 'tape';
import { BLK_CFG, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_TOPOLOGY, VIRTIO_BLK_F_WRITE_ZEROES, VTBLK_MAXSEGS } from '../../../devices/virtio-blk/config-space.js';
import { bit, VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_MSI_NO_VECTOR, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../../../devices/virtio/constants.js';
import { request, rig, S_OK, T_IN } from './helpers.js';

test('PCI identity: 1AF4:1001, subsystem 1AF4:0002, mass storage, I/O BAR0, MSI-X BAR1 with 2 vectors', async (t) => {
  const r = rig();
  try {
    const d = r.dev;
    t.equal(d.cfgRead(0, 2), 0x1af4, 'vendor');
    t.equal(d.cfgRead(2, 2), 0x1001, 'device');
    t.equal(d.cfgRead(0x2c, 2), 0x1af4, 'subsystem vendor');
    t.equal(d.cfgRead(0x2e, 2), 2, 'subsystem device = virtio type 2 (block)');
    t.equal(d.cfgRead(0x0b, 1), 0x01, 'class: mass storage');
    t.equal(d.cfgRead(0x10, 4) & 1, 1, 'BAR0 is I/O space');
    const cap = d.findCap(0x11);
    t.ok(cap, 'MSI-X capability');
    t.equal((d.cfgRead(cap + 2, 2) & 0x7ff) + 1, 2, 'two vectors: configuration and queue');
    t.equal(d.cfgRead(cap + 4, 4) & 7, 1, 'table in BAR1');
    t.equal(d.findCap(0x05), 0, 'no MSI capability when MSI-X is offered');
    t.ok(d.cfgRead(0x3d, 1) >= 1, 'an INTx pin is wired');
  } finally {
    r.close();
  }
});

test('-W (virtio_msix=false): MSI capability instead of MSI-X', async (t) => {
  const r = rig({ flags: ['-W'] });
  try {
    t.equal(r.dev.findCap(0x11), 0, 'no MSI-X');
    t.ok(r.dev.findCap(0x05), 'MSI capability');
    t.equal(r.dev.configBase(), 20, 'configuration at offset 20');
  } finally {
    r.close();
  }
});

test('feature negotiation: offered bits, guest features masked to the offer', async (t) => {
  const r = rig();
  try {
    const f = r.dev.hostFeatures();
    for (const [name, b] of [
      ['SEG_MAX', VIRTIO_BLK_F_SEG_MAX], ['BLK_SIZE', VIRTIO_BLK_F_BLK_SIZE], ['FLUSH', VIRTIO_BLK_F_FLUSH], ['TOPOLOGY', VIRTIO_BLK_F_TOPOLOGY],
      ['DISCARD', VIRTIO_BLK_F_DISCARD], ['WRITE_ZEROES', VIRTIO_BLK_F_WRITE_ZEROES], ['INDIRECT_DESC', VIRTIO_RING_F_INDIRECT_DESC], ['EVENT_IDX', VIRTIO_RING_F_EVENT_IDX],
    ] as const) {
      t.ok(f & bit(b), `${name} offered`);
    }
    t.notOk(f & bit(VIRTIO_BLK_F_RO), 'RO not offered on a writable disk');
    r.dev.setGuestFeatures(0xffffffff);
    t.equal(r.dev.guestFeatures(), f, 'accepting everything yields exactly the offer');
    r.dev.setGuestFeatures(bit(VIRTIO_F_NOTIFY_ON_EMPTY) | bit(VIRTIO_BLK_F_FLUSH));
    t.equal(r.dev.guestFeatures(), bit(VIRTIO_BLK_F_FLUSH), 'unoffered bits are dropped');
    t.equal(r.dev.reg(0, 2), 0xffff, 'a 2-byte read of a 4-byte register reads all ones');
  } finally {
    r.close();
  }
});

test('configuration space: offset 20 before MSI-X is enabled, 24 after; contents per §5.2.4', async (t) => {
  const r = rig({ size: 3 << 20, opts: 'sectorsize=4096/16384' });
  try {
    const d = r.dev;
    t.equal(d.configBase(), 20, 'MSI-X off: configuration at 20');
    const lo20 = d.reg(20 + BLK_CFG.capacity, 4);
    t.equal(lo20, (3 << 20) / 512, 'capacity (512-byte sectors) at 20');
    d.enableMsix(2);
    t.equal(d.configBase(), 24, 'MSI-X on: configuration at 24');
    t.equal(d.config(BLK_CFG.capacity, 4), (3 << 20) / 512, 'capacity low');
    t.equal(d.config(BLK_CFG.capacity + 4, 4), 0, 'capacity high');
    t.equal(d.config(BLK_CFG.segMax, 4), VTBLK_MAXSEGS, 'seg_max');
    t.equal(d.config(BLK_CFG.blkSize, 4), 4096, 'blk_size = logical sector');
    t.equal(d.config(BLK_CFG.physicalBlockExp, 1), 2, 'physical_block_exp: 16384 = 4 x 4096');
    t.equal(d.config(BLK_CFG.maxDiscardSeg, 4), 1, 'max_discard_seg');
    t.equal(d.config(BLK_CFG.discardSectorAlignment, 4), 16384 / 512, 'discard_sector_alignment');
    t.equal(d.config(BLK_CFG.writeZeroesMayUnmap, 1), 1, 'write_zeroes_may_unmap');
    t.equal(d.config(BLK_CFG.capacity, 2), ((3 << 20) / 512) & 0xffff, '2-byte configuration reads');
    d.setReg(24 + BLK_CFG.capacity, 4, 0);
    t.equal(d.config(BLK_CFG.capacity, 4), (3 << 20) / 512, 'configuration writes are ignored');
    t.equal(d.reg(24 + 60, 4), 0xffffffff, 'past the configuration reads all ones');
    t.equal(d.reg(20, 2), VIRTIO_MSI_NO_VECTOR, 'MSI-X config vector register at 20 (NO_VECTOR after reset)');
  } finally {
    r.close();
  }
});

test('queue set-up: one queue of 128, PFN read back, other queues absent, reset clears', async (t) => {
  const r = rig();
  try {
    const d = r.dev;
    t.equal(d.queueSize(0), 128, 'queue 0 has 128 entries');
    t.equal(d.queueSize(1), 0, 'queue 1 does not exist');
    d.setReg(14, 2, 0);
    t.equal(d.reg(8, 4), 0x10000 / 4096, 'PFN reads back');
    t.equal((await request(r, T_IN, 0, 512)).status, S_OK, 'queue works');
    d.setStatus(0);
    t.equal(d.status(), 0, 'status 0 after reset');
    d.setReg(14, 2, 0);
    t.equal(d.reg(8, 4), 0, 'PFN cleared by reset');
    t.equal(d.guestFeatures(), 0, 'guest features cleared by reset');
    r.q = d.start(r.features, 0x30000);
    t.equal((await request(r, T_IN, 0, 512)).status, S_OK, 'works again after re-initialisation');
  } finally {
    r.close();
  }
});

test('MSI-X: queue completions raise the queue vector; NO_VECTOR raises nothing', async (t) => {
  const r = rig({ msix: true });
  try {
    const queueMsis = (): number => r.m.irq.events.filter((e) => e.kind === 'msi' && e.data === 0x41).length;
    await request(r, T_IN, 0, 512);
    await r.m.irq.waitFor(() => queueMsis() === 1, 2000, 'queue vector');
    t.equal(queueMsis(), 1, 'vector 1 raised');
    t.equal(r.dev.isr(), 0, 'ISR is not used with MSI-X');
    r.dev.setQueueVector(0, 5);
    t.equal(r.dev.reg(22, 2), VIRTIO_MSI_NO_VECTOR, 'a vector beyond the table reads back NO_VECTOR');
    r.q.setUsedEvent(0xffff);
    await request(r, T_IN, 0, 512);
    await new Promise((res) => setTimeout(res, 30));
    t.equal(r.m.irq.events.filter((e) => e.kind === 'msi').length, 1, 'no MSI for NO_VECTOR');
  } finally {
    r.close();
  }
});

test('MSI (-W): ISR bit 0 is set with the message; reading ISR clears it', async (t) => {
  const r = rig({ flags: ['-W'] });
  try {
    const cap = r.dev.findCap(0x05);
    r.dev.cfgWrite(cap + 4, 4, 0xfee00000);
    r.dev.cfgWrite(cap + 8, 4, 0);
    r.dev.cfgWrite(cap + 12, 2, 0x55);
    r.dev.cfgWrite(cap + 2, 2, r.dev.cfgRead(cap + 2, 2) | 1);
    await request(r, T_IN, 0, 512);
    await r.m.irq.waitFor(() => r.m.irq.events.some((e) => e.kind === 'msi' && e.data === 0x55), 2000, 'MSI');
    t.pass('MSI sent with the programmed data');
    t.equal(r.dev.isr() & 1, 1, 'ISR queue bit set');
    t.equal(r.dev.isr(), 0, 'ISR cleared by the read');
  } finally {
    r.close();
  }
});

test('INTx: the line is asserted on completion and deasserted by the ISR read', async (t) => {
  const r = rig({ flags: ['-W'] });
  try {
    const pin = r.dev.fn.ioapicPin;
    await request(r, T_IN, 0, 512);
    await r.m.irq.waitFor(() => r.m.irq.pinHigh(pin), 2000, 'INTx');
    t.ok(r.m.irq.pinHigh(pin), `IOAPIC pin ${pin} asserted`);
    t.equal(r.dev.isr(), 1, 'ISR reports the queue interrupt');
    t.notOk(r.m.irq.pinHigh(pin), 'line deasserted after the ISR read');
  } finally {
    r.close();
  }
});

test('a notification before DRIVER_OK starts the queue (as bhyve serves it)', async (t) => {
  const r = rig();
  try {
    r.dev.setStatus(0);
    r.dev.setStatus(3);
    r.dev.setGuestFeatures(r.features);
    r.q = r.dev.setupQueue(0, 0x30000);
    t.equal((await request(r, T_IN, 0, 512)).status, S_OK, 'request served');
  } finally {
    r.close();
  }
});
