// The COM port backends for real: a TCP client on an ephemeral port, a pty pair, and stdio in a child process.
import test from 'tape';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { TestMachine } from '../../harness/machine.js';
import { Uart16550 } from '../../../src/platform/isa/uart16550.js';
import {
  StdioBackend,
  TcpBackend,
  TtyBackend,
  UartBackendError,
  createUartBackend,
  parseTcpEndpoint,
} from '../../../src/platform/isa/uart-backends.js';

const here = dirname(fileURLToPath(import.meta.url));
const COM1 = 0x3f8;

function guestWrite(m: TestMachine, s: string): void {
  for (const ch of Buffer.from(s)) m.outb(COM1, ch);
}

function guestReadAll(m: TestMachine): string {
  const out: number[] = [];
  while (m.inb(COM1 + 5) & 1) out.push(m.inb(COM1));
  return Buffer.from(out).toString('latin1');
}

/** Polls the guest side until `want` bytes arrived or the time is up. */
async function guestReceive(m: TestMachine, want: number, timeoutMs = 3000): Promise<string> {
  let s = '';
  const end = Date.now() + timeoutMs;
  while (s.length < want && Date.now() < end) {
    s += guestReadAll(m);
    if (s.length < want) await new Promise((r) => setTimeout(r, 5));
  }
  return s;
}

function collect(sock: NodeJS.ReadableStream): { text: () => string } {
  const chunks: Buffer[] = [];
  sock.on('data', (d: Buffer) => chunks.push(d));
  return { text: () => Buffer.concat(chunks).toString('latin1') };
}

async function until(pred: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  return pred();
}

function connectTo(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host }, () => resolve(s));
    s.once('error', reject);
  });
}

test('tcp backend: endpoint parsing', (t) => {
  t.deepEqual(parseTcpEndpoint('127.0.0.1:4444'), { host: '127.0.0.1', port: 4444 });
  t.deepEqual(parseTcpEndpoint('[::1]:5555'), { host: '::1', port: 5555 });
  t.deepEqual(parseTcpEndpoint('[fe80::1%eth0]:1'.replace('%eth0', '')), { host: 'fe80::1', port: 1 });
  for (const bad of ['127.0.0.1', '::1:80', 'localhost:80', '1.2.3.4:99999', '1.2.3.4:-1', '[1.2.3.4]:80', ':80', '1.2.3.4:']) {
    t.throws(() => parseTcpEndpoint(bad), UartBackendError, `rejects ${bad}`);
  }
  t.throws(() => createUartBackend(''), UartBackendError, 'empty path');
  t.throws(() => createUartBackend('/nonexistent/tty'), /cannot open/, 'missing device');
  t.throws(() => createUartBackend('/dev/null'), /not a tty/, 'a non-tty path');
  t.end();
});

test('tcp backend: one client, both directions, a second client refused, output dropped while nobody listens', async (t) => {
  const m = new TestMachine();
  const backend = new TcpBackend({ host: '127.0.0.1', port: 0 });
  await backend.ready;
  const port = backend.address()!.port;
  Uart16550.attach(m, COM1, 4, backend);
  m.outb(COM1 + 2, 0xc7);

  guestWrite(m, 'lost');
  const c1 = await connectTo(port);
  const got1 = collect(c1);
  t.ok(await until(() => backend.connected), 'server saw the client');
  c1.write('hello guest');
  t.equal(await guestReceive(m, 11), 'hello guest', 'client -> guest');
  guestWrite(m, 'hello host\r\n');
  t.ok(await until(() => got1.text() === 'hello host\r\n'), 'guest -> client, and nothing from before the connection');

  const c2 = await connectTo(port);
  const c2closed = new Promise<boolean>((r) => {
    c2.on('close', () => r(true));
    c2.on('error', () => undefined);
    setTimeout(() => r(false), 2000);
  });
  c2.write('intruder');
  t.ok(await c2closed, 'second client was closed');
  t.equal(await guestReceive(m, 1, 200), '', 'its bytes never reached the guest');
  guestWrite(m, 'still here');
  t.ok(await until(() => got1.text().endsWith('still here')), 'first client unaffected');

  c1.destroy();
  t.ok(await until(() => !backend.connected), 'disconnect noticed');
  const c3 = await connectTo(port);
  const got3 = collect(c3);
  t.ok(await until(() => backend.connected), 'a new client may connect after the first left');
  guestWrite(m, 'again');
  t.ok(await until(() => got3.text() === 'again'));
  c3.destroy();
  backend.close();
  t.end();
});

test('tcp backend: back-pressure over TCP keeps every byte', async (t) => {
  const m = new TestMachine();
  const backend = new TcpBackend({ host: '127.0.0.1', port: 0 });
  await backend.ready;
  Uart16550.attach(m, COM1, 4, backend);
  m.outb(COM1 + 2, 0xc7);
  const c = await connectTo(backend.address()!.port);
  const payload = Buffer.alloc(200_000, 0).map((_, i) => (i * 7) & 0xff);
  c.write(payload);
  // A slow guest: 16 bytes per poll.
  const got: number[] = [];
  const end = Date.now() + 10_000;
  while (got.length < payload.length && Date.now() < end) {
    for (let i = 0; i < 4096 && m.inb(COM1 + 5) & 1; i++) got.push(m.inb(COM1));
    await new Promise((r) => setImmediate(r));
  }
  t.equal(got.length, payload.length, 'all 200000 bytes arrived');
  t.ok(Buffer.from(got).equals(payload), 'in order and unchanged');
  c.destroy();
  backend.close();
  t.end();
});

