// The VM core: bhyve's libvmmapi calls (vm_openf, vm_set_topology, vm_vcpu_open, vm_setup_memory,
// vm_create_devmem/vm_mmap_memseg, interrupts, registers, vm_suspend) plus the run loop that drives the
// vCPU threads and dispatches exits to TypeScript devices. See docs/vmm.md.
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';

import { nativeCall, VmmError } from './errors.js';
import { ExitChannel, type MmioHandler, type PioHandler } from './exit-channel.js';
import { GuestMemory } from './guest-memory.js';
import { defaultLockDir } from './lock-dir.js';
import { memoryLayout, type MemoryLayout } from './memmap.js';
import { nativeVmm, type NativeVm } from './native-vmm.js';
import { Vcpu } from './vcpu.js';

/** vm_suspend reasons; each is also the bhyve exit status it produces. */
export enum SuspendHow {
  Reset = 0,
  Poweroff = 1,
  Halt = 2,
  TripleFault = 3,
}

/** bhyve's exit statuses: 0 reset, 1 poweroff, 2 halt, 3 triple fault, 4 error. */
export type ExitStatus = 0 | 1 | 2 | 3 | 4;

export interface RunResult {
  status: ExitStatus;
  /** why the VM stopped with status 4 (empty otherwise) */
  error: string;
}

export interface OpenFlags {
  /** VMMAPI_OPEN_CREATE: create the VM when it does not exist */
  create?: boolean;
  /** VMMAPI_OPEN_REINIT: reinitialise it when it exists */
  reinit?: boolean;
  /** directory of the per-name lock files (default: see lock-dir.ts) */
  lockDir?: string;
}

export interface Topology {
  sockets: number;
  cores: number;
  threads: number;
  maxcpus?: number;
}

export interface MemoryFlags {
  /** memory.wired (-S): lock guest RAM in host memory */
  wired?: boolean;
  /** memory.guest_in_core (-C): populate guest RAM up front */
  inCore?: boolean;
}

export interface RunOptions {
  /** host CPUs per vCPU (bhyve vcpu.N.cpuset); empty or missing = not pinned */
  cpusets?: number[][];
  /** how long the main thread spins for the next exit (default 50 us when the host has a CPU to spare
   *  beyond one per vCPU, else 0; docs/vmm.md has the measurements) ... */
  spinMicros?: number;
  /** ... then sleeps on the channel's doorbell (default 500 us) before returning to the event loop */
  waitMicros?: number;
  /** how long a vCPU spins for the handler's answer before sleeping on a futex (default 20 us) */
  vcpuSpinMicros?: number;
  /** longest stretch of back-to-back exits handled before yielding to the event loop */
  sliceMillis?: number;
}

/** The main thread spins for the next exit only when it does not take a vCPU's CPU: spinning saves the
 *  futex wake-up (about 10 us here, bench/exits) but on a CPU shared with a vCPU thread it delays the guest. */
export function defaultSpinMicros(vcpus: number): number {
  return availableParallelism() > vcpus ? 50 : 0;
}

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
export const PROT_ALL = 7;

/** A device memory segment (vm_create_devmem): boot ROM, framebuffer, PCI ROM. */
export interface DevmemSegment {
  segid: number;
  name: string;
  /** the segment's bytes (host memory shared with the guest once mapped) */
  bytes: Uint8Array;
}

export interface NativeSink {
  stats(): { writes: number; reads: number; last: number };
}

/** The APIC ID of vCPU `i` (as native/vmm/kvm/kvm_cpuid.cc assigns it): thread, core, socket fields. */
export function apicIdOf(t: Required<Topology>, i: number): number {
  const bits = (n: number) => (n <= 1 ? 0 : 32 - Math.clz32(n - 1));
  const tb = bits(t.threads), cb = bits(t.cores);
  const thread = i % t.threads;
  const core = Math.floor(i / t.threads) % t.cores;
  const socket = Math.floor(i / (t.threads * t.cores));
  return (socket << (tb + cb)) | (core << tb) | thread;
}

// VMs of this process by name: a KVM VM never outlives its process, so "exists" means "open here".
const openVms = new Map<string, Vm>();

