// init_pci: creates every configured PCI function from the pci.B.S.F nodes of the config tree, bus by bus in
// slot/function order, assigns BARs per bus, routes INTx once every device (the LPC bridge included) is up,
// and starts decoding configuration accesses.
import { findPciEmulation } from '../../../devices/registry.js';
import { BhyveError, ExitStatus } from '../../config/errors.js';
import type { ConfigNode, ConfigTree } from '../../config/tree.js';
import type { Machine } from '../machine.js';
import type { MemoryLayout } from '../../vm/memmap.js';
import { PciBus, PCI_BUSES, PCI_FUNCS, PCI_SLOTS } from './bus.js';
import { PciFunction } from './function.js';

export interface PciInitOptions {
  tree: ConfigTree;
  machine: Machine;
  layout: MemoryLayout;
  bootrom: boolean;
  warn: (message: string) => void;
}

const initError = (message: string): BhyveError => new BhyveError(ExitStatus.ERROR, message, false);

export function initPci(opts: PciInitOptions): PciBus {
  const { tree, machine } = opts;
  const bus = new PciBus({
    machine,
    layout: opts.layout,
    bootrom: opts.bootrom,
    enableBars: tree.getBoolDefault('pci.enable_bars', !opts.bootrom),
    warn: opts.warn,
  });
  const pci = tree.findNode('pci');
  for (let b = 0; b < PCI_BUSES; b++) {
    const busNode = tree.findRelativeNode(pci, String(b));
    if (!busNode) continue;
    const created: Array<{ fn: PciFunction; node: ConfigNode; create: NonNullable<ReturnType<typeof findPciEmulation>>['create'] }> = [];
    for (let s = 0; s < PCI_SLOTS; s++) {
      const slotNode = tree.findRelativeNode(busNode, String(s));
      if (!slotNode) continue;
      for (let f = 0; f < PCI_FUNCS; f++) {
        const node = tree.findRelativeNode(slotNode, String(f));
        if (!node) continue;
        const name = tree.getIn(node, 'device');
        if (name === undefined) throw initError(`pci slot ${b}:${s}:${f}: missing "device" value`);
        const emulation = findPciEmulation(name);
        if (!emulation) throw initError(`pci slot ${b}:${s}:${f}: unknown device "${name}"`);
        if (emulation.alias) throw initError(`pci slot ${b}:${s}:${f}: legacy device "${name}", use "${emulation.alias}" instead`);
        if (!emulation.create) throw initError(`pci slot ${b}:${s}:${f}: device "${name}" is not supported by this build of tsbhyve yet`);
        const fn = new PciFunction(b, s, f, name);
        bus.add(fn);
        created.push({ fn, node, create: emulation.create });
      }
    }
    bus.beginBus(b);
    for (const { fn, node, create } of created) {
      fn.model = create!({ fn, bus, tree, node, machine, bootrom: opts.bootrom, warn: opts.warn });
    }
    bus.endBus(b);
  }
  bus.routeInterrupts();
  bus.install();
  return bus;
}
