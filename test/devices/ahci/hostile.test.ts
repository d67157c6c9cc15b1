// A hostile guest: command lists, tables, PRDTs and FIS areas outside RAM, impossible FIS lengths and types,
// transfer lengths that overrun the disk or the PRDT, oversized DATA SET MANAGEMENT and log requests, every slot
// issued with garbage, and narrow register writes. Each gets the error AHCI / ATA / SCSI define (or is ignored),
// the host never crashes, and the port works again after the guest's recovery.
import test from 'tape';
import { IS_HBFS, IS_TFES, PxCI, PxCLB, PxFB, PxIE, ER_ABRT, ER_IDNF, ST_ERR } from '../../harness/ahci-driver.js';
import { ATA_DSM, ATA_READ_DMA_EXT, ATA_READ_FPDMA, ATA_READ_LOG_EXT, packet, pattern, rig, sense } from './helpers.js';

const RAM = 16 << 20;

async function stillWorks(t: test.Test, r: ReturnType<typeof rig>, what: string): Promise<void> {
  const d = r.drv;
  d.recover(0);
  const buf = d.buffer(512);
  const good = await d.command(0, { command: ATA_READ_DMA_EXT, lba: 5, count: 1, prdt: [{ addr: buf, len: 512 }] });
  t.ok((good.status & ST_ERR) === 0 && d.m.memory.bytes[buf + 7] === pattern(5 * 512 + 7), `after ${what}, a good read works`);
}

test('structures outside guest RAM: host bus fatal error for the list and table, ABRT for data buffers', async (t) => {
  const r = rig([{ type: 'hd' }]);
  try {
    const d = r.drv;
    const pm = d.ports.get(0)!;
    // The command table beyond RAM
    d.build(0, 0, { command: ATA_READ_DMA_EXT, lba: 0, count: 1, prdt: [] });
    d.m.memory.view.setUint32(pm.clb + 8, RAM + 0x1000, true);
    d.issue(0, [0]);
    await d.wait(0, [0]);
    t.ok(d.preg(0, 0x10) & IS_HBFS, 'a command table outside RAM: PxIS.HBFS');
    await stillWorks(t, r, 'the host bus fatal error');
    // The command list beyond RAM
    d.stopPort(0);
    d.setPreg(0, PxCLB, 0xfff00000);
    d.setPreg(0, 0x18, d.preg(0, 0x18) | 1);
    d.setPreg(0, PxCI, 1);
    await d.wait(0, [0]);
    t.ok(d.preg(0, 0x10) & IS_HBFS, 'a command list outside RAM: PxIS.HBFS');
    d.stopPort(0);
    d.setPreg(0, PxCLB, pm.clb);
    await stillWorks(t, r, 'the command list moved back');
    // A data buffer beyond RAM, and one that runs off its end
    for (const [what, addr] of [['beyond RAM', RAM + 4096], ['running off the end of RAM', RAM - 256]] as const) {
      const res = await d.command(0, { command: ATA_READ_DMA_EXT, lba: 0, count: 1, prdt: [{ addr, len: 512 }] });
      t.ok(res.status & ST_ERR && res.error & ER_ABRT, `a PRD ${what}: aborted`);
      await stillWorks(t, r, `a PRD ${what}`);
    }
    // The FIS receive area beyond RAM: the FIS is lost, the command still completes
    d.stopPort(0);
    d.setPreg(0, 0x18, d.preg(0, 0x18) & ~(1 << 4));
    d.setPreg(0, PxFB, 0xfff00000);
    d.setPreg(0, 0x18, d.preg(0, 0x18) | (1 << 4) | 1);
    const buf = d.buffer(512);
    const res = await d.command(0, { command: ATA_READ_DMA_EXT, lba: 1, count: 1, prdt: [{ addr: buf, len: 512 }] });
    t.equal(res.status & ST_ERR, 0, 'a FIS area outside RAM: the command completes (its FIS goes nowhere)');
    t.equal(d.m.memory.bytes[buf], pattern(512), 'with its data');
  } finally {
    r.close();
  }
});

