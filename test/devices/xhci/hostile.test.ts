// A hostile guest: every index, bound and pointer the controller takes from the guest, wrong on purpose. Each
// case gets the completion code the xHCI spec gives (or a Host System Error), the VMM never throws, and the
// controller keeps working afterwards (or after HCRST where it halted).
import test from 'tape';
import * as R from '../../../devices/xhci/regs.js';
import { enumerateTablet, ProducerRing, writeTrb, xhciMachine, type XhciDriver } from '../../harness/xhci-driver.js';

const PORT = R.USB2_FIRST_PORT;
const CMD = (type: number, slot = 0, extra = 0): number => ((type << 10) | extra | (slot << 24)) >>> 0;

function started(o: Parameters<XhciDriver['start']>[0] = {}): XhciDriver {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  drv.reset();
  drv.start(o);
  drv.drain();
  return drv;
}

/** Started, port 5 reset, slot 1 enabled and addressed. */
function addressed(): XhciDriver {
  const drv = started();
  drv.setPortsc(PORT, R.PORTSC_PP | R.PORTSC_PR);
  drv.enableSlot();
  drv.addressDevice(1, PORT);
  drv.drain();
  return drv;
}

const hse = (drv: XhciDriver): boolean => (drv.op(R.OP_USBSTS) & (R.USBSTS_HSE | R.USBSTS_HCH)) === (R.USBSTS_HSE | R.USBSTS_HCH);

/** After a halt: HCRST and a fresh start must give a working controller. */
function recovers(t: test.Test, drv: XhciDriver): void {
  t.equal(drv.controller.stats.internalErrors, 0, `no internal errors${drv.controller.lastInternalError ? `: ${drv.controller.lastInternalError}` : ''}`);
  drv.reset();
  drv.start();
  drv.drain();
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_NOOP_CMD)).code, R.CC.SUCCESS, '... and after HCRST the controller works');
}

test('slot IDs: 0, past MaxSlots, not enabled; No Slots Available', (t) => {
  const drv = started({ maxSlots: 2 });
  for (const id of [0, 3, 64, 65, 255]) {
    t.equal(drv.command(0, 0, 0, CMD(R.TRB_DISABLE_SLOT, id)).code, R.CC.SLOT_NOT_ENABLED, `Disable Slot ${id}: Slot Not Enabled`);
  }
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_ADDRESS_DEVICE, 0)).code, R.CC.SLOT_NOT_ENABLED, 'Address Device slot 0');
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_RESET_DEVICE, 200)).code, R.CC.SLOT_NOT_ENABLED, 'Reset Device slot 200');
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_CONFIGURE_EP, 1)).code, R.CC.SLOT_NOT_ENABLED, 'Configure Endpoint on a slot never enabled');
  t.deepEqual([drv.enableSlot().slotId, drv.enableSlot().slotId], [1, 2], 'MaxSlotsEn 2: slots 1 and 2');
  const third = drv.enableSlot();
  t.equal(third.code, R.CC.NO_SLOTS, 'a third: No Slots Available');
  t.equal(third.slotId, 0, '... with slot ID 0');
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_DISABLE_SLOT, 2)).code, R.CC.SUCCESS, 'Disable Slot 2');
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_DISABLE_SLOT, 2)).code, R.CC.SLOT_NOT_ENABLED, '... twice: Slot Not Enabled');
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_ENABLE_SLOT, 0, 5 << 16)).code, R.CC.TRB, 'Enable Slot with a slot type no protocol has: TRB Error');
  drv.setOp(R.OP_CONFIG, 0x1ff);
  t.equal(drv.op(R.OP_CONFIG) & 0xff, 64, 'MaxSlotsEn is clamped to MaxSlots');
  drv.setOp(R.OP_CONFIG, 0);
  t.equal(drv.enableSlot().code, R.CC.NO_SLOTS, 'MaxSlotsEn 0: no slots at all');
  t.end();
});

