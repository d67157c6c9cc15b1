// The server against real VNC clients from Debian: gvnccapture (package gvncviewer, gtk-vnc; it asks for ZRLE
// first) writes a lossless PNG that is compared pixel for pixel; vncsnapshot (package vncsnapshot, TightVNC code) logs in with a
// vncpasswd file (tigervnc-tools) over zlib and writes a JPEG, decoded by djpeg (libjpeg-turbo-progs) and compared
// within JPEG's error (flat 16x16 blocks, so in practice exact). .ci/run installs all four; a missing tool fails these tests rather than skipping them.
import test from 'tape';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RfbServer, type RfbServerOptions } from '../../../devices/fbuf/rfb/index.js';
import { decodePng, decodePpm, TestFramebuffer, type Image } from './helpers.js';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  error?: Error;
}

/** Runs a tool with a time limit; `answer` writes to its stdin once `prompt` shows on its output. */
function run(cmd: string, args: string[], opts: { timeoutMs?: number; prompt?: string; answer?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let answered = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!answered && opts.prompt !== undefined && stdout.includes(opts.prompt)) {
        answered = true;
        // The prompt is printed before the tool turns echo off with TCSAFLUSH, which drops input already typed:
        // answer a little later, as a person would.
        setTimeout(() => child.stdin.write(opts.answer ?? ''), 300);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ status: null, stdout, stderr, error });
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** These clients take a display number (port 5900 + N), so the server listens on a free one of those. */
async function listenOnDisplay(opts: Omit<RfbServerOptions, 'port'>): Promise<{ server: RfbServer; display: number }> {
  for (let i = 0; i < 30; i++) {
    const display = 200 + Math.floor(Math.random() * 3000);
    try {
      const server = await RfbServer.listen({ ...opts, host: '127.0.0.1', port: 5900 + display });
      return { server, display };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    }
  }
  throw new Error('no free VNC display port found');
}

function compare(fb: TestFramebuffer, img: Image): { max: number; mean: number; worst: string } {
  let max = 0;
  let sum = 0;
  let worst = '';
  for (let y = 0; y < fb.height; y++) {
    for (let x = 0; x < fb.width; x++) {
      const want = fb.rgb(x, y);
      for (let ch = 0; ch < 3; ch++) {
        const d = Math.abs(img.rgb[(y * img.width + x) * 3 + ch]! - want[ch]!);
        sum += d;
        if (d > max) {
          max = d;
          worst = `pixel ${x},${y} channel ${ch}: ${img.rgb[(y * img.width + x) * 3 + ch]} instead of ${want[ch]}`;
        }
      }
    }
  }
  return { max, mean: sum / (fb.width * fb.height * 3), worst };
}

const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-rfb-'));
test.onFinish(() => rmSync(dir, { recursive: true, force: true }));

test('gvnccapture (gtk-vnc) without a password: its PNG equals the framebuffer pixel for pixel', async (t) => {
  const fb = new TestFramebuffer(96, 64).pattern(7);
  const { server, display } = await listenOnDisplay({ framebuffer: fb });
  try {
    const out = join(dir, 'plain.png');
    const r = await run('gvnccapture', ['--quiet', `127.0.0.1:${display}`, out]);
    t.equal(r.error, undefined, 'gvnccapture runs (Debian package gvncviewer)');
    t.equal(r.status, 0, `gvnccapture succeeds ${r.stderr.trim()}`);
    const img = decodePng(readFileSync(out));
    t.deepEqual([img.width, img.height], [96, 64], 'the size from ServerInit');
    const d = compare(fb, img);
    t.equal(d.max, 0, `identical ${d.worst}`);
    t.ok((server.stats.rectsByEncoding[16] ?? 0) > 0, 'gtk-vnc prefers ZRLE, so the picture came as ZRLE');
  } finally {
    await server.close();
  }
});

