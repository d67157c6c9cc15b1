// AHCI's legacy syntax: `hd:PATH[,opts],cd:PATH[,opts],...` -> port.N.type / port.N.path / port.N.<opt>.
// ahci-hd and ahci-cd take one `PATH[,opts]` for port 0.
import { blockLegacyConfig } from '../block/config.js';
import { slotParseError, type LegacyConfigParser } from '../legacy-config.js';
import type { ConfigNode, ConfigTree } from '../../src/config/tree.js';

/** An AHCI controller has at most 32 ports (the PI register is 32 bits). */
export const AHCI_MAX_PORTS = 32;

function configurePort(tree: ConfigTree, ports: ConfigNode, port: number, type: 'hd' | 'cd', opts: string | undefined): void {
  const node = tree.createRelativeNode(ports, String(port));
  tree.setIn(node, 'type', type);
  blockLegacyConfig(tree, node, opts);
}

export const ahciLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  if (conf === undefined) return;
  const ports = tree.createRelativeNode(node, 'port');
  let rest: string | undefined = conf;
  for (let p = 0; p < AHCI_MAX_PORTS && rest !== undefined; p++) {
    let str: string = rest;
    let type: 'hd' | 'cd' | undefined;
    if (str.startsWith('hd:')) type = 'hd';
    else if (str.startsWith('cd:')) type = 'cd';
    if (type) str = str.slice(3);
    // A port's options run up to the next ",hd:" or ",cd:".
    const hd = str.indexOf(',hd:');
    const cd = str.indexOf(',cd:');
    const next = hd < 0 ? cd : cd < 0 ? hd : Math.min(hd, cd);
    rest = next < 0 ? undefined : str.slice(next + 1);
    if (next >= 0) str = str.slice(0, next);
    if (str === '') continue;
    if (!type) throw slotParseError(`Missing or invalid type for port ${p}: "${str}"`);
    configurePort(tree, ports, p, type, str);
  }
};

export const ahciHdLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  configurePort(tree, tree.createRelativeNode(node, 'port'), 0, 'hd', conf);
};

export const ahciCdLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  configurePort(tree, tree.createRelativeNode(node, 'port'), 0, 'cd', conf);
};
