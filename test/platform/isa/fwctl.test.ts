// bhyve's fwctl channel as its UEFI firmware uses it: identify, then GET_LEN / GET "hw.ncpu".
import test from 'tape';
import { TestMachine } from '../../harness/machine.js';
import { Fwctl, OP_GET, OP_GET_LEN, ENOENT, E2BIG } from '../../../src/platform/isa/fwctl.js';
import { createIsaDevices } from '../../../src/platform/isa/index.js';
import { defaultConfigTree } from '../../../src/config/defaults.js';
import { memoryLayout, MiB } from '../../../src/vm/memmap.js';

function identify(m: TestMachine): string {
  m.outw(0x510, 0);
  return String.fromCharCode(...[0, 1, 2, 3].map(() => m.inb(0x511)));
}

/** Sends one request and reads the whole response back as dwords. */
function transact(m: TestMachine, op: number, txid: number, payload: Uint8Array, declaredSize?: number): number[] {
  const words = Math.ceil(payload.length / 4);
  const padded = new Uint8Array(words * 4);
  padded.set(payload);
  const view = new DataView(padded.buffer);
  m.outl(0x510, declaredSize ?? 12 + payload.length);
  m.outl(0x510, op);
  m.outl(0x510, txid);
  for (let i = 0; i < words; i++) m.outl(0x510, view.getUint32(i * 4, true));
  const size = m.inl(0x511);
  const out = [size];
  for (let i = 1; i < size / 4 && i < 64; i++) out.push(m.inl(0x511));
  return out;
}

const name = (s: string): Uint8Array => new TextEncoder().encode(s + '\0');

test('fwctl: identify, GET_LEN and GET of hw.ncpu', (t) => {
  const m = new TestMachine();
  new Fwctl(m, Fwctl.defaultValues(4));
  t.equal(identify(m), 'BHYV', 'signature');
  t.equal(m.inb(0x511), 0xff, 'no more signature bytes');
  t.deepEqual(transact(m, OP_GET_LEN, 7, name('hw.ncpu')), [24, OP_GET_LEN, 7, 0, 4, 0], 'length 4 as a 64-bit size');
  t.deepEqual(transact(m, OP_GET, 8, name('hw.ncpu')), [28, OP_GET, 8, 0, 4, 0, 4], 'size then the value 4');
  t.end();
});

test('fwctl: errors and hostile input', (t) => {
  const m = new TestMachine();
  new Fwctl(m, Fwctl.defaultValues(2));
  identify(m);
  t.deepEqual(transact(m, OP_GET, 1, name('hw.nope')), [16, OP_GET, 1, ENOENT], 'unknown name: ENOENT, no payload');
  t.deepEqual(transact(m, 99, 2, name('hw.ncpu')), [16, 99, 2, ENOENT], 'unknown operation: ENOENT');
  t.deepEqual(transact(m, OP_GET, 3, new Uint8Array(84).fill(0x41)), [16, OP_GET, 3, E2BIG], 'over-long name: E2BIG');
  t.doesNotThrow(() => {
    m.outl(0x510, 4); // a size below the header is dropped, not fatal
    t.equal(m.inl(0x511), 0xffff_ffff, 'no response to a dropped request');
    m.outb(0x510, 0);
    m.outw(0x511, 0x1234);
    t.equal(m.inw(0x511), 0xffff);
  });
  t.deepEqual(transact(m, OP_GET, 4, name('hw.ncpu')), [28, OP_GET, 4, 0, 4, 0, 2], 'still works afterwards');
  // A reset in the middle of a response discards it.
  m.outl(0x510, 12 + 8);
  m.outl(0x510, OP_GET);
  m.outl(0x510, 5);
  m.outl(0x510, 0x6e2e7768);
  m.outl(0x510, 0x00757063);
  m.inl(0x511);
  t.equal(identify(m), 'BHYV', 'identify again mid-response');
  t.deepEqual(transact(m, OP_GET_LEN, 6, name('hw.ncpu')), [24, OP_GET_LEN, 6, 0, 4, 0], 'clean state');
  t.end();
});

test('fwctl: present only with lpc.fwcfg=bhyve and a boot ROM', (t) => {
  const layout = memoryLayout(256 * MiB);
  const plain = new TestMachine();
  createIsaDevices(plain, defaultConfigTree(), { layout, ncpus: 1, sigtermPowerButton: false }).close();
  t.notOk(plain.io.claimsPort(0x510), 'no boot ROM: ports unclaimed');
  const rom = new TestMachine();
  const tree = defaultConfigTree();
  tree.set('bootrom', '/usr/local/share/uefi-firmware/BHYVE_UEFI.fd');
  const dev = createIsaDevices(rom, tree, { layout, ncpus: 3, sigtermPowerButton: false });
  t.ok(dev.fwctl, 'fwctl built');
  t.equal(identify(rom), 'BHYV');
  t.deepEqual(transact(rom, OP_GET, 1, name('hw.ncpu')), [28, OP_GET, 1, 0, 4, 0, 3], 'hw.ncpu = 3');
  dev.close();
  t.end();
});
