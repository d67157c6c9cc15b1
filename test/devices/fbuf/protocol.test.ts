// The server over real TCP against the test client: handshakes of every version with and without a password,
// updates decoded and compared pixel for pixel (Raw and zlib), flow control, DesktopSize, input callbacks,
// and hostile clients that must be dropped while the others carry on.
import test from 'tape';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { RfbServer, type RfbServerOptions } from '../../../devices/fbuf/rfb/index.js';
import { NATIVE_PIXEL_FORMAT, type PixelFormat } from '../../../devices/fbuf/rfb/pixel-format.js';
import { mismatches, TestClient, TestFramebuffer } from './helpers.js';

interface Rig {
  server: RfbServer;
  fb: TestFramebuffer;
  logs: string[];
  port: number;
  client(): Promise<TestClient>;
  done(): Promise<void>;
}

async function rig(opts: Partial<RfbServerOptions> = {}, w = 80, h = 60): Promise<Rig> {
  const fb = new TestFramebuffer(w, h).pattern(1);
  const logs: string[] = [];
  const server = await RfbServer.listen({ framebuffer: fb, port: 0, log: (m) => logs.push(m), refreshMs: 10, ...opts });
  const port = server.address().port;
  const clients: TestClient[] = [];
  return {
    server, fb, logs, port,
    async client() {
      const c = await TestClient.connect(port);
      clients.push(c);
      return c;
    },
    async done() {
      for (const c of clients) c.close();
      await server.close();
    },
  };
}

const rgb565be: PixelFormat = { bitsPerPixel: 16, depth: 16, bigEndian: true, trueColour: true, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 };
const bgr233: PixelFormat = { bitsPerPixel: 8, depth: 8, bigEndian: false, trueColour: true, redMax: 7, greenMax: 7, blueMax: 3, redShift: 0, greenShift: 3, blueShift: 6 };

test('3.8 without a password: None, a SecurityResult, then ServerInit with the size, native format and name', async (t) => {
  const r = await rig({ desktopName: 'vm1 ünï' });
  try {
    const c = await r.client();
    t.equal((await c.read(12)).toString(), 'RFB 003.008\n', 'the server offers 3.8');
    c.write(Buffer.from('RFB 003.008\n'));
    t.deepEqual([...(await c.read(2))], [1, 1], 'one security type: None');
    c.write([1]);
    t.equal((await c.read(4)).readUInt32BE(), 0, '3.8 sends SecurityResult OK even for None');
    c.write([1]);
    const init = await c.read(24);
    t.equal(init.readUInt16BE(0), 80);
    t.equal(init.readUInt16BE(2), 60);
    t.deepEqual([...init.subarray(4, 20)], [32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0], '32 bpp depth 24 little-endian true colour, R16 G8 B0');
    const name = await c.read(init.readUInt32BE(20));
    t.equal(name.toString('utf8'), 'vm1 ünï', 'desktop name in UTF-8');
    t.equal(r.server.clientCount, 1);
  } finally {
    await r.done();
  }
});

test('3.7 and 3.3 without a password: no SecurityResult for None; 3.3 has the server choose', async (t) => {
  const r = await rig();
  try {
    const c7 = await r.client();
    await c7.read(12);
    c7.write(Buffer.from('RFB 003.007\n'));
    t.deepEqual([...(await c7.read(2))], [1, 1]);
    c7.write([1, 1]); // the choice, then ClientInit straight away: no SecurityResult in 3.7
    t.equal((await c7.read(24)).readUInt16BE(0), 80, '3.7: ServerInit follows the choice');
    const c3 = await r.client();
    await c3.read(12);
    c3.write(Buffer.from('RFB 003.003\n'));
    t.equal((await c3.read(4)).readUInt32BE(), 1, '3.3: U32 security type None');
    c3.write([1]);
    t.equal((await c3.read(24)).readUInt16BE(2), 60, '3.3: ServerInit follows');
    t.deepEqual(r.server.connections.map((c) => c.protocolVersion).sort(), [3, 7]);
  } finally {
    await r.done();
  }
});

