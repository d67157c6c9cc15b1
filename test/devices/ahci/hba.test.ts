// The HBA as a guest sees it before any command: PCI identity, ABAR size, CAP/PI/VS, ports with and without a
// device (signatures, SStatus), HBA reset, engine start/stop, COMRESET, and the interrupt paths (MSI and INTx).
import test from 'tape';
import { CAP, CMD_CR, CMD_FR, CMD_FRE, CMD_ST, GHC, IS, IS_DHRS, IS_PCS, PI, PxCI, PxCMD, PxIE, PxIS, PxSERR, PxSIG, PxSSTS, PxTFD, VS } from '../../harness/ahci-driver.js';
import { ATA_IDENTIFY, identify, rig, settle } from './helpers.js';

test('PCI identity, ABAR and HBA capabilities as bhyve presents them', async (t) => {
  const r = rig([{ type: 'hd' }, { type: 'cd', size: 2048 * 64 }], { raw: true });
  try {
    const d = r.drv;
    t.equal(d.cfgRead(0, 2), 0x8086, 'vendor 8086');
    t.equal(d.cfgRead(2, 2), 0x2821, 'device 2821 (ICH8 AHCI)');
    t.equal(d.cfgRead(0x09, 1), 0x01, 'prog-if 01: AHCI 1.0');
    t.equal(d.cfgRead(0x0a, 1), 0x06, 'subclass 06: SATA');
    t.equal(d.cfgRead(0x0b, 1), 0x01, 'class 01: mass storage');
    t.ok(d.findCap(0x05) !== 0, 'an MSI capability');
    t.ok(d.cfgRead(0x3d, 1) !== 0, 'an INTx pin');
    t.ok(d.abar !== 0, 'BAR5 (ABAR) assigned');
    d.cfgWrite(0x24, 4, 0xffffffff);
    const size = (~(d.cfgRead(0x24, 4) & ~0xf) >>> 0) + 1;
    d.cfgWrite(0x24, 4, d.abar);
    t.ok(size >= 0x100 + 6 * 0x80, `ABAR of ${size} bytes covers six ports`);
    const cap = d.reg(CAP);
    t.ok(cap & (1 << 31), 'CAP.S64A: 64-bit addressing');
    t.ok(cap & (1 << 30), 'CAP.SNCQ: native command queuing');
    t.ok(cap & (1 << 18), 'CAP.SAM: AHCI only');
    t.equal((cap >>> 8) & 0x1f, 31, 'CAP.NCS: 32 command slots');
    t.equal(cap & 0x1f, 5, 'CAP.NP: six ports (bhyve reports at least six)');
    t.equal((cap >>> 20) & 0xf, 3, 'CAP.ISS: Gen3');
    t.equal(d.reg(PI), 0b11, 'PI: the two ports with a device');
    t.equal(d.reg(VS), 0x10300, 'VS: AHCI 1.3');
    t.ok(d.reg(GHC) & (1 << 31), 'GHC.AE set (AHCI only)');
    t.equal(d.preg(0, PxSIG), 0x101, 'port 0: ATA signature');
    t.equal(d.preg(1, PxSIG), 0xeb140101, 'port 1: ATAPI signature');
    t.equal(d.preg(0, PxSSTS), 0x133, 'port 0: device present, Gen3, active');
    t.equal(d.preg(2, PxSSTS), 0, 'port 2: nothing attached');
    t.ok(d.preg(1, PxCMD) & (1 << 24), 'port 1: PxCMD.ATAPI');
    t.equal(d.preg(0, PxTFD) & 0x80, 0, 'port 0: not busy');
    t.equal(d.preg(5, PxSSTS), 0, 'port 5, the last CAP.NP counts, has its registers and no device');
  } finally {
    r.close();
  }
});

test('engine start and stop, HBA reset, COMRESET with the signature FIS', async (t) => {
  const r = rig([{ type: 'hd' }], { raw: true });
  try {
    const d = r.drv;
    d.reset();
    d.startPort(0);
    const cmd = d.preg(0, PxCMD);
    t.ok(cmd & CMD_ST && cmd & CMD_CR, 'ST set: the command list is running (CR)');
    t.ok(cmd & CMD_FRE && cmd & CMD_FR, 'FRE set: the FIS receive area is running (FR)');
    d.stopPort(0);
    t.equal(d.preg(0, PxCMD) & (CMD_ST | CMD_CR), 0, 'ST cleared: CR clears');
    d.setPreg(0, PxCI, 1);
    t.equal(d.preg(0, PxCI), 0, 'CI cannot be set while the engine is stopped');
    d.startPort(0);
    d.setPreg(0, PxIS, 0xffffffff);
    d.comreset(0);
    t.equal(d.preg(0, PxSSTS), 0x133, 'after COMRESET the link is up again');
    t.equal(d.preg(0, PxSIG), 0x101, 'and the signature is the disk\'s');
    t.ok(d.preg(0, PxSERR) & (1 << 26), 'SERR.DIAG.X: the device presence changed');
    t.ok(d.preg(0, PxIS) & IS_PCS, 'PxIS.PCS follows DIAG.X');
    d.setPreg(0, PxSERR, 1 << 26);
    t.equal(d.preg(0, PxIS) & IS_PCS, 0, 'clearing DIAG.X clears PCS');
    const pm = d.ports.get(0)!;
    const fis = d.bytes(pm.fb + 0x40, 20);
    t.equal(fis[0], 0x34, 'a D2H register FIS arrived');
    t.deepEqual([fis[12], fis[4], fis[5], fis[6]], [1, 1, 0, 0], 'carrying the ATA signature (count 1, LBA 1)');
    // HBA reset: every port back to its power-on state
    d.setReg(GHC, 1);
    t.equal(d.reg(GHC) & 1, 0, 'GHC.HR reads 0 once the reset is done');
    t.equal(d.preg(0, PxCMD) & (CMD_ST | CMD_FRE), 0, 'the port engine is stopped after the HBA reset');
    t.equal(d.preg(0, PxIE), 0, 'PxIE cleared');
    t.equal(d.reg(GHC) & 2, 0, 'GHC.IE cleared');
    t.ok(d.reg(GHC) & (1 << 31), 'GHC.AE stays set');
  } finally {
    r.close();
  }
});

