// What the guest sees of the xHCI function before any driver work: PCI identity, BAR and interrupt capabilities,
// the capability registers and the Supported Protocol list, port states, and what HCRST and run/stop do.
import test from 'tape';
import * as R from '../../../devices/xhci/regs.js';
import { xhciMachine } from '../../harness/xhci-driver.js';

test('PCI function: 8086:1E31, class 0C/03/30, SBRN 3.0, 64-bit BAR0, MSI and INTx', (t) => {
  const { drv, warnings } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  t.deepEqual(warnings, [], 'no warnings');
  t.equal(drv.cfgRead(0, 4), 0x1e318086, 'vendor 8086, device 1E31');
  t.equal(drv.cfgRead(8, 4) >>> 8, 0x0c0330, 'class 0C/03/30');
  t.equal(drv.cfgRead(0x60, 1), 0x30, 'SBRN 0x30 (USB 3.0)');
  drv.cfgWrite(0x60, 1, 0x20);
  t.equal(drv.cfgRead(0x60, 1), 0x30, 'SBRN is read-only');
  t.equal(drv.cfgRead(0x10, 4) & 0x7, 0x4, 'BAR0 is a 64-bit memory BAR');
  drv.cfgWrite(0x10, 4, 0xffffffff);
  t.equal(drv.cfgRead(0x10, 4) & ~0xf, -R.BAR_SIZE & ~0xf, `BAR0 sizes to ${R.BAR_SIZE} bytes`);
  drv.cfgWrite(0x10, 4, drv.bar0);
  const msi = drv.findCap(0x05);
  t.ok(msi, 'an MSI capability');
  t.equal((drv.cfgRead(msi + 2, 2) >> 1) & 7, 0, '... for one message');
  t.equal(drv.findCap(0x11), 0, 'no MSI-X (bhyve offers MSI)');
  t.ok(drv.cfgRead(0x3d, 1) >= 1, 'an INTx pin');
  t.end();
});

test('capability registers and the Supported Protocol capabilities', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  t.equal(drv.reg(0, 1), R.CAPLENGTH, 'CAPLENGTH 0x20');
  t.equal(drv.reg(2, 2), 0x0100, 'HCIVERSION 1.0');
  const p1 = drv.reg(R.CAP_HCSPARAMS1);
  t.deepEqual([p1 & 0xff, (p1 >>> 8) & 0x7ff, p1 >>> 24], [64, 1, 8], 'HCSPARAMS1: 64 slots, 1 interrupter, 8 ports');
  t.equal((drv.reg(R.CAP_HCSPARAMS2) >>> 4) & 0xf, R.ERST_MAX, `HCSPARAMS2: ERST Max ${R.ERST_MAX}`);
  t.equal(drv.reg(R.CAP_HCSPARAMS2) >>> 21, 0, '... no scratchpad buffers');
  const c1 = drv.reg(R.CAP_HCCPARAMS1);
  t.equal(c1 & 1, 1, 'HCCPARAMS1: 64-bit addressing');
  t.equal(c1 & 4, 0, '... 32-byte contexts');
  t.equal((c1 >>> 12) & 0xf, 0, '... no streams (MaxPSASize 0)');
  t.equal(drv.reg(R.CAP_DBOFF), R.DB_BASE, 'DBOFF');
  t.equal(drv.reg(R.CAP_RTSOFF), R.RT_BASE, 'RTSOFF');
  // Walk the extended capability list as a driver does.
  const protocols: Array<{ major: number; first: number; count: number; name: string }> = [];
  let at = (c1 >>> 16) * 4;
  for (let n = 0; at && n < 16; n++) {
    const d0 = drv.reg(at);
    if ((d0 & 0xff) === 2) {
      const d2 = drv.reg(at + 8);
      protocols.push({ major: d0 >>> 24, first: d2 & 0xff, count: (d2 >>> 8) & 0xff, name: Buffer.from(Uint32Array.of(drv.reg(at + 4)).buffer).toString('latin1') });
    }
    const next = (d0 >>> 8) & 0xff;
    at = next ? at + next * 4 : 0;
  }
  t.deepEqual(protocols, [
    { major: 2, first: 5, count: 4, name: 'USB ' },
    { major: 3, first: 1, count: 4, name: 'USB ' },
  ], 'USB 2.0 on ports 5-8, USB 3.0 on ports 1-4');
  t.end();
});