test('VNC Authentication with the right password, in 3.3, 3.7 and 3.8', async (t) => {
  const r = await rig({ password: 'pa55word' });
  try {
    for (const version of ['003.003', '003.007', '003.008']) {
      const c = await r.client();
      const init = await c.handshake({ version, password: 'pa55word' });
      t.equal(init.width, 80, `${version}: logged in`);
    }
    t.equal(r.server.clientCount, 3);
    t.equal(r.server.stats.authFailures, 0);
  } finally {
    await r.done();
  }
});

test('a wrong password is refused, reported through the callback and logged, and the connection closed', async (t) => {
  const failures: string[] = [];
  const r = await rig({ password: 'right', onAuthFailure: (remote) => failures.push(remote) });
  try {
    const c8 = await r.client();
    await c8.read(12);
    c8.write(Buffer.from('RFB 003.008\n'));
    t.deepEqual([...(await c8.read(2))], [1, 2], 'only VNC Authentication is offered');
    c8.write([2]);
    const { vncAuthResponse } = await import('../../../devices/fbuf/rfb/vnc-auth.js');
    c8.write(vncAuthResponse('wrong', await c8.read(16)));
    t.equal((await c8.read(4)).readUInt32BE(), 1, 'SecurityResult failed');
    const reason = await c8.read((await c8.read(4)).readUInt32BE());
    t.match(reason.toString(), /^Auth Failed: Invalid Password\.$/, '3.8 gives a reason (bhyve\'s wording)');
    t.ok(await c8.closesWithin(2000), 'closed');

    const c3 = await r.client();
    await c3.read(12);
    c3.write(Buffer.from('RFB 003.003\n'));
    t.equal((await c3.read(4)).readUInt32BE(), 2, '3.3: the server chooses VNC Authentication');
    c3.write(vncAuthResponse('', await c3.read(16)));
    t.equal((await c3.read(4)).readUInt32BE(), 1, '3.3: SecurityResult failed');
    t.ok(await c3.closesWithin(2000), 'closed without a reason string');
    t.equal(c3.available, 0, 'nothing after the result');

    t.equal(failures.length, 2, 'onAuthFailure twice');
    t.equal(r.server.stats.authFailures, 2);
    t.ok(r.logs.some((l) => /wrong password/.test(l)), 'logged');
    t.equal(r.server.clientCount, 0);
  } finally {
    await r.done();
  }
});

test('client versions map as RFC 6143 §7.1.1 says; a non-RFB greeting or one before 3.3 is dropped', async (t) => {
  const r = await rig();
  try {
    for (const [v, expected] of [['003.005', 3], ['003.006', 3], ['003.889', 8], ['004.001', 8]] as const) {
      const c = await r.client();
      // The test client follows the same mapping; a server speaking any other version would break its handshake.
      t.equal((await c.handshake({ version: v })).width, 80, `client ${v}: handshake as ${expected === 8 ? '3.8' : '3.3'}`);
    }
    t.deepEqual(r.server.connections.map((c) => c.protocolVersion), [3, 3, 8, 8], '3.5 and 3.6 speak 3.3; 3.889 and 4.1 speak 3.8');
    for (const bad of ['RFB 002.000\n', 'GET / HTTP/1.1\n', 'RFB 03.8\n\n\n\n']) {
      const c = await r.client();
      await c.read(12);
      c.write(Buffer.from(bad));
      t.ok(await c.closesWithin(2000), `dropped after ${JSON.stringify(bad)}`);
    }
  } finally {
    await r.done();
  }
});

test('choosing a security type that was not offered ends the handshake (3.8 with a reason)', async (t) => {
  const r = await rig({ password: 'x' });
  try {
    const c = await r.client();
    await c.read(12);
    c.write(Buffer.from('RFB 003.008\n'));
    await c.read(2);
    c.write([1]); // None, though only VNC Authentication was offered
    t.equal((await c.read(4)).readUInt32BE(), 1);
    t.match((await c.read((await c.read(4)).readUInt32BE())).toString(), /not offered/);
    t.ok(await c.closesWithin(2000));
  } finally {
    await r.done();
  }
});