test('Address Device: bad ports, contexts and pointers; states', (t) => {
  const drv = started();
  drv.enableSlot();
  drv.setPortsc(PORT, R.PORTSC_PP | R.PORTSC_PR);
  drv.drain();
  t.equal(drv.addressDevice(1, 0).code, R.CC.PARAMETER, 'root port 0: Parameter Error');
  t.equal(drv.addressDevice(1, 9).code, R.CC.PARAMETER, 'root port 9: Parameter Error');
  t.equal(drv.addressDevice(1, 1).code, R.CC.USB_TRANSACTION, 'a port with no device: USB Transaction Error');
  t.equal(drv.addressDevice(1, PORT, { mps: 0 }).code, R.CC.PARAMETER, 'EP0 max packet 0: Parameter Error');
  const ic = drv.inputContext();
  drv.setU32(ic + 4, 1); // A0 only
  t.equal(drv.command(ic, 0, 0, CMD(R.TRB_ADDRESS_DEVICE, 1)).code, R.CC.PARAMETER, 'A1 missing: Parameter Error');
  drv.setU32(ic + 4, 3);
  drv.setU32(ic + 36, PORT << 16);
  drv.setU32(ic + 68, (2 << 3) | (64 << 16)); // EP0 as bulk OUT
  drv.setU64(ic + 72, drv.alloc(256) | 1);
  t.equal(drv.command(ic, 0, 0, CMD(R.TRB_ADDRESS_DEVICE, 1)).code, R.CC.PARAMETER, 'EP0 not a control endpoint: Parameter Error');
  drv.setU32(ic + 68, (4 << 3) | (64 << 16));
  drv.setU64(ic + 72, 0);
  t.equal(drv.command(ic, 0, 0, CMD(R.TRB_ADDRESS_DEVICE, 1)).code, R.CC.PARAMETER, 'EP0 TR Dequeue Pointer 0: Parameter Error');
  drv.setU64(ic + 72, 0x7fff_0000_0000 + 1);
  t.equal(drv.command(ic, 0, 0, CMD(R.TRB_ADDRESS_DEVICE, 1)).code, R.CC.PARAMETER, 'EP0 ring outside RAM: Parameter Error');
  drv.setU32(ic + 32, 0x12345); // a route string: through a hub that does not exist
  drv.setU64(ic + 72, drv.alloc(256) | 1);
  t.equal(drv.command(ic, 0, 0, CMD(R.TRB_ADDRESS_DEVICE, 1)).code, R.CC.USB_TRANSACTION, 'a route string: USB Transaction Error');
  t.equal(drv.command(0xffff_ff00, 0xffff, 0, CMD(R.TRB_ADDRESS_DEVICE, 1)).code, R.CC.PARAMETER, 'input context outside RAM: Parameter Error');
  t.equal(drv.command(drv.m.memory.bytes.length - 64, 0, 0, CMD(R.TRB_ADDRESS_DEVICE, 1)).code, R.CC.PARAMETER, 'input context running past the end of RAM: Parameter Error');
  // The DCBAA entry: zero, misaligned, outside RAM; DCBAAP itself outside RAM.
  drv.outputs.set(1, 0);
  drv.setU64(drv.dcbaa + 8, 0);
  const ring = new ProducerRing(drv.m, drv.alloc(64 * 16), 64);
  drv.ep0.set(1, ring);
  const tryAddr = (): number => {
    const c = drv.inputContext();
    drv.setU32(c + 4, 3);
    drv.setU32(c + 32, (1 << 27) | (3 << 20));
    drv.setU32(c + 36, PORT << 16);
    drv.setU32(c + 68, (4 << 3) | (64 << 16));
    drv.setU64(c + 72, ring.base | 1);
    return drv.command(c, 0, 0, CMD(R.TRB_ADDRESS_DEVICE, 1)).code;
  };
  t.equal(tryAddr(), R.CC.PARAMETER, 'DCBAA entry 0: Parameter Error');
  drv.setU64(drv.dcbaa + 8, drv.alloc(2048) + 32);
  t.equal(tryAddr(), R.CC.PARAMETER, 'output context not 64-byte aligned: Parameter Error');
  drv.setU64(drv.dcbaa + 8, drv.m.memory.bytes.length - 512);
  t.equal(tryAddr(), R.CC.PARAMETER, 'output context running past RAM: Parameter Error');
  drv.setReg64(R.OP_BASE + R.OP_DCBAAP_LO, 0x40_0000_0000);
  t.equal(tryAddr(), R.CC.PARAMETER, 'DCBAAP outside RAM: Parameter Error');
  drv.setReg64(R.OP_BASE + R.OP_DCBAAP_LO, drv.dcbaa);
  const out = drv.alloc(1024);
  drv.setU64(drv.dcbaa + 8, out);
  drv.outputs.set(1, out);
  t.equal(drv.m.memory.bytes.subarray(out, out + 1024).some((b) => b !== 0), false, 'nothing was written by the failed commands');
  t.equal(tryAddr(), R.CC.SUCCESS, 'a correct Address Device now succeeds');
  t.equal(tryAddr(), R.CC.CONTEXT_STATE, 'again in Addressed: Context State Error');
  t.equal(drv.enableSlot().slotId, 2, 'slot 2');
  t.equal(drv.addressDevice(2, PORT).code, R.CC.USB_TRANSACTION, 'a second slot for the same device: USB Transaction Error');
  t.end();
});

test('Address Device with BSR, Evaluate Context, Reset Device', (t) => {
  const drv = started();
  drv.setPortsc(PORT, R.PORTSC_PP | R.PORTSC_PR);
  drv.enableSlot();
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_EVALUATE_CONTEXT, 1)).code, R.CC.CONTEXT_STATE, 'Evaluate Context in Enabled: Context State Error');
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_RESET_DEVICE, 1)).code, R.CC.CONTEXT_STATE, 'Reset Device in Enabled: Context State Error');
  t.equal(drv.addressDevice(1, PORT, { bsr: true, mps: 8 }).code, R.CC.SUCCESS, 'BSR=1: Success');
  t.equal(drv.slotState(1), R.SLOT_DEFAULT, '... Default state');
  t.equal(drv.outputDword(1, 0, 3) & 0xff, 0, '... address 0');
  t.equal(drv.getDescriptor(1, 1, 0, 8).actual, 8, 'the first 8 bytes of the device descriptor at address 0');
  t.equal(drv.addressDevice(1, PORT, { bsr: true }).code, R.CC.CONTEXT_STATE, 'BSR=1 again in Default: Context State Error');
  const ic = drv.inputContext();
  drv.setU32(ic + 4, 2);
  drv.setU32(ic + 64 + 4, (4 << 3) | (64 << 16));
  t.equal(drv.command(ic, 0, 0, CMD(R.TRB_EVALUATE_CONTEXT, 1)).code, R.CC.SUCCESS, 'Evaluate Context EP0 max packet 64');
  t.equal(drv.outputDword(1, 1, 1) >>> 16, 64, '... in the output context');
  drv.setU32(ic + 64 + 4, 4 << 3);
  t.equal(drv.command(ic, 0, 0, CMD(R.TRB_EVALUATE_CONTEXT, 1)).code, R.CC.PARAMETER, 'max packet 0: Parameter Error');
  drv.setU32(ic + 4, 1);
  drv.setU32(ic + 32 + 8, 5 << 22);
  t.equal(drv.command(ic, 0, 0, CMD(R.TRB_EVALUATE_CONTEXT, 1)).code, R.CC.PARAMETER, 'interrupter target 5 of 1: Parameter Error');
  t.equal(drv.command(0xfff0_0000, 0x100, 0, CMD(R.TRB_EVALUATE_CONTEXT, 1)).code, R.CC.PARAMETER, 'input context outside RAM: Parameter Error');
  t.equal(drv.addressDevice(1, PORT).code, R.CC.SUCCESS, 'BSR=0 from Default: Success');
  t.equal(drv.slotState(1), R.SLOT_ADDRESSED, '... Addressed');
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_RESET_DEVICE, 1)).code, R.CC.SUCCESS, 'Reset Device');
  t.equal(drv.slotState(1), R.SLOT_DEFAULT, '... back to Default');
  t.end();
});

