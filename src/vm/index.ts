// Public surface of the VM core.
export { Vm, SuspendHow, PROT_READ, PROT_WRITE, PROT_EXEC, PROT_ALL, apicIdOf } from './vm.js';
export type { ExitStatus, RunResult, OpenFlags, Topology, MemoryFlags, RunOptions, DevmemSegment, NativeSink } from './vm.js';
export { Vcpu, VcpuCap } from './vcpu.js';
export type { VcpuStats } from './vcpu.js';
export { GuestMemory, MAX_VIEW } from './guest-memory.js';
export type { PioHandler, MmioHandler } from './exit-channel.js';
export { VmmError, GuestMemoryError } from './errors.js';
export { EventFd } from './eventfd.js';
export type { GuestMemoryFault } from './errors.js';
export type { Regs, Sregs, Segment, DescriptorTable } from './registers.js';
export * from './memmap.js';
export { kvmHostStatus, kvmHostMeets } from './kvm-host.js';
export type { KvmHostStatus, KvmHostLevel, KvmUnusableCause, KvmNeed, KvmHostProbe } from './kvm-host.js';