export class Vm {
  readonly vcpus: Vcpu[] = [];
  private mem: GuestMemory | undefined;
  private readonly pioHandlers = new Map<number, PioHandler>();
  private readonly mmioHandlers = new Map<number, MmioHandler>();
  private readonly ranges: { space: 0 | 1; base: number; len: number; id: number }[] = [];
  private nextHandlerId = 1;
  private topo: Required<Topology> = { sockets: 1, cores: 1, threads: 1, maxcpus: 1 };
  private closed = false;
  private running:
    | { resolve: (r: RunResult) => void; channel: ExitChannel; spinNs: number; waitNs: number; sliceMs: number }
    | undefined;

  private constructor(
    readonly name: string,
    /** @internal the addon object; for other native modules that take a VM (UnwrapVm). */
    readonly native: NativeVm,
  ) {}

  /** vm_openf. Throws VmmError ENOENT without `create` for an unknown name, EEXIST when another process runs it. */
  static open(name: string, flags: OpenFlags = { create: true }): Vm {
    const existing = openVms.get(name);
    if (existing) {
      if (flags.reinit) existing.reinit();
      return existing;
    }
    if (!flags.create) throw new VmmError('ENOENT', 2, `VM '${name}' does not exist`);
    const { NativeVm } = nativeVmm();
    const nat = nativeCall(() => new NativeVm(name, flags.lockDir ?? defaultLockDir()));
    const vm = new Vm(name, nat);
    openVms.set(name, vm);
    return vm;
  }

  /** vm_set_topology; before createVcpus. */
  setTopology(t: Topology): void {
    const maxcpus = t.maxcpus ?? t.sockets * t.cores * t.threads;
    nativeCall(() => this.native.setTopology(t.sockets, t.cores, t.threads, maxcpus));
    this.topo = { ...t, maxcpus };
  }

  get topology(): Readonly<Required<Topology>> {
    return this.topo;
  }

  /** vm_vcpu_open for vCPUs 0..n-1 (CPUID set from the topology). */
  createVcpus(n: number): Vcpu[] {
    nativeCall(() => this.native.createVcpus(n));
    for (let i = 0; i < n; i++) this.vcpus.push(new Vcpu(this.native, i));
    return this.vcpus;
  }

  /** vm_reinit: every vCPU back to its reset state, memory kept. */
  reinit(): void {
    nativeCall(() => this.native.reinit());
  }

  /** vm_setup_memory with vm_set_memflags: lowmem from 0, the rest from 4 GiB. */
  setupMemory(size: number, flags: MemoryFlags = {}): MemoryLayout {
    const layout = memoryLayout(size);
    nativeCall(() => this.native.setupMemory(size, !!flags.wired, !!flags.inCore));
    this.mem = new GuestMemory(this.native, layout);
    return layout;
  }

  get memory(): GuestMemory {
    if (!this.mem) throw new VmmError('EINVAL', 22, 'guest memory is not set up');
    return this.mem;
  }

  /** The guest-physical map: RAM, ROM and device segments currently mapped. */
  regions(): ReturnType<NativeVm['regions']> {
    return this.native.regions();
  }

  createDevmem(segid: number, name: string, len: number): DevmemSegment {
    const buf = nativeCall(() => this.native.createDevmem(segid, name, len));
    return { segid, name, bytes: new Uint8Array(buf) };
  }

  /** vm_mmap_memseg: without PROT_WRITE the guest sees it read-only (its writes become MMIO exits). */
  mapMemseg(gpa: number, segid: number, off: number, len: number, prot: number): void {
    nativeCall(() => this.native.mmapMemseg(gpa, segid, off, len, prot));
  }

  unmapMemseg(gpa: number, len: number): void {
    nativeCall(() => this.native.munmapMemseg(gpa, len));
  }

  /** Unknown ports/MMIO abort the VM (bhyve -e) and unknown MSRs inject #GP (x86.strictmsr). */
  setStrict(opts: { io?: boolean; msr?: boolean }): void {
    this.native.setStrict(!!opts.io, opts.msr ?? true);
  }

  /** Whether unknown MSRs reach the strictmsr policy (KVM_CAP_X86_USER_SPACE_MSR); else KVM's own applies. */
  /**
   * Moves PCI configuration mechanism #1 (0xCF8/0xCFC) onto the vCPU threads: absent functions answer all ones
   * in C++ and accesses to present ones reach the ECAM handler at `ecamBase`. `present` holds one bit per
   * bus << 8 | slot << 3 | func (8192 bytes). Before run().
   */
  setPciConf1(ecamBase: number, present: Uint8Array): void {
    nativeCall(() => this.native.setPciConf1(ecamBase, present));
  }