test('gvnccapture with VNC Authentication: the right password gets the picture, a wrong one is refused', async (t) => {
  const fb = new TestFramebuffer(64, 48).pattern(21);
  const failures: string[] = [];
  const { server, display } = await listenOnDisplay({ framebuffer: fb, password: 'tsbhyve1', onAuthFailure: (r) => failures.push(r) });
  try {
    // gvnccapture reads the password from a terminal only; script(1) gives it one.
    const out = join(dir, 'auth.png');
    const ok = await run('script', ['-qec', `gvnccapture --quiet 127.0.0.1:${display} ${out}`, '/dev/null'], { prompt: 'Password:', answer: 'tsbhyve1\n' });
    t.equal(ok.status, 0, `logged in and captured ${ok.stdout.trim()}`);
    const d = compare(fb, decodePng(readFileSync(out)));
    t.equal(d.max, 0, `identical ${d.worst}`);
    t.equal(failures.length, 0);

    const bad = join(dir, 'bad.png');
    const no = await run('script', ['-qec', `gvnccapture --quiet 127.0.0.1:${display} ${bad}`, '/dev/null'], { prompt: 'Password:', answer: 'wrong\n' });
    t.notOk(existsSync(bad), `no picture with a wrong password (${no.stdout.trim().replace(/\s+/g, ' ')})`);
    t.equal(failures.length, 1, 'the failure reached onAuthFailure');
    t.equal(server.stats.authFailures, 1);
  } finally {
    await server.close();
  }
});

/** 16x16 flat blocks (JPEG's colour blocks are 16x16), colours chosen so a swapped channel would show. */
function blocks(w: number, h: number): TestFramebuffer {
  const fb = new TestFramebuffer(w, h);
  const colours: Array<[number, number, number]> = [[230, 20, 20], [20, 200, 40], [30, 40, 220], [240, 220, 30], [200, 30, 210], [20, 210, 220], [250, 250, 250], [10, 10, 10], [128, 64, 32]];
  for (let by = 0; by < h / 16; by++) for (let bx = 0; bx < w / 16; bx++) fb.fillRect(bx * 16, by * 16, 16, 16, ...colours[(bx * 3 + by * 5) % colours.length]!);
  return fb;
}

test('vncsnapshot (TightVNC code, RFB 3.3) with a vncpasswd file over zlib: its JPEG matches within JPEG error', async (t) => {
  const fb = blocks(128, 96);
  const { server, display } = await listenOnDisplay({ framebuffer: fb, password: 'snapshot' });
  try {
    const pw = join(dir, 'passwd');
    const made = await run('sh', ['-c', `printf 'snapshot\\n' | tigervncpasswd -f > ${pw}`]);
    t.equal(made.status, 0, 'tigervncpasswd -f made the password file');
    t.equal(readFileSync(pw).length, 8, 'the 8-byte obfuscated form');
    const out = join(dir, 'snap.jpg');
    const r = await run('vncsnapshot', ['-quiet', '-encodings', 'zlib', '-passwd', pw, '-quality', '100', `127.0.0.1:${display}`, out]);
    t.equal(r.error, undefined, 'vncsnapshot runs (Debian package vncsnapshot)');
    t.equal(r.status, 0, `vncsnapshot succeeds ${r.stderr.trim()}`);
    t.ok((server.stats.rectsByEncoding[6] ?? 0) > 0, 'the picture came as zlib rectangles');
    t.equal(server.stats.authFailures, 0, 'the password file was accepted');
    const ppm = join(dir, 'snap.ppm');
    const dj = await run('djpeg', ['-pnm', '-outfile', ppm, out]);
    t.equal(dj.status, 0, 'djpeg (libjpeg-turbo-progs) decodes it');
    const img = decodePpm(readFileSync(ppm));
    t.deepEqual([img.width, img.height], [128, 96]);
    const d = compare(fb, img);
    t.ok(d.max <= 4 && d.mean < 0.5, `within JPEG error: max ${d.max}, mean ${d.mean.toFixed(2)} (${d.worst})`);
  } finally {
    await server.close();
  }
});

test('vncsnapshot with Raw and no password', async (t) => {
  const fb = blocks(64, 64);
  const { server, display } = await listenOnDisplay({ framebuffer: fb });
  try {
    const out = join(dir, 'raw.jpg');
    const r = await run('vncsnapshot', ['-quiet', '-encodings', 'raw', '-quality', '100', `127.0.0.1:${display}`, out]);
    t.equal(r.status, 0, `vncsnapshot succeeds ${r.stderr.trim()}`);
    t.ok((server.stats.rectsByEncoding[0] ?? 0) > 0, 'Raw rectangles');
    const ppm = join(dir, 'raw.ppm');
    t.equal((await run('djpeg', ['-pnm', '-outfile', ppm, out])).status, 0);
    const d = compare(fb, decodePpm(readFileSync(ppm)));
    t.ok(d.max <= 4 && d.mean < 0.5, `within JPEG error: max ${d.max}, mean ${d.mean.toFixed(2)} (${d.worst})`);
  } finally {
    await server.close();
  }
});

