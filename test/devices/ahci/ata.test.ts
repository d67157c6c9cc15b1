// The ATA command set of a disk port: IDENTIFY DEVICE against the options, DMA and PIO reads and writes over
// multi-entry PRDTs, NCQ with several tags in flight and the Set Device Bits completion, FLUSH, TRIM reaching the
// file, SET FEATURES (write cache), READ LOG EXT, read-only disks, and error completions with the engine stopped
// until the guest restarts it.
import { readFileSync, statSync } from 'node:fs';
import test from 'tape';
import { IS_SDBS, IS_TFES, PxCI, PxIS, PxSACT, ER_ABRT, ER_IDNF, ST_ERR } from '../../harness/ahci-driver.js';
import {
  ATA_DSM, ATA_FLUSH_EXT, ATA_IDENTIFY_PACKET, ATA_READ_DMA_EXT, ATA_READ_FPDMA, ATA_READ_LOG_EXT, ATA_SET_FEATURES,
  ATA_WRITE_DMA_EXT, ATA_WRITE_FPDMA, ataString, identify, pattern, rig, words,
} from './helpers.js';
import { defaultSerial } from '../../../devices/virtio-blk/options.js';

test('IDENTIFY DEVICE: strings, capacity, NCQ, TRIM, rotation rate, sector sizes, checksum', async (t) => {
  const r = rig([{ type: 'hd', size: 3 << 20, opts: 'nmrr=1,ser=SERIAL-0123,rev=REV9,model=A MODEL' }]);
  try {
    const { r: res, data } = await identify(r.drv, 0);
    t.equal(res.status & ST_ERR, 0, 'completed without error');
    t.equal(res.prdbc, 512, 'PRDBC: 512 bytes moved');
    t.ok(res.is & 2, 'a PIO Setup FIS came first (PxIS.PSS)');
    const w = words(data);
    t.equal(ataString(w, 10, 10), 'SERIAL-0123', 'serial from ser=');
    t.equal(ataString(w, 23, 4), 'REV9', 'firmware revision from rev=');
    t.equal(ataString(w, 27, 20), 'A MODEL', 'model from model=');
    t.equal(w[100]! + w[101]! * 65536, 6144, 'LBA48 capacity: 3 MiB / 512');
    t.equal(w[60]! + w[61]! * 65536, 6144, 'LBA28 capacity too');
    t.ok(w[76]! & (1 << 8), 'word 76: NCQ supported');
    t.equal(w[75]! & 0x1f, 31, 'word 75: queue depth 32');
    t.ok(w[83]! & (1 << 10), 'word 83: 48-bit addressing');
    t.ok(w[169]! & 1, 'word 169: TRIM (the file can punch holes)');
    t.ok(w[105]! >= 1, 'word 105: DSM blocks per command');
    t.equal(w[217], 1, 'word 217: rotation rate 1 (nmrr=1, non-rotating)');
    t.ok(w[85]! & (1 << 5), 'word 85: write cache enabled');
    t.equal(data[510], 0xa5, 'word 255 signature A5h');
    t.equal(data.reduce((a, b) => (a + b) & 0xff, 0), 0, 'checksum: all 512 bytes sum to 0');
  } finally {
    r.close();
  }
  const d = rig([{ type: 'hd' }]);
  try {
    const w = words((await identify(d.drv, 0)).data);
    t.equal(ataString(w, 10, 10), defaultSerial(d.files[0]!), 'default serial: BHYVE-XXXX-XXXX-XXXX from the path');
    t.equal(ataString(w, 27, 20), 'BHYVE SATA DISK', 'default model');
    t.equal(ataString(w, 23, 4), '001', 'default revision');
    t.equal(w[217], 0, 'no nmrr: rotation rate not reported');
    const pk = await identify(d.drv, 0, ATA_IDENTIFY_PACKET);
    t.ok(pk.r.status & ST_ERR && pk.r.error & ER_ABRT, 'IDENTIFY PACKET DEVICE on a disk: aborted');
  } finally {
    d.close();
  }
  const big = rig([{ type: 'hd', opts: 'sectorsize=4096' }]);
  try {
    const w = words((await identify(big.drv, 0)).data);
    t.ok(w[106]! & (1 << 12), 'sectorsize=4096: word 106 says logical sectors are longer than 512 bytes');
    t.equal(w[117]! + w[118]! * 65536, 2048, 'words 117-118: 2048 words per logical sector');
    t.equal(w[100], 256, 'capacity in 4 KiB sectors');
  } finally {
    big.close();
  }
});

