// amd_hostbridge: a hostbridge that presents AMD's IDs (1022:7432) through pcireg.*; its options are ignored.
import type { LegacyConfigParser } from '../legacy-config.js';

export const amdHostbridgeLegacyConfig: LegacyConfigParser = (tree, node) => {
  const regs = tree.createRelativeNode(node, 'pcireg');
  tree.setIn(regs, 'vendor', '0x1022');
  tree.setIn(regs, 'device', '0x7432');
};