test('operational registers after reset; ports; HCRST restores everything', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  t.equal(drv.op(R.OP_USBSTS), R.USBSTS_HCH, 'USBSTS: halted, controller ready');
  t.equal(drv.op(R.OP_PAGESIZE), 1, 'PAGESIZE: 4 KiB');
  for (let p = 1; p <= 8; p++) {
    const sc = drv.portsc(p);
    if (p === R.USB2_FIRST_PORT) {
      t.equal(sc & (R.PORTSC_CCS | R.PORTSC_PP | R.PORTSC_CSC), R.PORTSC_CCS | R.PORTSC_PP | R.PORTSC_CSC, 'port 5: the tablet, connected and powered');
      t.equal((sc & R.PORTSC_PLS_MASK) >>> R.PORTSC_PLS_SHIFT, R.PLS_POLLING, '... link in Polling until reset');
    } else {
      t.equal(sc, R.PORTSC_PP | (R.PLS_RXDETECT << R.PORTSC_PLS_SHIFT), `port ${p}: empty, powered, RxDetect`);
    }
  }
  drv.start();
  drv.setOp(R.OP_DNCTRL, 0x12345);
  t.equal(drv.op(R.OP_DNCTRL), 0x2345, 'DNCTRL keeps 16 bits');
  t.equal(drv.op(R.OP_CRCR_LO) & R.CRCR_CRR, 0, 'CRR clear before the command ring runs');
  drv.enableSlot();
  t.equal(drv.op(R.OP_CRCR_LO), R.CRCR_CRR, 'CRCR reads CRR only once running (the pointer reads 0)');
  drv.setPortsc(5, R.PORTSC_PP | R.PORTSC_PR);
  t.ok(drv.portsc(5) & R.PORTSC_PED, 'port 5 enabled');
  drv.setPortsc(5, R.PORTSC_PP | R.PORTSC_PED);
  t.equal(drv.portsc(5) & R.PORTSC_PED, 0, 'writing 1 to PED disables the port');
  drv.setPortsc(1, R.PORTSC_PP | R.PORTSC_PR);
  t.equal(drv.portsc(1) & R.PORTSC_PED, 0, 'resetting an empty port enables nothing');
  drv.setOp(R.OP_USBCMD, R.USBCMD_INTE);
  t.ok(drv.op(R.OP_USBSTS) & R.USBSTS_HCH, 'clearing R/S halts');
  t.equal(drv.op(R.OP_CRCR_LO) & R.CRCR_CRR, 0, '... and stops the command ring');

  drv.setOp(R.OP_USBCMD, R.USBCMD_HCRST);
  t.equal(drv.op(R.OP_USBCMD), 0, 'after HCRST: USBCMD 0');
  t.equal(drv.op(R.OP_USBSTS), R.USBSTS_HCH, '... USBSTS halted only');
  t.deepEqual([drv.op(R.OP_DNCTRL), drv.op(R.OP_CONFIG), drv.op(R.OP_DCBAAP_LO)], [0, 0, 0], '... DNCTRL, CONFIG, DCBAAP 0');
  t.deepEqual([drv.ir(R.IR_IMAN), drv.ir(R.IR_ERSTSZ), drv.ir(R.IR_ERSTBA_LO), drv.ir(R.IR_ERDP_LO)], [0, 0, 0, 0], '... interrupter registers 0');
  t.equal(drv.ir(R.IR_IMOD), 0x4000, '... IMOD back to its default');
  t.equal(drv.portsc(5) & (R.PORTSC_CCS | R.PORTSC_PED | R.PORTSC_CSC), R.PORTSC_CCS | R.PORTSC_CSC, '... port 5 connected again, not enabled');
  // The slot enabled before is gone: a new controller hands out slot 1 again.
  drv.start();
  t.equal(drv.enableSlot().slotId, 1, 'slots were released: Enable Slot gives slot 1 again');
  t.equal(drv.reg(R.RT_BASE) & ~0x3fff, 0, 'MFINDEX is 14 bits');
  t.end();
});

test('port link states: suspend to U3, resume, PLC', (t) => {
  const { drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  drv.start();
  drv.setPortsc(5, R.PORTSC_PP | R.PORTSC_PR);
  drv.setPortsc(5, R.PORTSC_PP | R.PORTSC_CHANGE);
  drv.drain();
  const pls = (): number => (drv.portsc(5) & R.PORTSC_PLS_MASK) >>> R.PORTSC_PLS_SHIFT;
  drv.setPortsc(5, R.PORTSC_PP | R.PORTSC_LWS | (R.PLS_U3 << R.PORTSC_PLS_SHIFT));
  t.equal(pls(), R.PLS_U3, 'LWS + U3 suspends');
  drv.setPortsc(5, R.PORTSC_PP | (R.PLS_U0 << R.PORTSC_PLS_SHIFT));
  t.equal(pls(), R.PLS_U3, 'a PLS write without LWS is ignored');
  drv.setPortsc(5, R.PORTSC_PP | R.PORTSC_LWS | (R.PLS_RESUME << R.PORTSC_PLS_SHIFT));
  t.equal(pls(), R.PLS_RESUME, 'Resume');
  drv.setPortsc(5, R.PORTSC_PP | R.PORTSC_LWS | (R.PLS_U0 << R.PORTSC_PLS_SHIFT));
  t.equal(pls(), R.PLS_U0, 'back to U0');
  t.ok(drv.portsc(5) & R.PORTSC_PLC, 'with PLC');
  t.equal(drv.take(R.TRB_PORT_STATUS_CHANGE)?.port, 5, 'and a Port Status Change event');
  t.end();
});

test('a controller without devices, and MSI delivery', (t) => {
  const { drv, warnings } = xhciMachine(['-s', '30,xhci'], 30);
  t.equal(warnings.length, 1, `one warning: ${warnings[0]}`);
  for (let p = 1; p <= 8; p++) t.equal(drv.portsc(p) & R.PORTSC_CCS, 0, `port ${p} empty`);
  drv.start();
  t.equal(drv.take(R.TRB_PORT_STATUS_CHANGE), undefined, 'no port events');
  const before = drv.msiCount();
  t.equal(drv.enableSlot().code, R.CC.SUCCESS, 'commands still run');
  t.equal(drv.msiCount(), before + 1, 'one MSI per interrupt');
  t.end();
});
