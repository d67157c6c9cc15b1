// The eight PIRQ links (LNKA-LNKH) of an ICH-style LPC bridge: each PCI INTx pin is wired to one link, and the
// link to an ISA IRQ that the guest may reprogram through the LPC bridge's PIRQ registers (0x60-0x63, 0x68-0x6B).
// An asserted pin drives the 8259 line of its link's IRQ together with its IOAPIC pin; a disabled link leaves
// only the IOAPIC pin.
import type { InterruptController } from '../machine.js';
import type { PciFunction } from './function.js';

export const PIRQ_COUNT = 8;
/** Register bits: bit 7 disables routing, bits 3:0 are the ISA IRQ. */
export const PIRQ_DIS = 0x80;
export const PIRQ_IRQ = 0x0f;
/** ISA IRQs a link may use: 3-7, 9-12, 14, 15. */
export const PIRQ_PERMITTED_MASK = 0xdef8;

const permitted = (irq: number): boolean => ((PIRQ_PERMITTED_MASK >> irq) & 1) === 1;

interface Link {
  reg: number;
  useCount: number;
  activeCount: number;
}

export class PirqRouter {
  private readonly links: Link[] = Array.from({ length: PIRQ_COUNT }, () => ({ reg: PIRQ_DIS, useCount: 0, activeCount: 0 }));
  /** per ISA IRQ: how many users it has, or undefined if it is not available to PCI */
  private readonly irqUse: Array<number | undefined> = Array.from({ length: 16 }, (_, i) => (permitted(i) ? 0 : undefined));

  constructor(
    private readonly irq: InterruptController,
    private readonly fixedRouting: boolean,
  ) {}

  /** An ISA IRQ owned by a legacy device (the COM ports): never given to a PIRQ link. */
  reserveIrq(irq: number): void {
    this.irqUse[irq] = undefined;
  }

  /** An ISA IRQ shared with a legacy user (the SCI): counted so links prefer others. */
  useIrq(irq: number): void {
    const n = this.irqUse[irq];
    if (n !== undefined) this.irqUse[irq] = n + 1;
  }

  /** Picks a link (1..8) for a slot's INTx pin and gives it an ISA IRQ if it has none. */
  allocPin(slot: number, intpin: number): number {
    let best = 0;
    if (this.fixedRouting) {
      best = (4 + slot + intpin) % PIRQ_COUNT;
    } else {
      for (let p = 1; p < PIRQ_COUNT; p++) if (this.links[p]!.useCount < this.links[best]!.useCount) best = p;
    }
    const link = this.links[best]!;
    link.useCount++;
    if (link.reg === PIRQ_DIS) {
      let bestIrq = -1;
      for (let i = 0; i < 16; i++) {
        const n = this.irqUse[i];
        if (n === undefined) continue;
        if (bestIrq < 0 || n < this.irqUse[bestIrq]!) bestIrq = i;
      }
      if (bestIrq < 0) throw new Error('no ISA IRQ left for PCI interrupt links');
      this.irqUse[bestIrq]!++;
      link.reg = bestIrq;
      this.irq.setIsaTrigger(bestIrq, true);
    }
    return best + 1;
  }

  /** The ISA IRQ a link routes to (what INTLINE reports), or 255 when disabled. */
  irqOf(pin: number): number {
    const reg = this.links[pin - 1]!.reg;
    return reg & PIRQ_DIS ? 255 : reg & PIRQ_IRQ;
  }

  private valid(reg: number): boolean {
    return (reg & PIRQ_DIS) === 0 && permitted(reg & PIRQ_IRQ);
  }

  /** The LPC bridge's PIRQ register for link `pin` (1..8). */
  readRegister(pin: number): number {
    return this.links[pin - 1]!.reg;
  }

  /** A guest write to a PIRQ register moves an active line to its new IRQ. */
  writeRegister(pin: number, value: number): void {
    const link = this.links[pin - 1]!;
    const reg = value & (PIRQ_DIS | PIRQ_IRQ);
    if (reg === link.reg) return;
    if (link.activeCount > 0 && this.valid(link.reg)) this.irq.isaDeassert(link.reg & PIRQ_IRQ, -1);
    link.reg = reg;
    if (link.activeCount > 0 && this.valid(link.reg)) this.irq.isaAssert(link.reg & PIRQ_IRQ, -1);
  }

  /** Level assert, reference-counted per link: the first user drives the line. */
  assert(fn: PciFunction): void {
    const link = this.links[fn.pirqPin - 1];
    if (!link) {
      this.irq.ioapicAssert(fn.ioapicPin);
      return;
    }
    link.activeCount++;
    if (link.activeCount === 1 && this.valid(link.reg)) this.irq.isaAssert(link.reg & PIRQ_IRQ, fn.ioapicPin);
    else this.irq.ioapicAssert(fn.ioapicPin);
  }

  deassert(fn: PciFunction): void {
    const link = this.links[fn.pirqPin - 1];
    if (!link) {
      this.irq.ioapicDeassert(fn.ioapicPin);
      return;
    }
    link.activeCount = Math.max(0, link.activeCount - 1);
    if (link.activeCount === 0 && this.valid(link.reg)) this.irq.isaDeassert(link.reg & PIRQ_IRQ, fn.ioapicPin);
    else this.irq.ioapicDeassert(fn.ioapicPin);
  }

  /** The links and their IRQs, for the DSDT's LNKx objects and the MP table. */
  snapshot(): Array<{ pin: number; irq: number | undefined }> {
    return this.links.map((l, i) => ({ pin: i + 1, irq: this.valid(l.reg) ? l.reg & PIRQ_IRQ : undefined }));
  }
}
