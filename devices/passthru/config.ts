// passthru's legacy syntax: `pptN[,opts]` -> pptdev=pptN, or a host address `pci0:B:S:F`, `pciB:S:F` or
// `B/S/F` -> bus, slot, func; the rest (rom=, bootindex=) through the generic parser.
import { cScanInts } from '../../src/config/cnum.js';
import { genericLegacyConfig, slotParseError, splitFirst, type LegacyConfigParser } from '../legacy-config.js';

export const passthruLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  if (conf === undefined) return;
  const [first, rest] = splitFirst(conf);
  if (first.startsWith('ppt')) {
    tree.setIn(node, 'pptdev', first);
  } else {
    const forms = ['pci0:%d:%d:%d', 'pci%d:%d:%d', '%d/%d/%d'];
    const bsf = forms.map((f) => cScanInts(first, f)).find((v) => v.length === 3);
    if (!bsf) throw slotParseError('passthru: invalid options');
    tree.setIn(node, 'bus', String(bsf[0]));
    tree.setIn(node, 'slot', String(bsf[1]));
    tree.setIn(node, 'func', String(bsf[2]));
  }
  genericLegacyConfig(tree, node, rest);
};
