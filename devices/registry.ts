// The PCI device emulations this build knows, by their `-s` name, in the order `-s help` lists them
// (bhyve's amd64 linker-set order). Adding a device = one folder in devices/ plus one entry here.
import { ahciCdLegacyConfig, ahciHdLegacyConfig, ahciLegacyConfig } from './ahci/config.js';
import { createAhci } from './ahci/device.js';
import { blockLegacyConfig } from './block/config.js';
import { amdHostbridgeLegacyConfig } from './hostbridge/config.js';
import { genericLegacyConfig, type LegacyConfigParser } from './legacy-config.js';
import type { PciDeviceFactory } from './device.js';
import { createHostbridge } from './hostbridge/device.js';
import { createLpc } from './lpc/device.js';
import { createVirtioBlk } from './virtio-blk/device.js';
import { createVirtioNet } from './virtio-net/device.js';
import { createVirtioRnd } from './virtio-rnd/device.js';
import { netLegacyConfig } from './net/config.js';
import { nvmeLegacyConfig } from './nvme/config.js';
import { createNvme } from './nvme/device.js';
import { passthruLegacyConfig } from './passthru/config.js';
import { createFbuf } from './fbuf/device.js';
import { uartLegacyConfig } from './uart/config.js';
import { createPciUart } from './uart/device.js';
import { virtio9pLegacyConfig } from './virtio-9p/config.js';
import { virtioConsoleLegacyConfig } from './virtio-console/config.js';
import { createVirtioConsole } from './virtio-console/device.js';
import { virtioInputLegacyConfig } from './virtio-input/config.js';
import { virtioScsiLegacyConfig } from './virtio-scsi/config.js';
import { xhciLegacyConfig } from './xhci/config.js';
import { createXhci } from './xhci/device.js';

export interface PciEmulation {
  /** the name given to `-s` */
  readonly name: string;
  /** for alias names (ahci-hd, ahci-cd, amd_hostbridge): the emulation stored as `device` */
  readonly alias?: string;
  /** turns the legacy option string into keys under pci.B.S.F */
  readonly legacyConfig: LegacyConfigParser;
  /** the device model; emulations without one are recognised on the command line but cannot start yet */
  readonly create?: PciDeviceFactory;
}

const emulations: readonly PciEmulation[] = [
  { name: 'hostbridge', legacyConfig: genericLegacyConfig, create: createHostbridge },
  { name: 'amd_hostbridge', alias: 'hostbridge', legacyConfig: amdHostbridgeLegacyConfig },
  { name: 'lpc', legacyConfig: genericLegacyConfig, create: createLpc },
  { name: 'ahci', legacyConfig: ahciLegacyConfig, create: createAhci },
  { name: 'ahci-hd', alias: 'ahci', legacyConfig: ahciHdLegacyConfig },
  { name: 'ahci-cd', alias: 'ahci', legacyConfig: ahciCdLegacyConfig },
  { name: 'nvme', legacyConfig: nvmeLegacyConfig, create: createNvme },
  { name: 'virtio-blk', legacyConfig: blockLegacyConfig, create: createVirtioBlk },
  { name: 'virtio-net', legacyConfig: netLegacyConfig, create: createVirtioNet },
  { name: 'virtio-rnd', legacyConfig: genericLegacyConfig, create: createVirtioRnd },
  { name: 'virtio-console', legacyConfig: virtioConsoleLegacyConfig, create: createVirtioConsole },
  { name: 'virtio-scsi', legacyConfig: virtioScsiLegacyConfig },
  { name: 'virtio-9p', legacyConfig: virtio9pLegacyConfig },
  { name: 'virtio-input', legacyConfig: virtioInputLegacyConfig },
  { name: 'e1000', legacyConfig: netLegacyConfig },
  { name: 'uart', legacyConfig: uartLegacyConfig, create: createPciUart },
  { name: 'fbuf', legacyConfig: genericLegacyConfig, create: createFbuf },
  { name: 'xhci', legacyConfig: xhciLegacyConfig, create: createXhci },
  { name: 'hda', legacyConfig: genericLegacyConfig },
  { name: 'passthru', legacyConfig: passthruLegacyConfig },
  { name: 'dummy', legacyConfig: genericLegacyConfig },
];

const byName = new Map(emulations.map((e) => [e.name, e]));

/** pci_emul_finddev: exact name match. */
export function findPciEmulation(name: string): PciEmulation | undefined {
  return byName.get(name);
}

/** What `-s help` prints, one name per line. */
export function pciEmulationNames(): string[] {
  return emulations.map((e) => e.name);
}
