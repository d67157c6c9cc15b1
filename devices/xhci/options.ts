// The USB devices of an xhci node (`slot.N.device=NAME`, N = 1, 2, ...) and the root-hub port each one gets:
// USB 2 devices fill ports 5-8 in slot order, USB 3 devices ports 1-4 (none exist yet). bhyve's errors: an
// unknown name, or more devices than ports of their protocol, stop the start with status 4.
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import { ConfigNode, type ConfigTree } from '../../src/config/tree.js';
import { PORTS_PER_PROTOCOL, USB2_FIRST_PORT, USB3_FIRST_PORT } from './regs.js';

/** The USB device models by name; each is a USB 2 or 3 device. */
export const USB_DEVICE_MODELS: Readonly<Record<string, 2 | 3>> = { tablet: 2 };

export interface UsbDeviceSpec {
  /** the `slot.N` number */
  slot: number;
  name: string;
  /** root-hub port, 1-based */
  port: number;
}

const fail = (message: string): BhyveError => new BhyveError(ExitStatus.ERROR, message, false);

export function readXhciOptions(tree: ConfigTree, node: ConfigNode): UsbDeviceSpec[] {
  const slots = tree.findRelativeNode(node, 'slot');
  if (!slots) return [];
  const entries: Array<{ slot: number; name: string }> = [];
  for (const [key, child] of slots.children) {
    const slot = /^[1-9][0-9]*$/.test(key) ? Number(key) : NaN;
    if (!(child instanceof ConfigNode) || !Number.isSafeInteger(slot)) throw fail(`xhci: invalid USB slot "${key}"`);
    const name = tree.getIn(child, 'device');
    if (name === undefined) throw fail(`xhci: USB slot ${key}: missing "device" value`);
    entries.push({ slot, name });
  }
  entries.sort((a, b) => a.slot - b.slot);
  const next = { 2: USB2_FIRST_PORT, 3: USB3_FIRST_PORT };
  const out: UsbDeviceSpec[] = [];
  for (const e of entries) {
    const major = USB_DEVICE_MODELS[e.name];
    if (major === undefined) throw fail(`Invalid USB emulation "${e.name}"`);
    const first = major === 2 ? USB2_FIRST_PORT : USB3_FIRST_PORT;
    if (next[major] >= first + PORTS_PER_PROTOCOL) {
      throw fail(`pci_xhci max number of USB 2 or 3 devices reached, max ${PORTS_PER_PROTOCOL}`);
    }
    out.push({ slot: e.slot, name: e.name, port: next[major]++ });
  }
  return out;
}
