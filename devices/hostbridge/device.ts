// The host bridge at 0:0:0: IDs only (NetApp 1275:1275 by default, AMD's 1022:7432 as amd_hostbridge), class
// bridge/host, and a PCI Express root-port capability so guests treat the hierarchy as PCIe.
import type { PciDeviceFactory } from '../device.js';
import { pciregValue } from '../device.js';
import { cParseInteger } from '../../src/config/cnum.js';
import { PCIC_BRIDGE, PCIR_CLASS, PCIR_DEVICE, PCIR_REVID, PCIR_SUBCLASS, PCIR_SUBDEV_0, PCIR_SUBVEND_0, PCIR_VENDOR, PCIS_BRIDGE_HOST } from '../../src/platform/pci/regs.js';

const PCIEM_TYPE_ROOT_PORT = 4;

export const createHostbridge: PciDeviceFactory = (ctx) => {
  const { fn, tree, node } = ctx;
  // The older `vendor`/`devid` keys (strtol base 0) come first; pcireg.* overrides them.
  const legacy = (key: string, def: number): number => {
    const v = tree.getIn(node, key);
    if (v === undefined) return def;
    const r = cParseInteger(v, 0, 0);
    return r.ok ? Number(BigInt.asUintN(16, r.value)) : 0;
  };
  fn.set16(PCIR_VENDOR, pciregValue(ctx, 'vendor', legacy('vendor', 0x1275)));
  fn.set16(PCIR_DEVICE, pciregValue(ctx, 'device', legacy('devid', 0x1275)));
  fn.set8(PCIR_REVID, pciregValue(ctx, 'revid', 0));
  fn.set16(PCIR_SUBVEND_0, pciregValue(ctx, 'subvendor', 0));
  fn.set16(PCIR_SUBDEV_0, pciregValue(ctx, 'subdevice', 0));
  fn.set8(PCIR_CLASS, PCIC_BRIDGE);
  fn.set8(PCIR_SUBCLASS, PCIS_BRIDGE_HOST);
  fn.addPcieCapability(PCIEM_TYPE_ROOT_PORT);
  return {};
};
