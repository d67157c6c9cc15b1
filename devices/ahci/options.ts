// The ports of an ahci function (bhyve_config(5): pci.B.S.F.port.N.*, as pci_ahci.c reads them): each port's
// type (hd or cd), its block keys and the strings IDENTIFY reports. Defaults follow bhyve; bad values get its
// one-line message.
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import { ConfigNode, type ConfigTree } from '../../src/config/tree.js';
import { defaultSerial, readBlockOptions, type BlockOptions } from '../virtio-blk/options.js';
import { AHCI_MAX_PORTS } from './config.js';

/** DEF_PORTS: CAP.NP reports at least this many ports. */
export const AHCI_MIN_PORTS = 6;
/** IDENTIFY's string fields, in characters. */
export const SERIAL_CHARS = 20;
export const REVISION_CHARS = 8;
export const MODEL_CHARS = 40;

export interface AhciPortOptions {
  port: number;
  type: 'hd' | 'cd';
  block: BlockOptions;
  /** nominal media rotation rate (IDENTIFY word 217): 0 unknown, 1 non-rotating (SSD) */
  rotationRate: number;
  serial: string;
  revision: string;
  model: string;
}

export interface AhciOptions {
  ports: AhciPortOptions[];
  /** CAP.NP + 1: the ports the ABAR has room for */
  portCount: number;
}

const fail = (message: string): BhyveError => new BhyveError(ExitStatus.ERROR, message, false);

/** atoi(3): leading blanks, an optional sign, digits; anything else ends the number (0 if none). */
function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(s);
  return m ? Number(m[1]) : 0;
}

export function readAhciOptions(tree: ConfigTree, node: ConfigNode): AhciOptions {
  const portsNode = tree.findRelativeNode(node, 'port');
  const ports: AhciPortOptions[] = [];
  if (portsNode) {
    for (const [name, child] of portsNode.children) {
      if (!(child instanceof ConfigNode)) continue;
      const port = /^\d+$/.test(name) ? Number(name) : NaN;
      if (!(port < AHCI_MAX_PORTS)) throw fail(`Invalid port number "${name}"`);
      const type = tree.getIn(child, 'type');
      if (type !== 'hd' && type !== 'cd') throw fail(type === undefined ? `Missing type for port ${port}` : `Invalid type "${type}" for port ${port}`);
      const block = readBlockOptions(tree, child, 'ahci');
      if (type === 'cd') block.readOnly = true; // a disc is read-only whatever the options say
      const nmrr = tree.getIn(child, 'nmrr');
      const rotationRate = nmrr === undefined ? 0 : atoi(nmrr) & 0xffff;
      // bhyve copies these with strlcpy: longer values are cut to the field.
      const serial = (tree.getIn(child, 'ser') ?? defaultSerial(block.path)).slice(0, SERIAL_CHARS);
      const revision = (tree.getIn(child, 'rev') ?? '001').slice(0, REVISION_CHARS);
      const model = (tree.getIn(child, 'model') ?? (type === 'cd' ? 'BHYVE SATA DVD ROM' : 'BHYVE SATA DISK')).slice(0, MODEL_CHARS);
      ports.push({ port, type, block, rotationRate, serial, revision, model });
    }
  }
  if (ports.length === 0) throw fail('AHCI: no ports configured');
  ports.sort((a, b) => a.port - b.port);
  const portCount = Math.max(AHCI_MIN_PORTS, ports[ports.length - 1]!.port + 1);
  return { ports, portCount };
}
