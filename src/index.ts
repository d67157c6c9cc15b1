// tsbhyve as a library: everything the tsbhyve command does, as typed functions.
export { ConfigTree, ConfigNode, parseConfigBool } from './config/tree.js';
export { defaultConfigTree } from './config/defaults.js';
export { buildConfigTree, type VmSpec, type PciDeviceSpec, type BuiltConfig } from './config/spec.js';
export { BhyveError, ConfigError, UsageError, ExitStatus } from './config/errors.js';
export { parseMemsize, expandNumber } from './config/memsize.js';
export { resolveTopology, resolveVcpuMaps, parseCpuset, type Topology } from './config/topology.js';
export { parseCommandLine, type ParsedCommandLine } from './cli/parse.js';
export { runCli } from './cli/main.js';
export { pciEmulationNames } from '../devices/registry.js';
export { lpcDeviceNames } from '../devices/lpc/config.js';
export { memoryLayout, ramRanges, type MemoryLayout } from './vm/memmap.js';
export { loadAddon } from './native.js';
export { kvmHostStatus, kvmHostMeets, type KvmHostStatus, type KvmNeed } from './vm/kvm-host.js';