test('a full update in Raw matches the framebuffer pixel for pixel, in the native and in converted formats', async (t) => {
  const r = await rig({ encodings: [0] });
  try {
    for (const pf of [NATIVE_PIXEL_FORMAT, rgb565be, bgr233]) {
      const c = await r.client();
      await c.handshake();
      if (pf !== NATIVE_PIXEL_FORMAT) c.setPixelFormat(pf);
      c.setEncodings([6, 0]);
      c.requestUpdate(false, 0, 0, 80, 60);
      const rects = await c.readUpdate();
      t.ok(rects.every((x) => x.encoding === 0), `${pf.bitsPerPixel} bpp: Raw (zlib not enabled on this server)`);
      const area = rects.reduce((n, x) => n + x.w * x.h, 0);
      t.equal(area, 80 * 60, 'the whole framebuffer');
      t.equal(rects.reduce((n, x) => n + mismatches(r.fb, pf, x), 0), 0, 'every pixel');
    }
  } finally {
    await r.done();
  }
});

test('incremental updates carry only the changed tiles, and only when asked', async (t) => {
  const r = await rig();
  try {
    const c = await r.client();
    await c.handshake();
    c.setEncodings([0]);
    c.requestUpdate(false, 0, 0, 80, 60);
    await c.readUpdate();
    c.requestUpdate(true, 0, 0, 80, 60);
    await new Promise((res) => setTimeout(res, 100));
    t.equal(c.available, 0, 'nothing changed: the incremental request waits');
    r.fb.fillRect(40, 35, 3, 2, 200, 100, 50);
    const rects = await c.readUpdate();
    t.deepEqual(rects.map(({ x, y, w, h }) => ({ x, y, w, h })), [{ x: 32, y: 32, w: 32, h: 28 }], 'one tile (clipped at the bottom edge)');
    t.equal(mismatches(r.fb, NATIVE_PIXEL_FORMAT, rects[0]!), 0);
    r.fb.fillRect(0, 0, 2, 2, 1, 2, 3);
    await new Promise((res) => setTimeout(res, 100));
    t.equal(c.available, 0, 'a change without a request is not sent (client-driven flow control)');
    c.requestUpdate(true, 0, 0, 80, 60);
    const again = await c.readUpdate();
    t.deepEqual(again.map(({ x, y, w, h }) => ({ x, y, w, h })), [{ x: 0, y: 0, w: 32, h: 32 }], 'held until the next request');
    c.requestUpdate(true, 40, 0, 40, 60);
    r.fb.fillRect(0, 40, 2, 2, 9, 9, 9);
    r.fb.fillRect(70, 10, 2, 2, 9, 9, 9);
    const part = await c.readUpdate();
    t.deepEqual(part.map(({ x, y, w, h }) => ({ x, y, w, h })), [{ x: 64, y: 0, w: 16, h: 32 }], 'only the changes inside the requested area');
    c.requestUpdate(true, 0, 0, 80, 60);
    const rest = await c.readUpdate();
    t.deepEqual(rest.map(({ x, y, w, h }) => ({ x, y, w, h })), [{ x: 0, y: 32, w: 32, h: 28 }], 'the change outside it comes with a later request');
    t.equal(mismatches(r.fb, NATIVE_PIXEL_FORMAT, rest[0]!), 0);
  } finally {
    await r.done();
  }
});

test('zlib: rectangles through one deflate stream, inflated and compared, across several updates', async (t) => {
  const r = await rig({}, 200, 120);
  try {
    const c = await r.client();
    await c.handshake();
    c.setPixelFormat(rgb565be);
    c.setEncodings([5, 6, 0]);
    c.requestUpdate(false, 0, 0, 200, 120);
    const first = await c.readUpdate();
    t.ok(first.length > 0 && first.every((x) => x.encoding === 6), 'zlib chosen (Hextile, listed first, is not implemented)');
    t.equal(first.reduce((n, x) => n + mismatches(r.fb, rgb565be, x), 0), 0, 'full update, every pixel');
    for (let i = 0; i < 3; i++) {
      r.fb.fillRect(10 + i * 50, 10 + i * 30, 40, 40, i * 80, 255 - i * 60, 7);
      c.requestUpdate(true, 0, 0, 200, 120);
      const rects = await c.readUpdate();
      t.ok(rects.length > 0, `update ${i + 2}: ${rects.length} rectangles`);
      t.equal(rects.reduce((n, x) => n + mismatches(r.fb, rgb565be, x), 0), 0, `update ${i + 2}: inflated on the same stream, every pixel`);
    }
    const stats = r.server.stats;
    t.ok((stats.rectsByEncoding[6] ?? 0) >= 4, 'counted as zlib rectangles');
  } finally {
    await r.done();
  }
});