test('tcp backend: IPv6 loopback', async (t) => {
  const backend = new TcpBackend({ host: '::1', port: 0 });
  try {
    await backend.ready;
  } catch (e) {
    t.skip(`no IPv6 loopback here (${(e as Error).message})`);
    backend.close();
    t.end();
    return;
  }
  const m = new TestMachine();
  Uart16550.attach(m, COM1, 4, backend);
  const c = await connectTo(backend.address()!.port, '::1');
  c.write('v6');
  t.equal(await guestReceive(m, 2), 'v6');
  c.destroy();
  backend.close();
  t.end();
});

test('tcp backend: a port in use is reported through ready', async (t) => {
  const a = new TcpBackend({ host: '127.0.0.1', port: 0 });
  await a.ready;
  const b = new TcpBackend({ host: '127.0.0.1', port: a.address()!.port });
  try {
    await b.ready;
    t.fail('second bind succeeded');
  } catch (e) {
    t.ok(e instanceof UartBackendError && /EADDRINUSE/.test(e.message), (e as Error).message);
  }
  a.close();
  b.close();
  t.end();
});

test('tty backend: a real pty pair, raw mode, both directions', async (t) => {
  const py: ChildProcess = spawn('python3', [join(here, 'fixtures/pty-pair.py')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: Buffer[] = [];
  const slave = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        py.stdout!.off('data', onData);
        resolve(buf.slice(0, nl));
      }
    };
    py.stdout!.on('data', onData);
    py.once('error', reject);
    setTimeout(() => reject(new Error('python pty helper did not start')), 5000);
  });
  py.stdout!.on('data', (d: Buffer) => lines.push(d));
  t.match(slave, /^\/dev\/pts\/\d+$/, `slave ${slave}`);
  const m = new TestMachine();
  const backend = new TtyBackend(slave);
  Uart16550.attach(m, COM1, 4, backend);
  m.outb(COM1 + 2, 0xc7);
  guestWrite(m, 'a\nb\x03\x7f');
  const text = (): string => Buffer.concat(lines).toString('latin1');
  t.ok(await until(() => text().length >= 5), 'guest output came out of the master');
  t.equal(text(), 'a\nb\x03\x7f', 'raw: no NL->CRNL, control bytes pass through');
  py.stdin!.write('from host\x03\n');
  t.equal(await guestReceive(m, 11), 'from host\x03\n', 'master input reached the guest without line editing or signals');
  backend.close();
  py.kill();
  t.end();
});

test('stdio backend: a child with piped stdin/stdout echoes through its COM1', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'fixtures/stdio-echo-guest.ts')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const out = collect(child.stdout!);
  t.ok(await until(() => out.text().includes('READY\n'), 15000), 'guest output on stdout');
  child.stdin!.write('hello, guest');
  t.ok(await until(() => out.text().includes('HELLO, GUEST')), 'stdin reached the guest and came back');
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.stdin!.write('q');
  t.ok(await until(() => out.text().endsWith('BYE\n')), 'last output flushed before close');
  child.stdin!.end();
  t.equal(await exit, 0, 'child exited normally once the backend let go of stdin');
  t.end();
});

test('stdio backend: only one port may use it; a TTY goes raw and is restored', (t) => {
  const input = new PassThrough() as PassThrough & { isTTY: boolean; setRawMode: (b: boolean) => void };
  const modes: boolean[] = [];
  input.isTTY = true;
  input.setRawMode = (b: boolean) => void modes.push(b);
  const output = new PassThrough();
  const before = process.listenerCount('exit');
  const a = new StdioBackend({ input, output });
  t.throws(() => new StdioBackend({ input, output }), /already used/, 'a second stdio port is refused');
  a.start(() => undefined);
  t.deepEqual(modes, [true], 'raw mode on start');
  t.equal(process.listenerCount('exit'), before + 1, 'restores on exit too');
  a.close();
  t.deepEqual(modes, [true, false], 'restored on close');
  t.equal(process.listenerCount('exit'), before, 'exit hook removed');
  const b = new StdioBackend({ input, output });
  b.close();
  t.pass('stdio can be taken again after close');

  // Not a TTY: no raw mode at all.
  const pipeIn = new PassThrough() as PassThrough & { isTTY?: boolean };
  const c = new StdioBackend({ input: pipeIn, output });
  c.start(() => undefined);
  c.close();
  t.deepEqual(modes, [true, false], 'setRawMode never called for a pipe');
  t.end();
});

test('stdio backend on a real terminal: raw while running, restored on exit, uncaught error, SIGTERM and close', async (t) => {
  const expectations: Array<[string, number]> = [
    ['exit', 0],
    ['throw', 1],
    ['signal', -15],
    ['close', -9],
  ];
  for (const [mode, rc] of expectations) {
    const out = await new Promise<string>((resolve) => {
      const p = spawn(
        'python3',
        [join(here, 'fixtures/pty-run.py'), mode, process.execPath, '--import', 'tsx', join(here, 'fixtures/stdio-raw-child.ts'), mode],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let s = '';
      p.stdout!.on('data', (d: Buffer) => (s += d.toString()));
      p.on('exit', () => resolve(s));
    });
    const r = JSON.parse(out) as { sawRaw: boolean; rawDuring: boolean; restored: boolean; returncode: number };
    t.ok(r.sawRaw && r.rawDuring, `${mode}: terminal raw while the VM runs`);
    t.ok(r.restored, `${mode}: terminal modes restored`);
    t.equal(r.returncode, rc, `${mode}: ended as expected (${rc})`);
  }
  t.end();
});
