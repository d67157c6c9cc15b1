// Random bytes from many clients, before and after the handshake: each connection either survives or is closed,
// the server never throws, and a well-behaved client keeps getting correct pictures throughout.
import test from 'tape';
import { RfbServer } from '../../../devices/fbuf/rfb/index.js';
import { NATIVE_PIXEL_FORMAT } from '../../../devices/fbuf/rfb/pixel-format.js';
import { mismatches, TestClient, TestFramebuffer } from './helpers.js';

/** A small deterministic generator, so a failure can be replayed from its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s >>> 24;
  };
}

/** Bytes that look like client messages often enough to reach past the type byte. */
function noise(next: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    const r = next();
    // Mostly valid type bytes, sometimes huge lengths, sometimes anything.
    b[i] = r < 90 ? [0, 2, 3, 4, 5, 6, 255][r % 7]! : r < 110 ? 0xff : next();
  }
  return b;
}

test('random input from 40 clients never disturbs the server or a good client', async (t) => {
  const fb = new TestFramebuffer(96, 64).pattern(3);
  const errors: string[] = [];
  const server = await RfbServer.listen({ framebuffer: fb, port: 0, log: () => {}, handshakeTimeoutMs: 500 });
  const port = server.address().port;
  const onError = (e: Error) => errors.push(e.message);
  process.on('uncaughtException', onError);
  try {
    const good = await TestClient.connect(port);
    await good.handshake();
    good.setEncodings([16, 6, 0]);
    for (let seed = 1; seed <= 40; seed++) {
      const next = rng(seed);
      const c = await TestClient.connect(port);
      if (seed % 4 !== 0) await c.handshake();
      for (let k = 0; k < 4; k++) c.write(noise(next, 64 + next()));
      await new Promise((res) => setTimeout(res, 5));
      c.close();
      if (seed % 10 === 0) {
        fb.fillRect(seed, seed / 2, 8, 8, seed * 5, 255 - seed, seed);
        good.requestUpdate(false, 0, 0, 96, 64);
        const rects = await good.readUpdate();
        t.equal(rects.reduce((n, x) => n + mismatches(fb, NATIVE_PIXEL_FORMAT, x), 0), 0, `after ${seed} hostile clients the good one still gets every pixel right`);
      }
    }
    t.deepEqual(errors, [], 'nothing thrown');
    t.ok(server.stats.protocolErrors > 10, `${server.stats.protocolErrors} connections dropped for protocol errors`);
    good.close();
  } finally {
    process.off('uncaughtException', onError);
    await server.close();
  }
});

test('a cut text of exactly 1 MiB arriving in pieces is waited for, and the stream goes on after it', async (t) => {
  const fb = new TestFramebuffer(32, 32).pattern(1);
  const server = await RfbServer.listen({ framebuffer: fb, port: 0 });
  try {
    const c = await TestClient.connect(server.address().port);
    await c.handshake();
    const head = Buffer.from([6, 0, 0, 0, 0, 0x10, 0, 0]);
    c.write(Buffer.concat([head, Buffer.alloc(512 * 1024, 0x41)]));
    await new Promise((res) => setTimeout(res, 100));
    t.notOk(c.isClosed, 'an exactly 1 MiB cut text in progress is allowed');
    c.write(Buffer.alloc(512 * 1024, 0x42));
    c.requestUpdate(false, 0, 0, 32, 32);
    const rects = await c.readUpdate();
    t.equal(rects.reduce((n, x) => n + x.w * x.h, 0), 32 * 32, 'and once complete, the stream goes on');
    c.close();
  } finally {
    await server.close();
  }
});
