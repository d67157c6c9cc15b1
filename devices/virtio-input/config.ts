// virtio-input's legacy syntax: the evdev path (/dev/input/eventN), then generic keys.
import { genericLegacyConfig, splitFirst, type LegacyConfigParser } from '../legacy-config.js';

export const virtioInputLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  if (conf === undefined) return;
  const [path, rest] = splitFirst(conf);
  tree.setIn(node, 'path', path);
  genericLegacyConfig(tree, node, rest);
};
