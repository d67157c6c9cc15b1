// Where a COM port's bytes go: the `lpc.comN.path` value (bhyve.8 -l comN,BACKEND).
//   stdio            this process's stdin/stdout; stdin in raw mode if it is a terminal (one port at most)
//   /dev/...         a tty device (a pty slave, a serial line, /dev/nmdmNA on FreeBSD), opened read/write, raw
//   tcp=IP:PORT      a TCP server for one client at a time; tcp=[IPv6]:PORT for IPv6
import { spawnSync } from 'node:child_process';
import { openSync, closeSync, constants as fsConstants } from 'node:fs';
import { createServer, type Server, type Socket, isIP } from 'node:net';
import { ReadStream as TtyReadStream, WriteStream as TtyWriteStream, isatty } from 'node:tty';
import type { Readable, Writable } from 'node:stream';
import type { UartBackend } from './uart16550.js';

export class UartBackendError extends Error {
  override name = 'UartBackendError';
}

/** Coalesces single-byte guest writes into one write per turn of the event loop. */
class OutputBatcher {
  private chunks: Uint8Array[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  constructor(private readonly sink: (data: Uint8Array) => void) {}

  push(data: Uint8Array): void {
    this.chunks.push(data);
    this.scheduled ??= setImmediate(() => this.flush());
  }

  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    if (this.chunks.length === 0) return;
    const data = Buffer.concat(this.chunks);
    this.chunks = [];
    this.sink(data);
  }

  drop(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.chunks = [];
  }
}

// --- stdio ---------------------------------------------------------------------------------------------------

/** stdin is one per process, so at most one COM port may take it (bhyve refuses a second one too). */
let stdioInUse = false;

/** Signals whose default action kills the process; the terminal is restored before it dies. */
const FATAL_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

export interface StdioStreams {
  input: Readable & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  output: Writable;
}

export class StdioBackend implements UartBackend {
  private readonly out: OutputBatcher;
  private raw = false;
  private closed = false;
  private onData: ((d: Uint8Array) => void) | undefined;
  private readonly listener = (d: Buffer): void => this.onData?.(d);
  /** At exit: the last guest output still waiting for setImmediate goes out, then the terminal is restored. */
  private readonly restoreOnExit = (): void => {
    this.out.flush();
    this.restoreTerminal();
  };
  /** A monitor sees uncaught exceptions without changing Node's outcome (print and exit). */
  private readonly restoreOnUncaught = (): void => this.restoreTerminal();
  private readonly signalHandlers = new Map<NodeJS.Signals, () => void>();

  constructor(private readonly streams: StdioStreams = { input: process.stdin, output: process.stdout }) {
    if (stdioInUse) throw new UartBackendError('stdio is already used by another COM port');
    stdioInUse = true;
    this.out = new OutputBatcher((d) => {
      if (!this.closed) this.streams.output.write(d);
    });
  }

  start(onData: (data: Uint8Array) => void): void {
    this.onData = onData;
    const input = this.streams.input;
    process.on('exit', this.restoreOnExit);
    if (input.isTTY && typeof input.setRawMode === 'function') {
      input.setRawMode(true);
      this.raw = true;
      process.on('uncaughtExceptionMonitor', this.restoreOnUncaught);
      for (const sig of FATAL_SIGNALS) {
        const h = (): void => this.onFatalSignal(sig, h);
        this.signalHandlers.set(sig, h);
        process.on(sig, h);
      }
    }
    input.on('data', this.listener);
    input.on('error', () => input.off('data', this.listener));
    input.resume();
  }

  /** Restores the terminal; if nobody else handles the signal, dies of it as the default action would. */
  private onFatalSignal(sig: NodeJS.Signals, h: () => void): void {
    if (process.listenerCount(sig) > 1) return; // someone else (e.g. the ACPI power button) owns this signal
    this.restoreTerminal();
    process.off(sig, h);
    process.kill(process.pid, sig);
  }

  private restoreTerminal(): void {
    if (!this.raw) return;
    this.raw = false;
    try {
      this.streams.input.setRawMode?.(false);
    } catch {
      // the terminal may be gone already
    }
  }

  write(data: Uint8Array): void {
    if (!this.closed) this.out.push(data);
  }
  pause(): void {
    this.streams.input.pause();
  }
  resume(): void {
    if (!this.closed) this.streams.input.resume();
  }

  close(): void {
    if (this.closed) return;
    this.out.flush();
    this.closed = true;
    this.streams.input.off('data', this.listener);
    this.streams.input.pause();
    this.restoreTerminal();
    process.off('exit', this.restoreOnExit);
    process.off('uncaughtExceptionMonitor', this.restoreOnUncaught);
    for (const [sig, h] of this.signalHandlers) process.off(sig, h);
    stdioInUse = false;
  }
}

// --- tty device ----------------------------------------------------------------------------------------------

export class TtyBackend implements UartBackend {
  private readonly input: TtyReadStream;
  private readonly output: TtyWriteStream;
  private readonly out: OutputBatcher;
  private closed = false;
  private failed = false;
  private readonly savedMode: string;
  private readonly fd: number;

