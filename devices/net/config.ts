// netbe_legacy_config (virtio-net, e1000): the first token names the backend (tapN, vmnetN, netgraph,
// netmap:IF, valeX:Y, slirp); the rest are generic keys (mac=, mtu=, path=, peerhook=, socket=, hook=, hostfwd=, type=).
import { genericLegacyConfig, splitFirst, type LegacyConfigParser } from '../legacy-config.js';

export const netLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  if (conf === undefined) return;
  const [backend, rest] = splitFirst(conf);
  tree.setIn(node, 'backend', backend);
  genericLegacyConfig(tree, node, rest);
};
