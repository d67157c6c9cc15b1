// The VNC server of bhyve's fbuf device (bhyve's rfb.c, in our terms): a TCP listener, any number of clients each
// with its own state, one tile scanner shared by all of them, and typed callbacks for the input they send.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { RfbConnection, type ConnectionHost } from './connection.js';
import { DEFAULT_RFB_HOST, DEFAULT_RFB_PORT } from './address.js';
import { SUPPORTED_ENCODINGS } from './encodings.js';
import { checkFramebuffer, clipRect, type FramebufferSource, type Rect } from './framebuffer.js';
import type { ClientMessage } from './messages.js';
import { DEFAULT_TILE_SIZE, markTiles, TileScanner, type DirtyScanner } from './tiles.js';

export interface RfbServerOptions {
  /** The pixels to serve, or a function returning them (called at every update). */
  framebuffer: FramebufferSource | (() => FramebufferSource);
  /** Listen address; default 127.0.0.1 (IPv6 addresses without brackets, e.g. "::1" or "fe80::1%eth0"). */
  host?: string;
  /** Listen port; default 5900; 0 picks a free one (see address()). */
  port?: number;
  /** A net.Server to take connections from instead (listening already or not); the caller owns its address. */
  server?: Server;
  /** Offer VNC Authentication with this password (first 8 bytes count) instead of no security. */
  password?: string;
  /** The desktop name in ServerInit; default "bhyve". */
  desktopName?: string;
  /** Tile side of the dirty scan; default 32. */
  tileSize?: number;
  /** A scanner to use instead of the TypeScript one (its tile size must match tileSize). */
  scanner?: DirtyScanner;
  /** Least time between two scans while clients wait for changes; default 33 ms (30 per second). */
  refreshMs?: number;
  /** Deflate level for zlib and ZRLE; default 1 (Z_BEST_SPEED, bhyve's choice: CPU matters more than bytes on a local link). */
  zlibLevel?: number;
  /** Encodings the server may use, from SUPPORTED_ENCODINGS; Raw is always possible. */
  encodings?: readonly number[];
  /** Further connections beyond this are refused; default 16. */
  maxClients?: number;
  /** A client must finish the handshake within this; default 30 s. */
  handshakeTimeoutMs?: number;
  /** Honour a ClientInit shared-flag of 0 by closing the other clients (RFC 6143 §7.3.1); default true. */
  honourExclusive?: boolean;
  /**
   * A key, as an X keysym; `keycode` is there when the client sent a QEMU Extended Key Event, which carries the
   * key's XT (PC scan code set 1) number as the client gives it, independent of the client's keyboard layout.
   */
  onKey?: (down: boolean, keysym: number, keycode?: number) => void;
  /** Pointer position, clamped into the framebuffer, and the button mask (bit 0 left, 1 middle, 2 right, 3/4 wheel). */
  onPointer?: (buttonMask: number, x: number, y: number) => void;
  /** ClientCutText, already bounded to 1 MiB; ignored by default. */
  onCutText?: (text: string) => void;
  /** A wrong password was given; the connection is closed. */
  onAuthFailure?: (remote: string) => void;
  /** Operator messages (client errors, refusals). */
  log?: (message: string) => void;
}

/** Totals since the server started. */
export interface RfbServerStats {
  connections: number;
  authFailures: number;
  /** Clients dropped for a protocol error (malformed or hostile input, timeouts). */
  protocolErrors: number;
  updates: number;
  bytes: number;
  /** Rectangles sent, by encoding number (DesktopSize included as -223). */
  rectsByEncoding: Record<number, number>;
}

export class RfbServer {
  readonly stats: RfbServerStats = { connections: 0, authFailures: 0, protocolErrors: 0, updates: 0, bytes: 0, rectsByEncoding: {} };
  private readonly opts: RfbServerOptions;
  private readonly net: Server;
  private readonly ownsServer: boolean;
  private readonly conns = new Set<RfbConnection>();
  private readonly scanner: DirtyScanner;
  private readonly host: ConnectionHost;
  private scanTimer: NodeJS.Timeout | null = null;
  private lastScan = 0;
  private width: number;
  private height: number;
  private firstClientSeen = false;
  private firstClientWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private closing = false;

