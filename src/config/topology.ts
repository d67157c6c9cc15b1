// vCPU topology and host-CPU pinning, resolved from the tree the way bhyverun does it after option parsing
// (calc_topology and build_vcpumaps): errors here exit 4.
import { BhyveError, ExitStatus } from './errors.js';
import { cParseInteger, cParseWholeInteger } from './cnum.js';
import type { ConfigTree } from './tree.js';

export interface Topology {
  cpus: number;
  sockets: number;
  cores: number;
  threads: number;
}

/** The largest host CPU index a cpuset may name (FreeBSD's CPU_SETSIZE is 1024 on amd64; Linux's too). */
export const CPU_SETSIZE = 1024;
const UINT16_MAX = 0xffff;

function intValue(key: string, value: string, min: number, max: number): number {
  const v = cParseWholeInteger(value, 0);
  if (v === undefined || v < BigInt(min) || v > BigInt(max)) {
    throw new BhyveError(ExitStatus.ERROR, `Invalid value for ${key}: '${value}'`);
  }
  return Number(v);
}

/** calc_topology: defaults (cores = threads = 1, sockets = cpus), the 16-bit ranges and the product check. */
export function resolveTopology(tree: ConfigTree): Topology {
  const cpusValue = tree.get('cpus');
  let cpus = cpusValue !== undefined ? intValue('cpus', cpusValue, 1, UINT16_MAX) : 1;
  const coresValue = tree.get('cores');
  const cores = coresValue !== undefined ? intValue('cores', coresValue, 1, UINT16_MAX) : 1;
  const threadsValue = tree.get('threads');
  const threads = threadsValue !== undefined ? intValue('threads', threadsValue, 1, UINT16_MAX) : 1;
  const socketsValue = tree.get('sockets');
  const sockets = socketsValue !== undefined ? intValue('sockets', socketsValue, 1, UINT16_MAX) : cpus;

  const product = sockets * cores * threads;
  if (product > UINT16_MAX) {
    throw new BhyveError(ExitStatus.ERROR, `Computed number of vCPUs too high: ${product}`);
  }
  if (cpusValue !== undefined) {
    if (cpus !== product) {
      throw new BhyveError(
        ExitStatus.ERROR,
        `Topology (${sockets} sockets, ${cores} cores, ${threads} threads) does not match ${cpus} vCPUs`,
      );
    }
  } else {
    cpus = product;
  }
  return { cpus, sockets, cores, threads };
}

/** The check bhyverun makes once the VM is open: no more vCPUs than the hypervisor allows. */
export function checkVcpuLimit(cpus: number, maxcpus: number): void {
  if (cpus > maxcpus) {
    throw new BhyveError(ExitStatus.ERROR, `${cpus} vCPUs requested but only ${maxcpus} available`, false);
  }
}

/**
 * parse_cpuset: a list like "0-3,5" into sorted host CPU numbers. `who` names the owner in errors
 * (the vCPU number for vcpu.N.cpuset, the domain number for domains.N.cpus).
 */
export function parseCpuset(who: number, list: string): number[] {
  const set = new Set<number>();
  let start = -1;
  let pos = 0;
  const invalid = (): BhyveError => new BhyveError(ExitStatus.ERROR, `invalid cpuset for vcpu ${who}: '${list}'`);
  for (;;) {
    // strtoul(token, &cp, 0): no digits is an error; the value is then range-checked as an int.
    const r = cParseInteger(list, pos, 0);
    if (!r.ok) throw invalid();
    const pcpu = Number(BigInt.asIntN(32, r.value));
    if (pcpu < 0 || pcpu >= CPU_SETSIZE) {
      throw new BhyveError(ExitStatus.ERROR, `hostcpu '${pcpu}' outside valid range from 0 to ${CPU_SETSIZE - 1}`);
    }
    const sep = list[r.end];
    if (sep === ',' || sep === undefined) {
      if (start >= 0) {
        if (start > pcpu) throw new BhyveError(ExitStatus.ERROR, `Invalid hostcpu range ${start}-${pcpu}`);
        for (let c = start; c < pcpu; c++) set.add(c);
        start = -1;
      }
      set.add(pcpu);
    } else if (sep === '-') {
      if (start >= 0) throw invalid();
      start = pcpu;
    } else {
      throw invalid();
    }
    if (sep === undefined) break;
    pos = r.end + 1;
  }
  return [...set].sort((a, b) => a - b);
}

/** build_vcpumaps: for each vCPU, the host CPUs it is pinned to, or undefined if it floats. */
export function resolveVcpuMaps(tree: ConfigTree, cpus: number): Array<number[] | undefined> {
  const maps: Array<number[] | undefined> = [];
  for (let vcpu = 0; vcpu < cpus; vcpu++) {
    const v = tree.get(`vcpu.${vcpu}.cpuset`);
    maps.push(v === undefined ? undefined : parseCpuset(vcpu, v));
  }
  return maps;
}
