// The tablet enumerated as Linux's xhci-hcd and usbhid do it, step by step, then pointer events delivered as
// interrupt IN reports: the Transfer Event, the report bytes in guest memory, the absolute coordinates, MSI.
import test from 'tape';
import * as R from '../../../devices/xhci/regs.js';
import { TABLET_REPORT_DESCRIPTOR } from '../../../devices/xhci/tablet.js';
import { enumerateTablet, xhciMachine } from '../../harness/xhci-driver.js';

const PORT = R.USB2_FIRST_PORT;

test('enumeration: port reset, slot, address, descriptors, configuration', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  drv.reset();
  t.equal(drv.portsc(PORT) & (R.PORTSC_CCS | R.PORTSC_CSC | R.PORTSC_PED), R.PORTSC_CCS | R.PORTSC_CSC, 'port 5: connected, change reported, not enabled before reset');
  drv.start();
  t.equal(drv.op(R.OP_USBSTS) & R.USBSTS_HCH, 0, 'running: HCH clear');
  t.equal(drv.ir(R.IR_IMAN) & R.IMAN_IP, 0, 'with MSI the controller clears IMAN.IP once the message is sent (§4.17.5)');
  t.ok(drv.ir(R.IR_ERDP_LO) & R.ERDP_EHB, '... while ERDP.EHB stays set until software moves ERDP');
  const psc = drv.take(R.TRB_PORT_STATUS_CHANGE);
  t.equal(psc?.port, PORT, 'a Port Status Change event for port 5 when the controller starts');
  t.ok(drv.msiCount() >= 1, 'MSI raised for it');
  t.ok(drv.op(R.OP_USBSTS) & R.USBSTS_PCD, 'USBSTS.PCD');

  drv.setPortsc(PORT, R.PORTSC_PP | R.PORTSC_CSC); // clear CSC
  t.equal(drv.portsc(PORT) & R.PORTSC_CSC, 0, 'CSC is write-1-to-clear');
  drv.setPortsc(PORT, R.PORTSC_PP | R.PORTSC_PR);
  const sc = drv.portsc(PORT);
  t.ok(sc & R.PORTSC_PED && sc & R.PORTSC_PRC && !(sc & R.PORTSC_PR), 'reset: enabled, PRC set, PR clear');
  t.equal((sc & R.PORTSC_PLS_MASK) >>> R.PORTSC_PLS_SHIFT, R.PLS_U0, 'link in U0');
  t.equal((sc & R.PORTSC_SPEED_MASK) >>> R.PORTSC_SPEED_SHIFT, R.SPEED_HIGH, 'high speed');
  t.equal(drv.take(R.TRB_PORT_STATUS_CHANGE)?.port, PORT, 'the reset posts a Port Status Change event');
  drv.setPortsc(PORT, R.PORTSC_PP | R.PORTSC_PRC);
  t.equal(drv.portsc(PORT) & R.PORTSC_CHANGE, 0, 'PRC cleared');

  const noop = drv.command(0, 0, 0, R.TRB_NOOP_CMD << 10);
  t.equal(noop.code, R.CC.SUCCESS, 'No-Op command: Success');
  const en = drv.enableSlot();
  t.equal(en.code, R.CC.SUCCESS, 'Enable Slot: Success');
  t.equal(en.slotId, 1, '... slot 1');
  const addr = drv.addressDevice(en.slotId, PORT);
  t.equal(addr.code, R.CC.SUCCESS, 'Address Device: Success');
  t.equal(drv.slotState(1), R.SLOT_ADDRESSED, 'output slot context: Addressed');
  t.equal(drv.outputDword(1, 0, 3) & 0xff, 1, '... USB device address 1');
  t.equal(drv.epState(1, 1), R.EP_RUNNING, '... EP0 Running');

  const dev = drv.getDescriptor(1, 1, 0, 64);
  t.equal(dev.code, R.CC.SUCCESS, 'GET_DESCRIPTOR(device, 64): the status stage completes');
  t.equal(dev.events[0]?.code, R.CC.SHORT_PACKET, '... after a Short Packet on the data stage');
  t.equal(dev.events[0]?.len, 64 - 18, '... with residual 46');
  t.deepEqual([...dev.data], [18, 1, 0, 2, 0, 0, 0, 64, 0x5d, 0xfb, 1, 0, 0, 0, 1, 2, 3, 1], 'device descriptor: USB 2.00, EP0 64, FB5D:0001, 3 strings, 1 configuration');

  const cfg9 = drv.getDescriptor(1, 2, 0, 9);
  t.equal(cfg9.code, R.CC.SUCCESS, 'GET_DESCRIPTOR(config, 9)');
  const total = cfg9.data[2]! | (cfg9.data[3]! << 8);
  t.equal(total, 34, 'wTotalLength 34');
  const cfg = drv.getDescriptor(1, 2, 0, total);
  t.equal(cfg.actual, 34, 'the full configuration');
  t.deepEqual([...cfg.data.subarray(9, 18)], [9, 4, 0, 0, 1, 3, 1, 2, 0], 'interface: HID boot mouse with one endpoint');
  t.deepEqual([...cfg.data.subarray(27, 34)], [7, 5, 0x81, 3, 8, 0, 10], 'endpoint 0x81 interrupt, 8 bytes');
  const hidLen = cfg.data[25]! | (cfg.data[26]! << 8);

  const lang = drv.getDescriptor(1, 3, 0, 255);
  t.deepEqual([...lang.data], [4, 3, 9, 4], 'string 0: US English');
  const product = drv.getDescriptor(1, 3, 2, 255, 0, 0x409);
  t.equal(Buffer.from(product.data.subarray(2)).toString('utf16le'), 'HID Tablet', 'string 2: HID Tablet');
  const manuf = drv.getDescriptor(1, 3, 1, 4, 0, 0x409);
  t.equal(manuf.actual, 4, 'a short wLength truncates the string');
  t.equal(drv.getDescriptor(1, 3, 9, 255).code, R.CC.STALL, 'a string that does not exist stalls');
  drv.command(0, 0, 0, (R.TRB_RESET_EP << 10) | (1 << 16) | (1 << 24));
  const ring = drv.ep0.get(1)!;
  drv.command(ring.enqueueAddr | (ring.cycle ? 1 : 0), 0, 0, (R.TRB_SET_TR_DEQUEUE << 10) | (1 << 16) | (1 << 24));

  const conf = drv.configureInterruptIn(1, 1);
  t.equal(conf.code, R.CC.SUCCESS, 'Configure Endpoint (EP1 IN, DCI 3): Success');
  t.equal(drv.slotState(1), R.SLOT_CONFIGURED, 'output slot context: Configured');
  t.equal(drv.epState(1, 3), R.EP_RUNNING, '... DCI 3 Running');
  t.equal(drv.outputDword(1, 0, 0) >>> 27, 3, '... Context Entries 3');

  t.equal(drv.control(1, { bmRequestType: 0x00, bRequest: 9, wValue: 1 }).code, R.CC.SUCCESS, 'SET_CONFIGURATION 1');
  const getConf = drv.control(1, { bmRequestType: 0x80, bRequest: 8, wLength: 1 });
  t.deepEqual([...getConf.data], [1], 'GET_CONFIGURATION: 1');
  const st = drv.control(1, { bmRequestType: 0x80, bRequest: 0, wLength: 2 });
  t.deepEqual([...st.data], [0, 0], 'GET_STATUS(device)');
  t.equal(drv.control(1, { bmRequestType: 0x21, bRequest: 0x0a, wValue: 0 }).code, R.CC.SUCCESS, 'SET_IDLE 0');
  t.equal(drv.control(1, { bmRequestType: 0x21, bRequest: 0x0b, wValue: 1 }).code, R.CC.SUCCESS, 'SET_PROTOCOL report');
  const proto = drv.control(1, { bmRequestType: 0xa1, bRequest: 0x03, wLength: 1 });
  t.deepEqual([...proto.data], [1], 'GET_PROTOCOL: report');
  const rd = drv.getDescriptor(1, 0x22, 0, hidLen, 1);
  t.deepEqual([...rd.data], [...TABLET_REPORT_DESCRIPTOR], 'GET_DESCRIPTOR(report) on the interface: the report descriptor');
  const rep = drv.control(1, { bmRequestType: 0xa1, bRequest: 0x01, wValue: 0x0100, wLength: 6 });
  t.equal(rep.actual, 6, 'GET_REPORT(input): 6 bytes');
  const out = drv.control(1, { bmRequestType: 0x21, bRequest: 0x09, wValue: 0x0200, wLength: 1 }, Uint8Array.of(1));
  t.equal(out.code, R.CC.SUCCESS, 'SET_REPORT with an OUT data stage');
  t.end();
});

