// A Machine for device tests: it plays the guest's side. Tests claim nothing themselves; they build a device
// against this machine and then do what a guest driver does (IN/OUT, loads and stores) through the handlers the
// device registered. Interrupt calls and suspends are recorded so a test can assert on them. Unclaimed ports read
// all-ones and drop writes, as bhyve does without -e.
import type {
  GuestMemoryAccess,
  InterruptController,
  IoSpace,
  Machine,
  MmioHandler,
  MmioSize,
  PortHandler,
  PortSize,
  SuspendHow,
} from '../../src/platform/machine.js';

interface Claim<H> {
  base: number;
  len: number;
  handler: H;
}

const ONES: Record<number, number> = { 1: 0xff, 2: 0xffff, 4: 0xffff_ffff };

function findClaim<H>(claims: Claim<H>[], addr: number): Claim<H> | undefined {
  return claims.find((c) => addr >= c.base && addr < c.base + c.len);
}

function addClaim<H>(claims: Claim<H>[], kind: string, base: number, len: number, handler: H): void {
  if (!Number.isSafeInteger(base) || !Number.isSafeInteger(len) || base < 0 || len <= 0) {
    throw new RangeError(`bad ${kind} range ${base}+${len}`);
  }
  const clash = claims.find((c) => base < c.base + c.len && c.base < base + len);
  if (clash) {
    throw new Error(`${kind} range 0x${base.toString(16)}+${len} overlaps 0x${clash.base.toString(16)}+${clash.len}`);
  }
  claims.push({ base, len, handler });
}

export class TestIoSpace implements IoSpace {
  readonly ports: Claim<PortHandler>[] = [];
  readonly mmio: Claim<MmioHandler>[] = [];

  registerPort(base: number, len: number, handler: PortHandler): void {
    if (base + len > 0x10000) throw new RangeError(`port range 0x${base.toString(16)}+${len} past 0xffff`);
    addClaim(this.ports, 'port', base, len, handler);
  }

  unregisterPort(base: number): void {
    const i = this.ports.findIndex((c) => c.base === base);
    if (i >= 0) this.ports.splice(i, 1);
  }

  registerMmio(base: number, len: number, handler: MmioHandler): void {
    addClaim(this.mmio, 'MMIO', base, len, handler);
  }

  unregisterMmio(base: number): void {
    const i = this.mmio.findIndex((c) => c.base === base);
    if (i >= 0) this.mmio.splice(i, 1);
  }

  /** True when some device claimed `port`. */
  claimsPort(port: number): boolean {
    return findClaim(this.ports, port) !== undefined;
  }

  /** The claimed port ranges as [base, len] pairs, sorted. */
  portRanges(): Array<[number, number]> {
    return this.ports.map((c): [number, number] => [c.base, c.len]).sort((a, b) => a[0] - b[0]);
  }
}

export type IrqEvent =
  | { kind: 'msi'; addr: bigint; data: number }
  | { kind: 'ioapicAssert' | 'ioapicDeassert' | 'ioapicPulse'; pin: number }
  | { kind: 'isaAssert' | 'isaDeassert' | 'isaPulse'; irq: number; pin: number }
  | { kind: 'setIsaTrigger'; irq: number; level: boolean };

/** Records every interrupt call and keeps the resulting line levels and edge counts per IOAPIC pin. */
export class RecordingInterrupts implements InterruptController {
  readonly events: IrqEvent[] = [];
  private readonly pinLevel = new Map<number, boolean>();
  private readonly pinEdges = new Map<number, number>();
  private readonly isaLevel = new Map<number, boolean>();
  private readonly isaEdges = new Map<number, number>();
  readonly isaTrigger = new Map<number, boolean>();
  private listeners: Array<() => void> = [];

  /** KVM's in-kernel IOAPIC has 24 pins; FreeBSD's vioapic has 32. */
  constructor(readonly ioapicPins = 24) {}

  private edge(map: Map<number, number>, n: number): void {
    map.set(n, (map.get(n) ?? 0) + 1);
  }

  private drive(levels: Map<number, boolean>, edges: Map<number, number>, n: number, level: boolean): void {
    if (n < 0) return;
    if (level && !levels.get(n)) this.edge(edges, n);
    levels.set(n, level);
  }

  private record(e: IrqEvent): void {
    this.events.push(e);
    const l = this.listeners;
    this.listeners = [];
    for (const f of l) f();
  }

  msi(addr: bigint, data: number): void {
    this.record({ kind: 'msi', addr, data });
  }
  ioapicAssert(pin: number): void {
    this.drive(this.pinLevel, this.pinEdges, pin, true);
    this.record({ kind: 'ioapicAssert', pin });
  }
  ioapicDeassert(pin: number): void {
    this.drive(this.pinLevel, this.pinEdges, pin, false);
    this.record({ kind: 'ioapicDeassert', pin });
  }
  ioapicPulse(pin: number): void {
    this.edge(this.pinEdges, pin);
    this.pinLevel.set(pin, false);
    this.record({ kind: 'ioapicPulse', pin });
  }
  isaAssert(irq: number, pin: number): void {
    this.drive(this.isaLevel, this.isaEdges, irq, true);
    this.drive(this.pinLevel, this.pinEdges, pin, true);
    this.record({ kind: 'isaAssert', irq, pin });
  }
  isaDeassert(irq: number, pin: number): void {
    this.drive(this.isaLevel, this.isaEdges, irq, false);
    this.drive(this.pinLevel, this.pinEdges, pin, false);
    this.record({ kind: 'isaDeassert', irq, pin });
  }
  isaPulse(irq: number, pin: number): void {
    if (irq >= 0) {
      this.edge(this.isaEdges, irq);
      this.isaLevel.set(irq, false);
    }
    if (pin >= 0) {
      this.edge(this.pinEdges, pin);
      this.pinLevel.set(pin, false);
    }
    this.record({ kind: 'isaPulse', irq, pin });
  }
  setIsaTrigger(irq: number, level: boolean): void {
    this.isaTrigger.set(irq, level);
    this.record({ kind: 'setIsaTrigger', irq, level });
  }

