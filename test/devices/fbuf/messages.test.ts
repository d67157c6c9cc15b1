// The client message parser (RFC 6143 §7.5): every message whole, split, truncated, and malformed.
import test from 'tape';
import {
  ClientMessageReader, MAX_CUT_TEXT, MAX_ENCODINGS, parseClientMessage, type ClientMessage,
} from '../../../devices/fbuf/rfb/messages.js';
import { encodePixelFormat, NATIVE_PIXEL_FORMAT, type PixelFormat } from '../../../devices/fbuf/rfb/pixel-format.js';

function setPixelFormat(pf: PixelFormat): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0, 0]), encodePixelFormat(pf)]);
}
function setEncodings(list: number[]): Buffer {
  const b = Buffer.alloc(4 + list.length * 4);
  b[0] = 2;
  b.writeUInt16BE(list.length, 2);
  list.forEach((e, i) => b.writeInt32BE(e, 4 + i * 4));
  return b;
}
const updateRequest = Buffer.from([3, 1, 0, 10, 0, 20, 1, 0, 0, 200]);
const keyEvent = Buffer.from([4, 1, 0, 0, 0, 0, 0xff, 0x0d]);
const pointerEvent = Buffer.from([5, 0x05, 0x01, 0x00, 0x00, 0x80]);
function cutText(text: string): Buffer {
  const t = Buffer.from(text, 'latin1');
  const b = Buffer.alloc(8 + t.length);
  b[0] = 6;
  b.writeUInt32BE(t.length, 4);
  t.copy(b, 8);
  return b;
}

const rgb565: PixelFormat = { bitsPerPixel: 16, depth: 16, bigEndian: true, trueColour: true, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 };

const whole: Array<[string, Buffer, ClientMessage]> = [
  ['SetPixelFormat', setPixelFormat(rgb565), { type: 'set-pixel-format', format: rgb565 }],
  ['SetEncodings', setEncodings([6, 0, -223, -239]), { type: 'set-encodings', encodings: [6, 0, -223, -239] }],
  ['SetEncodings (none)', setEncodings([]), { type: 'set-encodings', encodings: [] }],
  ['FramebufferUpdateRequest', updateRequest, { type: 'update-request', incremental: true, x: 10, y: 20, w: 256, h: 200 }],
  ['KeyEvent', keyEvent, { type: 'key', down: true, keysym: 0xff0d }],
  ['PointerEvent', pointerEvent, { type: 'pointer', buttonMask: 5, x: 256, y: 128 }],
  ['ClientCutText', cutText('héllo'), { type: 'cut-text', text: 'héllo' }],
  ['ClientCutText (empty)', cutText(''), { type: 'cut-text', text: '' }],
  ['QEMU Extended Key Event', Buffer.from([255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 0x1e]), { type: 'extended-key', down: true, keysym: 0x61, keycode: 0x1e }],
];

test('each message type parses to its typed form with its exact length', (t) => {
  for (const [name, bytes, msg] of whole) {
    const r = parseClientMessage(bytes);
    t.deepEqual(r, { kind: 'message', message: msg, length: bytes.length }, name);
  }
  t.end();
});

test('every truncation of every message type is incomplete, never an error or a message', (t) => {
  for (const [name, bytes] of whole) {
    let ok = true;
    for (let n = 0; n < bytes.length; n++) if (parseClientMessage(bytes.subarray(0, n)).kind !== 'incomplete') ok = false;
    t.ok(ok, `${name}: all ${bytes.length} prefixes incomplete`);
  }
  t.end();
});

test('a stream delivered one byte at a time, or all at once, gives the same messages in order', (t) => {
  const stream = Buffer.concat(whole.map(([, b]) => b));
  const expected = whole.map(([, , m]) => m);
  const r1 = new ClientMessageReader();
  const got1: ClientMessage[] = [];
  for (const byte of stream) {
    const { messages, error } = r1.push(Buffer.from([byte]));
    t.equal(error, undefined);
    got1.push(...messages);
  }
  t.deepEqual(got1, expected, 'byte by byte');
  t.equal(r1.buffered, 0);
  const r2 = new ClientMessageReader();
  t.deepEqual(r2.push(stream), { messages: expected }, 'one chunk');
  const r3 = new ClientMessageReader();
  const got3 = [...r3.push(stream.subarray(0, 31)).messages, ...r3.push(stream.subarray(31)).messages];
  t.deepEqual(got3, expected, 'split mid-message');
  t.end();
});