  constructor(readonly path: string) {
    const flags = fsConstants.O_NOCTTY | fsConstants.O_NONBLOCK;
    let rfd: number;
    try {
      rfd = openSync(path, fsConstants.O_RDWR | flags);
    } catch (e) {
      throw new UartBackendError(`cannot open ${path}: ${(e as Error).message}`);
    }
    if (!isatty(rfd)) {
      closeSync(rfd);
      throw new UartBackendError(`${path} is not a tty`);
    }
    // A second descriptor for output: libuv's tty handles are one-directional.
    const wfd = openSync(path, fsConstants.O_WRONLY | flags);
    // Raw as cfmakeraw makes it: no echo, no line editing or signals, no CR/NL translation either way, 8 bits.
    // (libuv's raw mode keeps output NL->CRNL on, which would corrupt a binary stream, so stty does it.)
    try {
      this.savedMode = stty(rfd, ['-g']).trim();
      stty(rfd, ['raw', '-echo']);
    } catch (e) {
      closeSync(rfd);
      closeSync(wfd);
      throw e;
    }
    this.fd = rfd;
    this.input = new TtyReadStream(rfd);
    this.output = new TtyWriteStream(wfd);
    this.input.pause();
    // EIO once the other side of a pty closes: the line is gone, stop using it.
    this.input.on('error', () => (this.failed = true));
    this.output.on('error', () => (this.failed = true));
    this.out = new OutputBatcher((d) => {
      if (!this.closed && !this.failed) this.output.write(d);
    });
  }

  start(onData: (data: Uint8Array) => void): void {
    this.input.on('data', (d: Buffer) => {
      if (!this.closed) onData(d);
    });
    this.input.resume();
  }
  write(data: Uint8Array): void {
    if (!this.closed) this.out.push(data);
  }
  pause(): void {
    this.input.pause();
  }
  resume(): void {
    if (!this.closed) this.input.resume();
  }
  close(): void {
    if (this.closed) return;
    this.out.flush();
    this.closed = true;
    try {
      if (/^[0-9a-f:]+$/i.test(this.savedMode)) stty(this.fd, [this.savedMode]);
    } catch {
      // the line is gone; nothing to restore
    }
    this.input.destroy();
    this.output.end();
  }
}

/** Runs stty(1) on an open tty (its stdin), which is portable across Linux and FreeBSD unlike -F/-f. */
function stty(fd: number, args: string[]): string {
  const r = spawnSync('stty', args, { stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new UartBackendError(`stty ${args.join(' ')} failed: ${r.error?.message ?? r.stderr.trim()}`);
  }
  return r.stdout;
}

// --- TCP -----------------------------------------------------------------------------------------------------

export interface TcpEndpoint {
  host: string;
  port: number;
}

/** Parses the part after "tcp=": "IPv4:PORT", "[IPv6]:PORT" (a bare IPv6 address needs the brackets). */
export function parseTcpEndpoint(spec: string): TcpEndpoint {
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(spec);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
    if (isIP(host) !== 6) throw new UartBackendError(`invalid IPv6 address in tcp=${spec}`);
  } else {
    const i = spec.lastIndexOf(':');
    if (i <= 0) throw new UartBackendError(`invalid tcp endpoint "${spec}" (want IP:PORT or [IPv6]:PORT)`);
    host = spec.slice(0, i);
    portText = spec.slice(i + 1);
    if (isIP(host) !== 4) throw new UartBackendError(`invalid IPv4 address in tcp=${spec}`);
  }
  if (!/^\d{1,5}$/.test(portText)) throw new UartBackendError(`invalid port in tcp=${spec}`);
  const port = Number(portText);
  if (port > 65535) throw new UartBackendError(`invalid port in tcp=${spec}`);
  return { host, port };
}

export class TcpBackend implements UartBackend {
  private readonly server: Server;
  private client: Socket | undefined;
  private onData: ((d: Uint8Array) => void) | undefined;
  private paused = false;
  private closed = false;
  private readonly out: OutputBatcher;
  /** Resolves once listening; rejects if the address cannot be bound. */
  readonly ready: Promise<void>;

  constructor(readonly endpoint: TcpEndpoint) {
    this.out = new OutputBatcher((d) => {
      // Nobody connected: the bytes go nowhere, as on an unplugged serial line.
      if (this.client && !this.client.destroyed) this.client.write(d);
    });
    this.server = createServer((sock) => this.accept(sock));
    this.ready = new Promise((resolve, reject) => {
      this.server.once('listening', () => resolve());
      this.server.once('error', (e) => reject(new UartBackendError(`tcp=${endpoint.host}:${endpoint.port}: ${e.message}`)));
    });
    this.ready.catch(() => undefined); // the caller awaits it; an unobserved failure must not kill the process
    this.server.listen({ host: endpoint.host, port: endpoint.port, exclusive: true });
  }

  /** The bound address (the real port when 0 was asked for). */
  address(): TcpEndpoint | undefined {
    const a = this.server.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  private accept(sock: Socket): void {
    if (this.closed || this.client) {
      sock.destroy(); // one client at a time
      return;
    }
    this.client = sock;
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => this.onData?.(d));
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      if (this.client === sock) this.client = undefined;
    });
    if (this.paused) sock.pause();
  }

  start(onData: (data: Uint8Array) => void): void {
    this.onData = onData;
  }
  write(data: Uint8Array): void {
    if (!this.closed && this.client) this.out.push(data);
  }
  pause(): void {
    this.paused = true;
    this.client?.pause();
  }
  resume(): void {
    this.paused = false;
    this.client?.resume();
  }
  close(): void {
    if (this.closed) return;
    this.out.flush();
    this.closed = true;
    this.client?.end();
    this.client?.destroy();
    this.server.close();
  }
}

// --- selection -----------------------------------------------------------------------------------------------

/** The backend an `lpc.comN.path` value names. */
export function createUartBackend(path: string): UartBackend {
  if (path === 'stdio') return new StdioBackend();
  if (path.startsWith('tcp=')) return new TcpBackend(parseTcpEndpoint(path.slice(4)));
  if (path === '') throw new UartBackendError('empty COM port backend');
  return new TtyBackend(path);
}