  /** Current level of an IOAPIC pin (pulses leave it low). */
  pinHigh(pin: number): boolean {
    return this.pinLevel.get(pin) ?? false;
  }
  /** Rising edges (asserts from low, and pulses) seen on an IOAPIC pin. */
  pinEdgeCount(pin: number): number {
    return this.pinEdges.get(pin) ?? 0;
  }
  isaHigh(irq: number): boolean {
    return this.isaLevel.get(irq) ?? false;
  }
  isaEdgeCount(irq: number): number {
    return this.isaEdges.get(irq) ?? 0;
  }

  /** Resolves once `pred` holds, checked after every interrupt call; rejects after `timeoutMs`. */
  waitFor(pred: () => boolean, timeoutMs: number, what = 'interrupt'): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (pred()) {
          clearTimeout(timer);
          resolve();
        } else {
          this.listeners.push(check);
        }
      };
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((f) => f !== check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      check();
    });
  }
}

/** Flat guest RAM from 0 with bounds checks, as the real accessor behaves. */
export class ArrayGuestMemory implements GuestMemoryAccess {
  readonly bytes: Uint8Array;
  constructor(size = 1 << 20) {
    this.bytes = new Uint8Array(size);
  }
  private check(gpa: number, len: number): void {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0 || gpa + len > this.bytes.length) {
      throw new RangeError(`guest access 0x${gpa.toString(16)}+${len} outside RAM`);
    }
  }
  read(gpa: number, len: number): Uint8Array {
    this.check(gpa, len);
    return this.bytes.slice(gpa, gpa + len);
  }
  write(gpa: number, data: Uint8Array): void {
    this.check(gpa, data.length);
    this.bytes.set(data, gpa);
  }
}

export interface TestMachineOptions {
  /** Bytes of guest RAM from address 0 (default 1 MiB). */
  memorySize?: number;
  ioapicPins?: number;
}

export class TestMachine implements Machine {
  readonly io = new TestIoSpace();
  readonly irq: RecordingInterrupts;
  readonly memory: ArrayGuestMemory;
  /** Every machine.suspend() call, in order. */
  readonly suspends: SuspendHow[] = [];

  constructor(opts: TestMachineOptions = {}) {
    this.memory = new ArrayGuestMemory(opts.memorySize);
    this.irq = new RecordingInterrupts(opts.ioapicPins);
  }

  suspend(how: SuspendHow): void {
    this.suspends.push(how);
  }

  // --- the guest's side -----------------------------------------------------------------------------------

  /** IN of `size` bytes from `port`. */
  in(port: number, size: PortSize = 1): number {
    const c = findClaim(this.io.ports, port);
    if (!c) return ONES[size]!;
    return ((c.handler(false, port, size, 0) >>> 0) & ONES[size]!) >>> 0;
  }

  /** OUT of the low `size` bytes of `value` to `port`. */
  out(port: number, value: number, size: PortSize = 1): void {
    const c = findClaim(this.io.ports, port);
    if (c) c.handler(true, port, size, ((value >>> 0) & ONES[size]!) >>> 0);
  }

  inb(port: number): number {
    return this.in(port, 1);
  }
  outb(port: number, value: number): void {
    this.out(port, value, 1);
  }
  inw(port: number): number {
    return this.in(port, 2);
  }
  outw(port: number, value: number): void {
    this.out(port, value, 2);
  }
  inl(port: number): number {
    return this.in(port, 4);
  }
  outl(port: number, value: number): void {
    this.out(port, value, 4);
  }

  /** A load of `size` bytes; unclaimed addresses read all-ones. */
  read(addr: number, size: MmioSize = 4): number {
    const c = findClaim(this.io.mmio, addr);
    if (!c) return ONES[size]!;
    return ((c.handler(false, addr, size, 0) >>> 0) & ONES[size]!) >>> 0;
  }

  write(addr: number, value: number, size: MmioSize = 4): void {
    const c = findClaim(this.io.mmio, addr);
    if (c) c.handler(true, addr, size, ((value >>> 0) & ONES[size]!) >>> 0);
  }

  /** An 8-byte load, delivered as the VM does: two 4-byte accesses, low half first. */
  read64(addr: number): bigint {
    const lo = BigInt(this.read(addr, 4));
    const hi = BigInt(this.read(addr + 4, 4));
    return (hi << 32n) | lo;
  }

  write64(addr: number, value: bigint): void {
    this.write(addr, Number(value & 0xffff_ffffn), 4);
    this.write(addr + 4, Number((value >> 32n) & 0xffff_ffffn), 4);
  }
}
