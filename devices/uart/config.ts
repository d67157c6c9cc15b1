// The PCI uart's legacy syntax: the whole option string is the backend path (stdio, a tty, tcp=IP:PORT).
import type { LegacyConfigParser } from '../legacy-config.js';

export const uartLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  if (conf !== undefined) tree.setIn(node, 'path', conf);
};
