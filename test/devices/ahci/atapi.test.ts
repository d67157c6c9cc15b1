// An ATAPI port holding a disc image: the signature and IDENTIFY PACKET DEVICE, and the packet commands a guest
// uses to find and read a disc (MMC-6 / SPC-4): TEST UNIT READY, INQUIRY, READ CAPACITY, READ(10)/(12), READ TOC,
// MODE SENSE(10), GET CONFIGURATION, GET EVENT STATUS NOTIFICATION, REQUEST SENSE after each kind of error.
import test from 'tape';
import { ER_ABRT, ST_ERR } from '../../harness/ahci-driver.js';
import { ATA_IDENTIFY, ATA_IDENTIFY_PACKET, ataString, identify, packet, pattern, rig, sense, words } from './helpers.js';

const BLOCKS = 40;
const cd = () => rig([{ type: 'cd', size: BLOCKS * 2048 }]);
const be16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
const be32 = (b: Uint8Array, at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

test('ATAPI identity: IDENTIFY DEVICE aborted with the signature, IDENTIFY PACKET DEVICE, INQUIRY', async (t) => {
  const r = cd();
  try {
    const d = r.drv;
    const ata = await identify(d, 0, ATA_IDENTIFY);
    t.ok(ata.r.status & ST_ERR && ata.r.error & ER_ABRT, 'IDENTIFY DEVICE on a packet device: aborted');
    t.deepEqual([ata.r.d2h[5], ata.r.d2h[6]], [0x14, 0xeb], 'the D2H FIS carries the ATAPI signature (LBA mid/high 14h/EBh)');
    d.recover(0);
    const { r: res, data } = await identify(d, 0, ATA_IDENTIFY_PACKET);
    t.equal(res.status & ST_ERR, 0, 'IDENTIFY PACKET DEVICE completed');
    const w = words(data);
    t.equal(w[0]! >> 14, 2, 'word 0: an ATAPI device');
    t.equal((w[0]! >> 8) & 0x1f, 5, 'word 0: CD-ROM command set');
    t.ok(w[0]! & 0x80, 'word 0: removable');
    t.equal(ataString(w, 27, 20), 'BHYVE SATA DVD ROM', 'bhyve\'s default model');
    t.equal(data.reduce((a, b) => (a + b) & 0xff, 0), 0, 'checksum holds');
    const inq = await packet(d, 0, [0x12, 0, 0, 0, 96], 96);
    t.equal(inq.r.status & ST_ERR, 0, 'INQUIRY completed');
    t.equal(inq.data[0]! & 0x1f, 5, 'peripheral device type 5 (CD/DVD)');
    t.ok(inq.data[1]! & 0x80, 'removable medium');
    t.equal(Buffer.from(inq.data.subarray(8, 16)).toString().trim(), 'BHYVE', 'vendor');
    t.equal(Buffer.from(inq.data.subarray(16, 32)).toString().trim(), 'BHYVE DVD-ROM', 'product');
    t.equal(inq.r.prdbc, 36, 'PRDBC: the 36 bytes of standard data, not the allocation length');
    const short = await packet(d, 0, [0x12, 0, 0, 0, 8], 96);
    t.equal(short.r.prdbc, 8, 'the allocation length cuts the data (8 bytes)');
    t.equal(short.data[8], 0xee, 'and nothing beyond it was written');
  } finally {
    r.close();
  }
});

test('reading the disc: TEST UNIT READY, READ CAPACITY, READ(10), READ(12), READ TOC', async (t) => {
  const r = cd();
  try {
    const d = r.drv;
    const tur = await packet(d, 0, [0x00]);
    t.equal(tur.r.status & ST_ERR, 0, 'TEST UNIT READY: good (a disc is present)');
    const cap = await packet(d, 0, [0x25], 8);
    t.equal(be32(cap.data, 0), BLOCKS - 1, `READ CAPACITY: last block ${BLOCKS - 1}`);
    t.equal(be32(cap.data, 4), 2048, '2048-byte blocks');
    const r10 = await packet(d, 0, [0x28, 0, 0, 0, 0, 3, 0, 0, 2], 4096);
    t.equal(r10.r.status & ST_ERR, 0, 'READ(10) of blocks 3-4');
    t.equal(r10.r.prdbc, 4096, 'PRDBC 4096');
    t.ok(r10.data.every((b, i) => b === pattern(3 * 2048 + i)), 'the bytes of the image');
    const r12 = await packet(d, 0, [0xa8, 0, 0, 0, 0, 10, 0, 0, 0, 1], 2048);
    t.ok(r12.data.every((b, i) => b === pattern(10 * 2048 + i)), 'READ(12) of block 10');
    const toc = await packet(d, 0, [0x43, 0, 0, 0, 0, 0, 0, 0, 100], 100);
    t.equal(toc.r.status & ST_ERR, 0, 'READ TOC (format 0)');
    t.deepEqual([toc.data[2], toc.data[3]], [1, 1], 'first and last track 1');
    t.equal(toc.data[6], 1, 'a descriptor for track 1');
    t.equal(toc.data[14], 0xaa, 'then the lead-out');
    t.equal(be32(toc.data, 16), BLOCKS, 'the lead-out starts at the disc\'s end');
    const msf = await packet(d, 0, [0x43, 2, 0, 0, 0, 0, 0, 0, 100], 100);
    t.deepEqual([msf.data[9], msf.data[10], msf.data[11]], [0, 2, 0], 'MSF form: track 1 at 00:02:00');
    const session = await packet(d, 0, [0x43, 0, 1, 0, 0, 0, 0, 0, 12], 12);
    t.equal(session.r.status & ST_ERR, 0, 'READ TOC format 1 (session information)');
  } finally {
    r.close();
  }
});

test('what an OS probes: MODE SENSE(10), GET CONFIGURATION, GET EVENT STATUS NOTIFICATION, disc information', async (t) => {
  const r = cd();
  try {
    const d = r.drv;
    const ms = await packet(d, 0, [0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 64], 64);
    t.equal(ms.r.status & ST_ERR, 0, 'MODE SENSE(10) page 2Ah');
    t.equal(ms.data[8]! & 0x3f, 0x2a, 'the capabilities page follows the header');
    t.equal(be16(ms.data, 0) + 2, ms.r.prdbc, 'mode data length matches the bytes sent');
    const all = await packet(d, 0, [0x5a, 0, 0x3f, 0, 0, 0, 0, 0, 255], 255);
    t.equal(all.r.status & ST_ERR, 0, 'MODE SENSE(10) all pages');
    const gc = await packet(d, 0, [0x46, 0, 0, 0, 0, 0, 0, 1, 0], 256);
    t.equal(gc.r.status & ST_ERR, 0, 'GET CONFIGURATION');
    t.equal(be16(gc.data, 6), 0x0008, 'current profile: CD-ROM (a small image)');
    t.equal(be16(gc.data, 8), 0x0000, 'the profile list comes first');
    const one = await packet(d, 0, [0x46, 2, 0, 0x10, 0, 0, 0, 0, 64], 64);
    t.equal(be16(one.data, 8), 0x0010, 'RT=2: just the feature asked for (random readable)');
    t.equal(be32(one.data, 12), 2048, 'with 2048-byte blocks');
    const ev = await packet(d, 0, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8], 8);
    t.equal(ev.r.status & ST_ERR, 0, 'GET EVENT STATUS NOTIFICATION (polled, media class)');
    t.equal(ev.data[2]! & 7, 4, 'a media class event header');
    t.ok(ev.data[5]! & 2, 'media present');
    const async = await packet(d, 0, [0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8], 8);
    t.ok(async.r.status & ST_ERR, 'the asynchronous form is refused');
    t.deepEqual(await sense(d, 0), [5, 0x24, 0], 'ILLEGAL REQUEST, INVALID FIELD IN CDB');
    const di = await packet(d, 0, [0x51, 0, 0, 0, 0, 0, 0, 0, 34], 34);
    t.equal(di.r.status & ST_ERR, 0, 'READ DISC INFORMATION');
    t.equal(di.data[2]! & 3, 2, 'a complete (finalized) disc');
    for (const [name, cdb] of [['PREVENT ALLOW MEDIUM REMOVAL', [0x1e, 0, 0, 0, 1]], ['START STOP UNIT', [0x1b, 0, 0, 0, 1]]] as const) {
      const x = await packet(d, 0, [...cdb]);
      t.equal(x.r.status & ST_ERR, 0, `${name}: good`);
    }
  } finally {
    r.close();
  }
});

