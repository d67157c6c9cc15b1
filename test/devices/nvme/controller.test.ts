// The controller as a driver first meets it: PCI identity and capabilities, CAP/VS/CC/CSTS, enabling and
// disabling, shutdown, and the Identify data matching the options.
import test from 'tape';
import { rig } from './helpers.js';
import { nvmeMachine } from '../../harness/nvme-driver.js';

test('PCI identity, BARs and capabilities are those of bhyve\'s nvme', async (t) => {
  const r = rig({ raw: true, opts: 'maxq=4' });
  try {
    const d = r.drv;
    t.equal(d.cfgRead(0, 2), 0xfb5d, 'vendor FB5D');
    t.equal(d.cfgRead(2, 2), 0x0a0a, 'device 0A0A');
    t.equal(d.cfgRead(0x08, 4) >>> 8, 0x010802, 'class 01/08/02 (NVM Express)');
    t.equal(d.cfgRead(0x10, 4) & 0x7, 0x4, 'BAR0 is 64-bit memory');
    d.cfgWrite(0x10, 4, 0xffffffff);
    const mask = d.cfgRead(0x10, 4);
    d.cfgWrite(0x10, 4, d.bar0);
    t.equal((~(mask & ~0xf) + 1) >>> 0, 16384, 'BAR0 is 16 KiB');
    const msix = d.findCap(0x11);
    t.ok(msix, 'MSI-X capability');
    t.equal((d.cfgRead(msix + 2, 2) & 0x7ff) + 1, 5, 'maxq + 1 MSI-X vectors');
    t.equal(d.cfgRead(msix + 4, 4) & 7, 4, 'MSI-X table in BAR4');
    t.ok(d.findCap(0x05), 'MSI capability');
    t.ok(d.findCap(0x10), 'PCI Express capability');
    t.notEqual(d.cfgRead(0x3d, 1), 0, 'an INTx pin');
  } finally {
    r.close();
  }
});

test('CAP and VS describe the queues, pages and version; enable sets RDY, disable clears it', async (t) => {
  const r = rig({ raw: true, opts: 'qsz=512' });
  try {
    const d = r.drv;
    const cap = d.reg64(0);
    t.equal(Number(cap & 0xffffn), 511, 'MQES is qsz - 1');
    t.equal(Number((cap >> 16n) & 1n), 1, 'CQR: contiguous queues required');
    t.equal(Number((cap >> 32n) & 0xfn), 0, 'DSTRD 0: 4-byte doorbell stride');
    t.equal(Number((cap >> 37n) & 1n), 1, 'CSS: NVM command set');
    t.equal(Number((cap >> 48n) & 0xfn), 0, 'MPSMIN 4 KiB');
    t.ok(Number((cap >> 24n) & 0xffn) > 0, 'a ready timeout');
    t.equal(d.reg(0x08), 0x00010400, 'VS 1.4.0');
    t.equal(d.reg(0x1c) & 1, 0, 'not ready before CC.EN');
    t.equal(d.enable() & 3, 1, 'RDY after CC.EN, no fatal status');
    d.disable();
    t.equal(d.reg(0x1c) & 1, 0, 'RDY clears on CC.EN = 0');
    t.equal(d.reg(0x24) >>> 0, (31 << 16) | 31, 'AQA survives a reset');
  } finally {
    r.close();
  }
});

test('enabling with a bad configuration reports Controller Fatal Status instead of ready', async (t) => {
  const r = rig({ raw: true });
  try {
    const d = r.drv;
    t.equal(d.enable(32, (6 << 16) | (4 << 20) | (1 << 7) | 1) & 3, 2, 'CC.MPS 8 KiB is beyond MPSMAX: CFS');
    t.equal(d.enable(32, (6 << 16) | (4 << 20) | (1 << 4) | 1) & 3, 2, 'CC.CSS other than NVM: CFS');
    d.setReg(0x14, 0);
    d.setReg64(0x28, 1n << 40n);
    d.setReg(0x14, (6 << 16) | (4 << 20) | 1);
    t.equal(d.reg(0x1c) & 3, 2, 'an admin SQ outside guest RAM: CFS');
    t.equal(d.enable() & 3, 1, 'a good configuration after a reset is ready again');
    t.ok(r.warnings.some((w) => /cannot enable/.test(w)), 'each refusal is explained');
  } finally {
    r.close();
  }
});