  get userMsrExits(): boolean {
    return this.native.userMsrExits();
  }

  // ---- exits ----

  private register(space: 0 | 1, base: number, len: number): number {
    const id = this.nextHandlerId++;
    nativeCall(() => this.native.registerRange(space, base, len, id));
    this.ranges.push({ space, base, len, id });
    return id;
  }

  private unregister(id: number): void {
    const i = this.ranges.findIndex((r) => r.id === id);
    if (i < 0) return;
    const r = this.ranges[i]!;
    this.ranges.splice(i, 1);
    if (!this.closed) nativeCall(() => this.native.unregisterRange(r.space, r.base));
    this.pioHandlers.delete(id);
    this.mmioHandlers.delete(id);
  }

  /** Handles ports [base, base + len) in TypeScript; returns the function that unregisters it. */
  registerPio(base: number, len: number, handler: PioHandler): () => void {
    const id = this.register(0, base, len);
    this.pioHandlers.set(id, handler);
    return () => this.unregister(id);
  }

  /** Handles guest-physical [base, base + len) in TypeScript; returns the function that unregisters it. */
  registerMmio(base: number, len: number, handler: MmioHandler): () => void {
    const id = this.register(1, base, len);
    this.mmioHandlers.set(id, handler);
    return () => this.unregister(id);
  }

  /** A native device that counts accesses on the vCPU thread (tests, bench/exits). */
  addNativeSink(space: 'pio' | 'mmio', base: number, len: number): NativeSink {
    const idx = nativeCall(() => this.native.addSink(space === 'pio' ? 0 : 1, base, len));
    return { stats: () => this.native.sinkStats(idx) };
  }

  // ---- interrupts ----