test('reports: pointer() completes a posted interrupt TRB with absolute coordinates', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  const { slotId } = enumerateTablet(drv);
  const tablet = drv.controller.tablets()[0]!;
  const { buf, trb } = drv.queueIn(slotId, 3, 8);
  t.equal(drv.take(R.TRB_TRANSFER_EVENT), undefined, 'no report yet: the TRB waits');
  const before = drv.msiCount();
  tablet.pointer(1, 400, 300, 800, 600);
  const ev = drv.take(R.TRB_TRANSFER_EVENT);
  t.equal(ev?.ptr, trb, 'a Transfer Event for the TRB');
  t.equal(ev?.code, R.CC.SHORT_PACKET, '... Short Packet (6 of 8 bytes)');
  t.equal(ev?.len, 2, '... residual 2');
  t.equal(ev?.epId, 3, '... on DCI 3');
  t.equal(ev?.slotId, slotId, '... of the slot');
  t.deepEqual([...drv.bytes(buf, 8)], [1, 0x00, 0x40, 0x00, 0x40, 0, 0xee, 0xee], 'report: left button, X = Y = 0x4000 (the middle), wheel 0');
  t.ok(drv.msiCount() > before, 'an MSI for it');

  // Reports wait for TRBs: two events before any TRB, then two TRBs.
  tablet.pointer(4, 0, 599, 800, 600); // right button, bottom left
  tablet.pointer(8 | 4, 799, 0, 800, 600); // wheel up with right held
  const a = drv.queueIn(slotId, 3, 6);
  t.equal(drv.take(R.TRB_TRANSFER_EVENT)?.code, R.CC.SUCCESS, 'a 6-byte TRB completes with Success');
  t.deepEqual([...drv.bytes(a.buf, 6)], [2, 0, 0, 0xc9, 0x7f, 0], 'right button; X 0, Y 599 * 0x8000 / 600 = 0x7fc9');
  const b = drv.queueIn(slotId, 3, 8);
  drv.take(R.TRB_TRANSFER_EVENT);
  t.deepEqual([...drv.bytes(b.buf, 6)], [2, 0xd7, 0x7f, 0, 0, 1], 'then the wheel: X 799 * 0x8000 / 800 = 0x7fd7, wheel +1');
  tablet.pointer(0, 5000, -20, 800, 600);
  const c = drv.queueIn(slotId, 3, 8);
  drv.take(R.TRB_TRANSFER_EVENT);
  t.deepEqual([...drv.bytes(c.buf, 6)], [0, 0xff, 0x7f, 0, 0, 0], 'coordinates outside the framebuffer are clamped to 0..0x7fff');
  tablet.pointer(2, 10, 10, 800, 600);
  const d = drv.queueIn(slotId, 3, 8);
  drv.take(R.TRB_TRANSFER_EVENT);
  t.equal(drv.bytes(d.buf, 1)[0], 4, 'RFB middle (bit 1) is HID button 3 (bit 2)');
  // Moves with the same buttons coalesce; button changes never do.
  for (let i = 0; i < 40; i++) tablet.pointer(0, i, i, 800, 600);
  t.equal(tablet.pendingReports().length, 1, 'forty moves with the same buttons wait as one report');
  tablet.pointer(1, 50, 50, 800, 600);
  tablet.pointer(0, 50, 50, 800, 600);
  t.equal(tablet.pendingReports().length, 3, 'a press and a release are kept apart');
  t.equal(tablet.pendingReports()[0]!.x, Math.floor((39 * 0x8000) / 800), 'the coalesced move has the latest position');
  t.end();
});