test('interrupts: MSI on completion; INTx as a level that follows IS', async (t) => {
  const r = rig([{ type: 'hd' }]);
  try {
    const d = r.drv;
    const before = d.msiCount();
    await identify(d, 0);
    await settle(() => d.msiCount() > before);
    t.ok(d.msiCount() > before, 'IDENTIFY completion raised an MSI');
    t.ok(d.reg(IS) & 1, 'IS.IPS[0] set');
    t.ok(d.preg(0, PxIS) & IS_DHRS, 'PxIS.DHRS set');
    d.setPreg(0, PxIS, 0xffffffff);
    d.setReg(IS, 1);
    t.equal(d.reg(IS), 0, 'cleared in the port, then in IS');
    // With the port's interrupts masked, no MSI
    d.setPreg(0, PxIE, 0);
    const n = d.msiCount();
    await identify(d, 0);
    await settle();
    t.equal(d.msiCount(), n, 'no MSI while PxIE masks the event');
    t.equal(d.reg(IS), 0, 'and IS stays clear');
    d.setPreg(0, PxIE, 0xffffffff);
    t.ok(d.reg(IS) & 1, 'unmasking the pending event sets IS');
  } finally {
    r.close();
  }
  const x = rig([{ type: 'hd' }], { msi: false });
  try {
    const d = x.drv;
    // PCI status bit 3 (Interrupt Status) shows the INTx line as the guest sees it.
    const intx = (): boolean => (d.cfgRead(0x06, 2) & 0x08) !== 0;
    await identify(d, 0);
    await settle(intx);
    t.ok(intx(), 'without MSI the completion asserts INTx');
    d.setPreg(0, PxIS, 0xffffffff);
    d.setReg(IS, 1);
    await settle(() => !intx());
    t.notOk(intx(), 'clearing PxIS and IS deasserts it');
  } finally {
    x.close();
  }
});

test('a command issued while the engine runs completes; one issued to an empty port never starts', async (t) => {
  const r = rig([{ type: 'hd' }]);
  try {
    const d = r.drv;
    const { r: res } = await identify(d, 0, ATA_IDENTIFY);
    t.equal(d.preg(0, PxCI), 0, 'CI clear after completion');
    t.equal(res.status & 0x89, 0, 'no BSY, DRQ or ERR');
    t.equal(d.preg(2, PxCMD) & CMD_ST, 0, 'the empty port has no engine running');
    d.setPreg(2, PxIE, 0xffffffff);
    t.equal(d.preg(2, PxCI), 0, 'CI on an empty, stopped port stays 0');
    void PxIE;
  } finally {
    r.close();
  }
});

test('MSI messages per port when the guest enables all the HBA asks for; one shared message (GHC.MRSM) otherwise', async (t) => {
  const r = rig([{ type: 'hd' }, { type: 'hd' }], { raw: true });
  try {
    const d = r.drv;
    t.equal(d.msiMessagesCapable(), 8, 'the capability asks for 8 messages (six ports, rounded up as bhyve does)');
    d.enableMsi(8);
    d.reset();
    d.startPort(0);
    d.startPort(1);
    t.equal(d.reg(GHC) & 4, 0, 'all 8 enabled: GHC.MRSM clear');
    await identify(d, 1);
    await settle(() => d.msiCount(1) > 0);
    t.ok(d.msiCount(1) > 0, 'port 1 completes on message 1');
    t.equal(d.msiCount(0), 0, 'and not on message 0');
    await identify(d, 0);
    await settle(() => d.msiCount(0) > 0);
    t.ok(d.msiCount(0) > 0, 'port 0 completes on message 0');
    d.enableMsi(2);
    d.setPreg(0, PxIS, 0xffffffff);
    d.setPreg(1, PxIS, 0xffffffff);
    d.setReg(IS, 0xffffffff);
    t.ok(d.reg(GHC) & 4, 'fewer messages than asked for: GHC.MRSM set');
    const before = d.msiCount(0);
    await identify(d, 1);
    await settle(() => d.msiCount(0) > before);
    t.ok(d.msiCount(0) > before, 'port 1 now completes on message 0');
  } finally {
    r.close();
  }
});
