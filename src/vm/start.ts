// Starting a VM from a validated configuration tree. The VMM shim and platform land in their own issues;
// until they are wired in, a configuration that would boot is refused with a clear message and status 4.
import { BhyveError, ExitStatus } from '../config/errors.js';
import type { FwcfgUserFile } from '../config/options.js';
import type { Topology } from '../config/topology.js';
import type { ConfigTree, Warn } from '../config/tree.js';

export interface StartRequest {
  tree: ConfigTree;
  topology: Topology;
  vcpuMaps: Array<number[] | undefined>;
  memsize: bigint;
  fwcfgFiles: FwcfgUserFile[];
  warn: Warn;
}

export async function startVm(req: StartRequest): Promise<number> {
  void req;
  throw new BhyveError(ExitStatus.ERROR, 'this build cannot run guests yet: the VMM and platform are not wired in');
}