  constructor(opts: RfbServerOptions) {
    this.opts = opts;
    const fb = this.fb();
    checkFramebuffer(fb);
    this.width = fb.width;
    this.height = fb.height;
    const tileSize = opts.scanner?.tileSize ?? opts.tileSize ?? DEFAULT_TILE_SIZE;
    this.scanner = opts.scanner ?? new TileScanner(tileSize);
    const log = opts.log ?? (() => {});
    const encodings = (opts.encodings ?? SUPPORTED_ENCODINGS).filter((e) => SUPPORTED_ENCODINGS.includes(e));
    // The connection's view of this server; kept apart so the class's public surface stays small.
    this.host = {
      password: opts.password === undefined || opts.password === '' ? null : opts.password,
      desktopName: opts.desktopName ?? 'bhyve',
      tileSize,
      zlibLevel: opts.zlibLevel ?? 1,
      encodings,
      framebuffer: () => this.fb(),
      log,
      authFailed: (c) => {
        this.stats.authFailures++;
        log(`vnc: client ${c.remote}: wrong password`);
        opts.onAuthFailure?.(c.remote);
      },
      ready: (c, shared) => this.clientReady(c, shared),
      message: (c, m) => this.clientMessage(m),
      wantScan: () => this.scheduleScan(),
      sizeChanged: () => this.resize(),
      sent: (encoding, rects, bytes) => {
        this.stats.updates++;
        this.stats.bytes += bytes;
        this.stats.rectsByEncoding[encoding] = (this.stats.rectsByEncoding[encoding] ?? 0) + rects;
      },
      protocolError: () => this.stats.protocolErrors++,
      closed: (c) => this.conns.delete(c),
    };
    this.ownsServer = opts.server === undefined;
    this.net = opts.server ?? createServer();
    this.net.on('connection', (s: Socket) => this.accept(s));
    // After listening, an error on the listener (rare: e.g. EMFILE on accept) must not take the VM down.
    this.net.on('error', (e: Error) => {
      if (this.net.listening) log(`vnc: listener: ${e.message}`);
    });
  }

  /** Creates a server and waits until it listens. */
  static async listen(opts: RfbServerOptions): Promise<RfbServer> {
    const s = new RfbServer(opts);
    await s.listen();
    return s;
  }

