// virtio-scsi's legacy syntax: an optional leading CTL device path (no '=') -> dev, then generic keys (iid=).
import { genericLegacyConfig, splitFirst, type LegacyConfigParser } from '../legacy-config.js';

export const virtioScsiLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  if (conf === undefined) return;
  const [first, rest] = splitFirst(conf);
  if (first.includes('=')) {
    genericLegacyConfig(tree, node, conf);
    return;
  }
  tree.setIn(node, 'dev', first);
  genericLegacyConfig(tree, node, rest);
};