  /** vm_lapic_msi / vm_raise_msi */
  lapicMsi(addr: number | bigint, data: number): void {
    nativeCall(() => this.native.lapicMsi(addr, data));
  }
  ioapicAssertIrq(pin: number): void {
    nativeCall(() => this.native.ioapicLine(pin, 1));
  }
  ioapicDeassertIrq(pin: number): void {
    nativeCall(() => this.native.ioapicLine(pin, 0));
  }
  ioapicPulseIrq(pin: number): void {
    this.ioapicAssertIrq(pin);
    this.ioapicDeassertIrq(pin);
  }
  get ioapicPincount(): number {
    return 24;
  }
  /** vm_isa_assert_irq: drive the 8259 input and IOAPIC pin together; -1 skips a side. */
  isaAssertIrq(atpicIrq: number, ioapicIrq: number): void {
    nativeCall(() => this.native.isaLine(atpicIrq, ioapicIrq, 1));
  }
  isaDeassertIrq(atpicIrq: number, ioapicIrq: number): void {
    nativeCall(() => this.native.isaLine(atpicIrq, ioapicIrq, 0));
  }
  isaPulseIrq(atpicIrq: number, ioapicIrq: number): void {
    this.isaAssertIrq(atpicIrq, ioapicIrq);
    this.isaDeassertIrq(atpicIrq, ioapicIrq);
  }
  /** vm_isa_set_irq_trigger: the ELCR bit of KVM's 8259 (IRQ 0, 1, 2, 8, 13 are edge only). */
  isaSetIrqTrigger(irq: number, trigger: 'edge' | 'level'): void {
    nativeCall(() => this.native.isaSetTrigger(irq, trigger === 'level'));
  }
  /** vm_inject_nmi: an NMI to one vCPU, sent through its LAPIC (delivery mode NMI, physical destination). */
  injectNmi(vcpu: number): void {
    if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= this.vcpus.length) throw new RangeError(`no vCPU ${vcpu}`);
    const id = apicIdOf(this.topo, vcpu);
    if (id > 255) throw new VmmError('ENOTSUP', 95, 'NMI to an APIC ID above 255 needs x2APIC MSI addressing');
    this.lapicMsi(0xfee0_0000 + id * 0x1000, 0x400);
  }

  /** An MSI route for irqfd use (GSIs 64..4095). */
  setMsiRoute(gsi: number, addr: number | bigint, data: number): void {
    nativeCall(() => this.native.setMsiRoute(gsi, addr, data));
  }
  /**
   * KVM_IRQFD: writes to the eventfd `fd` raise GSI `gsi` without an exit. With `resampleFd` the line is
   * level-triggered: held until the guest's EOI, then lowered and `resampleFd` signalled.
   */
  irqfd(fd: number, gsi: number, opts: { deassign?: boolean; resampleFd?: number } = {}): void {
    nativeCall(() => this.native.irqfd(fd, gsi, !!opts.deassign, opts.resampleFd));
  }

  /** The GSI that drives IOAPIC pin `pin` alone (irqfd for an INTx line); MSI routes use 64 and up. */
  static ioapicGsi(pin: number): number {
    if (!Number.isInteger(pin) || pin < 0 || pin >= 24) throw new RangeError(`IOAPIC pin ${pin} out of range 0..23`);
    return 40 + pin;
  }
  /** KVM_IOEVENTFD: guest writes to the address signal the eventfd instead of exiting. */
  ioeventfd(fd: number, opts: { addr: number; len: 0 | 1 | 2 | 4 | 8; pio: boolean; data?: number | bigint; deassign?: boolean }): void {
    nativeCall(() =>
      this.native.ioeventfd(fd, opts.addr, opts.len, opts.pio, opts.data !== undefined, opts.data ?? 0, !!opts.deassign),
    );
  }

  // ---- run ----

  /**
   * Starts every vCPU on its own thread and resolves with bhyve's exit status when they all stopped
   * (vm_suspend from a device, triple fault, KVM system event, halt with interrupts off, or an error).
   */
  run(opts: RunOptions = {}): Promise<RunResult> {
    if (this.closed) return Promise.reject(new VmmError('EBADF', 9, 'VM is closed'));
    if (this.running) return Promise.reject(new VmmError('EBUSY', 16, 'VM is already running'));
    return new Promise<RunResult>((resolve, reject) => {
      try {
        const vcpuSpinNs = Math.round((opts.vcpuSpinMicros ?? 20) * 1000);
        const buf = nativeCall(() => this.native.start(opts.cpusets ?? [], () => this.drain(), vcpuSpinNs));
        const channel = new ExitChannel(buf, this.pioHandlers, this.mmioHandlers, this);
        this.running = {
          resolve,
          channel,
          spinNs: Math.round((opts.spinMicros ?? defaultSpinMicros(this.vcpus.length)) * 1000),
          waitNs: Math.round((opts.waitMicros ?? 500) * 1000),
          sliceMs: opts.sliceMillis ?? 5,
        };
      } catch (e) {
        reject(e);
      }
    });
  }

  // Handles exits until none arrives within the spin budget; yields to the event loop after a slice.
  private drain(): void {
    const r = this.running;
    if (!r || this.closed) return;
    const nat = this.native;
    const t0 = performance.now();
    let done = -1;
    for (;;) {
      const i = nat.pump(done, r.spinNs, r.waitNs);
      if (i === -1) return;
      if (i === -2) {
        this.finish();
        return;
      }
      r.channel.dispatch(i);
      if (this.closed) return; // a handler closed the VM; its threads are gone
      done = i;
      // Checked on every exit: a slow exit (a busy host) must not stretch the slice.
      if (performance.now() - t0 > r.sliceMs) {
        nat.release(done);
        setImmediate(() => this.drain());
        return;
      }
    }
  }

  private finish(): void {
    const r = this.running;
    if (!r) return;
    this.running = undefined;
    const { status, error } = nativeCall(() => this.native.join());
    r.resolve({ status: status as ExitStatus, error });
  }

  /** vm_suspend: stops every vCPU; run() then resolves with the matching status. */
  suspend(how: SuspendHow): void {
    nativeCall(() => this.native.suspend(how));
  }

  /** Stops the VM with status 4 and this message (the first message wins). */
  fail(message: string): void {
    if (!this.closed) this.native.fail(message);
  }

  /** vm_destroy: stops vCPUs if needed, frees the VM and releases its name. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    openVms.delete(this.name);
    this.native.close();
    if (this.running) {
      const r = this.running;
      this.running = undefined;
      r.resolve({ status: 4, error: 'VM closed while running' });
    }
  }
}
