// test-needs: kvm
// virtio-blk under KVM, end to end without JavaScript on the request path: the test plays firmware and
// driver set-up from JS (status, features, queue PFN, MSI-X), then a tiny real-mode guest kicks the queue
// with a 2-byte OUT to BAR0+16 - caught by the ioeventfd, so no exit reaches TypeScript - and spins on
// the used index in its own memory until the native worker has completed the read. Skipped without KVM.
import test from 'tape';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCommandLine } from '../../../src/cli/parse.js';
import { initPci } from '../../../src/platform/pci/init.js';
import { SuspendHow } from '../../../src/vm/index.js';
import { VmMachine } from '../../../src/vm/vm-machine.js';
import { VIRTIO_PCI_QUEUE_NOTIFY } from '../../../devices/virtio/constants.js';
import { enterRealMode, load, newVm, withKvm } from '../../vm/guest.js';
import { makeDisk, pattern, S_OK, T_IN } from './helpers.js';

const QUEUE = 0x8000; // pfn 8: desc 0x8000, avail 0x8800, used 0x9000 (128 entries)
const USED_IDX = 0x9002;

test('KVM: a guest kick through the ioeventfd runs a read in the native worker (MSI-X by irqfd)', (t) =>
  withKvm(t, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsbhyve-vblk-kvm-'));
    const disk = makeDisk(dir, 1 << 20);
    const vm = newVm();
    const machine = new VmMachine(vm);
    try {
      const { tree } = parseCommandLine(['-s', `3,virtio-blk,${disk}`, 'vm'], () => {});
      const bus = initPci({ tree, machine, layout: vm.memory.layout, bootrom: false, warn: (w) => t.comment(w) });
      const fn = bus.find(0, 3, 0)!;
      const model = fn.model;
      let jsNotifies = 0;
      const barWrite = model.barWrite!.bind(model);
      model.barWrite = (bar, off, size, value) => {
        if (bar === 0 && off === VIRTIO_PCI_QUEUE_NOTIFY) jsNotifies++;
        barWrite(bar, off, size, value);
      };
      const reg = (off: number, size: 1 | 2 | 4, v: number): void => model.barWrite!(0, off, size, v);
      // Driver set-up (what the guest's driver would do, done here to keep the guest program tiny).
      reg(18, 1, 0);
      reg(18, 1, 3);
      reg(4, 4, model.barRead!(0, 0, 4));
      reg(14, 2, 0);
      reg(8, 4, QUEUE >> 12);
      // One read request: header at 0x4000, data 0x5000 (1024 bytes), status 0x4100.
      const m = vm.memory;
      m.writeU32(0x4000, T_IN);
      m.writeU32(0x4004, 0);
      m.writeU64(0x4008, 3n);
      m.writeU8(0x4100, 0xee);
      const desc = (i: number, addr: number, len: number, flags: number, next: number): void => {
        m.writeU64(QUEUE + 16 * i, BigInt(addr));
        m.writeU32(QUEUE + 16 * i + 8, len);
        m.writeU16(QUEUE + 16 * i + 12, flags);
        m.writeU16(QUEUE + 16 * i + 14, next);
      };
      desc(0, 0x4000, 16, 1, 1);
      desc(1, 0x5000, 1024, 3, 2);
      desc(2, 0x4100, 1, 2, 0);
      m.writeU16(QUEUE + 2048 + 4, 0); // avail ring[0] = head 0
      m.writeU16(QUEUE + 2048 + 2, 1); // avail idx = 1
      // MSI-X on with both vectors programmed, so completions leave through an MSI route and an irqfd.
      for (let v = 0; v < 2; v++) {
        fn.msixWrite(1, v * 16, 4, 0xfee00000);
        fn.msixWrite(1, v * 16 + 4, 4, 0);
        fn.msixWrite(1, v * 16 + 8, 4, 0x40 + v);
        fn.msixWrite(1, v * 16 + 12, 4, 0);
      }
      const cap = fn.msix!.capOff;
      bus.configWrite(0, 3, 0, cap + 2, 2, fn.get16(cap + 2) | 0x8000);
      reg(20, 2, 0);
      reg(22, 2, 1);
      reg(18, 1, 7); // DRIVER_OK: the worker starts, the ioeventfd and irqfd are installed
      const port = fn.bars[0]!.addr + VIRTIO_PCI_QUEUE_NOTIFY;
      // prettier-ignore
      load(vm, 0x1000, [
        0xba, port & 0xff, port >> 8,        // mov dx, BAR0+16
        0x31, 0xc0,                          // xor ax, ax   (queue 0)
        0xef,                                // out dx, ax   -> ioeventfd
        0xa1, USED_IDX & 0xff, USED_IDX >> 8, // spin: mov ax, [used.idx]
        0x3d, 0x01, 0x00,                    // cmp ax, 1
        0x75, 0xf8,                          // jne spin
        0xe6, 0x84,                          // out 0x84, al -> done
        0xf4,                                // hlt
      ]);
      vm.registerPio(0x84, 1, () => vm.suspend(SuspendHow.Poweroff));
      enterRealMode(vm, 0x1000);
      const r = await vm.run();
      t.equal(r.status, 1, 'guest finished');
      t.equal(m.readU16(USED_IDX), 1, 'used index advanced');
      t.equal(m.readU32(0x9004), 0, 'used id = head 0');
      t.equal(m.readU32(0x9008), 1025, 'used len = data + status');
      t.equal(m.readU8(0x4100), S_OK, 'status OK');
      const file = readFileSync(disk);
      t.ok(Buffer.from(m.read(0x5000, 1024)).equals(file.subarray(3 * 512, 3 * 512 + 1024)), 'data is sector 3.. of the file');
      t.equal(m.readU8(0x5000), pattern(3 * 512), 'first byte');
      t.equal(jsNotifies, 0, 'the kick never reached TypeScript (ioeventfd)');
    } finally {
      machine.close();
      vm.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }));
