// The option-string parsers that turn the `conf` part of `-s slot,emul,conf` into keys under pci.B.S.F.
// Each device with its own legacy syntax has a parser in its folder; the rest use genericLegacyConfig.
import { BhyveError, ExitStatus } from '../src/config/errors.js';
import type { ConfigNode, ConfigTree } from '../src/config/tree.js';

/** A device's legacy parser: `conf` is everything after the second comma, or undefined if there was none. */
export type LegacyConfigParser = (tree: ConfigTree, node: ConfigNode, conf: string | undefined) => void;

/** A parse failure of `-s`: bhyve prints the line without its program-name prefix and exits 4. */
export function slotParseError(message: string): BhyveError {
  return new BhyveError(ExitStatus.ERROR, message, false);
}

/**
 * pci_parse_legacy_config: comma-separated `name=value` pairs become string keys; a bare `name` becomes
 * `name=true`. Values are not checked here; the device checks them when it starts.
 */
export function genericLegacyConfig(tree: ConfigTree, node: ConfigNode, conf: string | undefined): void {
  if (conf === undefined) return;
  for (const item of conf.split(',')) {
    const eq = item.indexOf('=');
    if (eq >= 0) tree.setIn(node, item.slice(0, eq), item.slice(eq + 1));
    else tree.setBoolIn(node, item, true);
  }
}

/** Split at the first comma: [head, rest-or-undefined]. */
export function splitFirst(s: string, sep = ','): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}