test('Configure Endpoint: states, bad endpoint contexts, streams; all or nothing', (t) => {
  const drv = started();
  drv.setPortsc(PORT, R.PORTSC_PP | R.PORTSC_PR);
  drv.enableSlot();
  t.equal(drv.configureInterruptIn(1).code, R.CC.CONTEXT_STATE, 'before Address Device: Context State Error');
  drv.addressDevice(1, PORT);
  const cfg = (dci: number, dw0: number, dw1: number, deq: number, extraAdd = 0): number => {
    const ic = drv.inputContext();
    drv.setU32(ic + 4, 1 | (1 << dci) | extraAdd);
    drv.setU32(ic + 32, (31 << 27) | (3 << 20));
    drv.setU32(ic + (dci + 1) * 32, dw0);
    drv.setU32(ic + (dci + 1) * 32 + 4, dw1);
    drv.setU64(ic + (dci + 1) * 32 + 8, deq);
    if (extraAdd) {
      // a good endpoint at DCI 5 beside the bad one
      drv.setU32(ic + 6 * 32 + 4, (7 << 3) | (8 << 16));
      drv.setU64(ic + 6 * 32 + 8, drv.alloc(256) | 1);
    }
    return drv.command(ic, 0, 0, CMD(R.TRB_CONFIGURE_EP, 1)).code;
  };
  const ring = drv.alloc(256) | 1;
  t.equal(cfg(3, 0, 8 << 16, ring), R.CC.PARAMETER, 'endpoint type 0: Parameter Error');
  t.equal(cfg(3, 0, 7 << 3, ring), R.CC.PARAMETER, 'max packet 0: Parameter Error');
  t.equal(cfg(4, 0, (7 << 3) | (8 << 16), ring), R.CC.PARAMETER, 'an IN type at an even (OUT) DCI: Parameter Error');
  t.equal(cfg(3, 0, (2 << 3) | (8 << 16), ring), R.CC.PARAMETER, 'an OUT type at an odd DCI: Parameter Error');
  t.equal(cfg(3, 3 << 10, (7 << 3) | (8 << 16), ring), R.CC.PARAMETER, 'MaxPStreams 3 (no streams offered): Parameter Error');
  t.equal(cfg(3, 0, (7 << 3) | (8 << 16), 0), R.CC.PARAMETER, 'TR Dequeue Pointer 0: Parameter Error');
  t.equal(cfg(3, 0, (7 << 3) | (8 << 16), 0x10_0000_0001), R.CC.PARAMETER, 'TR Dequeue Pointer outside RAM: Parameter Error');
  t.equal(cfg(3, 3 << 10, (7 << 3) | (8 << 16), ring, 1 << 5), R.CC.PARAMETER, 'one bad endpoint beside a good one: Parameter Error');
  t.equal(drv.slotState(1), R.SLOT_ADDRESSED, '... and nothing was configured');
  t.equal(drv.epState(1, 5), R.EP_DISABLED, '... not even the good one');
  t.equal(drv.command(0xffff_0000, 0xffff, 0, CMD(R.TRB_CONFIGURE_EP, 1)).code, R.CC.PARAMETER, 'input context outside RAM: Parameter Error');
  t.equal(drv.configureInterruptIn(1).code, R.CC.SUCCESS, 'a good one: Success');
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_CONFIGURE_EP, 1, R.TRB_DC)).code, R.CC.SUCCESS, 'Deconfigure');
  t.equal(drv.slotState(1), R.SLOT_ADDRESSED, '... Addressed again');
  t.equal(drv.epState(1, 3), R.EP_DISABLED, '... DCI 3 disabled');
  t.end();
});

test('endpoint commands: DCI 0, disabled endpoints, wrong states, stream IDs, bad dequeue pointers', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  enumerateTablet(drv);
  const ep = (type: number, dci: number, lo = 0, hi = 0, status = 0): number => drv.command(lo, hi, status, CMD(type, 1, dci << 16)).code;
  t.equal(ep(R.TRB_RESET_EP, 0), R.CC.TRB, 'Reset Endpoint DCI 0: TRB Error');
  t.equal(ep(R.TRB_STOP_EP, 0), R.CC.TRB, 'Stop Endpoint DCI 0: TRB Error');
  t.equal(ep(R.TRB_STOP_EP, 7), R.CC.CONTEXT_STATE, 'Stop Endpoint on disabled DCI 7: Context State Error');
  t.equal(ep(R.TRB_SET_TR_DEQUEUE, 31, drv.alloc(64) | 1), R.CC.CONTEXT_STATE, 'Set TR Dequeue on disabled DCI 31: Context State Error');
  t.equal(ep(R.TRB_RESET_EP, 3), R.CC.CONTEXT_STATE, 'Reset Endpoint on a running endpoint: Context State Error');
  t.equal(ep(R.TRB_SET_TR_DEQUEUE, 3, drv.alloc(64) | 1), R.CC.CONTEXT_STATE, 'Set TR Dequeue while running: Context State Error');
  t.equal(ep(R.TRB_STOP_EP, 3), R.CC.SUCCESS, 'Stop Endpoint');
  t.equal(drv.epState(1, 3), R.EP_STOPPED, '... Stopped in the output context');
  t.equal(ep(R.TRB_STOP_EP, 3), R.CC.CONTEXT_STATE, 'stopping it again: Context State Error');
  t.equal(ep(R.TRB_SET_TR_DEQUEUE, 3, drv.alloc(64) | 1, 0, 5 << 16), R.CC.INVALID_STREAM_ID, 'Set TR Dequeue with stream 5: Invalid Stream ID Error');
  t.equal(ep(R.TRB_SET_TR_DEQUEUE, 3, 0), R.CC.PARAMETER, 'Set TR Dequeue to 0: Parameter Error');
  t.equal(ep(R.TRB_SET_TR_DEQUEUE, 3, 0xffff_fff1, 0x7), R.CC.PARAMETER, 'Set TR Dequeue outside RAM: Parameter Error');
  const fresh = new ProducerRing(drv.m, drv.alloc(32 * 16), 32);
  drv.rings.set('1/3', fresh);
  t.equal(ep(R.TRB_SET_TR_DEQUEUE, 3, fresh.base | 1), R.CC.SUCCESS, 'Set TR Dequeue to a new ring');
  t.equal(drv.outputDword(1, 3, 2), fresh.base | 1, '... in the output context with DCS');
  const { buf } = drv.queueIn(1, 3, 8);
  t.equal(drv.epState(1, 3), R.EP_RUNNING, 'the doorbell restarts the stopped endpoint');
  drv.controller.tablets()[0]!.pointer(1, 0, 0, 10, 10);
  t.equal(drv.take(R.TRB_TRANSFER_EVENT)?.code, R.CC.SHORT_PACKET, 'and reports flow on the new ring');
  t.equal(drv.bytes(buf, 1)[0], 1, '... into its buffer');
  t.end();
});

