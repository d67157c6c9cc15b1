// Platform descriptions shared by the platform tests: a guest shaped like a typical bhyve command line
// (-c N -m SIZE -s 0,hostbridge -s 3,virtio-blk -s 4,virtio-net -s 31,lpc -l com1,stdio).
import { memoryLayout, GiB } from '../../src/vm/memmap.js';
import type { PlatformDescription } from '../../src/platform/tables.js';

export function platform(over: Partial<PlatformDescription> = {}): PlatformDescription {
  const ncpus = over.ncpus ?? 2;
  const memory = over.memory ?? memoryLayout(2 * GiB);
  return {
    ncpus,
    topology: { sockets: 1, cores: ncpus, threads: 1 },
    memory,
    pciBuses: [
      {
        bus: 0,
        windows: {
          io: { base: 0x2000, limit: 0x2080 },
          mem32: { base: 0xc000_0000, limit: 0xc020_0000 },
          mem64: { base: memory.pci64Base, limit: memory.pci64Base + 0x2000_0000 },
        },
        intx: [
          { slot: 3, pin: 1, pirqLink: 1, gsi: 16 },
          { slot: 4, pin: 1, pirqLink: 2, gsi: 17 },
        ],
      },
    ],
    lpc: { slot: 31, func: 0, comPorts: [{ name: 'COM1', iobase: 0x3f8, irq: 4 }, { name: 'COM2', iobase: 0x2f8, irq: 3 }] },
    hpetCapabilities: 0x8086_a201,
    vmName: 'testvm',
    hostname: 'host.example.org',
    mptable: true,
    fwcfg: 'bhyve',
    acpiTablesInMemory: true,
    ...over,
  };
}
