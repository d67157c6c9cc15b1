// An ISA interrupt line shared by several devices. COM1/COM3 share IRQ 4 and COM2/COM4 share IRQ 3, and the
// VMM's assert/deassert calls set one level per line, so one device dropping its request must not drop another's.
// The line is the OR of its sources: it goes high when the first source asserts and low when the last lets go.
import type { InterruptController } from '../machine.js';

const lines = new WeakMap<InterruptController, Map<number, IsaLine>>();

export class IsaLine {
  private readonly sources = new Set<object>();

  private constructor(
    private readonly irq: InterruptController,
    /** The 8259 input, which on this platform is also the IOAPIC pin (ISA IRQs are identity-mapped but IRQ0). */
    readonly number: number,
  ) {}

  /** The line `number` of this interrupt controller, shared by every device that asks for it. */
  static of(irq: InterruptController, number: number): IsaLine {
    if (!Number.isInteger(number) || number < 0 || number > 15) throw new RangeError(`bad ISA IRQ ${number}`);
    let m = lines.get(irq);
    if (!m) {
      m = new Map();
      lines.set(irq, m);
    }
    let line = m.get(number);
    if (!line) {
      line = new IsaLine(irq, number);
      m.set(number, line);
    }
    return line;
  }

  /** Sets `source`'s request on the line; only a change of the OR reaches the interrupt controller. */
  set(source: object, level: boolean): void {
    const before = this.sources.size > 0;
    if (level) this.sources.add(source);
    else this.sources.delete(source);
    const after = this.sources.size > 0;
    if (before === after) return;
    const pin = this.number === 0 ? 2 : this.number;
    if (after) this.irq.isaAssert(this.number, pin);
    else this.irq.isaDeassert(this.number, pin);
  }

  get high(): boolean {
    return this.sources.size > 0;
  }
}