test('doorbells: reserved targets, stream IDs, disabled slots, past the array, while halted', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  const { slotId } = enumerateTablet(drv);
  drv.queueIn(slotId, 3, 8);
  const c = drv.controller;
  const ignoredBefore = c.stats.ignoredDoorbells;
  drv.doorbell(0, 5); // host controller doorbell, reserved target
  drv.doorbell(0, 0x10000); // with a stream ID
  drv.doorbell(slotId, 0);
  drv.doorbell(slotId, 32);
  drv.doorbell(slotId, 255);
  drv.doorbell(slotId, 7); // disabled endpoint
  drv.doorbell(slotId, 3 | (1 << 16)); // stream 1
  drv.doorbell(9, 1); // slot never enabled
  drv.doorbell(64, 1);
  t.equal(c.stats.ignoredDoorbells - ignoredBefore, 9, 'nine bad doorbells ignored and counted');
  drv.setReg(R.DB_BASE + 4 * 65, 1); // past the doorbell array: reserved space
  drv.setReg(R.DB_BASE + 4 * 200, 1);
  t.deepEqual(drv.drain(), [], 'no events from any of them');
  drv.setOp(R.OP_USBCMD, 0);
  drv.doorbell(0, 0);
  t.equal(c.stats.ignoredDoorbells - ignoredBefore, 10, 'a doorbell while halted is ignored');
  t.end();
});

test('TRB types that do not belong on the ring; setup packets; halted endpoints recover', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  const { slotId } = enumerateTablet(drv);
  for (const type of [R.TRB_NORMAL, R.TRB_SETUP, R.TRB_NOOP, R.TRB_TRANSFER_EVENT, 18, 19, 20, 21, 22, 40, 63]) {
    t.equal(drv.command(0, 0, 0, CMD(type)).code, R.CC.TRB, `type ${type} on the command ring: TRB Error`);
  }
  const ep0 = drv.ep0.get(slotId)!;
  const expectHalt = (what: string, push: () => number): void => {
    const at = push();
    drv.doorbell(slotId, 1);
    const e = drv.take(R.TRB_TRANSFER_EVENT);
    t.equal(e?.code, R.CC.TRB, `${what}: TRB Error`);
    t.equal(e?.ptr, at, '... on that TRB');
    t.equal(drv.epState(slotId, 1), R.EP_HALTED, '... EP0 Halted');
    drv.doorbell(slotId, 1);
    t.equal(drv.take(R.TRB_TRANSFER_EVENT), undefined, '... a doorbell on a halted endpoint does nothing');
    t.equal(drv.command(0, 0, 0, CMD(R.TRB_RESET_EP, slotId, 1 << 16)).code, R.CC.SUCCESS, '... Reset Endpoint');
    ep0.push(0, 0, 0, R.TRB_NOOP << 10); // a placeholder so the dequeue moves past the bad TRB
    t.equal(drv.command(ep0.enqueueAddr | (ep0.cycle ? 1 : 0), 0, 0, CMD(R.TRB_SET_TR_DEQUEUE, slotId, 1 << 16)).code, R.CC.SUCCESS, '... Set TR Dequeue past it');
  };
  expectHalt('a Normal TRB outside a data stage', () => ep0.push(drv.alloc(8), 0, 8, (R.TRB_NORMAL << 10) | R.TRB_IOC));
  expectHalt('a command TRB on EP0', () => ep0.push(0, 0, 0, R.TRB_ENABLE_SLOT << 10));
  expectHalt('an isochronous TRB on EP0', () => ep0.push(0, 0, 0, R.TRB_ISOCH << 10));
  expectHalt('a Setup TRB without IDT', () => ep0.push(0x01000680, 0x00120000, 8, R.TRB_SETUP << 10));
  expectHalt('a Setup TRB of 7 bytes', () => ep0.push(0x01000680, 0x00120000, 7, (R.TRB_SETUP << 10) | R.TRB_IDT));
  expectHalt('a Data stage with no Setup', () => ep0.push(drv.alloc(8), 0, 8, (R.TRB_DATA << 10) | R.TRB_DIR_IN));
  expectHalt('a Status stage with no Setup', () => ep0.push(0, 0, 0, (R.TRB_STATUS << 10) | R.TRB_IOC));
  expectHalt('a Data stage in the wrong direction', () => {
    ep0.push(0x01000680, 0x00120000, 8, (R.TRB_SETUP << 10) | R.TRB_IDT | (3 << 16));
    return ep0.push(drv.alloc(18), 0, 18, R.TRB_DATA << 10);
  });
  t.equal(drv.getDescriptor(slotId, 1, 0, 18).actual, 18, 'after all that, EP0 transfers work');

  // On the interrupt ring: a Setup TRB.
  const intr = drv.ring(slotId, 3);
  const at = intr.push(0, 0, 8, (R.TRB_SETUP << 10) | R.TRB_IDT);
  drv.doorbell(slotId, 3);
  drv.controller.tablets()[0]!.pointer(0, 1, 1, 2, 2);
  const e = drv.take(R.TRB_TRANSFER_EVENT);
  t.deepEqual([e?.code, e?.ptr], [R.CC.TRB, at], 'a Setup TRB on the interrupt ring: TRB Error on it');
  t.equal(drv.epState(slotId, 3), R.EP_HALTED, '... halted');
  t.end();
});