test('ZRLE: every subencoding decoded by an independent decoder, in three formats, across updates on one stream', async (t) => {
  const r = await rig({}, 150, 100);
  try {
    // Solid areas, a few colours, stripes (runs) and noise, so every tile kind appears.
    r.fb.fillRect(0, 0, 150, 100, 10, 20, 30);
    for (let y = 0; y < 64; y++) for (let x = 64; x < 128; x++) r.fb.set(x, y, (x >> 3) & 1 ? 255 : 0, 0, ((x + y) >> 4) & 1 ? 200 : 0);
    for (let y = 64; y < 100; y++) for (let x = 0; x < 64; x++) r.fb.set(x, y, (x * 37 + y * 11) & 255, (x * y) & 255, (x ^ (y * 3)) & 255);
    for (let y = 64; y < 100; y++) for (let x = 64; x < 150; x++) r.fb.set(x, y, Math.floor(x / 10) * 20, 100, Math.floor(y / 9) * 20);
    const formats = [NATIVE_PIXEL_FORMAT, { ...NATIVE_PIXEL_FORMAT, bigEndian: true, redShift: 24, greenShift: 16, blueShift: 8 }, rgb565be];
    for (const [n, pf] of formats.entries()) {
      const c = await r.client();
      await c.handshake();
      if (pf !== NATIVE_PIXEL_FORMAT) c.setPixelFormat(pf);
      c.setEncodings([16, 6, 0, -223]);
      c.requestUpdate(false, 0, 0, 150, 100);
      const rects = await c.readUpdate();
      t.ok(rects.every((x) => x.encoding === 16), `${pf.bitsPerPixel} bpp shift ${pf.redShift}: ZRLE`);
      t.equal(rects.reduce((n, x) => n + mismatches(r.fb, pf, x), 0), 0, 'every pixel');
      r.fb.fillRect(100, 70, 30, 20, 1 + n * 40, 2, 3);
      c.requestUpdate(true, 0, 0, 150, 100);
      const next = await c.readUpdate();
      t.equal(next.reduce((n, x) => n + mismatches(r.fb, pf, x), 0), 0, 'an incremental update on the same stream');
      c.close();
    }
  } finally {
    await r.done();
  }
});

test('invalidate() sends what the device says changed without waiting for a scan; bell() rings every client', async (t) => {
  // Scans are an hour apart here, so only invalidate() can explain an update.
  const r = await rig({ refreshMs: 3_600_000 });
  try {
    const c = await r.client();
    await c.handshake();
    c.requestUpdate(false, 0, 0, 80, 60);
    await c.readUpdate();
    c.requestUpdate(true, 0, 0, 80, 60);
    r.fb.fillRect(5, 5, 4, 4, 255, 0, 0);
    r.server.invalidate({ x: 5, y: 5, w: 4, h: 4 });
    const rects = await c.readUpdate(1000);
    t.deepEqual(rects.map(({ x, y, w, h }) => ({ x, y, w, h })), [{ x: 0, y: 0, w: 32, h: 32 }], 'the tile of the invalidated area');
    t.equal(mismatches(r.fb, NATIVE_PIXEL_FORMAT, rects[0]!), 0);
    r.server.bell();
    t.deepEqual([...(await c.read(1))], [2], 'Bell (RFC 6143 §7.6.3)');
  } finally {
    await r.done();
  }
});

test('requests outside the framebuffer are clipped; one wholly outside gets an empty update', async (t) => {
  const r = await rig();
  try {
    const c = await r.client();
    await c.handshake();
    c.requestUpdate(false, 70, 50, 1000, 1000);
    const clipped = await c.readUpdate();
    t.deepEqual(clipped.map(({ x, y, w, h }) => ({ x, y, w, h })), [{ x: 70, y: 50, w: 10, h: 10 }], 'clipped to 80x60');
    t.equal(mismatches(r.fb, NATIVE_PIXEL_FORMAT, clipped[0]!), 0);
    c.requestUpdate(false, 5000, 5000, 10, 10);
    t.deepEqual(await c.readUpdate(), [], 'no rectangles, but an answer');
    c.requestUpdate(false, 0, 0, 0, 0);
    t.deepEqual(await c.readUpdate(), [], 'an empty request too');
    c.requestUpdate(true, 5000, 5000, 10, 10);
    await new Promise((res) => setTimeout(res, 60));
    t.notOk(r.server.connections[0]!.waiting, 'an incremental request outside the framebuffer is held without scanning for it');
    r.fb.fillRect(0, 0, 4, 4, 1, 1, 1);
    c.requestUpdate(true, 0, 0, 10, 10);
    const merged = await c.readUpdate();
    t.deepEqual(merged.map(({ x, y, w, h }) => ({ x, y, w, h })), [{ x: 0, y: 0, w: 10, h: 10 }], 'and merges with the next request');
    t.notOk(c.isClosed);
  } finally {
    await r.done();
  }
});

