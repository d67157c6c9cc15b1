// virtio-9p's legacy syntax: `sharename=/path[,ro]` -> sharename, path, then generic keys.
import { genericLegacyConfig, slotParseError, splitFirst, type LegacyConfigParser } from '../legacy-config.js';

export const virtio9pLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  if (conf === undefined) return;
  const [share, rest] = splitFirst(conf);
  const eq = share.indexOf('=');
  if (eq <= 0) throw slotParseError(`virtio-9p: invalid share name and path "${share}"`);
  tree.setIn(node, 'sharename', share.slice(0, eq));
  tree.setIn(node, 'path', share.slice(eq + 1));
  genericLegacyConfig(tree, node, rest);
};