test('READ/WRITE DMA EXT over a multi-entry PRDT reach the file; reads return it', async (t) => {
  const r = rig([{ type: 'hd' }]);
  try {
    const d = r.drv;
    const buf = d.buffer(65536);
    // Three entries of odd (even-byte) sizes covering 16 sectors.
    const prdt = [{ addr: buf, len: 1024 }, { addr: buf + 8192, len: 6144 }, { addr: buf + 20000, len: 1024 }];
    const rd = await d.command(0, { command: ATA_READ_DMA_EXT, lba: 10, count: 16, prdt });
    t.equal(rd.status & ST_ERR, 0, 'read completed');
    t.equal(rd.prdbc, 8192, 'PRDBC 8192');
    const got = Buffer.concat([d.bytes(buf, 1024), d.bytes(buf + 8192, 6144), d.bytes(buf + 20000, 1024)]);
    const want = Buffer.from(Array.from({ length: 8192 }, (_, i) => pattern(10 * 512 + i)));
    t.ok(got.equals(want), 'the bytes land in the three buffers in order');
    const src = d.buffer(4096);
    for (let i = 0; i < 4096; i++) d.m.memory.bytes[src + i] = (i * 13) & 0xff;
    const wr = await d.command(0, { command: ATA_WRITE_DMA_EXT, lba: 100, count: 8, write: true, prdt: [{ addr: src, len: 4096 }] });
    t.equal(wr.status & ST_ERR, 0, 'write completed');
    t.ok(wr.is & 1, 'D2H register FIS (PxIS.DHRS)');
    t.equal(wr.d2h[0], 0x34, 'the D2H FIS is in the receive area');
    const file = readFileSync(r.files[0]!);
    t.ok(file.subarray(100 * 512, 100 * 512 + 4096).equals(Buffer.from(d.bytes(src, 4096))), 'the file holds the written sectors');
    const fl = await d.command(0, { command: ATA_FLUSH_EXT });
    t.equal(fl.status & ST_ERR, 0, 'FLUSH CACHE EXT');
    // 28-bit READ DMA and PIO READ SECTORS take the same path
    const b2 = d.buffer(512);
    const r28 = await d.command(0, { command: 0xc8, lba: 3, count: 1, prdt: [{ addr: b2, len: 512 }] });
    t.equal(r28.status & ST_ERR, 0, 'READ DMA (28-bit)');
    t.equal(d.m.memory.bytes[b2], pattern(3 * 512), 'sector 3');
    const pio = await d.command(0, { command: 0x24, lba: 4, count: 1, prdt: [{ addr: b2, len: 512 }] });
    t.ok(pio.status === 0x50 && pio.is & 2, 'READ SECTORS EXT (PIO): PIO Setup FIS, then done');
    t.equal(d.m.memory.bytes[b2], pattern(4 * 512), 'sector 4');
  } finally {
    r.close();
  }
});