test('errors end in CHECK CONDITION with the sense data the specs give', async (t) => {
  const r = cd();
  try {
    const d = r.drv;
    const past = await packet(d, 0, [0x28, 0, 0, 0, 0, BLOCKS - 1, 0, 0, 2], 4096);
    t.ok(past.r.status & ST_ERR, 'READ(10) across the end: CHECK CONDITION');
    t.equal(past.r.error >> 4, 5, 'the error register\'s sense key: ILLEGAL REQUEST');
    t.equal(past.data[0], 0xee, 'no data was written');
    t.deepEqual(await sense(d, 0), [5, 0x21, 0], 'REQUEST SENSE: LOGICAL BLOCK ADDRESS OUT OF RANGE');
    t.deepEqual(await sense(d, 0), [0, 0, 0], 'reported once: the next REQUEST SENSE says no sense');
    const wr = await packet(d, 0, [0x2a, 0, 0, 0, 0, 0, 0, 0, 1], 2048);
    t.ok(wr.r.status & ST_ERR, 'WRITE(10): CHECK CONDITION');
    t.deepEqual(await sense(d, 0), [7, 0x27, 0], 'DATA PROTECT, WRITE PROTECTED');
    const unknown = await packet(d, 0, [0xd9]);
    t.ok(unknown.r.status & ST_ERR, 'an unknown operation code: CHECK CONDITION');
    t.deepEqual(await sense(d, 0), [5, 0x20, 0], 'INVALID COMMAND OPERATION CODE');
    const small = await packet(d, 0, [0x28, 0, 0, 0, 0, 0, 0, 0, 4], 2048);
    t.ok(small.r.status & ST_ERR, 'READ(10) of four blocks into a 2 KiB PRDT: refused');
    t.deepEqual(await sense(d, 0), [5, 0x24, 0], 'ILLEGAL REQUEST, INVALID FIELD');
    const stopped = await packet(d, 0, [0x2a, 0, 0, 0, 0, 0, 0, 0, 1], 2048);
    t.ok(stopped.r.stuck && stopped.r.is & (1 << 30), 'a CHECK CONDITION is a task file error: PxIS.TFES, the port stops');
    d.recover(0);
    const good = await packet(d, 0, [0x28, 0, 0, 0, 0, 1, 0, 0, 1], 2048);
    t.equal(good.r.status & ST_ERR, 0, 'once the guest restarts the engine the next READ works');
  } finally {
    r.close();
  }
});