test('standard requests the tablet refuses stall; absurd wLength never over-reads or over-writes', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  const { slotId } = enumerateTablet(drv);
  const stallRecover = (): void => {
    drv.command(0, 0, 0, CMD(R.TRB_RESET_EP, slotId, 1 << 16));
    const r = drv.ep0.get(slotId)!;
    drv.command(r.enqueueAddr | (r.cycle ? 1 : 0), 0, 0, CMD(R.TRB_SET_TR_DEQUEUE, slotId, 1 << 16));
  };
  for (const [what, s] of [
    ['SET_ADDRESS (the xHC sends it)', { bmRequestType: 0, bRequest: 5, wValue: 9 }],
    ['SET_CONFIGURATION 7', { bmRequestType: 0, bRequest: 9, wValue: 7 }],
    ['GET_DESCRIPTOR of an unknown type', { bmRequestType: 0x80, bRequest: 6, wValue: 0x0900, wLength: 64 }],
    ['GET_DESCRIPTOR config index 3', { bmRequestType: 0x80, bRequest: 6, wValue: 0x0203, wLength: 64 }],
    ['a vendor request', { bmRequestType: 0xc0, bRequest: 0x42, wLength: 4 }],
    ['GET_REPORT of a feature report', { bmRequestType: 0xa1, bRequest: 1, wValue: 0x0300, wLength: 8 }],
    ['SET_INTERFACE alternate 1', { bmRequestType: 1, bRequest: 11, wValue: 1 }],
  ] as const) {
    const r = drv.control(slotId, s);
    t.equal(r.code, R.CC.STALL, `${what}: Stall Error`);
    t.equal(drv.epState(slotId, 1), R.EP_HALTED, '... EP0 halted');
    stallRecover();
  }
  const big = drv.getDescriptor(slotId, 1, 0, 0xffff);
  t.equal(big.actual, 18, 'GET_DESCRIPTOR(device) with wLength 65535: 18 bytes');
  t.equal(big.events[0]?.len, 0xffff - 18, '... short by the rest');
  const ring = drv.ep0.get(slotId)!;
  // wLength 65535, a Data stage of 8 bytes right at the end of RAM: only 8 bytes are written.
  const end = drv.m.memory.bytes.length;
  ring.push(0x01000680, 0xffff0000, 8, (R.TRB_SETUP << 10) | R.TRB_IDT | (3 << 16));
  ring.push(end - 8, 0, 8, (R.TRB_DATA << 10) | R.TRB_DIR_IN);
  ring.push(0, 0, 0, (R.TRB_STATUS << 10) | R.TRB_IOC);
  drv.doorbell(slotId, 1);
  t.equal(drv.take(R.TRB_TRANSFER_EVENT)?.code, R.CC.SUCCESS, 'a Data TRB smaller than the answer takes what fits');
  t.deepEqual([...drv.bytes(end - 8, 8)], [18, 1, 0, 2, 0, 0, 0, 64], '... into the last 8 bytes of RAM');
  // An OUT request with an absurd wLength and a data buffer larger than RAM.
  ring.push(0x02000921, 0xffff0000, 8, (R.TRB_SETUP << 10) | R.TRB_IDT | (2 << 16));
  ring.push(end - 0x100, 0, 0x1ffff, R.TRB_DATA << 10);
  ring.push(0, 0, 0, (R.TRB_STATUS << 10) | R.TRB_IOC | R.TRB_DIR_IN);
  drv.doorbell(slotId, 1);
  t.ok(hse(drv), 'an OUT buffer running past RAM: Host System Error, halted');
  t.ok(drv.controller.stats.hostSystemErrors >= 1, '... counted');
  recovers(t, drv);
  t.end();
});

