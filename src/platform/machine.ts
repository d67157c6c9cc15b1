// What a device model sees of the machine: the port and MMIO address spaces it can claim, the interrupt
// controllers it can signal, and the power switch. The VM (src/vm) implements it over the VMM shim; device tests
// implement it with a guest-driver harness (test/harness/machine.ts) that plays the guest's side.

/** Port accesses are 1, 2 or 4 bytes. */
export type PortSize = 1 | 2 | 4;
/** MMIO accesses are 1, 2, 4 or 8 bytes; 8-byte ones reach handlers as two 4-byte accesses (low half first). */
export type MmioSize = 1 | 2 | 4;

/**
 * Handles the guest's IN/OUT on a claimed port range. For reads it returns the value (only the low `size`
 * bytes are used); for writes the return value is ignored. Handlers run on the JS thread, one at a time.
 */
export type PortHandler = (write: boolean, port: number, size: PortSize, value: number) => number;

/** Handles the guest's loads and stores in a claimed MMIO range; `addr` is the guest-physical address. */
export type MmioHandler = (write: boolean, addr: number, size: MmioSize, value: number) => number;

export interface IoSpace {
  /** Claims ports [base, base+len). Overlapping an existing claim is a programming error and throws. */
  registerPort(base: number, len: number, handler: PortHandler): void;
  unregisterPort(base: number): void;
  /** Claims guest-physical [base, base+len) for MMIO. */
  registerMmio(base: number, len: number, handler: MmioHandler): void;
  unregisterMmio(base: number): void;
}

/** The interrupt calls bhyve's devices make (libvmmapi's vm_lapic_msi, vm_ioapic_*, vm_isa_*). */
export interface InterruptController {
  /** Delivers an MSI: `addr` is the message address (0xFEExxxxx), `data` the message data. */
  msi(addr: bigint, data: number): void;
  ioapicAssert(pin: number): void;
  ioapicDeassert(pin: number): void;
  ioapicPulse(pin: number): void;
  /** Drives the 8259 line `atpicIrq` and the IOAPIC pin `ioapicPin` together; -1 skips one side. */
  isaAssert(atpicIrq: number, ioapicPin: number): void;
  isaDeassert(atpicIrq: number, ioapicPin: number): void;
  isaPulse(atpicIrq: number, ioapicPin: number): void;
  /** Edge or level trigger for an ISA IRQ (the 8259 ELCR). */
  setIsaTrigger(irq: number, level: boolean): void;
  /** Number of IOAPIC pins (KVM's in-kernel IOAPIC has 24). */
  readonly ioapicPins: number;
}

/** vm_suspend's reasons; each ends the run with bhyve's exit status. */
export type SuspendHow = 'reset' | 'poweroff' | 'halt' | 'triplefault';

export const SUSPEND_STATUS: Record<SuspendHow, number> = { reset: 0, poweroff: 1, halt: 2, triplefault: 3 };

/** Guest memory through the one bounds-checked accessor; out-of-range accesses throw. */
export interface GuestMemoryAccess {
  read(gpa: number, len: number): Uint8Array;
  write(gpa: number, data: Uint8Array): void;
}

/**
 * What native data-path workers (native/virtio, ...) need from the machine. A VM provides all of it; the no-VM
 * device harness provides only `memoryHandle` (workers then take notifications and report interrupts through
 * eventfds and callbacks the device model handles).
 */
export interface DataPath {
  /** The native object owning guest memory that workers unwrap (a NativeVm, or a test GuestRam). */
  readonly memoryHandle: object;
  /** KVM notification and interrupt plumbing (absent without a VM). */
  readonly kvm?: {
    /** KVM_IOEVENTFD on a port (`pio`) or MMIO address; `data` matches the written value. */
    ioeventfd(fd: number, opts: { addr: number; len: 0 | 1 | 2 | 4 | 8; pio: boolean; data?: number; deassign?: boolean }): void;
    /** KVM_IRQFD: signalling `fd` raises `gsi` without an exit. */
    irqfd(fd: number, gsi: number, opts?: { deassign?: boolean }): void;
    /** Points GSI `gsi` (from allocMsiGsi) at an MSI address/data pair. */
    setMsiRoute(gsi: number, addr: bigint, data: number): void;
    /** A fresh GSI for an MSI route. */
    allocMsiGsi(): number;
  };
  /** Runs `fn` before the VM's memory goes away (devices stop their workers there). */
  onClose(fn: () => void): void;
}

/**
 * Optional fast paths a VMM backend may offer; a device falls back to its TypeScript handlers without them.
 */
export interface MachineAccelerators {
  /**
   * Serve PCI configuration mechanism #1 natively, forwarding accesses to present functions (one bit per
   * bus << 8 | slot << 3 | func in `present`) to the ECAM MMIO range at `ecamBase`.
   */
  pciConf1?(ecamBase: number, present: Uint8Array): void;
}

/**
 * Host memory a device shares with the guest at a BAR (vm_create_devmem + vm_mmap_memseg): guest accesses to it
 * do not exit. The device maps it where its BAR decodes and unmaps it when the BAR moves or stops decoding.
 */
export interface DeviceMemory {
  readonly bytes: Uint8Array;
  map(gpa: number): void;
  unmap(): void;
}

export interface Machine {
  readonly accel?: MachineAccelerators;
  /**
   * A device memory segment of `size` bytes (a multiple of 4 KiB), or absent on machines without one (the
   * guest-driver harness): the device then serves the BAR through its MMIO handlers from its own buffer.
   */
  deviceMemory?(name: string, size: number): DeviceMemory;
  readonly io: IoSpace;
  readonly irq: InterruptController;
  readonly memory: GuestMemoryAccess;
  /** Present when native data paths can run against this machine's guest memory. */
  readonly dataPath?: DataPath;
  /** Stops every vCPU; the run ends with SUSPEND_STATUS[how]. */
  suspend(how: SuspendHow): void;
}
