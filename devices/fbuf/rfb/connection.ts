// One VNC client: the handshake state machine (RFC 6143 §7.1-§7.3), then its messages (§7.5) and the updates it
// asked for (§7.6.1). Each connection owns its pixel format, encodings, zlib stream and dirty-tile map; the
// server (server.ts) owns the socket list, the framebuffer and the shared tile scanner.
import type { Socket } from 'node:net';
import { RfbProtocolError } from './errors.js';
import {
  chooseEncoding, desktopSizeRect, ENCODING_DESKTOP_SIZE, ENCODING_QEMU_EXTENDED_KEY, ENCODING_ZLIB, ENCODING_ZRLE, extendedKeyRect, RawEncoder, updateHeader, ZlibEncoder,
  type RectEncoder,
} from './encodings.js';
import { checkFramebuffer, clipRect, intersectRect, rectIsEmpty, unionRect, type FramebufferSource, type Rect } from './framebuffer.js';
import {
  negotiateVersion, offeredSecurityTypes, PROTOCOL_VERSION_SIZE, reasonString, SECURITY_NONE, SECURITY_VNC_AUTH,
  securityResultMessage, securityType33Message, securityTypesMessage, sendsSecurityResult, SERVER_VERSION,
  serverInitMessage, type RfbVersion,
} from './handshake.js';
import { ClientMessageReader, type ClientMessage } from './messages.js';
import { NATIVE_PIXEL_FORMAT, PixelConverter, type PixelFormat } from './pixel-format.js';
import { markTiles, tilesToRects } from './tiles.js';
import { ZrleEncoder } from './zrle.js';
import { vncAuthChallenge, vncAuthVerify, VNC_CHALLENGE_SIZE } from './vnc-auth.js';

/** What a connection needs from its server; the server implements it. */
export interface ConnectionHost {
  readonly password: string | null;
  readonly desktopName: string;
  readonly tileSize: number;
  readonly zlibLevel: number;
  readonly encodings: readonly number[];
  framebuffer(): FramebufferSource;
  log(message: string): void;
  authFailed(conn: RfbConnection): void;
  /** The handshake is over (ClientInit read); `shared` is the client's shared-flag. */
  ready(conn: RfbConnection, shared: boolean): void;
  message(conn: RfbConnection, msg: ClientMessage): void;
  /** The client waits for changes: the server should scan soon. */
  wantScan(): void;
  /** The framebuffer's size differs from the one this client knows: the server should announce a resize. */
  sizeChanged(): void;
  /** An update went out: `rects` rectangles in `encoding`, `bytes` on the wire. */
  sent(encoding: number, rects: number, bytes: number): void;
  protocolError(conn: RfbConnection, e: RfbProtocolError): void;
  closed(conn: RfbConnection): void;
}

type State = 'version' | 'security' | 'auth' | 'init' | 'normal' | 'closed';

/** Bytes a client may send ahead of the handshake's replies before it is taken as hostile. */
const MAX_HANDSHAKE_BUFFER = 4096;
/** How long a closing connection gets to flush its last words before it is destroyed. */
const LINGER_MS = 1000;

interface PendingRequest {
  rect: Rect;
  /** Some request in the merged set was non-incremental: it must be answered even with nothing dirty. */
  full: boolean;
}

export class RfbConnection {
  readonly remote: string;
  private state: State = 'version';
  private version: RfbVersion = 8;
  private hs: Buffer = Buffer.alloc(0);
  private challenge: Buffer | null = null;
  private readonly reader = new ClientMessageReader();
  private converter = new PixelConverter(NATIVE_PIXEL_FORMAT);
  private clientEncodings: number[] = [];
  private encoder: RectEncoder = new RawEncoder();
  private zlib: ZlibEncoder | null = null;
  private zrle: ZrleEncoder | null = null;
  private dirty = new Uint8Array(0);
  private cols = 0;
  private rows = 0;
  /** The framebuffer size this client was told (ServerInit or the last DesktopSize). */
  private width = 0;
  private height = 0;
  private pending: PendingRequest | null = null;
  private sizeChanged = false;
  /** The client offered QEMU Extended Key Events and has not been told yet that this server takes them. */
  private extendedKeyAck = false;
  private extendedKeyAcked = false;
  private busy = false;
  private waitingDrain = false;
  private handshakeTimer: NodeJS.Timeout | null;
  /** Counters for tests and the operator. */
  readonly stats = { updates: 0, rects: 0, bytes: 0 };