test('interrupt transfers: babble, buffers outside RAM, TDs that never end', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  const { slotId } = enumerateTablet(drv);
  const tablet = drv.controller.tablets()[0]!;
  const small = drv.queueIn(slotId, 3, 4);
  tablet.pointer(1, 5, 5, 10, 10);
  const e = drv.take(R.TRB_TRANSFER_EVENT);
  t.deepEqual([e?.code, e?.ptr], [3, small.trb], 'a 4-byte TRB for a 6-byte report: Babble Detected');
  t.deepEqual([...drv.bytes(small.buf, 4)], [0xee, 0xee, 0xee, 0xee], '... nothing written');
  t.equal(drv.epState(slotId, 3), R.EP_HALTED, '... endpoint halted');
  drv.command(0, 0, 0, CMD(R.TRB_RESET_EP, slotId, 3 << 16));
  const ring = drv.ring(slotId, 3);
  // A chain of 70 TRBs, each with CH: longer than a TD may be.
  const first = ring.enqueueAddr;
  drv.command(first | (ring.cycle ? 1 : 0), 0, 0, CMD(R.TRB_SET_TR_DEQUEUE, slotId, 3 << 16));
  const longRing = new ProducerRing(drv.m, drv.alloc(128 * 16), 128);
  drv.command(longRing.base | 1, 0, 0, CMD(R.TRB_SET_TR_DEQUEUE, slotId, 3 << 16));
  for (let i = 0; i < 70; i++) longRing.push(drv.alloc(8), 0, 8, (R.TRB_NORMAL << 10) | R.TRB_CH);
  drv.doorbell(slotId, 3);
  tablet.pointer(0, 1, 1, 10, 10);
  t.equal(drv.take(R.TRB_TRANSFER_EVENT)?.code, R.CC.TRB, `a TD of more than ${R.TD_MAX_TRBS} TRBs: TRB Error`);
  // A TD that is still being written (CH on the last TRB the guest handed over) waits.
  drv.command(0, 0, 0, CMD(R.TRB_RESET_EP, slotId, 3 << 16));
  const r2 = new ProducerRing(drv.m, drv.alloc(32 * 16), 32);
  drv.command(r2.base | 1, 0, 0, CMD(R.TRB_SET_TR_DEQUEUE, slotId, 3 << 16));
  const half = drv.alloc(8);
  r2.push(half, 0, 4, (R.TRB_NORMAL << 10) | R.TRB_CH);
  drv.doorbell(slotId, 3);
  t.equal(drv.take(R.TRB_TRANSFER_EVENT), undefined, 'half a TD: the report waits');
  const rest = drv.alloc(8);
  r2.push(rest, 0, 4, (R.TRB_NORMAL << 10) | R.TRB_IOC);
  drv.doorbell(slotId, 3);
  const whole = drv.take(R.TRB_TRANSFER_EVENT);
  t.deepEqual([whole?.code, whole?.len], [R.CC.SHORT_PACKET, 2], 'the whole TD: the report spans both TRBs, 2 bytes short on the second');
  t.deepEqual([...drv.bytes(half, 4), ...drv.bytes(rest, 2)], [0, 0xcc, 0x0c, 0xcc, 0x0c, 0], '... 6 bytes across the two buffers');
  // A buffer outside RAM.
  r2.push(0xfff0_0000, 0x10, 8, (R.TRB_NORMAL << 10) | R.TRB_IOC);
  drv.doorbell(slotId, 3);
  tablet.pointer(0, 2, 2, 10, 10);
  t.ok(hse(drv), 'a report buffer outside RAM: Host System Error');
  recovers(t, drv);
  t.end();
});

test('Link TRBs: endless loops are bounded, targets outside RAM are host system errors', (t) => {
  const drv = started();
  const c = drv.controller;
  // A Link TRB pointing at itself without Toggle Cycle: the command ring never ends.
  const self = drv.alloc(64);
  writeTrb(drv.m, self, self, 0, 0, (R.TRB_LINK << 10) | 1);
  drv.setReg64(R.OP_BASE + R.OP_CRCR_LO, self | 1);
  t.equal(drv.op(R.OP_CRCR_LO) & R.CRCR_CRR, 0, 'CRCR takes a new pointer while the ring is stopped');
  const before = c.stats.budgetExhausted;
  drv.doorbell(0, 0);
  t.equal(c.stats.budgetExhausted, before + 1, 'a self-linked command ring ends the pass at the budget');
  // Two Links pointing at each other with Toggle Cycle on one: still bounded.
  const a = drv.alloc(64);
  const b = drv.alloc(64);
  writeTrb(drv.m, a, b, 0, 0, (R.TRB_LINK << 10) | 1);
  writeTrb(drv.m, b, a, 0, 0, (R.TRB_LINK << 10) | R.TRB_TC | 1);
  drv.reset();
  drv.start();
  drv.drain();
  drv.setReg64(R.OP_BASE + R.OP_CRCR_LO, a | 1);
  drv.doorbell(0, 0);
  t.deepEqual(drv.drain(), [], 'a Link pair that toggles the cycle: the ring reads as empty, no events');
  // A Link to memory that does not exist.
  const far = drv.alloc(64);
  writeTrb(drv.m, far, 0x1000_0000, 0x2, 0, (R.TRB_LINK << 10) | 1);
  drv.reset();
  drv.start();
  drv.drain();
  drv.setReg64(R.OP_BASE + R.OP_CRCR_LO, far | 1);
  drv.doorbell(0, 0);
  t.ok(hse(drv), 'a Link out of RAM: Host System Error');
  t.ok(drv.op(R.OP_USBSTS) & R.USBSTS_HCH, '... halted');
  recovers(t, drv);

  // The same on a transfer ring.
  const { drv: d2 } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  const { slotId } = enumerateTablet(d2);
  const loop = d2.alloc(64);
  writeTrb(d2.m, loop, loop, 0, 0, (R.TRB_LINK << 10) | 1);
  d2.command(0, 0, 0, CMD(R.TRB_STOP_EP, slotId, 3 << 16));
  d2.command(loop | 1, 0, 0, CMD(R.TRB_SET_TR_DEQUEUE, slotId, 3 << 16));
  const b2 = d2.controller.stats.budgetExhausted;
  d2.doorbell(slotId, 3);
  d2.controller.tablets()[0]!.pointer(0, 1, 1, 2, 2);
  t.ok(d2.controller.stats.budgetExhausted > b2, 'a self-linked transfer ring ends each pass at the budget');
  t.equal(d2.command(0, 0, 0, CMD(R.TRB_NOOP_CMD)).code, R.CC.SUCCESS, 'the controller goes on working');
  t.end();
});

