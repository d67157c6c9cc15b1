// test-needs: kvm
// The handbook's console line on tsbhyve, `-s 29,fbuf,tcp=127.0.0.1:PORT,w=800,h=600,wait -s 30,xhci,tablet`, with
// the test guest drawing its reference pattern (test=fbuf): tsbhyve holds the vCPUs until a VNC client has logged
// in, then Debian's gvnccapture takes a lossless picture of the guest's screen, which must equal the pattern pixel
// for pixel. The framebuffer is a device memory segment, so the guest draws without exits and the server reads the
// same bytes.
import test from 'tape';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTestguestOutput, runTestguestInTsbhyve, tsbhyveSkipReason } from '../../../firmware/testguest/index.js';
import { decodePng, TestClient } from './helpers.js';

const skip = tsbhyveSkipReason();

/** The guest's pattern (firmware/testguest/src/suites/fbuf.c) as RGB. */
function pattern(x: number, y: number): [number, number, number] {
  if (x >= 16 && x < 24 && y >= 16 && y < 24) return [255, 255, 255];
  return [((x ^ y) * 5) & 0xff, (x + 3 * y) & 0xff, (7 * x + y) & 0xff];
}

async function freeDisplay(): Promise<number> {
  for (let d = 40 + (process.pid % 50); d < 200; d++) {
    const ok = await new Promise<boolean>((res) => {
      const s = createServer();
      s.once('error', () => res(false));
      s.listen(5900 + d, '127.0.0.1', () => s.close(() => res(true)));
    });
    if (ok) return d;
  }
  throw new Error('no free VNC display');
}

/** gvnccapture's exit status, and what it said when it failed. */
function capture(display: number, out: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn('gvnccapture', [`127.0.0.1:${display}`, out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stderr += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Generous: on a loaded nested L1 one capture has taken more than 30 s.
    const timer = setTimeout(() => c.kill('SIGKILL'), 150_000);
    c.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr: code === 0 ? '' : stderr.trim() });
    });
    c.on('error', (e) => resolve({ code: null, stderr: e.message }));
  });
}

test('fbuf + VNC: the guest waits for a client, draws its pattern, and gvnccapture sees it pixel for pixel', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fbuf-kvm-'));
  try {
    const display = await freeDisplay();
    let drawn!: () => void;
    const drawnP = new Promise<void>((res) => (drawn = res));
    let listening!: () => void;
    const listeningP = new Promise<void>((res) => (listening = res));
    let startedEarly = false;
    let seen = '';
    const runP = runTestguestInTsbhyve({
      append: 'test=fbuf,hold=400',
      extraArgs: ['-s', `29,fbuf,tcp=127.0.0.1:${5900 + display},w=800,h=600,wait`, '-s', '30,xhci,tablet'],
      timeoutMs: 480_000,
      onOutput: (out) => {
        seen = out;
        if (out.includes('fbuf: waiting for a VNC client')) listening();
        if (out.includes('frame crc32=')) drawn();
      },
    });
    // tsbhyve says when it listens and waits; nothing runs before a client is in (`wait`).
    await Promise.race([listeningP, runP]);
    await new Promise((res) => setTimeout(res, 500));
    t.notOk(seen.includes('TESTGUEST READY'), 'the guest has not started before a client connected');
    const first = join(dir, 'first.png');
    const firstRun = await capture(display, first);
    t.equal(firstRun.code, 0, `the first client logs in (this lets the guest start) ${firstRun.stderr}`);
    await Promise.race([drawnP, runP]);
    const shot = join(dir, 'screen.png');
    const shotRun = await capture(display, shot);
    t.equal(shotRun.code, 0, `gvnccapture takes the screen ${shotRun.stderr}`);
    // A key ends the guest's hold: KeyEvent 'a' down, through the 8042.
    const kc = await TestClient.connect(5900 + display);
    await kc.handshake();
    kc.write([4, 1, 0, 0, 0, 0, 0, 0x61]);
    const r = await runP;
    kc.close();
    t.match(r.output, /key scancode=0x1e ended the hold/, "the VNC key reached the guest's PS/2 keyboard as set 1 scan code 0x1E");
    startedEarly = /fbuf: waiting for a VNC client/.test(r.stderr) === false;
    t.notOk(startedEarly, 'tsbhyve said it was waiting for a VNC client');
    const out = parseTestguestOutput(r.output);
    for (const c of out.checks.filter((c) => c.status === 'FAIL')) t.fail(`FAIL ${c.details}`);
    t.deepEqual(out.done, { pass: out.pass, fail: 0 }, `the guest's fbuf suite passed (${out.pass} checks)`);
    t.match(r.output, /mode 800x600/, 'the guest sees the w= and h= mode');
    const img = decodePng(readFileSync(shot));
    t.deepEqual([img.width, img.height], [800, 600], 'an 800x600 screen');
    let bad = 0;
    let firstBad = '';
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < img.width; x++) {
        const [r0, g0, b0] = pattern(x, y);
        const o = (y * img.width + x) * 3;
        if (img.rgb[o] !== r0 || img.rgb[o + 1] !== g0 || img.rgb[o + 2] !== b0) {
          if (!bad) firstBad = `(${x},${y}) ${[img.rgb[o], img.rgb[o + 1], img.rgb[o + 2]]} vs ${[r0, g0, b0]}`;
          bad++;
        }
      }
    }
    t.equal(bad, 0, `the picture equals the guest's pattern pixel for pixel ${firstBad}`);
    t.equal(r.code, 1, 'powered off');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fbuf + xhci tablet: a VNC pointer event reaches the guest as an absolute tablet report', { skip }, async (t) => {
  const display = await freeDisplay();
  const port = 5900 + display;
  let waiting!: () => void;
  const waitingP = new Promise<void>((res) => (waiting = res));
  const runP = runTestguestInTsbhyve({
    append: 'test=xhci,pointer=240',
    extraArgs: ['-s', `29,fbuf,tcp=127.0.0.1:${port},w=800,h=600`, '-s', '30,xhci,tablet'],
    timeoutMs: 300_000,
    onOutput: (out) => {
      if (out.includes('waiting for a pointer report')) waiting();
    },
  });
  const early = await Promise.race([waitingP.then(() => undefined), runP]);
  if (early) {
    t.fail(`tsbhyve ended (${early.code}) before the guest waited for a pointer report: ${early.output.trim().split('\n').slice(-3).join(' | ')} ${early.stderr.trim()}`);
    return;
  }
  const c = await TestClient.connect(port); // listening long before: the guest got this far
  await c.handshake();
  // PointerEvent (RFC 6143 §7.5.5): type 5, button mask, x, y; the middle of the 800x600 screen, left button down.
  c.write([5, 1, 400 >> 8, 400 & 0xff, 300 >> 8, 300 & 0xff]);
  const r = await runP;
  c.close();
  const out = parseTestguestOutput(r.output);
  for (const x of out.checks.filter((x) => x.status === 'FAIL')) t.fail(`FAIL ${x.details}`);
  t.deepEqual(out.done, { pass: out.pass, fail: 0 }, `the guest's xhci suite passed (${out.pass} checks)`);
  t.match(r.output, /pointer report: completion (1|13), [5-9] bytes, buttons=1 x=16384 y=16384/, 'the report: left button, the middle of the screen on 0..0x7FFF');
});