test('DesktopSize: a client that offered it learns the new size and then gets the new picture', async (t) => {
  const r = await rig();
  try {
    const c = await r.client();
    const old = await r.client();
    await c.handshake();
    await old.handshake();
    c.setEncodings([0, -223]);
    old.setEncodings([0]);
    c.requestUpdate(false, 0, 0, 80, 60);
    await c.readUpdate();
    c.requestUpdate(true, 0, 0, 80, 60);
    await new Promise((res) => setTimeout(res, 50));
    r.fb.resize(100, 50);
    r.fb.pattern(9);
    r.server.resize();
    const size = await c.readUpdate();
    t.deepEqual(size, [{ x: 0, y: 0, w: 100, h: 50, encoding: -223, data: Buffer.alloc(0) }], 'the DesktopSize pseudo-rectangle');
    c.requestUpdate(true, 0, 0, 100, 50);
    const rects = await c.readUpdate();
    t.equal(rects.reduce((n, x) => n + x.w * x.h, 0), 100 * 50, 'even an incremental request gets everything after a resize');
    t.equal(rects.reduce((n, x) => n + mismatches(r.fb, NATIVE_PIXEL_FORMAT, x), 0), 0);
    t.ok(await old.closesWithin(2000), 'a client without DesktopSize cannot follow and is closed');
    t.ok(r.logs.some((l) => /DesktopSize/.test(l)));
    // A resize the device forgets to announce is noticed by the next scan.
    c.requestUpdate(true, 0, 0, 100, 50);
    r.fb.resize(64, 64);
    r.fb.pattern(2);
    const size2 = await c.readUpdate();
    t.deepEqual(size2.map((x) => [x.w, x.h, x.encoding]), [[64, 64, -223]], 'found by the scan');
  } finally {
    await r.done();
  }
});

test('keys and pointer go to the callbacks, the pointer clamped into the framebuffer; cut text is taken', async (t) => {
  const keys: Array<[boolean, number]> = [];
  const pointer: Array<[number, number, number]> = [];
  const cut: string[] = [];
  const r = await rig({ onKey: (d, k) => keys.push([d, k]), onPointer: (m, x, y) => pointer.push([m, x, y]), onCutText: (s) => cut.push(s) });
  try {
    const c = await r.client();
    await c.handshake();
    const msgs = Buffer.concat([
      Buffer.from([4, 1, 0, 0, 0, 0, 0, 0x61]),
      Buffer.from([4, 0, 0, 0, 0, 0, 0xff, 0x0d]),
      Buffer.from([5, 1, 0, 10, 0, 20]),
      Buffer.from([5, 4, 0xff, 0xff, 0x01, 0x00]),
      Buffer.from([6, 0, 0, 0, 0, 0, 0, 3, 0x61, 0x62, 0x63]),
    ]);
    // Split awkwardly across writes, as TCP may deliver it.
    c.write(msgs.subarray(0, 5));
    await new Promise((res) => setTimeout(res, 20));
    c.write(msgs.subarray(5, 23));
    await new Promise((res) => setTimeout(res, 20));
    c.write(msgs.subarray(23));
    c.requestUpdate(false, 0, 0, 1, 1);
    await c.readUpdate();
    t.deepEqual(keys, [[true, 0x61], [false, 0xff0d]]);
    t.deepEqual(pointer, [[1, 10, 20], [4, 79, 59]], 'x 65535 and y 256 clamp to 79, 59');
    t.deepEqual(cut, ['abc']);
  } finally {
    await r.done();
  }
});