test('interrupts: INTx when MSI is off, IMAN.IE and USBCMD.INTE gate it', (t) => {
  const { drv, m } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  const fn = drv.bus.find(0, 30, 0)!;
  drv.reset();
  drv.start({ msi: false });
  t.ok(m.irq.pinHigh(fn.ioapicPin), 'the Port Status Change event asserts the INTx line');
  t.equal(drv.msiCount(), 0, 'no MSI');
  t.ok(drv.ir(R.IR_IMAN) & R.IMAN_IP, 'IMAN.IP set');
  t.ok(drv.ir(R.IR_ERDP_LO) & R.ERDP_EHB, 'ERDP.EHB set');
  drv.drain();
  t.notOk(m.irq.pinHigh(fn.ioapicPin), 'clearing IP deasserts it');
  drv.setIr(R.IR_IMAN, 0);
  drv.enableSlot();
  t.notOk(m.irq.pinHigh(fn.ioapicPin), 'with IMAN.IE clear no interrupt reaches the guest');
  t.ok(drv.op(R.OP_USBSTS) & R.USBSTS_EINT, '... but USBSTS.EINT says an event is pending');
  drv.setOp(R.OP_USBSTS, R.USBSTS_EINT);
  t.equal(drv.op(R.OP_USBSTS) & R.USBSTS_EINT, 0, 'EINT is write-1-to-clear');
  t.end();
});