test('the command ring: pointers outside RAM, more commands than one pass takes, Command Stop/Abort', (t) => {
  const drv = started();
  drv.reset();
  drv.start();
  drv.drain();
  drv.setReg64(R.OP_BASE + R.OP_CRCR_LO, 0x80_0000_0000 + 1);
  drv.doorbell(0, 0);
  t.ok(hse(drv), 'a command ring outside RAM: Host System Error');
  recovers(t, drv);
  // 300 No-Ops: the first pass takes RING_BUDGET of them, the next doorbell the rest.
  const d = started({ commandTrbs: 512, segments: [1024] });
  for (let i = 0; i < 300; i++) d.cmd!.push(0, 0, 0, CMD(R.TRB_NOOP_CMD));
  d.doorbell(0, 0);
  t.equal(d.drain().length, R.RING_BUDGET, `one doorbell runs ${R.RING_BUDGET} commands`);
  d.doorbell(0, 0);
  t.equal(d.drain().length, 300 - R.RING_BUDGET, 'the next runs the rest');
  // Command Stop with the ring running.
  d.setReg(R.OP_BASE + R.OP_CRCR_LO, R.CRCR_CS);
  const stopped = d.take(R.TRB_COMMAND_COMPLETION);
  t.equal(stopped?.code, R.CC.COMMAND_RING_STOPPED, 'CRCR.CS: a Command Ring Stopped event');
  t.equal(stopped?.ptr, d.cmd!.enqueueAddr, '... pointing at the next command');
  t.equal(d.op(R.OP_CRCR_LO) & R.CRCR_CRR, 0, '... CRR clear');
  t.equal(d.command(0, 0, 0, CMD(R.TRB_NOOP_CMD)).code, R.CC.SUCCESS, 'the doorbell starts it again where it stopped');
  d.setReg(R.OP_BASE + R.OP_CRCR_LO, R.CRCR_CA);
  t.equal(d.take(R.TRB_COMMAND_COMPLETION)?.code, R.CC.COMMAND_RING_STOPPED, 'CRCR.CA: Command Ring Stopped too (no command is ever in progress)');
  t.equal(d.command(0, 0, 0, CMD(R.TRB_NOOP_CMD)).code, R.CC.SUCCESS, '... and the ring restarts');
  t.end();
});

test('the event ring: bad segment tables, full ring without overwriting, segments in turn', (t) => {
  for (const [what, setup] of [
    ['ERSTSZ 0', (d: XhciDriver) => d.setIr(R.IR_ERSTSZ, 0)],
    [`ERSTSZ ${2 ** R.ERST_MAX + 1} (past ERST Max)`, (d: XhciDriver) => d.setIr(R.IR_ERSTSZ, 2 ** R.ERST_MAX + 1)],
    ['a segment of 0 TRBs', (d: XhciDriver) => d.setU32(d.erst + 8, 0)],
    ['a segment of 8 TRBs', (d: XhciDriver) => d.setU32(d.erst + 8, 8)],
    ['a segment of 5000 TRBs', (d: XhciDriver) => d.setU32(d.erst + 8, 5000)],
    ['a segment outside RAM', (d: XhciDriver) => d.setU64(d.erst, 0x10_0000_0000)],
    ['a misaligned segment', (d: XhciDriver) => d.setU64(d.erst, d.segments[0]!.base + 16)],
    ['a segment table outside RAM', (d: XhciDriver) => d.setReg64(R.IR0_BASE + R.IR_ERSTBA_LO, 0x40_0000_0000)],
  ] as const) {
    const d = started();
    setup(d);
    d.setReg64(R.IR0_BASE + R.IR_ERSTBA_LO, what === 'a segment table outside RAM' ? 0x40_0000_0000 : d.erst);
    d.cmd!.push(0, 0, 0, CMD(R.TRB_NOOP_CMD));
    d.doorbell(0, 0);
    t.ok(hse(d), `${what}: posting an event is a Host System Error`);
  }

  // A ring of 16 TRBs the guest does not consume: 14 events, then the Event Ring Full Error in the 15th, and
  // the 16th TRB is never written.
  const d = started({ segments: [16] });
  const seg = d.segments[0]!.base;
  d.m.memory.bytes.fill(0, seg, seg + 256);
  d.setReg64(R.IR0_BASE + R.IR_ERSTBA_LO, d.erst); // restart the ring at its first TRB
  d.evSeg = d.evIdx = 0;
  d.evCycle = true;
  for (let i = 0; i < 20; i++) d.cmd!.push(0, 0, 0, CMD(R.TRB_NOOP_CMD));
  d.doorbell(0, 0);
  const types: number[] = [];
  for (let i = 0; i < 16; i++) types.push((d.u32(seg + i * 16 + 12) >>> 10) & 0x3f);
  t.deepEqual(types, [...new Array(14).fill(R.TRB_COMMAND_COMPLETION), R.TRB_HOST_CONTROLLER, 0], '14 completions, the Full Error event, one TRB left unwritten');
  t.equal(d.u32(seg + 14 * 16 + 8) >>> 24, R.CC.EVENT_RING_FULL, 'completion code Event Ring Full Error');
  d.doorbell(0, 0);
  t.equal(d.u32(seg + 15 * 16 + 12), 0, 'another doorbell overwrites nothing');
  const got = d.drain();
  t.equal(got.filter((e) => e.type === R.TRB_COMMAND_COMPLETION).length + d.drain().filter((e) => e.type === R.TRB_COMMAND_COMPLETION).length, 20, 'once the guest moves ERDP the waiting commands complete: 20 in all');
  t.equal(d.command(0, 0, 0, CMD(R.TRB_NOOP_CMD)).code, R.CC.SUCCESS, 'and the ring goes on, cycle bit toggled');

  // Enumeration over a ring of three small segments, many times round.
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  drv.reset();
  drv.start({ segments: [16, 16, 32] });
  drv.setPortsc(PORT, R.PORTSC_PP | R.PORTSC_PR);
  drv.enableSlot();
  drv.addressDevice(1, PORT);
  let ok = 0;
  for (let i = 0; i < 40; i++) if (drv.getDescriptor(1, 1, 0, 18).actual === 18) ok++;
  t.equal(ok, 40, '40 control transfers (120+ events) across three segments');
  t.end();
});