test('QEMU Extended Key Event: acknowledged on the next update, then keys arrive with their keycodes', async (t) => {
  const keys: Array<[boolean, number, number | undefined]> = [];
  const r = await rig({ onKey: (d, k, code) => keys.push([d, k, code]) });
  try {
    const c = await r.client();
    await c.handshake();
    c.setEncodings([0, -258]);
    c.requestUpdate(false, 0, 0, 80, 60);
    const first = await c.readUpdate();
    t.deepEqual(first.filter((x) => x.encoding === -258).map(({ x, y, w, h }) => [x, y, w, h]), [[0, 0, 80, 60]], 'the pseudo-rectangle, once');
    c.requestUpdate(true, 0, 0, 80, 60);
    c.write([255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 0x1e]);
    c.write([255, 0, 0, 0, 0, 0, 0xff, 0x54, 0, 0, 0, 0xd0]);
    c.write([4, 1, 0, 0, 0, 0, 0, 0x62]);
    await new Promise((res) => setTimeout(res, 100));
    t.deepEqual(keys, [[true, 0x61, 0x1e], [false, 0xff54, 0xd0], [true, 0x62, undefined]], 'extended keys carry the keycode; plain ones do not');
    t.equal(c.available, 0, 'no second acknowledgement, and nothing changed');
    c.setEncodings([0, -258]);
    await new Promise((res) => setTimeout(res, 100));
    t.equal(c.available, 0, 'listing it again does not repeat the acknowledgement');
  } finally {
    await r.done();
  }
});

test('hostile clients are dropped and the server and the other clients carry on', async (t) => {
  const r = await rig();
  try {
    const good = await r.client();
    await good.handshake();
    const attacks: Array<[string, Buffer]> = [
      ['unknown message type', Buffer.from([77, 0, 0, 0])],
      ['oversized cut text', Buffer.from([6, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff])],
      ['colour-map pixel format', Buffer.from([0, 0, 0, 0, 8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])],
      ['24 bpp pixel format', Buffer.from([0, 0, 0, 0, 24, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0])],
      ['too many encodings', Buffer.from([2, 0, 0xff, 0xff])],
    ];
    for (const [name, bytes] of attacks) {
      const c = await r.client();
      await c.handshake();
      c.write(bytes);
      t.ok(await c.closesWithin(2000), `${name}: closed`);
    }
    t.ok(r.server.stats.protocolErrors >= attacks.length, 'counted');
    const junk = await r.client();
    junk.write(Buffer.alloc(5000, 0x41));
    t.ok(await junk.closesWithin(2000), 'garbage instead of a handshake: closed');
    good.requestUpdate(false, 0, 0, 80, 60);
    const rects = await good.readUpdate();
    t.equal(rects.reduce((n, x) => n + mismatches(r.fb, NATIVE_PIXEL_FORMAT, x), 0), 0, 'the good client is still served');
    t.equal(r.server.clientCount, 1);
  } finally {
    await r.done();
  }
});

test('a client that stops reading does not make the server buffer frame after frame', async (t) => {
  const r = await rig({ encodings: [0] }, 512, 512);
  try {
    const c = await r.client();
    await c.handshake();
    c.socket.pause();
    // 200 full-screen requests of 1 MiB each, never read.
    for (let i = 0; i < 200; i++) c.requestUpdate(false, 0, 0, 512, 512);
    await new Promise((res) => setTimeout(res, 500));
    const sent = r.server.stats.bytes;
    t.ok(r.server.stats.updates <= 8, `${r.server.stats.updates} updates went out, not 200`);
    t.ok(sent < 10 * 1024 * 1024, `${(sent / 1048576).toFixed(1)} MiB handed to the socket`);
    c.socket.resume();
    const rects = await c.readUpdate(5000);
    t.equal(rects.reduce((n, x) => n + x.w * x.h, 0), 512 * 512, 'and the client is still served once it reads');
  } finally {
    await r.done();
  }
});

