// The library's typed way to describe a VM. buildConfigTree() applies it through the same parsers the
// command line uses, in a fixed order (the order of the fields below), so `new Vm(spec)` and the equivalent
// `tsbhyve` command line produce the same tree.
import { parseLpcDevice } from '../../devices/lpc/config.js';
import { defaultConfigTree } from './defaults.js';
import { BhyveError, ExitStatus } from './errors.js';
import {
  parseConfigOption,
  parseFwcfgItem,
  parseGdbOption,
  parsePciSlot,
  parsePinOption,
  parseTopologyOption,
  type FwcfgUserFile,
} from './options.js';
import type { ConfigTree, Warn } from './tree.js';
import { applyCompatibilityAliases } from '../cli/parse.js';

/** One PCI function: `slot` as `-s` takes it ("3", "3:1", "0:3:1"), `device` an emulation name. */
export interface PciDeviceSpec {
  slot: string | number;
  device: string;
  /** the legacy option string (`/disk.img,ro`), or keys to set under the slot's node */
  options?: string | Record<string, string | number | boolean>;
}

export interface VmSpec {
  name: string;
  /** -c: a vCPU count or a topology */
  cpus?: number | { cpus?: number; sockets?: number; cores?: number; threads?: number };
  /** -m: bytes as a number, or bhyve's size syntax ("1G") */
  memory?: number | string;
  /** -p: host CPUs per vCPU */
  pin?: Record<number, number[]>;
  /** -s */
  pci?: PciDeviceSpec[];
  /** -l com1..com4 backends: "stdio", a tty path or "tcp=IP:PORT" */
  com?: Partial<Record<'com1' | 'com2' | 'com3' | 'com4', string>>;
  /** -l bootrom,ROM[,VARS] */
  bootrom?: { rom: string; vars?: string };
  /** in-process direct kernel boot: boot.kernel, boot.initrd, boot.cmdline */
  boot?: { kernel: string; initrd?: string; cmdline?: string };
  /** -H */
  vmexitOnHlt?: boolean;
  /** -P */
  vmexitOnPause?: boolean;
  /** -x (true) / -a (false) */
  x2apic?: boolean;
  /** -S */
  wiredMemory?: boolean;
  /** -C */
  guestMemoryInCore?: boolean;
  /** -D */
  destroyOnPoweroff?: boolean;
  /** -e */
  strictIo?: boolean;
  /** -w sets this to false */
  strictMsr?: boolean;
  /** -u sets this to false */
  rtcLocalTime?: boolean;
  /** -W sets this to false */
  virtioMsix?: boolean;
  /** -Y sets this to false */
  mptable?: boolean;
  /** -U */
  uuid?: string;
  /** -K */
  keyboardLayout?: string;
  /** -G */
  gdb?: string;
  /** -f items, as `name,string=...` / `name,file=...` or ready-made */
  fwcfg?: Array<string | FwcfgUserFile>;
  /** -o path=value, applied last (after everything above), in insertion order */
  options?: Record<string, string>;
}

export interface BuiltConfig {
  tree: ConfigTree;
  fwcfgFiles: FwcfgUserFile[];
}

const fail = (message: string): BhyveError => new BhyveError(ExitStatus.USAGE, message);