  /** Starts listening on host:port (not needed with an already listening `server`). */
  listen(): Promise<AddressInfo> {
    if (this.net.listening) return Promise.resolve(this.address());
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.net.once('error', onError);
      this.net.listen({ host: this.opts.host ?? DEFAULT_RFB_HOST, port: this.opts.port ?? DEFAULT_RFB_PORT }, () => {
        this.net.off('error', onError);
        resolve(this.address());
      });
    });
  }

  address(): AddressInfo {
    const a = this.net.address();
    if (a === null || typeof a === 'string') throw new Error('the VNC server is not listening on TCP');
    return a;
  }

  /** Clients past the handshake. */
  get clientCount(): number {
    let n = 0;
    for (const c of this.conns) if (c.isReady) n++;
    return n;
  }

  /** The connections, for tests and statistics. */
  get connections(): readonly RfbConnection[] {
    return [...this.conns];
  }

  /**
   * Resolves once a client has finished the handshake (bhyve's `wait`: the guest starts when someone watches);
   * rejects if the server is closed first.
   */
  firstClient(): Promise<void> {
    if (this.firstClientSeen) return Promise.resolve();
    if (this.closing) return Promise.reject(new Error('the VNC server is closed'));
    return new Promise((resolve, reject) => this.firstClientWaiters.push({ resolve, reject }));
  }

  /**
   * The framebuffer's width or height changed: clients that know DesktopSize are told and sent everything anew;
   * the others cannot follow and are closed. (A scan also notices a size change by itself.)
   */
  resize(): void {
    const fb = this.fb();
    checkFramebuffer(fb);
    this.width = fb.width;
    this.height = fb.height;
    // Each connection compares with the size its client knows, so calling this twice announces nothing twice.
    for (const c of this.conns) c.resized(fb);
  }

  /** The device knows `rect` (default: everything) changed; clients get it without waiting for a scan to notice. */
  invalidate(rect?: Rect): void {
    const fb = this.fb();
    const t = this.scanner.tileSize;
    const cols = Math.ceil(fb.width / t);
    const map = new Uint8Array(cols * Math.ceil(fb.height / t));
    markTiles(map, cols, t, clipRect(rect ?? { x: 0, y: 0, w: fb.width, h: fb.height }, fb.width, fb.height));
    for (const c of this.conns) {
      c.addDirty(map);
      c.trySend();
    }
  }

  /** Bell to every client. */
  bell(): void {
    for (const c of this.conns) c.bell();
  }

  /** Stops listening (if this server opened the socket) and closes every client. */
  close(): Promise<void> {
    this.closing = true;
    for (const w of this.firstClientWaiters.splice(0)) w.reject(new Error('the VNC server closed before a client connected'));
    if (this.scanTimer !== null) clearTimeout(this.scanTimer);
    this.scanTimer = null;
    for (const c of [...this.conns]) c.close();
    if (!this.ownsServer || !this.net.listening) return Promise.resolve();
    return new Promise((resolve) => this.net.close(() => resolve()));
  }

  private fb(): FramebufferSource {
    const f = this.opts.framebuffer;
    return typeof f === 'function' ? f() : f;
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const max = this.opts.maxClients ?? 16;
    if (this.conns.size >= max) {
      this.host.log(`vnc: refusing ${socket.remoteAddress}:${socket.remotePort}: ${max} clients already`);
      socket.destroy();
      return;
    }
    this.stats.connections++;
    this.conns.add(new RfbConnection(socket, this.host, this.opts.handshakeTimeoutMs ?? 30_000));
  }

  private clientReady(c: RfbConnection, shared: boolean): void {
    if (!shared && (this.opts.honourExclusive ?? true)) {
      for (const other of [...this.conns]) {
        if (other === c) continue;
        this.host.log(`vnc: client ${other.remote}: closed, ${c.remote} asked for exclusive access`);
        other.close();
      }
    }
    // Bring the shared hashes up to date now: the new client starts all dirty anyway, and a scanner that has never
    // run would call everything changed on the next scan and resend the whole screen to everyone.
    this.scan();
    if (!this.firstClientSeen) {
      this.firstClientSeen = true;
      for (const w of this.firstClientWaiters.splice(0)) w.resolve();
    }
  }

  private clientMessage(m: ClientMessage): void {
    switch (m.type) {
      case 'key':
        this.opts.onKey?.(m.down, m.keysym);
        break;
      case 'extended-key':
        this.opts.onKey?.(m.down, m.keysym, m.keycode);
        break;
      case 'pointer': {
        // Clients may point past the edge (and after a resize, at the old size): clamp into the framebuffer.
        const fb = this.fb();
        this.opts.onPointer?.(m.buttonMask, Math.min(m.x, fb.width - 1), Math.min(m.y, fb.height - 1));
        break;
      }
      case 'cut-text':
        this.opts.onCutText?.(m.text);
        break;
      default:
        break;
    }
  }

  /** Runs a scan no sooner than refreshMs after the last one; only while some client waits, so idle costs nothing. */
  private scheduleScan(): void {
    if (this.scanTimer !== null || this.closing) return;
    const refresh = this.opts.refreshMs ?? 33;
    const delay = Math.max(0, this.lastScan + refresh - Date.now());
    this.scanTimer = setTimeout(() => {
      this.scanTimer = null;
      this.scan();
    }, delay);
  }

  private scan(): void {
    if (this.closing) return;
    this.lastScan = Date.now();
    const fb = this.fb();
    try {
      checkFramebuffer(fb);
    } catch (e) {
      this.host.log(`vnc: ${(e as Error).message}; not scanning`);
      return;
    }
    if (fb.width !== this.width || fb.height !== this.height) this.resize();
    const map = this.scanner.scan(fb);
    if (map.includes(1)) for (const c of this.conns) c.addDirty(map);
    let waiting = false;
    for (const c of this.conns) {
      c.trySend();
      waiting ||= c.waiting;
    }
    if (waiting) this.scheduleScan();
  }
}