test('several clients at once, each with its own format and encoding', async (t) => {
  const r = await rig();
  try {
    const setups: Array<[PixelFormat, number[]]> = [[NATIVE_PIXEL_FORMAT, [6]], [rgb565be, [0]], [bgr233, [6, 0]]];
    const clients = await Promise.all(setups.map(async () => r.client()));
    await Promise.all(clients.map((c) => c.handshake()));
    clients.forEach((c, i) => {
      const [pf, enc] = setups[i]!;
      if (pf !== NATIVE_PIXEL_FORMAT) c.setPixelFormat(pf);
      c.setEncodings(enc);
      c.requestUpdate(false, 0, 0, 80, 60);
    });
    const updates = await Promise.all(clients.map((c) => c.readUpdate()));
    updates.forEach((rects, i) => {
      const [pf, enc] = setups[i]!;
      t.ok(rects.every((x) => x.encoding === enc[0]), `client ${i}: encoding ${enc[0]}`);
      t.equal(rects.reduce((n, x) => n + mismatches(r.fb, pf, x), 0), 0, `client ${i}: every pixel`);
    });
  } finally {
    await r.done();
  }
});

test('firstClient() waits for a finished handshake; a non-shared ClientInit closes the others', async (t) => {
  const r = await rig({ password: 'pw' });
  try {
    let resolved = false;
    const first = r.server.firstClient().then(() => (resolved = true));
    const failed = await r.client();
    const login = await failed.handshake({ password: 'no' }).then(() => 'logged in', (e: Error) => e.message);
    t.match(login, /security failed/, 'a failed login');
    await new Promise((res) => setTimeout(res, 50));
    t.notOk(resolved, 'a failed login is not a client');
    const a = await r.client();
    await a.handshake({ password: 'pw' });
    await first;
    t.ok(resolved, 'resolved by the first real client');
    await r.server.firstClient();
    const b = await r.client();
    await b.handshake({ password: 'pw', shared: false });
    t.ok(await a.closesWithin(2000), 'the earlier client is closed for the exclusive one');
    t.equal(r.server.clientCount, 1);
  } finally {
    await r.done();
  }
  const lonely = await RfbServer.listen({ framebuffer: new TestFramebuffer(8, 8), port: 0 });
  const waiting = lonely.firstClient().then(() => 'resolved', (e: Error) => e.message);
  await lonely.close();
  t.match(await waiting, /closed before a client/, 'closing the server rejects a pending firstClient()');
});

test('handshake timeout, client limit, IPv6, and a caller-supplied net.Server', async (t) => {
  const r = await rig({ handshakeTimeoutMs: 150, maxClients: 2 });
  try {
    const idle = await r.client();
    t.ok(await idle.closesWithin(2000), 'a client that never answers is dropped');
    const a = await r.client();
    const b = await r.client();
    await a.handshake();
    await b.handshake();
    const c = await r.client();
    t.ok(await c.closesWithin(2000), 'a third client is refused');
  } finally {
    await r.done();
  }
  const fb = new TestFramebuffer(16, 16).pattern(4);
  const v6 = await RfbServer.listen({ framebuffer: fb, host: '::1', port: 0 }).catch((e: Error) => e);
  if (v6 instanceof Error) {
    t.comment(`no IPv6 loopback here (${v6.message}); the IPv6 listen is not exercised`);
  } else {
    const c = await TestClient.connect(v6.address().port, '::1');
    t.equal((await c.handshake()).width, 16, 'served over [::1]');
    c.close();
    await v6.close();
  }
  const net = createServer();
  net.listen(0, '127.0.0.1');
  await once(net, 'listening');
  const own = new RfbServer({ framebuffer: () => fb, server: net });
  const port = own.address().port;
  const c = await TestClient.connect(port);
  t.equal((await c.handshake()).height, 16, 'served through a net.Server the caller made');
  c.close();
  await own.close();
  t.ok(net.listening, "the caller's server is the caller's to close");
  net.close();
});

test('a client cut off mid-update does not disturb the server', async (t) => {
  const r = await rig({}, 300, 200);
  try {
    const c = await r.client();
    await c.handshake();
    c.setEncodings([6]);
    c.requestUpdate(false, 0, 0, 300, 200);
    c.close();
    await new Promise((res) => setTimeout(res, 200));
    const d = await r.client();
    await d.handshake();
    d.requestUpdate(false, 0, 0, 300, 200);
    const rects = await d.readUpdate();
    t.equal(rects.reduce((n, x) => n + mismatches(r.fb, NATIVE_PIXEL_FORMAT, x), 0), 0, 'the next client gets a correct zlib update');
    t.equal(r.server.clientCount, 1, 'the cut-off client is gone');
  } finally {
    await r.done();
  }
});
