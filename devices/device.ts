// What a PCI device model gets when it starts: its function (config space, BARs, interrupts), the bus to
// allocate BARs on, its configuration node, and the machine.
import type { ConfigNode, ConfigTree } from '../src/config/tree.js';
import type { Machine } from '../src/platform/machine.js';
import type { PciBus } from '../src/platform/pci/bus.js';
import type { PciDeviceModel, PciFunction } from '../src/platform/pci/function.js';
import { cParseInteger } from '../src/config/cnum.js';

export interface PciDeviceContext {
  fn: PciFunction;
  bus: PciBus;
  tree: ConfigTree;
  /** pci.B.S.F */
  node: ConfigNode;
  machine: Machine;
  /** true when a boot ROM will enumerate the bus (BARs are then left for it to enable) */
  bootrom: boolean;
  warn: (message: string) => void;
}

/** Creates the device model and sets up its function; throws a BhyveError (status 4) if it cannot start. */
export type PciDeviceFactory = (ctx: PciDeviceContext) => PciDeviceModel;

/**
 * pci_config_read_reg: an ID register overridden by `pcireg.<name>` (hex, as bhyve reads it with strtol base 16),
 * or `def`.
 */
export function pciregValue(ctx: PciDeviceContext, name: string, def: number): number {
  const regs = ctx.tree.findRelativeNode(ctx.node, 'pcireg');
  const v = ctx.tree.getIn(regs, name);
  if (v === undefined) return def;
  if (v === 'host') {
    ctx.warn(`${ctx.fn.label}: pcireg.${name}=host needs the host's ISA bridge IDs, which tsbhyve does not read; using 0x${def.toString(16)}`);
    return def;
  }
  const r = cParseInteger(v, 0, 16);
  return r.ok ? Number(BigInt.asUintN(32, r.value)) : 0;
}
