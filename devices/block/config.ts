// blockif_legacy_config: `PATH[,opts...]` for every block-backed device (virtio-blk, nvme, ahci ports).
// opts: nocache, direct, sync, ro, nodelete, sectorsize=L[/P], ser=, bootindex=N (checked when the disk opens).
import { genericLegacyConfig, splitFirst, type LegacyConfigParser } from '../legacy-config.js';

export const blockLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  if (conf === undefined) return;
  const [path, rest] = splitFirst(conf);
  tree.setIn(node, 'path', path);
  genericLegacyConfig(tree, node, rest);
};