test('NCQ: eight queued writes and reads in flight, Set Device Bits completions, PxSACT cleared', async (t) => {
  const r = rig([{ type: 'hd', size: 4 << 20 }]);
  try {
    const d = r.drv;
    const slots = [0, 1, 2, 3, 4, 5, 6, 7];
    const bufs = slots.map(() => d.buffer(8192));
    slots.forEach((s) => {
      for (let i = 0; i < 8192; i++) d.m.memory.bytes[bufs[s]! + i] = (s * 31 + i) & 0xff;
      d.build(0, s, { command: ATA_WRITE_FPDMA, features: 16, count: s << 3, lba: 1000 + s * 16, write: true, prdt: [{ addr: bufs[s]!, len: 8192 }] });
    });
    d.issue(0, slots, true);
    await d.wait(0, slots);
    t.equal(d.preg(0, PxSACT), 0, 'every SACT bit cleared');
    t.equal(d.preg(0, PxCI), 0, 'every CI bit cleared');
    t.ok(d.preg(0, PxIS) & IS_SDBS, 'PxIS.SDBS: Set Device Bits FIS');
    t.equal(d.bytes(d.ports.get(0)!.fb + 0x58, 1)[0], 0xa1, 'the SDB FIS is in the receive area');
    const file = readFileSync(r.files[0]!);
    t.ok(slots.every((s) => file.subarray((1000 + s * 16) * 512, (1000 + s * 16) * 512 + 8192).equals(Buffer.from(d.bytes(bufs[s]!, 8192)))), 'each queued write is in the file');
    slots.forEach((s) => {
      d.m.memory.bytes.fill(0, bufs[s]!, bufs[s]! + 8192);
      d.build(0, s, { command: ATA_READ_FPDMA, features: 16, count: s << 3, lba: 1000 + s * 16, prdt: [{ addr: bufs[s]!, len: 8192 }] });
    });
    d.issue(0, slots, true);
    await d.wait(0, slots);
    t.ok(slots.every((s) => Buffer.from(d.bytes(bufs[s]!, 8192)).equals(file.subarray((1000 + s * 16) * 512, (1000 + s * 16) * 512 + 8192))), 'queued reads return them');
    t.ok(d.controller.stats().ncqCommands >= 16, 'counted as NCQ commands');
  } finally {
    r.close();
  }
});

test('DATA SET MANAGEMENT TRIM deallocates in the file; SET FEATURES write cache; READ LOG EXT', async (t) => {
  const r = rig([{ type: 'hd', size: 4 << 20 }]);
  try {
    const d = r.drv;
    const before = statSync(r.files[0]!).blocks;
    const ranges = d.buffer(512);
    d.m.memory.bytes.fill(0, ranges, ranges + 512);
    const v = d.m.memory.view;
    // entry: LBA 2048, 2048 sectors (1 MiB); a zero-length entry is skipped
    v.setUint32(ranges, 2048, true);
    v.setUint16(ranges + 6, 2048, true);
    const trim = await d.command(0, { command: ATA_DSM, features: 1, count: 1, write: true, prdt: [{ addr: ranges, len: 512 }] });
    t.equal(trim.status & ST_ERR, 0, 'TRIM completed');
    const file = readFileSync(r.files[0]!);
    t.ok(file.subarray(2048 * 512, 4096 * 512).every((b) => b === 0), 'the trimmed megabyte reads as zeros');
    t.equal(file[4096 * 512], pattern(4096 * 512), 'the sector after it is untouched');
    t.ok(statSync(r.files[0]!).blocks < before, `the file gave the blocks back (${before} -> ${statSync(r.files[0]!).blocks} blocks)`);
    v.setUint32(ranges, 8190, true);
    v.setUint16(ranges + 6, 100, true);
    const past = await d.command(0, { command: ATA_DSM, features: 1, count: 1, write: true, prdt: [{ addr: ranges, len: 512 }] });
    t.ok(past.status & ST_ERR && past.error & ER_IDNF, 'a range past the end: IDNF');
    d.recover(0);
    const wcOff = await d.command(0, { command: ATA_SET_FEATURES, features: 0x82 });
    t.equal(wcOff.status & ST_ERR, 0, 'SET FEATURES: write cache off');
    t.equal(words((await identify(d, 0)).data)[85]! & (1 << 5), 0, 'IDENTIFY word 85 shows it off');
    await d.command(0, { command: ATA_SET_FEATURES, features: 0x02 });
    t.ok(words((await identify(d, 0)).data)[85]! & (1 << 5), 'and on again');
    const bad = await d.command(0, { command: ATA_SET_FEATURES, features: 0x05 });
    t.ok(bad.status & ST_ERR && bad.error & ER_ABRT, 'an unsupported SET FEATURES subcommand: aborted');
    d.recover(0);
    const log = d.buffer(512);
    const dir = await d.command(0, { command: ATA_READ_LOG_EXT, lba: 0x00, count: 1, prdt: [{ addr: log, len: 512 }] });
    t.equal(dir.status & ST_ERR, 0, 'READ LOG EXT: the log directory');
    t.equal(d.m.memory.view.getUint16(log + 0x10 * 2, true), 1, 'it lists the NCQ command error log (10h), one page');
    const ncq = await d.command(0, { command: ATA_READ_LOG_EXT, lba: 0x10, count: 1, prdt: [{ addr: log, len: 512 }] });
    t.equal(ncq.status & ST_ERR, 0, 'READ LOG EXT 10h');
    t.equal(d.bytes(log, 512).reduce((a, b) => (a + b) & 0xff, 0), 0, 'its checksum holds');
    const other = await d.command(0, { command: ATA_READ_LOG_EXT, lba: 0x30, count: 1, prdt: [{ addr: log, len: 512 }] });
    t.ok(other.status & ST_ERR, 'a log page not in the directory: aborted');
  } finally {
    r.close();
  }
});