/** Builds the configuration tree for a VmSpec. Throws BhyveError with the status the CLI would use. */
export function buildConfigTree(spec: VmSpec, warn?: Warn): BuiltConfig {
  const tree = defaultConfigTree(warn);
  const fwcfgFiles: FwcfgUserFile[] = [];

  if (spec.cpus !== undefined) {
    const c = spec.cpus;
    const text =
      typeof c === 'number'
        ? String(c)
        : (['cpus', 'sockets', 'cores', 'threads'] as const)
            .filter((k) => c[k] !== undefined)
            .map((k) => `${k}=${c[k]}`)
            .join(',');
    if (!parseTopologyOption(tree, text)) throw fail(`invalid cpu topology '${text}'`);
  }
  if (spec.memory !== undefined) tree.set('memory.size', String(spec.memory));
  for (const [vcpu, hosts] of Object.entries(spec.pin ?? {})) {
    for (const h of hosts) {
      const why = parsePinOption(tree, `${vcpu}:${h}`);
      if (why) throw fail(`invalid vcpu pinning configuration '${vcpu}:${h}' (${why})`);
    }
  }
  for (const dev of spec.pci ?? []) {
    const opts = dev.options;
    if (typeof opts === 'object') {
      const node = parsePciSlot(tree, `${dev.slot},${dev.device}`);
      for (const [k, v] of Object.entries(opts)) {
        // Keys may be dotted (port.0.path); they are set relative to the slot's node.
        const dot = k.lastIndexOf('.');
        const parent = dot < 0 ? node : tree.createRelativeNode(node, k.slice(0, dot));
        tree.setIn(parent, dot < 0 ? k : k.slice(dot + 1), String(v));
      }
    } else {
      parsePciSlot(tree, opts === undefined ? `${dev.slot},${dev.device}` : `${dev.slot},${dev.device},${opts}`);
    }
  }
  for (const [port, backend] of Object.entries(spec.com ?? {})) {
    if (backend !== undefined && !parseLpcDevice(tree, `${port},${backend}`)) {
      throw fail(`invalid lpc device configuration '${port},${backend}'`);
    }
  }
  if (spec.bootrom) {
    const arg = spec.bootrom.vars ? `bootrom,${spec.bootrom.rom},${spec.bootrom.vars}` : `bootrom,${spec.bootrom.rom}`;
    parseLpcDevice(tree, arg);
  }
  if (spec.boot) {
    tree.set('boot.kernel', spec.boot.kernel);
    if (spec.boot.initrd !== undefined) tree.set('boot.initrd', spec.boot.initrd);
    if (spec.boot.cmdline !== undefined) tree.set('boot.cmdline', spec.boot.cmdline);
  }
  const flags: Array<[boolean | undefined, string]> = [
    [spec.vmexitOnHlt, 'x86.vmexit_on_hlt'],
    [spec.vmexitOnPause, 'x86.vmexit_on_pause'],
    [spec.x2apic, 'x86.x2apic'],
    [spec.wiredMemory, 'memory.wired'],
    [spec.guestMemoryInCore, 'memory.guest_in_core'],
    [spec.destroyOnPoweroff, 'destroy_on_poweroff'],
    [spec.strictIo, 'x86.strictio'],
    [spec.strictMsr, 'x86.strictmsr'],
    [spec.rtcLocalTime, 'rtc.use_localtime'],
    [spec.virtioMsix, 'virtio_msix'],
    [spec.mptable, 'x86.mptable'],
  ];
  for (const [v, key] of flags) if (v !== undefined) tree.setBool(key, v);
  if (spec.uuid !== undefined) tree.set('uuid', spec.uuid);
  if (spec.keyboardLayout !== undefined) tree.set('keyboard.layout', spec.keyboardLayout);
  if (spec.gdb !== undefined) parseGdbOption(tree, spec.gdb);
  for (const item of spec.fwcfg ?? []) {
    if (typeof item !== 'string') {
      fwcfgFiles.push(item);
      continue;
    }
    const r = parseFwcfgItem(item);
    if (typeof r === 'string') throw fail(`invalid fwcfg item '${item}' (${r})`);
    fwcfgFiles.push(r);
  }
  for (const [k, v] of Object.entries(spec.options ?? {})) {
    if (!parseConfigOption(tree, `${k}=${v}`)) throw fail(`invalid configuration option '${k}=${v}'`);
  }
  applyCompatibilityAliases(tree);
  if (tree.get('name') === undefined) tree.set('name', spec.name);
  return { tree, fwcfgFiles };
}
