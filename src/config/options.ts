// The parsers behind each bhyve option that writes into the configuration tree. The command line and the
// library both call these, so a VM built either way has the same tree.
import { readFileSync } from 'node:fs';
import { findPciEmulation } from '../../devices/registry.js';
import { slotParseError } from '../../devices/legacy-config.js';
import { cParseWholeInteger, cScanInts } from './cnum.js';
import { BhyveError, describeErrno, ExitStatus } from './errors.js';
import { CPU_SETSIZE } from './topology.js';
import type { ConfigNode, ConfigTree } from './tree.js';

/** -c: `[[cpus=]N][,sockets=n][,cores=n][,threads=n]`. Returns false for an unknown `key=value` token. */
export function parseTopologyOption(tree: ConfigTree, opt: string): boolean {
  if (opt === '') {
    tree.set('sockets', '1');
    tree.set('cores', '1');
    tree.set('threads', '1');
    tree.set('cpus', '1');
    return true;
  }
  for (const token of opt.split(',')) {
    const m = /^(cpus|sockets|cores|threads)=/.exec(token);
    if (m) tree.set(m[1]!, token.slice(m[0].length));
    else if (token.includes('=')) return false;
    else tree.set('cpus', token);
  }
  return true;
}

/**
 * -p vcpu:hostcpu: appends hostcpu to vcpu.N.cpuset. Returns an error text (bhyve prints it before
 * "invalid vcpu pinning configuration"), or undefined on success.
 */
export function parsePinOption(tree: ConfigTree, opt: string): string | undefined {
  const v = cScanInts(opt, '%d:%d');
  if (v.length !== 2) return `invalid format: ${opt}`;
  const [vcpu, pcpu] = v as [number, number];
  if (vcpu < 0) return `invalid vcpu '${vcpu}'`;
  if (pcpu < 0 || pcpu >= CPU_SETSIZE) return `hostcpu '${pcpu}' outside valid range from 0 to ${CPU_SETSIZE - 1}`;
  const key = `vcpu.${vcpu}.cpuset`;
  const prev = tree.get(key);
  tree.set(key, prev !== undefined ? `${prev},${pcpu}` : String(pcpu));
  return undefined;
}

/** -o path=value (also each line of a -k file). The value must be non-empty. */
export function parseConfigOption(tree: ConfigTree, option: string): boolean {
  const eq = option.indexOf('=');
  if (eq < 0 || eq + 1 === option.length) return false;
  tree.set(option.slice(0, eq), option.slice(eq + 1));
  return true;
}

/** -k file: one `path=value` per line; lines starting with '#' and empty lines are skipped. */
export function parseConfigFile(tree: ConfigTree, path: string, read: (p: string) => string = readUtf8): void {
  let text: string;
  try {
    text = read(path);
  } catch (e) {
    const reason = e instanceof Error && 'code' in e ? `: ${describeErrno(e as NodeJS.ErrnoException)}` : '';
    throw new BhyveError(ExitStatus.ERROR, `Failed to open configuration file ${path}${reason}`);
  }
  const lines = text.split('\n');
  // A final newline does not start another line.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  lines.forEach((line, i) => {
    if (line === '' || line.startsWith('#')) return;
    if (!parseConfigOption(tree, line)) {
      throw new BhyveError(ExitStatus.ERROR, `${path} line ${i + 1}: invalid config option '${line}'`);
    }
  });
}

function readUtf8(p: string): string {
  return readFileSync(p, 'utf8');
}

/** -G [w][addr:]port: gdb.wait, gdb.address (text before the last ':') and gdb.port. */
export function parseGdbOption(tree: ConfigTree, opt: string): void {
  let rest = opt;
  if (rest.startsWith('w')) {
    tree.setBool('gdb.wait', true);
    rest = rest.slice(1);
  }
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tree.set('gdb.address', rest.slice(0, colon));
    rest = rest.slice(colon + 1);
  }
  tree.set('gdb.port', rest);
}

/** -n id=N,size=S,cpus=SET[,domain_policy=P]: domains.N.{size,domain_policy,cpus}. */
export function parseNumaOption(tree: ConfigTree, opt: string): boolean {
  if (opt === '') return false;
  let id: number | undefined;
  let size: string | undefined;
  let cpus: string | undefined;
  let policy: string | undefined;
  for (const token of opt.split(',')) {
    if (token.startsWith('id=')) {
      const v = cParseWholeInteger(token.slice(3), 0);
      if (v === undefined || v < 0n || v > 255n) {
        throw new BhyveError(ExitStatus.ERROR, `Invalid value for id: '${token.slice(3)}'`);
      }
      id = Number(v);
    } else if (token.startsWith('size=')) size = token.slice(5);
    else if (token.startsWith('domain_policy=')) policy = token.slice(14);
    else if (token.startsWith('cpus=')) cpus = token.slice(5);
  }
  if (id === undefined) {
    process.stderr.write(`Missing NUMA domain ID in '${opt}'\n`);
    return false;
  }
  const node = tree.createNode(`domains.${id}`);
  if (size !== undefined) tree.setIn(node, 'size', size);
  if (policy !== undefined) tree.setIn(node, 'domain_policy', policy);
  if (cpus !== undefined) tree.setIn(node, 'cpus', cpus);
  return true;
}