test('errors: past the end (IDNF), a short PRDT, a read-only disk; the engine stops until restarted', async (t) => {
  const r = rig([{ type: 'hd' }, { type: 'hd', opts: 'ro' }]);
  try {
    const d = r.drv;
    const buf = d.buffer(8192);
    const past = await d.command(0, { command: ATA_READ_DMA_EXT, lba: 2047, count: 2, prdt: [{ addr: buf, len: 1024 }] });
    t.ok(past.status & ST_ERR, 'a read across the end: ERR');
    t.ok(past.error & ER_IDNF && past.error & ER_ABRT, 'IDNF and ABRT');
    t.ok(past.is & IS_TFES, 'PxIS.TFES');
    t.ok(past.stuck, 'the command\'s CI bit stays set');
    d.build(0, 1, { command: ATA_READ_DMA_EXT, lba: 0, count: 1, prdt: [{ addr: buf, len: 512 }] });
    d.issue(0, [1]);
    await new Promise((res) => setTimeout(res, 50));
    t.ok(d.preg(0, PxCI) & 2, 'a command issued after the error is not run while the engine is stopped');
    d.recover(0);
    t.equal(d.preg(0, PxCI), 0, 'clearing ST cleared CI');
    const good = await d.command(0, { command: ATA_READ_DMA_EXT, lba: 0, count: 1, prdt: [{ addr: buf, len: 512 }] });
    t.equal(good.status & ST_ERR, 0, 'after the restart a good read works');
    t.equal(d.m.memory.bytes[buf + 1], pattern(1), 'with the right data');
    const short = await d.command(0, { command: ATA_READ_DMA_EXT, lba: 0, count: 8, prdt: [{ addr: buf, len: 2048 }] });
    t.ok(short.status & ST_ERR && short.error & ER_ABRT, 'a PRDT smaller than the transfer: aborted');
    d.recover(0);
    const ro = await d.command(1, { command: ATA_WRITE_DMA_EXT, lba: 0, count: 1, write: true, prdt: [{ addr: buf, len: 512 }] });
    t.ok(ro.status & ST_ERR && ro.error & ER_ABRT, 'a write to a read-only disk: aborted');
    t.equal(readFileSync(r.files[1]!)[0], pattern(0), 'and the file is unchanged');
    d.recover(1);
    const nop = await d.command(1, { command: 0x00 });
    t.ok(nop.status & ST_ERR && nop.error & ER_ABRT, 'NOP: always aborted, as ACS-3 says');
    d.recover(1);
    const fpdmaPast = await d.command(0, { command: ATA_READ_FPDMA, features: 8, count: 0, lba: 4000, queued: true, prdt: [{ addr: buf, len: 4096 }] });
    t.ok(fpdmaPast.status & ST_ERR, 'a queued read past the end fails');
    const log = d.buffer(512);
    d.recover(0);
    await d.command(0, { command: ATA_READ_LOG_EXT, lba: 0x10, count: 1, prdt: [{ addr: log, len: 512 }] });
    t.equal(d.m.memory.bytes[log]! & 0x1f, 0, 'the NCQ error log names its tag (0)');
    t.equal(d.m.memory.bytes[log + 3]! & ER_IDNF, ER_IDNF, 'and its error (IDNF)');
  } finally {
    r.close();
  }
});
