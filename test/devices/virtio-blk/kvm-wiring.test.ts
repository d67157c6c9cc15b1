// The KVM wiring of the virtio-blk data path, checked without /dev/kvm through a recorder that stands in for
// ioeventfd, irqfd and MSI routes: what is registered at DRIVER_OK for each interrupt mode, how the route
// follows the guest's MSI-X table and MSI writes, masking, and that reset leaves nothing registered.
import test from 'tape';
import { RecordedKvm, type KvmCall } from '../../harness/virtio-driver.js';
import { request, rig, S_OK, T_IN } from './helpers.js';

interface Wiring {
  ioeventfds: Array<{ addr: number; len: number; pio: boolean; data?: number }>;
  irqfds: number[];
  routes: Map<number, { addr: bigint; data: number }>;
}

/** What is registered after replaying every call so far. */
function wiring(calls: readonly KvmCall[]): Wiring {
  const io = new Map<string, { addr: number; len: number; pio: boolean; data?: number }>();
  const irq = new Set<number>();
  const routes = new Map<number, { addr: bigint; data: number }>();
  for (const c of calls) {
    if (c.op === 'ioeventfd') {
      const k = `${c.fd}/${c.addr}`;
      if (c.deassign) io.delete(k);
      else io.set(k, { addr: c.addr, len: c.len, pio: c.pio, data: c.data });
    } else if (c.op === 'irqfd') {
      if (c.deassign) irq.delete(c.gsi);
      else irq.add(c.gsi);
    } else {
      routes.set(c.gsi, { addr: c.addr, data: c.data });
    }
  }
  return { ioeventfds: [...io.values()], irqfds: [...irq], routes };
}

test('MSI-X: ioeventfd on BAR0+16, irqfd on a route to the queue vector; JS sees no completion interrupt', async (t) => {
  const kvm = new RecordedKvm();
  const r = rig({ msix: true, kvm });
  try {
    let w = wiring(kvm.calls);
    t.deepEqual(w.ioeventfds, [{ addr: r.dev.bar0 + 16, len: 2, pio: true, data: 0 }], 'one ioeventfd: 2-byte write of queue 0 to the notify register');
    t.equal(w.irqfds.length, 1, 'one irqfd');
    const gsi = w.irqfds[0]!;
    t.ok(gsi >= 64, `on an MSI route GSI (${gsi})`);
    t.deepEqual(w.routes.get(gsi), { addr: 0xfee00000n, data: 0x41 }, 'routed to MSI-X entry 1 (the queue vector)');
    t.equal((await request(r, T_IN, 0, 512)).status, S_OK, 'requests complete');
    await new Promise((res) => setTimeout(res, 20));
    t.notOk(r.m.irq.events.some((e) => e.kind === 'msi'), 'the completion interrupt went to the irqfd, not through JavaScript');

    r.dev.msixEntryWrite(1, 2, 0x99);
    w = wiring(kvm.calls);
    t.deepEqual(w.routes.get(gsi), { addr: 0xfee00000n, data: 0x99 }, 'rewriting the entry updates the route');
    t.deepEqual(w.irqfds, [gsi], 'irqfd still assigned');

    r.dev.msixEntryWrite(1, 3, 1);
    t.deepEqual(wiring(kvm.calls).irqfds, [], 'masking the vector removes the irqfd');
    t.equal((await request(r, T_IN, 0, 512)).status, S_OK, 'requests still complete while masked');
    r.dev.msixEntryWrite(1, 3, 0);
    t.deepEqual(wiring(kvm.calls).irqfds, [gsi], 'unmasking restores it on the same GSI');

    r.dev.setQueueVector(0, 0xffff);
    t.deepEqual(wiring(kvm.calls).irqfds, [], 'NO_VECTOR: no irqfd');

    r.dev.setStatus(0);
    w = wiring(kvm.calls);
    t.deepEqual([w.ioeventfds, w.irqfds], [[], []], 'reset leaves nothing registered');
  } finally {
    r.close();
  }
});

test('MSI (-W): irqfd on the MSI message, ISR bit set by the worker, route follows MSI data writes', async (t) => {
  const kvm = new RecordedKvm();
  const r = rig({ flags: ['-W'], kvm });
  try {
    const cap = r.dev.findCap(0x05);
    r.dev.cfgWrite(cap + 4, 4, 0xfee01000);
    r.dev.cfgWrite(cap + 8, 4, 0);
    r.dev.cfgWrite(cap + 12, 2, 0x61);
    r.dev.cfgWrite(cap + 2, 2, r.dev.cfgRead(cap + 2, 2) | 1);
    let w = wiring(kvm.calls);
    t.equal(w.irqfds.length, 1, 'enabling MSI moves completions to an irqfd');
    const gsi = w.irqfds[0]!;
    t.deepEqual(w.routes.get(gsi), { addr: 0xfee01000n, data: 0x61 }, 'route = the MSI address/data');
    t.equal((await request(r, T_IN, 0, 512)).status, S_OK, 'request OK');
    t.equal(r.dev.isr() & 1, 1, 'ISR queue bit set natively before the interrupt');
    t.equal(r.dev.isr(), 0, 'and cleared by the read');
    r.dev.cfgWrite(cap + 12, 2, 0x62);
    w = wiring(kvm.calls);
    t.deepEqual(w.routes.get(gsi), { addr: 0xfee01000n, data: 0x62 }, 'a new MSI data value while enabled updates the route');
  } finally {
    r.close();
  }
});

test('INTx (-W, MSI off): ioeventfd for kicks, no irqfd; the line is raised through the transport', async (t) => {
  const kvm = new RecordedKvm();
  const r = rig({ flags: ['-W'], kvm });
  try {
    const w = wiring(kvm.calls);
    t.equal(w.ioeventfds.length, 1, 'ioeventfd');
    t.deepEqual(w.irqfds, [], 'no irqfd');
    await request(r, T_IN, 0, 512);
    await r.m.irq.waitFor(() => r.m.irq.pinHigh(r.dev.fn.ioapicPin), 2000, 'INTx');
    t.equal(r.dev.isr(), 1, 'ISR reports the queue');
    t.notOk(r.m.irq.pinHigh(r.dev.fn.ioapicPin), 'line lowered by the ISR read');
  } finally {
    r.close();
  }
});

test('disabling I/O decode removes the ioeventfd; enabling it again restores it', async (t) => {
  const kvm = new RecordedKvm();
  const r = rig({ kvm });
  try {
    const cmd = r.dev.cfgRead(4, 2);
    r.dev.cfgWrite(4, 2, cmd & ~1);
    t.deepEqual(wiring(kvm.calls).ioeventfds, [], 'no ioeventfd while the BAR does not decode');
    r.dev.cfgWrite(4, 2, cmd);
    t.deepEqual(wiring(kvm.calls).ioeventfds, [{ addr: r.dev.bar0 + 16, len: 2, pio: true, data: 0 }], 'back');
    t.equal((await request(r, T_IN, 0, 512)).status, S_OK, 'requests still work');
  } finally {
    r.close();
  }
});