test('Identify Controller and Namespace match the options and the disk', async (t) => {
  const r = rig({ size: 2 << 20, opts: 'ser=SERIAL-42,eui64=0x0102030405060708,sectsz=4096,maxq=8', queues: 0 });
  try {
    const d = r.drv;
    const ctrl = d.identify(1);
    t.equal(ctrl.status, 0, 'Identify Controller succeeds');
    const c = Buffer.from(ctrl.data);
    t.equal(c.readUInt16LE(0), 0xfb5d, 'VID');
    t.equal(c.toString('latin1', 4, 24), 'SERIAL-42'.padEnd(20, ' '), 'serial from ser=, space padded');
    t.equal(c.toString('latin1', 24, 64).trimEnd(), 'bhyve-NVMe', 'model number');
    t.equal(c[77], 9, 'MDTS 9 (2 MiB)');
    t.equal(c.readUInt32LE(80), 0x00010400, 'VER');
    t.equal(c[512], 0x66, 'SQES 64 bytes');
    t.equal(c[513], 0x44, 'CQES 16 bytes');
    t.equal(c.readUInt32LE(516), 1, 'one namespace');
    t.ok(c.readUInt16LE(256) & (1 << 8), 'OACS: Doorbell Buffer Config');
    t.ok(c.readUInt16LE(520) & (1 << 3), 'ONCS: Write Zeroes');
    t.ok(c[525]! & 1, 'a volatile write cache');
    t.ok(c.toString('latin1', 768, 800).startsWith('nqn.2014-08.org.nvmexpress:'), 'subsystem NQN');
    const ns = d.identify(0, 1);
    t.equal(ns.status, 0, 'Identify Namespace 1 succeeds');
    const n = Buffer.from(ns.data);
    t.equal(n.readBigUInt64LE(0), 512n, 'NSZE = 2 MiB / 4096');
    t.equal(n[25], 0, 'one LBA format');
    t.equal((n.readUInt32LE(128) >>> 16) & 0xff, 12, 'LBA format 0: 4096-byte data');
    t.equal(n.readBigUInt64BE(120), 0x0102030405060708n, 'EUI-64 from eui64=');
    const list = d.identify(2, 0);
    t.equal(Buffer.from(list.data).readUInt32LE(0), 1, 'active namespace list: 1');
    t.equal(Buffer.from(list.data).readUInt32LE(4), 0, '... and nothing else');
    t.equal(Buffer.from(d.identify(2, 1).data).readUInt32LE(0), 0, 'no active namespace above 1');
    const desc = Buffer.from(d.identify(3, 1).data);
    t.deepEqual([desc[0], desc[1]], [1, 8], 'descriptor: EUI-64, 8 bytes');
    t.equal(desc.readBigUInt64BE(4), 0x0102030405060708n, 'descriptor carries the EUI-64');
    t.equal(d.identify(0, 2).status, 0x00b, 'namespace 2: Invalid Namespace or Format');
    t.equal(d.identify(0x1f, 0).status, 0x002, 'unknown CNS: Invalid Field');
  } finally {
    r.close();
  }
});

test('defaults: serial NVME-<slot>-<func>, a derived EUI-64 with the FreeBSD OUI, the disk\'s sector size', async (t) => {
  const r = rig({ queues: 0 });
  try {
    const c = Buffer.from(r.drv.identify(1).data);
    t.equal(c.toString('latin1', 4, 24).trimEnd(), 'NVME-4-0', 'default serial');
    const n = Buffer.from(r.drv.identify(0, 1).data);
    t.equal(n.readBigUInt64BE(120) >> 40n, 0x589cfcn, 'EUI-64 starts with 58-9C-FC');
    t.equal(n.readBigUInt64BE(120) & 0xffffn, 1n, 'and ends with the NSID');
    t.equal((n.readUInt32LE(128) >>> 16) & 0xff, 9, '512-byte LBAs from a file');
    t.equal(n.readBigUInt64LE(0), 2048n, 'NSZE = 1 MiB / 512');
  } finally {
    r.close();
  }
});

test('ram=MiB: an in-memory namespace of that size with 4096-byte LBAs', async (t) => {
  const { m, drv } = nvmeMachine(['-s', '4,nvme,ram=8'], 4);
  try {
    drv.enableMsix(17);
    t.equal(drv.enable() & 1, 1, 'ready');
    const n = Buffer.from(drv.identify(0, 1).data);
    t.equal(n.readBigUInt64LE(0), 2048n, '8 MiB / 4096');
    t.equal((n.readUInt32LE(128) >>> 16) & 0xff, 12, '4096-byte LBAs');
  } finally {
    m.close();
  }
});

test('shutdown (CC.SHN) flushes and reports SHST complete', async (t) => {
  const r = rig();
  try {
    r.drv.setReg(0x14, r.drv.reg(0x14) | (1 << 14));
    t.equal((r.drv.reg(0x1c) >>> 2) & 3, 2, 'SHST: shutdown processing complete');
  } finally {
    r.close();
  }
});