  constructor(
    private readonly socket: Socket,
    private readonly host: ConnectionHost,
    handshakeTimeoutMs: number,
  ) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      this.waitingDrain = false;
      this.trySend();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      // A client going away mid-write is ordinary; only other socket errors are worth the operator's time.
      if (e.code !== 'ECONNRESET' && e.code !== 'EPIPE') this.host.log(`vnc: client ${this.remote}: ${e.message}`);
    });
    socket.on('close', () => this.teardown());
    this.handshakeTimer = setTimeout(() => this.fail(new RfbProtocolError('handshake-timeout', 'handshake not finished in time')), handshakeTimeoutMs);
    this.handshakeTimer.unref();
    socket.write(SERVER_VERSION);
  }

  /** The protocol version agreed (meaningful once past the version exchange). */
  get protocolVersion(): RfbVersion {
    return this.version;
  }

  get isReady(): boolean {
    return this.state === 'normal';
  }

  get pixelFormat(): PixelFormat {
    return this.converter.format;
  }

  /** The encoding rectangles go out in now. */
  get encoding(): number {
    return this.encoder.encoding;
  }

  /** Whether the client waits for changes inside the framebuffer (so scans are worth running). */
  get waiting(): boolean {
    return this.state === 'normal' && this.pending !== null && !this.busy && !rectIsEmpty(clipRect(this.pending.rect, this.width, this.height));
  }

  get supportsDesktopSize(): boolean {
    return this.clientEncodings.includes(ENCODING_DESKTOP_SIZE);
  }

  // ---- input ----

  private onData(chunk: Buffer): void {
    if (this.state === 'closed') return;
    if (this.state === 'normal') {
      this.feed(chunk);
      return;
    }
    this.hs = this.hs.length === 0 ? chunk : Buffer.concat([this.hs, chunk]);
    try {
      while (this.inHandshake() && this.handshakeStep());
    } catch (e) {
      this.failWith(e);
      return;
    }
    if (this.isReady) {
      const rest = this.hs;
      this.hs = Buffer.alloc(0);
      if (rest.length > 0) this.feed(rest);
    } else if (this.inHandshake() && this.hs.length > MAX_HANDSHAKE_BUFFER) {
      this.fail(new RfbProtocolError('input-overflow', `${this.hs.length} bytes sent ahead of the handshake`));
    }
  }

  /** A method, not a field test, so TypeScript does not narrow `state` across the steps that change it. */
  private inHandshake(): boolean {
    return this.state !== 'normal' && this.state !== 'closed';
  }

  /** Takes one handshake message from `hs` if it is whole; returns whether it did. */
  private handshakeStep(): boolean {
    switch (this.state) {
      case 'version': {
        if (this.hs.length < PROTOCOL_VERSION_SIZE) return false;
        const v = negotiateVersion(this.take(PROTOCOL_VERSION_SIZE));
        if (v instanceof RfbProtocolError) throw v;
        this.version = v;
        const types = offeredSecurityTypes(this.host.password !== null);
        if (v === 3) {
          // RFB 3.3: the server decides (RFC 6143 appendix A).
          this.socket.write(securityType33Message(types[0]!));
          this.startSecurity(types[0]!);
        } else {
          this.socket.write(securityTypesMessage(types));
          this.state = 'security';
        }
        return true;
      }
      case 'security': {
        if (this.hs.length < 1) return false;
        const chosen = this.take(1)[0]!;
        if (!offeredSecurityTypes(this.host.password !== null).includes(chosen)) {
          // §7.1.2: a type that was not offered ends the handshake; 3.8 says why first.
          if (this.version === 8) this.socket.write(securityResultMessage(false, 8, `Auth failed: security type ${chosen} was not offered`));
          throw new RfbProtocolError('bad-security-type', `client chose security type ${chosen}, which was not offered`);
        }
        this.startSecurity(chosen);
        return true;
      }
      case 'auth': {
        if (this.hs.length < VNC_CHALLENGE_SIZE) return false;
        const response = this.take(VNC_CHALLENGE_SIZE);
        const ok = this.challenge !== null && this.host.password !== null && vncAuthVerify(this.host.password, this.challenge, response);
        this.challenge = null;
        if (!ok) {
          this.host.authFailed(this);
          // bhyve's wording, which users of its VNC console have seen.
          this.socket.write(securityResultMessage(false, this.version, 'Auth Failed: Invalid Password.'));
          throw new RfbProtocolError('auth-failed', 'VNC authentication failed (wrong password)');
        }
        this.socket.write(securityResultMessage(true, this.version));
        this.state = 'init';
        return true;
      }
      case 'init': {
        if (this.hs.length < 1) return false;
        const shared = this.take(1)[0] !== 0;
        this.enterNormal(shared);
        return true;
      }
      default:
        return false;
    }
  }

  private startSecurity(type: number): void {
    if (type === SECURITY_VNC_AUTH) {
      this.challenge = vncAuthChallenge();
      this.socket.write(this.challenge);
      this.state = 'auth';
    } else {
      if (type === SECURITY_NONE && sendsSecurityResult(type, this.version)) this.socket.write(securityResultMessage(true, this.version));
      this.state = 'init';
    }
  }

  private take(n: number): Buffer {
    const b = this.hs.subarray(0, n);
    this.hs = this.hs.subarray(n);
    return b;
  }

  private enterNormal(shared: boolean): void {
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    const fb = this.host.framebuffer();
    checkFramebuffer(fb);
    this.resetDirty(fb);
    this.state = 'normal';
    this.socket.write(serverInitMessage(fb.width, fb.height, NATIVE_PIXEL_FORMAT, this.host.desktopName));
    this.host.ready(this, shared);
  }

  private feed(chunk: Buffer): void {
    const { messages, error } = this.reader.push(chunk);
    try {
      for (const m of messages) {
        if (this.state !== 'normal') return;
        this.handle(m);
      }
    } catch (e) {
      this.failWith(e);
      return;
    }
    if (error !== undefined) this.fail(error);
  }

  private handle(m: ClientMessage): void {
    switch (m.type) {
      case 'set-pixel-format':
        this.converter = new PixelConverter(m.format);
        break;
      case 'set-encodings':
        this.clientEncodings = m.encodings;
        this.selectEncoder();
        if (!this.extendedKeyAcked && m.encodings.includes(ENCODING_QEMU_EXTENDED_KEY)) this.extendedKeyAck = true;
        break;
      case 'update-request':
        this.request(m.incremental, { x: m.x, y: m.y, w: m.w, h: m.h });
        break;
      default:
        break;
    }
    this.host.message(this, m);
  }

  private selectEncoder(): void {
    const e = chooseEncoding(this.clientEncodings, this.host.encodings);
    if (e === ENCODING_ZLIB) {
      // One stream for the connection's whole life, even across SetEncodings: the client's inflater keeps state.
      this.zlib ??= new ZlibEncoder(this.host.zlibLevel);
      this.encoder = this.zlib;
    } else if (e === ENCODING_ZRLE) {
      this.zrle ??= new ZrleEncoder(this.host.zlibLevel);
      this.encoder = this.zrle;
    } else {
      this.encoder = new RawEncoder();
    }
  }

  // ---- updates ----

  private resetDirty(fb: FramebufferSource): void {
    const t = this.host.tileSize;
    this.width = fb.width;
    this.height = fb.height;
    this.cols = Math.ceil(fb.width / t);
    this.rows = Math.ceil(fb.height / t);
    this.dirty = new Uint8Array(this.cols * this.rows).fill(1);
  }

  /** FramebufferUpdateRequest (RFC 6143 §7.5.3): requests merge until one update answers them all. */
  private request(incremental: boolean, asked: Rect): void {
    // Clipped to the size this client knows (the tile map's geometry), not to a size it has not been told yet.
    const rect = clipRect(asked, this.width, this.height);
    if (!incremental) markTiles(this.dirty, this.cols, this.host.tileSize, rect);
    if (this.pending === null) this.pending = { rect, full: !incremental };
    else this.pending = { rect: unionRect(this.pending.rect, rect), full: this.pending.full || !incremental };
    this.trySend();
  }

  /** Tiles the server's scanner found changed (a map of the current geometry). */
  addDirty(map: Uint8Array): void {
    if (map.length !== this.dirty.length) return;
    for (let i = 0; i < map.length; i++) this.dirty[i]! |= map[i]!;
  }

  /** The framebuffer changed size: everything is new, and the client must hear the size first (§7.8.2). */
  resized(fb: FramebufferSource): void {
    if (this.state !== 'normal' || (fb.width === this.width && fb.height === this.height)) return;
    if (!this.supportsDesktopSize) {
      this.fail(new RfbProtocolError('resize-unsupported', `framebuffer is now ${fb.width}x${fb.height} and the client did not offer DesktopSize`));
      return;
    }
    this.resetDirty(fb);
    this.sizeChanged = true;
    this.trySend();
  }

  /** Sends an update if the client asked for one, the socket can take it, and there is something to say. */
  trySend(): void {
    try {
      this.trySendNow();
    } catch (e) {
      this.failWith(e);
    }
  }

  private trySendNow(): void {
    if (this.state !== 'normal' || this.busy || this.waitingDrain || this.pending === null) return;
    if (this.sizeChanged) {
      this.sizeChanged = false;
      this.pending = null;
      this.write([updateHeader(1), desktopSizeRect(this.width, this.height)], 1, ENCODING_DESKTOP_SIZE);
      return;
    }
    const fb = this.snapshot();
    if (fb.width !== this.width || fb.height !== this.height) {
      // The device changed the size without telling the server yet; never send rectangles of a geometry the
      // client has not been told about.
      this.host.sizeChanged();
      return;
    }
    const req = this.pending;
    const want = clipRect(req.rect, fb.width, fb.height);
    const rects: Rect[] = [];
    if (!rectIsEmpty(want)) {
      const t = this.host.tileSize;
      for (const r of tilesToRects(this.dirty, this.cols, this.rows, t, fb.width, fb.height)) {
        const part = intersectRect(r, want);
        if (!rectIsEmpty(part)) rects.push(part);
      }
      // Tiles wholly inside the request are now clean; tiles it only partly covers stay dirty for a later request.
      this.clearCovered(want);
    }
    // The extended-key acknowledgement is something to say by itself; it rides on the next update.
    const pseudo: Buffer[] = [];
    if (this.extendedKeyAck) {
      pseudo.push(extendedKeyRect(this.width, this.height));
      this.extendedKeyAck = false;
      this.extendedKeyAcked = true;
    }
    if (rects.length === 0 && !req.full && pseudo.length === 0) {
      // Wait for changes; an incremental request for an area outside the framebuffer can never have any, so it
      // is held without keeping the scanner running for it.
      if (!rectIsEmpty(want)) this.host.wantScan();
      return;
    }
    this.pending = null;
    this.busy = true;
    void this.encodeAndSend(fb, rects, pseudo);
  }

  private clearCovered(r: Rect): void {
    const t = this.host.tileSize;
    const c0 = Math.ceil(r.x / t);
    const r0 = Math.ceil(r.y / t);
    // A tile cut by the framebuffer's right or bottom edge counts as covered when the request reaches that edge.
    const c1 = r.x + r.w >= this.width ? this.cols : Math.floor((r.x + r.w) / t);
    const r1 = r.y + r.h >= this.height ? this.rows : Math.floor((r.y + r.h) / t);
    for (let row = r0; row < r1; row++) if (c1 > c0) this.dirty.fill(0, row * this.cols + c0, row * this.cols + c1);
  }

  /** The framebuffer's fields as they are now, so one update reads one consistent geometry. */
  private snapshot(): FramebufferSource {
    const fb = this.host.framebuffer();
    const s = { width: fb.width, height: fb.height, stride: fb.stride, pixels: fb.pixels };
    checkFramebuffer(s);
    return s;
  }

  private async encodeAndSend(fb: FramebufferSource, rects: Rect[], pseudo: Buffer[]): Promise<void> {
    const encoder = this.encoder;
    const converter = this.converter;
    const parts: Buffer[] = [updateHeader(rects.length + pseudo.length), ...pseudo];
    try {
      for (const r of rects) parts.push(...(await encoder.encode(fb, r, converter)));
    } catch (e) {
      this.busy = false;
      if (this.state !== 'closed') this.host.log(`vnc: client ${this.remote}: encoding failed: ${(e as Error).message}`);
      this.close();
      return;
    }
    this.busy = false;
    if (this.state !== 'normal') return;
    this.write(parts, rects.length, encoder.encoding);
    this.trySend();
  }

  private write(parts: Buffer[], rects: number, encoding: number): void {
    let bytes = 0;
    this.socket.cork();
    for (const p of parts) {
      this.socket.write(p);
      bytes += p.length;
    }
    this.socket.uncork();
    this.stats.updates++;
    this.stats.rects += rects;
    this.stats.bytes += bytes;
    this.host.sent(encoding, rects, bytes);
    // RFC 6143 §7.5.3 makes the client pace updates; socket backpressure keeps a slow reader from piling them up.
    if (this.socket.writableNeedDrain) this.waitingDrain = true;
  }

  /** ServerCutText (RFC 6143 §7.6.4): text the client may paste. */
  sendCutText(text: string): void {
    if (this.state !== 'normal') return;
    const head = Buffer.from([3, 0, 0, 0]);
    this.socket.write(Buffer.concat([head, reasonString(text, 'latin1')]));
  }

  /** Bell (RFC 6143 §7.6.3). */
  bell(): void {
    if (this.state === 'normal') this.socket.write(Buffer.from([2]));
  }

  // ---- ending ----

  /** Drops the client for `e`: logs it and closes, letting what was already written (a reason) go out first. */
  fail(e: RfbProtocolError): void {
    if (this.state === 'closed') return;
    this.host.protocolError(this, e);
    this.host.log(`vnc: client ${this.remote}: ${e.message}; closing`);
    this.close();
  }

  /** Ends the connection for any thrown value: a protocol error is the client's fault, anything else is ours. */
  private failWith(e: unknown): void {
    if (e instanceof RfbProtocolError) this.fail(e);
    else {
      if (this.state !== 'closed') this.host.log(`vnc: client ${this.remote}: internal error: ${e instanceof Error ? e.message : String(e)}; closing`);
      this.close();
    }
  }

  close(): void {
    if (this.state === 'closed') return;
    this.teardown();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
  }

  private teardown(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.zlib?.close();
    this.zrle?.close();
    this.pending = null;
    this.host.closed(this);
  }
}
