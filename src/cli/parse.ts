// bhyve(8)'s command line -> the configuration tree (bhyve_optparse + the start of main()), applied strictly in
// command-line order. Nothing here needs a VM; errors are BhyveErrors carrying bhyve's message and status.
import { pciEmulationNames } from '../../devices/registry.js';
import { lpcDeviceNames, parseLpcDevice } from '../../devices/lpc/config.js';
import { defaultConfigTree } from '../config/defaults.js';
import { BhyveError, ExitStatus, HelpRequested, ListingRequested, UsageError } from '../config/errors.js';
import {
  parseConfigFile,
  parseConfigOption,
  parseFwcfgItem,
  parseGdbOption,
  parseNumaOption,
  parsePciSlot,
  parsePinOption,
  parseTopologyOption,
  type FwcfgUserFile,
} from '../config/options.js';
import type { ConfigTree, Warn } from '../config/tree.js';
import { getopt } from './getopt.js';

/** FreeBSD 15.0's amd64 option string. */
export const OPTSTRING = 'aehuwxACDHIPSWYk:f:o:p:G:c:s:m:n:l:K:U:';

export interface ParsedCommandLine {
  tree: ConfigTree;
  /** `-f` items: they go to fw_cfg and never into the tree */
  fwcfgFiles: FwcfgUserFile[];
  /** true when `config.dump` was set: print tree.dump() and exit 1 */
  dump: boolean;
}

/** "help", "hel", "h" and "" all ask for help (bhyve compares only strlen(arg) characters). */
const isHelp = (arg: string): boolean => 'help'.startsWith(arg);

function usageFailure(status: number, message: string): BhyveError {
  return new BhyveError(status, message);
}

/**
 * Parses argv (without the program name). Throws UsageError (exit 1), HelpRequested (exit 0),
 * ListingRequested (`-s help`/`-l help`, exit 0) or a BhyveError with bhyve's status.
 */
export function parseCommandLine(argv: readonly string[], warn?: Warn): ParsedCommandLine {
  const tree = defaultConfigTree(warn);
  const fwcfgFiles: FwcfgUserFile[] = [];
  const { items, operands } = getopt(argv, OPTSTRING);

  for (const item of items) {
    if (item.kind === 'error') throw new UsageError(item.message);
    const arg = item.arg ?? '';
    switch (item.option) {
      case 'a':
        tree.setBool('x86.x2apic', false);
        break;
      case 'A': // acpi tables are always built in 15.0; kept for old command lines
      case 'I': // the I/O APIC is always present; kept for old command lines
        break;
      case 'D':
        tree.setBool('destroy_on_poweroff', true);
        break;
      case 'p': {
        const why = parsePinOption(tree, arg);
        if (why !== undefined) {
          throw usageFailure(ExitStatus.USAGE, `invalid vcpu pinning configuration '${arg}' (${why})`);
        }
        break;
      }
      case 'c':
        if (!parseTopologyOption(tree, arg)) throw usageFailure(ExitStatus.USAGE, `invalid cpu topology '${arg}'`);
        break;
      case 'C':
        tree.setBool('memory.guest_in_core', true);
        break;
      case 'f': {
        const r = parseFwcfgItem(arg);
        if (typeof r === 'string') throw usageFailure(ExitStatus.USAGE, `invalid fwcfg item '${arg}' (${r})`);
        fwcfgFiles.push(r);
        break;
      }
      case 'G':
        parseGdbOption(tree, arg);
        break;
      case 'k':
        parseConfigFile(tree, arg);
        break;
      case 'K':
        tree.set('keyboard.layout', arg);
        break;
      case 'l':
        if (isHelp(arg)) throw new ListingRequested(lpcDeviceNames());
        if (!parseLpcDevice(tree, arg)) {
          throw usageFailure(ExitStatus.USAGE, `invalid lpc device configuration '${arg}'`);
        }
        break;
      case 's':
        if (isHelp(arg)) throw new ListingRequested(pciEmulationNames());
        parsePciSlot(tree, arg);
        break;
      case 'S':
        tree.setBool('memory.wired', true);
        break;
      case 'm':
        tree.set('memory.size', arg);
        break;
      case 'n':
        if (!parseNumaOption(tree, arg)) throw usageFailure(ExitStatus.USAGE, `invalid NUMA configuration '${arg}'`);
        if (!tree.getBool('acpi_tables')) throw usageFailure(ExitStatus.USAGE, 'NUMA emulation requires ACPI');
        break;
      case 'o':
        if (!parseConfigOption(tree, arg)) {
          throw usageFailure(ExitStatus.USAGE, `invalid configuration option '${arg}'`);
        }
        break;
      case 'H':
        tree.setBool('x86.vmexit_on_hlt', true);
        break;
      case 'P':
        tree.setBool('x86.vmexit_on_pause', true);
        break;
      case 'e':
        tree.setBool('x86.strictio', true);
        break;
      case 'u':
        tree.setBool('rtc.use_localtime', false);
        break;
      case 'U':
        tree.set('uuid', arg);
        break;
      case 'w':
        tree.setBool('x86.strictmsr', false);
        break;
      case 'W':
        tree.setBool('virtio_msix', false);
        break;
      case 'x':
        tree.setBool('x86.x2apic', true);
        break;
      case 'Y':
        tree.setBool('x86.mptable', false);
        break;
      case 'h':
        throw new HelpRequested();
      default:
        throw new UsageError(`unhandled option -- ${item.option}`);
    }
  }

  applyCompatibilityAliases(tree);

  if (operands.length > 1) throw new UsageError();
  if (operands.length === 1) tree.set('name', operands[0]!);
  if (tree.get('name') === undefined) throw new UsageError();

  return { tree, fwcfgFiles, dump: tree.getBoolDefault('config.dump', false) };
}

/** bhyve 15 moved the boot ROM keys to the root; old lpc.bootrom/lpc.bootvars are copied with a warning. */
export function applyCompatibilityAliases(tree: ConfigTree): void {
  for (const key of ['bootrom', 'bootvars']) {
    const old = tree.get(`lpc.${key}`);
    if (old !== undefined && tree.get(key) === undefined) {
      tree.warn(`lpc.${key} is deprecated, use '-o ${key}' instead`);
      tree.set(key, old);
    }
  }
}
