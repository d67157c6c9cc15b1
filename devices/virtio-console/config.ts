// virtio-console's legacy syntax: `NAME=PATH[,NAME=PATH...]`, each a port backed by a unix-domain socket.
import { slotParseError, type LegacyConfigParser } from '../legacy-config.js';

/** A virtio-console device has at most 16 ports. */
export const VTCON_MAXPORTS = 16;

export const virtioConsoleLegacyConfig: LegacyConfigParser = (tree, node, conf) => {
  if (conf === undefined) return;
  const tokens = conf.split(',');
  tokens.forEach((token, i) => {
    const eq = token.indexOf('=');
    if (eq < 0) throw slotParseError(`vtcon: port ${token} requires a path`);
    if (i >= VTCON_MAXPORTS) throw slotParseError(`vtcon: too many ports (at most ${VTCON_MAXPORTS})`);
    const port = tree.createRelativeNode(node, `port.${i}`);
    tree.setIn(port, 'name', token.slice(0, eq));
    tree.setIn(port, 'path', token.slice(eq + 1));
  });
};
