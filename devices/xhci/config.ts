// xHCI's legacy syntax: each comma token `dev[=opt]` becomes slot.K.device=dev for K = 1, 2, ... (USB slots
// are numbered from 1); an `opt` goes through the generic parser into that slot's node. Only `tablet` exists.
import { genericLegacyConfig, type LegacyConfigParser } from '../legacy-config.js';

export const xhciLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  if (conf === undefined) return;
  const slots = tree.createRelativeNode(node, 'slot');
  let k = 1;
  for (const token of conf.split(',')) {
    const eq = token.indexOf('=');
    const device = eq < 0 ? token : token.slice(0, eq);
    const slot = tree.createRelativeNode(slots, String(k++));
    tree.setIn(slot, 'device', device);
    if (eq >= 0 && eq + 1 < token.length) genericLegacyConfig(tree, slot, token.slice(eq + 1));
  }
};