/** The number of bus, slot and function numbers PCI allows. */
export const PCI_MAXBUSES = 256;
export const PCI_MAXSLOTS = 32;
export const PCI_MAXFUNCS = 8;

/**
 * -s slot,emul[,conf]: creates pci.B.S.F with `device` and the device's legacy options.
 * Throws a BhyveError with status 4 on any parse failure, as bhyve exits 4 for them.
 */
export function parsePciSlot(tree: ConfigTree, opt: string): ConfigNode {
  const comma = opt.indexOf(',');
  if (comma < 0) throw slotParseError(`Invalid PCI slot info field "${opt}"`);
  const slotText = opt.slice(0, comma);
  const afterSlot = opt.slice(comma + 1);
  const comma2 = afterSlot.indexOf(',');
  const emul = comma2 < 0 ? afterSlot : afterSlot.slice(0, comma2);
  const conf = comma2 < 0 ? undefined : afterSlot.slice(comma2 + 1);

  // B:S:F, then S:F on bus 0, then S (sscanf %d semantics: trailing text is ignored).
  let bus = 0;
  let slot: number;
  let func = 0;
  const bsf = cScanInts(slotText, '%d:%d:%d');
  if (bsf.length === 3) {
    [bus, slot, func] = bsf as [number, number, number];
  } else {
    const sf = cScanInts(slotText, '%d:%d');
    if (sf.length === 2) {
      [slot, func] = sf as [number, number];
    } else {
      const s = cScanInts(slotText, '%d');
      slot = s.length === 1 ? s[0]! : -1;
    }
  }
  if (bus < 0 || bus >= PCI_MAXBUSES || slot < 0 || slot >= PCI_MAXSLOTS || func < 0 || func >= PCI_MAXFUNCS) {
    throw slotParseError(`Invalid PCI slot info field "${opt}"`);
  }
  const emulation = findPciEmulation(emul);
  if (!emulation) throw slotParseError(`pci slot ${bus}:${slot}:${func}: unknown device "${emul}"`);
  const path = `pci.${bus}.${slot}.${func}`;
  if (tree.findNode(path)) throw slotParseError(`pci slot ${bus}:${slot}:${func} already occupied!`);
  const node = tree.createNode(path);
  tree.setIn(node, 'device', emulation.alias ?? emulation.name);
  emulation.legacyConfig(tree, node, conf);
  return node;
}

/** A user file for the guest's fw_cfg (`-f`); these never appear in the config tree. */
export interface FwcfgUserFile {
  name: string;
  data: Uint8Array;
}

/** fw_cfg file names are at most 55 characters (56 with the terminator). */
export const FWCFG_MAX_NAME = 56;

/** -f [name=]NAME,string=DATA | NAME,file=PATH. Returns an error text or the item. */
export function parseFwcfgItem(opt: string, read: (p: string) => Uint8Array = readFileSync): FwcfgUserFile | string {
  let rest = opt.startsWith('name=') ? opt.slice(5) : opt;
  const comma = rest.indexOf(',');
  if (comma < 0) return `invalid fwcfg item "${opt}"`;
  const name = rest.slice(0, comma);
  if (name.length >= FWCFG_MAX_NAME) return `fwcfg name too long (${name.length} >= ${FWCFG_MAX_NAME})`;
  rest = rest.slice(comma + 1);
  if (rest.startsWith('string=')) {
    // The string is passed with its terminating NUL, as bhyve does.
    const bytes = Buffer.from(rest.slice(7) + '\0', 'utf8');
    return { name, data: new Uint8Array(bytes) };
  }
  if (rest.startsWith('file=')) {
    const path = rest.slice(5);
    try {
      return { name, data: new Uint8Array(read(path)) };
    } catch (e) {
      const why = e instanceof Error && 'code' in e ? describeErrno(e as NodeJS.ErrnoException) : String(e);
      return `Can't open fwcfg file "${path}": ${why}`;
    }
  }
  return `invalid fwcfg item "${rest}"`;
}
