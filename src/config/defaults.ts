// The tree every run starts from: bhyve 15.0's defaults, in the order bhyve sets them (which is also the
// order they appear in a config dump).
import { ConfigTree, type Warn } from './tree.js';

export function defaultConfigTree(warn?: Warn): ConfigTree {
  const tree = new ConfigTree(warn);
  tree.setBool('acpi_tables', true);
  tree.setBool('acpi_tables_in_memory', true);
  tree.set('memory.size', '256M');
  tree.setBool('x86.strictmsr', true);
  tree.setBool('x86.verbosemsr', false);
  tree.set('lpc.fwcfg', 'bhyve');
  return tree;
}
