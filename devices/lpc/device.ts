// The LPC (PCI-to-ISA) bridge: Intel 8086:7000 by default, class bridge/ISA, and the PIRQ routing registers
// (0x60-0x63 for PIRQA-D, 0x68-0x6B for PIRQE-H) through which the guest sees and changes INTx routing.
// The ISA devices behind it (COM ports, RTC, PM, ...) are the platform's (src/platform/isa).
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import { PCIC_BRIDGE, PCIR_CLASS, PCIR_DEVICE, PCIR_REVID, PCIR_SUBCLASS, PCIR_SUBDEV_0, PCIR_SUBVEND_0, PCIR_VENDOR, PCIS_BRIDGE_ISA } from '../../src/platform/pci/regs.js';
import { pciregValue, type PciDeviceFactory } from '../device.js';

/** The ISA IRQs of COM1-COM4 and the SCI: a PIRQ link never takes the first, and avoids the second. */
export const LPC_RESERVED_IRQS = [4, 3] as const;
export const SCI_IRQ = 9;

/** Config offset -> PIRQ link (1..8). */
function pirqPinAt(off: number): number | undefined {
  if (off >= 0x60 && off <= 0x63) return off - 0x60 + 1;
  if (off >= 0x68 && off <= 0x6b) return off - 0x68 + 5;
  return undefined;
}

export const createLpc: PciDeviceFactory = (ctx) => {
  const { fn, bus } = ctx;
  if (fn.bus !== 0) throw new BhyveError(ExitStatus.ERROR, 'LPC bridge can only be on bus 0', false);
  if (bus.all().some((f) => f !== fn && f.name === 'lpc')) {
    throw new BhyveError(ExitStatus.ERROR, 'Only one LPC bridge is allowed.', false);
  }
  fn.set16(PCIR_VENDOR, pciregValue(ctx, 'vendor', 0x8086));
  fn.set16(PCIR_DEVICE, pciregValue(ctx, 'device', 0x7000));
  fn.set8(PCIR_REVID, pciregValue(ctx, 'revid', 0));
  fn.set16(PCIR_SUBVEND_0, pciregValue(ctx, 'subvendor', 0));
  fn.set16(PCIR_SUBDEV_0, pciregValue(ctx, 'subdevice', 0));
  fn.set8(PCIR_CLASS, PCIC_BRIDGE);
  fn.set8(PCIR_SUBCLASS, PCIS_BRIDGE_ISA);
  for (const irq of LPC_RESERVED_IRQS) bus.pirq.reserveIrq(irq);
  bus.pirq.useIrq(SCI_IRQ);
  return {
    cfgRead(off, size) {
      // Byte reads of the PIRQ registers come from the router; wider reads are assembled byte by byte.
      let v = 0;
      let any = false;
      for (let i = 0; i < size; i++) {
        const pin = pirqPinAt(off + i);
        const b = pin ? bus.pirq.readRegister(pin) : fn.get8(off + i);
        if (pin) any = true;
        v |= b << (8 * i);
      }
      return any ? v >>> 0 : undefined;
    },
    cfgWrite(off, size, value) {
      let any = false;
      for (let i = 0; i < size; i++) {
        const pin = pirqPinAt(off + i);
        if (!pin) continue;
        bus.pirq.writeRegister(pin, (value >>> (8 * i)) & 0xff);
        any = true;
      }
      return any;
    },
  };
};
