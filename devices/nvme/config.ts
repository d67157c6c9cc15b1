// NVMe's legacy syntax: `ram=MiB[,opts]` for a RAM-backed namespace, otherwise the block syntax `PATH[,opts]`.
// opts: maxq, qsz, ioslots, sectsz, ser, eui64, dsm plus the block options.
import { blockLegacyConfig } from '../block/config.js';
import { genericLegacyConfig, splitFirst, type LegacyConfigParser } from '../legacy-config.js';

export const nvmeLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  if (conf === undefined) return;
  if (conf.startsWith('ram=')) {
    const [ram, rest] = splitFirst(conf.slice(4));
    tree.setIn(node, 'ram', ram);
    genericLegacyConfig(tree, node, rest);
    return;
  }
  blockLegacyConfig(tree, node, conf);
};