test('unknown message types are errors (nothing after them can be framed)', (t) => {
  for (const type of [1, 7, 8, 100, 150, 248, 250, 254]) {
    const r = parseClientMessage(Buffer.from([type, 0, 0, 0, 0, 0, 0, 0]));
    t.ok(r.kind === 'error' && r.error.code === 'unknown-message', `type ${type}`);
  }
  t.end();
});

test('QEMU client messages other than the Extended Key Event are errors', (t) => {
  const r = parseClientMessage(Buffer.from([255, 1, 0, 0]));
  t.ok(r.kind === 'error' && r.error.code === 'unknown-message', 'subtype 1 (audio) was never negotiated');
  t.end();
});

test('bad pixel formats are refused', (t) => {
  const bad: Array<[string, Partial<PixelFormat>]> = [
    ['24 bpp', { bitsPerPixel: 24 }],
    ['0 bpp', { bitsPerPixel: 0 }],
    ['depth above bpp', { depth: 33 }],
    ['depth 0', { depth: 0 }],
    ['colour map', { trueColour: false }],
    ['max not 2^n-1', { redMax: 200 }],
    ['max 0', { greenMax: 0 }],
    ['channel past the pixel', { blueShift: 30 }],
    ['overlapping channels', { greenShift: 12 }],
    ['16 bits per channel in 32 bpp', { redMax: 65535, greenMax: 65535, blueMax: 65535 }],
  ];
  for (const [name, change] of bad) {
    const r = parseClientMessage(setPixelFormat({ ...NATIVE_PIXEL_FORMAT, ...change }));
    t.ok(r.kind === 'error' && r.error.code === 'bad-pixel-format', `${name}${r.kind === 'error' ? `: ${r.error.message}` : ''}`);
  }
  const good: PixelFormat[] = [
    rgb565,
    { bitsPerPixel: 8, depth: 8, bigEndian: false, trueColour: true, redMax: 7, greenMax: 7, blueMax: 3, redShift: 0, greenShift: 3, blueShift: 6 },
    { ...NATIVE_PIXEL_FORMAT, depth: 32, bigEndian: true, redShift: 0, blueShift: 16 },
    { bitsPerPixel: 32, depth: 30, bigEndian: false, trueColour: true, redMax: 1023, greenMax: 1023, blueMax: 1023, redShift: 20, greenShift: 10, blueShift: 0 },
  ];
  for (const pf of good) t.equal(parseClientMessage(setPixelFormat(pf)).kind, 'message', `accepted: ${pf.bitsPerPixel} bpp shifts ${pf.redShift}/${pf.greenShift}/${pf.blueShift}`);
  t.end();
});

test('oversized lengths are refused from the header, before the body is waited for', (t) => {
  const many = Buffer.from([2, 0, (MAX_ENCODINGS + 1) >> 8, (MAX_ENCODINGS + 1) & 255]);
  const r1 = parseClientMessage(many);
  t.ok(r1.kind === 'error' && r1.error.code === 'too-many-encodings', 'SetEncodings count over the bound');
  t.equal(parseClientMessage(Buffer.from([2, 0, MAX_ENCODINGS >> 8, MAX_ENCODINGS & 255])).kind, 'incomplete', 'exactly the bound waits for its body');
  const big = Buffer.alloc(8);
  big[0] = 6;
  big.writeUInt32BE(MAX_CUT_TEXT + 1, 4);
  const r2 = parseClientMessage(big);
  t.ok(r2.kind === 'error' && r2.error.code === 'cut-text-too-long', 'ClientCutText over 1 MiB');
  big.writeUInt32BE(0xffffffff, 4);
  const r3 = parseClientMessage(big);
  t.ok(r3.kind === 'error' && r3.error.code === 'cut-text-too-long', 'a negative (extended clipboard) length, never offered');
  const text = cutText('x'.repeat(MAX_CUT_TEXT));
  const r4 = parseClientMessage(text);
  t.ok(r4.kind === 'message' && r4.message.type === 'cut-text' && r4.message.text.length === MAX_CUT_TEXT, 'exactly 1 MiB is accepted');
  t.end();
});

test('the reader hands out the good messages before a bad one, then the error, and keeps nothing', (t) => {
  const r = new ClientMessageReader();
  const { messages, error } = r.push(Buffer.concat([keyEvent, pointerEvent, Buffer.from([99, 1, 2, 3]), keyEvent]));
  t.deepEqual(messages.map((m) => m.type), ['key', 'pointer']);
  t.equal(error?.code, 'unknown-message');
  t.equal(r.buffered, 0);
  t.end();
});