test('register accesses: narrow and unaligned writes, read-only space, the last port and beyond', (t) => {
  const drv = started();
  drv.setReg(R.OP_BASE + R.OP_USBCMD, 0, 1);
  t.equal(drv.op(R.OP_USBSTS) & R.USBSTS_HCH, 0, 'a byte write to USBCMD is dropped');
  drv.setReg(R.OP_BASE + R.OP_USBCMD + 1, 0);
  t.equal(drv.op(R.OP_USBSTS) & R.USBSTS_HCH, 0, 'an unaligned dword write is dropped');
  drv.setReg(0, 0xffffffff);
  drv.setReg(R.CAP_HCSPARAMS1, 0);
  t.equal(drv.reg(R.CAP_HCSPARAMS1) >>> 24, 8, 'capability registers are read-only');
  drv.setReg(R.PORT_BASE + 8 * R.PORT_STRIDE, R.PORTSC_PR);
  drv.setReg(R.BAR_SIZE - 4, 0xffffffff);
  t.equal(drv.reg(R.BAR_SIZE - 4), 0, 'the end of the BAR reads 0');
  t.equal(drv.m.read(drv.bar0 + R.BAR_SIZE, 4), 0xffffffff, 'past the BAR: nothing decodes');
  drv.setPortsc(8, R.PORTSC_PR | R.PORTSC_WPR | R.PORTSC_CHANGE);
  t.equal(drv.portsc(8) & R.PORTSC_PED, 0, 'port 8: nothing there to reset');
  drv.setOp(R.OP_USBSTS, 0xffffffff);
  t.equal(drv.op(R.OP_USBSTS) & R.USBSTS_HCH, 0, 'writing all ones to USBSTS clears only the RW1C bits');
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_NOOP_CMD)).code, R.CC.SUCCESS, 'the controller still works');
  t.end();
});

test('a port the guest disabled: its device no longer answers', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  const { slotId } = enumerateTablet(drv);
  drv.setPortsc(PORT, R.PORTSC_PP | R.PORTSC_PED);
  const r = drv.getDescriptor(slotId, 1, 0, 18);
  t.equal(r.code, R.CC.USB_TRANSACTION, 'a control transfer: USB Transaction Error');
  t.equal(drv.epState(slotId, 1), R.EP_HALTED, '... EP0 halted');
  drv.setPortsc(PORT, R.PORTSC_PP | R.PORTSC_PR);
  drv.drain();
  drv.command(0, 0, 0, CMD(R.TRB_RESET_EP, slotId, 1 << 16));
  const ring = drv.ep0.get(slotId)!;
  drv.command(ring.enqueueAddr | (ring.cycle ? 1 : 0), 0, 0, CMD(R.TRB_SET_TR_DEQUEUE, slotId, 1 << 16));
  t.equal(drv.getDescriptor(slotId, 1, 0, 18).actual, 18, 'after a port reset and endpoint recovery it answers again');
  t.end();
});

test('slots and devices going away: Disable Slot with transfers pending, reports for unaddressed devices', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  const { slotId } = enumerateTablet(drv);
  drv.queueIn(slotId, 3, 8);
  t.equal(drv.command(0, 0, 0, CMD(R.TRB_DISABLE_SLOT, slotId)).code, R.CC.SUCCESS, 'Disable Slot with a TRB waiting');
  const tablet = drv.controller.tablets()[0]!;
  tablet.pointer(1, 1, 1, 2, 2);
  t.deepEqual(drv.drain(), [], 'a report afterwards goes nowhere');
  drv.doorbell(slotId, 3);
  t.deepEqual(drv.drain(), [], 'the doorbell of the disabled slot does nothing');
  tablet.pointer(1, 1, 1, 0, 0);
  tablet.pointer(1, Number.NaN, 1, 10, 10);
  t.pass('pointer() with a zero-sized framebuffer or NaN coordinates is ignored');
  const again = drv.enableSlot();
  t.equal(drv.addressDevice(again.slotId, PORT).code, R.CC.SUCCESS, 'the port can be addressed again by a new slot');
  t.end();
});

test('random TRBs on every ring: completion codes and halts, never an exception', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  const { slotId } = enumerateTablet(drv);
  let seed = 12345;
  const rnd = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed;
  };
  const ramTop = drv.m.memory.bytes.length;
  const tablet = drv.controller.tablets()[0]!;
  for (let round = 0; round < 400; round++) {
    const ptr = rnd() % 4 === 0 ? rnd() : rnd() % ramTop;
    const which = rnd() % 3;
    const ctl = (rnd() & ~1) >>> 0;
    if (which === 0) drv.cmd!.push(ptr, rnd() % 8 === 0 ? rnd() : 0, rnd(), ctl);
    else (which === 1 ? drv.ep0.get(slotId)! : drv.ring(slotId, 3)).push(ptr, 0, rnd(), ctl);
    drv.doorbell(rnd() % 3 === 0 ? slotId : 0, rnd() % 4 === 0 ? rnd() : which === 1 ? 1 : 3);
    if (round % 7 === 0) tablet.pointer(rnd() & 31, rnd() % 1000, rnd() % 1000, 800, 600);
    if (round % 5 === 0) drv.setReg((rnd() % (R.BAR_SIZE / 4)) * 4, rnd());
    drv.drain();
    if (drv.op(R.OP_USBSTS) & R.USBSTS_HCH) {
      drv.reset();
      drv.start();
      drv.drain();
      drv.setPortsc(PORT, R.PORTSC_PP | R.PORTSC_PR);
      drv.enableSlot();
      drv.addressDevice(1, PORT);
      drv.configureInterruptIn(1);
      drv.drain();
    }
  }
  t.equal(drv.controller.stats.internalErrors, 0, `400 rounds of random TRBs and register writes: no internal errors${drv.controller.lastInternalError ? ` (${drv.controller.lastInternalError})` : ''}`);
  t.end();
});