test('impossible FISes, lengths and counts', async (t) => {
  const r = rig([{ type: 'hd' }]);
  try {
    const d = r.drv;
    const buf = d.buffer(1 << 20);
    for (const [what, c] of [
      ['CFL 0', { command: ATA_READ_DMA_EXT, cfl: 0 }],
      ['CFL 17 (over 64 bytes)', { command: ATA_READ_DMA_EXT, cfl: 17 & 0x1f }],
      ['a FIS that is not Register H2D', { command: ATA_READ_DMA_EXT, fisType: 0x46 }],
    ] as const) {
      const res = await d.command(0, { ...c, lba: 0, count: 1, prdt: [{ addr: buf, len: 512 }] });
      t.ok(res.status & ST_ERR && res.error & ER_ABRT, `${what}: aborted`);
      d.recover(0);
    }
    const zero = await d.command(0, { command: ATA_READ_DMA_EXT, lba: 0, count: 0, prdt: [{ addr: buf, len: 1 << 20 }] });
    t.ok(zero.status & ST_ERR && zero.error & ER_IDNF, 'count 0 means 65536 sectors: past the 1 MiB disk, IDNF');
    d.recover(0);
    const high = await d.command(0, { command: ATA_READ_DMA_EXT, lba: 2 ** 47, count: 1, prdt: [{ addr: buf, len: 512 }] });
    t.ok(high.status & ST_ERR && high.error & ER_IDNF, 'an LBA of 2^47: IDNF');
    d.recover(0);
    const huge = await d.command(0, { command: ATA_READ_FPDMA, features: 0xffff, count: 3 << 3, lba: 0, queued: true, prdt: [{ addr: buf, len: 4096 }] });
    t.ok(huge.status & ST_ERR, 'a queued read of 65535 sectors: refused');
    d.recover(0);
    const manyPrds = await d.command(0, { command: ATA_READ_DMA_EXT, lba: 0, count: 1, prdt: Array.from({ length: 64 }, (_, i) => ({ addr: buf + i * 8, len: 8 })) });
    t.equal(manyPrds.status & ST_ERR, 0, '64 PRDs of 8 bytes: one sector in pieces');
    t.equal(d.m.memory.bytes[buf + 8 * 63 + 7], pattern(8 * 63 + 7), 'the last piece holds the last bytes');
    for (const [what, count] of [['no blocks', 0], ['65535 blocks', 65535]] as const) {
      const res = await d.command(0, { command: ATA_DSM, features: 1, count, write: true, prdt: [{ addr: buf, len: 512 }] });
      t.ok(res.status & ST_ERR && res.error & ER_ABRT, `DATA SET MANAGEMENT of ${what}: aborted`);
      d.recover(0);
    }
    const notTrim = await d.command(0, { command: ATA_DSM, features: 0, count: 1, write: true, prdt: [{ addr: buf, len: 512 }] });
    t.ok(notTrim.status & ST_ERR, 'DATA SET MANAGEMENT without the TRIM bit: aborted');
    d.recover(0);
    const noPages = await d.command(0, { command: ATA_READ_LOG_EXT, lba: 0, count: 0, prdt: [{ addr: buf, len: 512 }] });
    t.ok(noPages.status & ST_ERR, 'READ LOG EXT of 0 pages: aborted');
    await stillWorks(t, r, 'the bad commands');
  } finally {
    r.close();
  }
});

test('every slot issued at once with garbage headers; narrow and stray register writes', async (t) => {
  const r = rig([{ type: 'hd' }, { type: 'cd', size: 2048 * 8 }]);
  try {
    const d = r.drv;
    const pm = d.ports.get(0)!;
    for (let s = 0; s < 32; s++) {
      for (let i = 0; i < 32; i += 4) d.m.memory.view.setUint32(pm.clb + s * 32 + i, (Math.random() * 2 ** 32) >>> 0, true);
    }
    d.setPreg(0, PxCI, 0xffffffff);
    const end = Date.now() + 5000;
    while (!(d.preg(0, 0x10) & (IS_TFES | IS_HBFS)) && d.preg(0, PxCI) !== 0 && Date.now() < end) await new Promise((res) => setTimeout(res, 2));
    t.ok(d.preg(0, 0x10) & (IS_TFES | IS_HBFS) || d.preg(0, PxCI) === 0, 'the garbage ended in an error (or completed): no hang');
    for (let s = 0; s < 32; s++) d.build(0, s, { command: 0xec, prdt: [] });
    await stillWorks(t, r, 'the garbage');
    const ie = d.preg(0, PxIE);
    d.m.mmioWrite(d.abar + 0x100 + PxIE, 0, 1);
    d.m.mmioWrite(d.abar + 0x100 + PxIE + 2, 0, 2);
    t.equal(d.preg(0, PxIE), ie, 'byte and word writes to a register are dropped');
    t.equal(d.m.mmioRead(d.abar + 0x100 + 0x24 + 2, 2), 0, 'a word read of the upper half of PxSIG (0x0000 of 0x00000101)');
    d.setPreg(5, PxCI, 0xffffffff);
    d.setPreg(5, 0x18, 0x11);
    t.equal(d.preg(5, PxCI), 0, 'a port without a device ignores commands');
    // ATAPI oddities
    const zeroAlloc = await packet(d, 1, [0x12, 0, 0, 0, 0], 64);
    t.equal(zeroAlloc.r.prdbc, 0, 'INQUIRY with allocation length 0: no data');
    const readAll = await packet(d, 1, [0xa8, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], 2048);
    t.ok(readAll.r.status & ST_ERR, 'READ(12) of 2^32-1 blocks: CHECK CONDITION');
    t.deepEqual(await sense(d, 1), [5, 0x21, 0], 'LOGICAL BLOCK ADDRESS OUT OF RANGE');
  } finally {
    r.close();
  }
});
