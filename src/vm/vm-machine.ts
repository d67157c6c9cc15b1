// The Machine that device models see (src/platform/machine.ts), implemented over a running Vm.
import type { DataPath, DeviceMemory, GuestMemoryAccess, IoSpace, InterruptController, Machine, MachineAccelerators, MmioHandler, PortHandler, SuspendHow } from '../platform/machine.js';
import { PROT_READ, PROT_WRITE, SuspendHow as VmSuspend, type Vm } from './vm.js';

const SUSPEND: Record<SuspendHow, VmSuspend> = {
  reset: VmSuspend.Reset,
  poweroff: VmSuspend.Poweroff,
  halt: VmSuspend.Halt,
  triplefault: VmSuspend.TripleFault,
};

/** Per-range exit counts and handler time, printed at exit when TSBHYVE_EXIT_STATS is set (for profiling). */
class ExitStats {
  private readonly rows = new Map<string, { n: number; ns: bigint }>();
  wrap<A extends unknown[]>(key: string, fn: (...a: A) => number): (...a: A) => number {
    const row = { n: 0, ns: 0n };
    this.rows.set(key, row);
    return (...a: A) => {
      const t0 = process.hrtime.bigint();
      try {
        return fn(...a);
      } finally {
        row.n++;
        row.ns += process.hrtime.bigint() - t0;
      }
    };
  }
  report(): string {
    return [...this.rows.entries()]
      .filter(([, r]) => r.n > 0)
      .sort((a, b) => b[1].n - a[1].n)
      .slice(0, 20)
      .map(([k, r]) => `tsbhyve: exits ${k}: ${r.n} (${(Number(r.ns) / 1e6).toFixed(1)} ms in handlers)`)
      .join('\n');
  }
}

export class VmMachine implements Machine {
  /** Set when TSBHYVE_EXIT_STATS is in the environment. */
  readonly exitStats = process.env.TSBHYVE_EXIT_STATS ? new ExitStats() : undefined;

  readonly io: IoSpace;
  readonly irq: InterruptController;
  readonly memory: GuestMemoryAccess;
  readonly dataPath: DataPath;
  /** 0xCF8/0xCFC on the vCPU threads: absent functions answered natively, present ones forwarded to ECAM. */
  readonly accel: MachineAccelerators;
  private readonly closers: Array<() => void> = [];
  /** the next free GSI for MSI routes (docs/vmm.md: 64 and up) */
  private nextMsiGsi = 64;
  /** the next device memory segment number: bhyve's VM_FRAMEBUFFER is 2 (1 is the boot ROM's) */
  private nextSegid = 2;

  constructor(private readonly vm: Vm) {
    const stats = this.exitStats;
    this.accel = { pciConf1: (ecamBase, present) => vm.setPciConf1(ecamBase, present) };
    const ports = new Map<number, () => void>();
    const mmio = new Map<number, () => void>();
    this.io = {
      registerPort(base: number, len: number, handler: PortHandler): void {
        if (stats) handler = stats.wrap(`port 0x${base.toString(16)}+${len}`, handler);
        if (ports.has(base)) throw new Error(`ports 0x${base.toString(16)}+${len} are already claimed`);
        ports.set(base, vm.registerPio(base, len, (_vcpu, port, size, write, value) => handler(write, port, size, value)));
      },
      unregisterPort(base: number): void {
        ports.get(base)?.();
        ports.delete(base);
      },
      registerMmio(base: number, len: number, handler: MmioHandler): void {
        if (stats) handler = stats.wrap(`mmio 0x${base.toString(16)}+0x${len.toString(16)}`, handler);
        if (mmio.has(base)) throw new Error(`MMIO 0x${base.toString(16)}+${len} is already claimed`);
        mmio.set(
          base,
          vm.registerMmio(base, len, (_vcpu, gpa, size, write, value) => {
            if (size !== 8) return handler(write, gpa, size, Number(value)) >>> 0;
            // 8-byte accesses reach devices as two dword accesses, low half first (as bhyve's pci_emul does).
            const v = BigInt(value);
            if (write) {
              handler(true, gpa, 4, Number(v & 0xffffffffn));
              handler(true, gpa + 4, 4, Number(v >> 32n));
              return 0;
            }
            const lo = BigInt(handler(false, gpa, 4, 0) >>> 0);
            const hi = BigInt(handler(false, gpa + 4, 4, 0) >>> 0);
            return (hi << 32n) | lo;
          }),
        );
      },
      unregisterMmio(base: number): void {
        mmio.get(base)?.();
        mmio.delete(base);
      },
    };
    this.irq = {
      msi: (addr, data) => vm.lapicMsi(addr, data),
      ioapicAssert: (pin) => vm.ioapicAssertIrq(pin),
      ioapicDeassert: (pin) => vm.ioapicDeassertIrq(pin),
      ioapicPulse: (pin) => vm.ioapicPulseIrq(pin),
      isaAssert: (irq, pin) => vm.isaAssertIrq(irq, pin),
      isaDeassert: (irq, pin) => vm.isaDeassertIrq(irq, pin),
      isaPulse: (irq, pin) => vm.isaPulseIrq(irq, pin),
      setIsaTrigger: (irq, level) => vm.isaSetIrqTrigger(irq, level ? 'level' : 'edge'),
      ioapicPins: vm.ioapicPincount,
    };
    this.memory = {
      read: (gpa, len) => vm.memory.read(gpa, len),
      write: (gpa, data) => vm.memory.write(gpa, data),
    };
    this.dataPath = {
      memoryHandle: vm.native,
      kvm: {
        ioeventfd: (fd, opts) => vm.ioeventfd(fd, opts),
        irqfd: (fd, gsi, opts) => vm.irqfd(fd, gsi, opts ?? {}),
        setMsiRoute: (gsi, addr, data) => vm.setMsiRoute(gsi, addr, data),
        allocMsiGsi: () => this.nextMsiGsi++,
      },
      onClose: (fn) => {
        this.closers.push(fn);
      },
    };
  }

  deviceMemory(name: string, size: number): DeviceMemory {
    const seg = this.vm.createDevmem(this.nextSegid++, name, size);
    let at: number | undefined;
    return {
      bytes: seg.bytes,
      map: (gpa) => {
        if (at === gpa) return;
        if (at !== undefined) this.vm.unmapMemseg(at, size);
        at = undefined;
        this.vm.mapMemseg(gpa, seg.segid, 0, size, PROT_READ | PROT_WRITE);
        at = gpa;
      },
      unmap: () => {
        if (at !== undefined) this.vm.unmapMemseg(at, size);
        at = undefined;
      },
    };
  }

  /** Stops the devices' native workers; call before the Vm closes. */
  close(): void {
    const fns = this.closers.splice(0);
    for (const fn of fns.reverse()) fn();
  }

  suspend(how: SuspendHow): void {
    this.vm.suspend(SUSPEND[how]);
  }
}
