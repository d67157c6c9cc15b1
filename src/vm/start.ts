// bhyverun's main flow after option parsing, for tsbhyve: open the VM, set up memory and the vCPUs, build the
// platform (PCI devices, the ISA devices of the LPC bridge and the ones KVM lacks, firmware tables), load the
// guest (direct kernel boot or a boot ROM), run, and turn the way it stopped into bhyve's exit status.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { BhyveError, ExitStatus } from '../config/errors.js';
import type { FwcfgUserFile } from '../config/options.js';
import type { Topology } from '../config/topology.js';
import { kvmHostStatus } from './kvm-host.js';
import type { ConfigTree, Warn } from '../config/tree.js';
import { createIsaDevices, hpetCapabilities, type IsaDevices } from '../platform/isa/index.js';
import { COM_PORTS } from '../platform/isa/uart16550.js';
import { initPci } from '../platform/pci/init.js';
import { buildFirmwareTables, type PciRootBridge } from '../platform/tables.js';
import { BootVars, BootVarsError } from '../platform/bootvars.js';
import type { PciBus } from '../platform/pci/bus.js';
import type { PciFunction } from '../platform/pci/function.js';
import { applyBootPlan, planDirectBoot, LoaderError, type LinearFramebuffer } from '../loader/index.js';
import { FB_SIZE, findFbuf } from '../../devices/fbuf/device.js';
import { VmmError } from './errors.js';
import { BOOTROM_BASE, BOOTROM_SIZE, KVM_PRIVATE, type MemoryLayout } from './memmap.js';
import { E820Type, e820FromLayout, type E820Entry } from '../platform/e820.js';
import { VcpuCap } from './vcpu.js';
import { PROT_EXEC, PROT_READ, Vm } from './vm.js';
import { VmMachine } from './vm-machine.js';

export interface StartRequest {
  tree: ConfigTree;
  topology: Topology;
  vcpuMaps: Array<number[] | undefined>;
  memsize: bigint;
  fwcfgFiles: FwcfgUserFile[];
  warn: Warn;
  /** tests turn off the SIGTERM power button so they can run several VMs in one process */
  sigtermPowerButton?: boolean;
}

const fail = (message: string, prefixed = true): BhyveError => new BhyveError(ExitStatus.ERROR, message, prefixed);

/** The segment number of the boot ROM (vm_create_devmem VM_BOOTROM). */
const SEGID_BOOTROM = 1;
const PAGE = 4096;

/** Runs the VM described by the tree until it stops; resolves with bhyve's exit status. */
export async function startVm(req: StartRequest): Promise<number> {
  const { tree, topology } = req;
  const name = tree.get('name')!;
  const bootrom = tree.get('bootrom');
  const kernel = tree.get('boot.kernel');
  if (req.memsize > BigInt(Number.MAX_SAFE_INTEGER)) throw new BhyveError(ExitStatus.USAGE, `invalid memsize '${tree.get('memory.size')}'`);

  // Name the cause (absent, permission, a PVM host whose kvm_pvm did not bind) rather than a bare errno.
  const kvm = kvmHostStatus();
  if (kvm.level === 'none') throw fail(`vm_openf: ${kvm.reason}`);
  let vm: Vm;
  try {
    vm = Vm.open(name, { create: true, reinit: bootrom !== undefined });
  } catch (e) {
    if (e instanceof VmmError) throw fail(`vm_openf: ${e.message}`);
    throw e;
  }
  let isa: IsaDevices | undefined;
  let machine: VmMachine | undefined;
  let bootvars: BootVars | undefined;
  try {
    vm.setTopology({ sockets: topology.sockets, cores: topology.cores, threads: topology.threads });
    const vcpus = vm.createVcpus(topology.cpus);
    for (const vcpu of vcpus) {
      if (tree.getBoolDefault('x86.vmexit_on_hlt', false)) vcpu.setCapability(VcpuCap.HaltExit, true);
      if (tree.getBoolDefault('x86.vmexit_on_pause', false)) vcpu.setCapability(VcpuCap.PauseExit, true);
      vcpu.setX2apicState(tree.getBoolDefault('x86.x2apic', false));
    }
    vm.setStrict({ io: tree.getBoolDefault('x86.strictio', false), msr: tree.getBoolDefault('x86.strictmsr', true) });

    const layout = vm.setupMemory(Number(req.memsize), {
      wired: tree.getBoolDefault('memory.wired', false),
      inCore: tree.getBoolDefault('memory.guest_in_core', false),
    });
    if (bootrom !== undefined) bootvars = loadBootrom(vm, bootrom, tree.get('bootvars'));

    machine = new VmMachine(vm);
    bootvars?.attach(machine.io);
    const pci = initPci({ tree, machine, layout, bootrom: bootrom !== undefined, warn: req.warn });
    const tables = buildTables(tree, pci, layout, topology, name);
    const e820 = tables?.e820 ?? guestE820(layout);
    isa = createIsaDevices(machine, tree, {
      layout,
      ncpus: topology.cpus,
      fwcfgFiles: req.fwcfgFiles,
      e820,
      sigtermPowerButton: req.sigtermPowerButton ?? true,
      bootorder: bootOrder(tree, pci),
    });
    await isa.ready;
    await Promise.all(pci.all().map((f) => f.model.ready));
    if (tables) {
      for (const blob of tables.blobs) vm.memory.write(blob.gpa, blob.bytes);
      if (isa.fwcfg) {
        isa.fwcfg.addFile('etc/acpi/rsdp', tables.acpiFwCfg.rsdp);
        isa.fwcfg.addFile('etc/acpi/tables', tables.acpiFwCfg.tables);
        isa.fwcfg.addFile('etc/table-loader', tables.acpiFwCfg.loader);
      }
    }

    const bsp = vcpus[0]!;
    if (bootrom !== undefined) {
      bsp.setCapability(VcpuCap.UnrestrictedGuest, true);
      bsp.reset();
    } else if (kernel !== undefined) {
      const plan = planDirectBoot({
        kernel: readInput(kernel, 'boot.kernel'),
        initrd: tree.get('boot.initrd') !== undefined ? readInput(tree.get('boot.initrd')!, 'boot.initrd') : undefined,
        cmdline: tree.get('boot.cmdline') ?? '',
        layout,
        e820,
        rsdpAddress: tables?.acpi.rsdp,
        framebuffer: bootFramebuffer(machine),
      });
      applyBootPlan(plan, vm.memory, bsp);
    }

    const cpusets = req.vcpuMaps.map((m) => m ?? []);
    const result = await vm.run({ cpusets });
    if (machine.exitStats) process.stderr.write(`${machine.exitStats.report()}\n`);
    if (result.status === 4 && result.error) req.warn(result.error);
    return result.status;
  } catch (e) {
    if (e instanceof LoaderError) throw fail(e.message);
    if (e instanceof VmmError) throw fail(e.message);
    if (e instanceof Error && !(e instanceof BhyveError) && e.name !== 'Error') throw fail(e.message);
    throw e;
  } finally {
    isa?.close();
    bootvars?.close();
    machine?.close();
    vm.close();
  }
}

/** The fbuf's framebuffer where its BAR decodes, for the kernel's console (screen_info), or undefined. */
function bootFramebuffer(machine: VmMachine): LinearFramebuffer | undefined {
  const fb = findFbuf(machine);
  const base = fb?.framebufferAddress();
  const s = fb?.scanout();
  if (!fb || base === undefined || !s) return undefined;
  return { base, size: FB_SIZE, width: s.width, height: s.height, stride: s.stride };
}

/**
 * fw_cfg "bootorder": one OpenFirmware path per device with a `bootindex`, lowest index first (bhyve's
 * pci_emul_add_boot_device); undefined when no device asked for one.
 */
function bootOrder(tree: ConfigTree, pci: PciBus): string | undefined {
  const entries: Array<{ index: number; fn: PciFunction }> = [];
  for (const fn of pci.all()) {
    const v = tree.get(`pci.${fn.bus}.${fn.slot}.${fn.func}.bootindex`);
    if (v === undefined) continue;
    const index = Number.parseInt(v, 10);
    if (!Number.isInteger(index) || index < 0) throw fail(`Invalid bootindex ${v} for ${fn.label}`);
    const clash = entries.find((e) => e.index === index);
    if (clash) throw fail(`Could not set bootindex ${index} for ${fn.label}. Bootindex already occupied by ${clash.fn.label}`);
    entries.push({ index, fn });
  }
  if (entries.length === 0) return undefined;
  return entries
    .sort((a, b) => a.index - b.index)
    .map((e) => `/pci@i0cf8/pci@${e.fn.slot},${e.fn.func}\n`)
    .join('');
}

function readInput(path: string, key: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw fail(`${key}: cannot read ${path}: ${code}`);
  }
}

/**
 * The boot ROM at the top of the 16 MiB region below 4 GiB, so its reset vector lands at 0xFFFFFFF0, and the
 * variable store (bootvars) as flash directly below it, as bhyve's bootrom_loadrom places them.
 */
function loadBootrom(vm: Vm, path: string, vars: string | undefined): BootVars | undefined {
  const rom = readInput(path, 'bootrom');
  if (rom.length === 0 || rom.length % PAGE !== 0) throw fail(`ROM size ${rom.length} is not a multiple of the page size`);
  if (rom.length > BOOTROM_SIZE) throw fail(`ROM size ${rom.length} is too large`);
  const romBase = BOOTROM_BASE + BOOTROM_SIZE - rom.length;
  let store: BootVars | undefined;
  if (vars !== undefined) {
    try {
      store = BootVars.open(vars, romBase, BOOTROM_SIZE - rom.length);
    } catch (e) {
      if (e instanceof BootVarsError) throw fail(e.message);
      throw e;
    }
  }
  const seg = vm.createDevmem(SEGID_BOOTROM, 'bootrom', BOOTROM_SIZE);
  seg.bytes.set(rom, BOOTROM_SIZE - rom.length);
  vm.mapMemseg(romBase, SEGID_BOOTROM, BOOTROM_SIZE - rom.length, rom.length, PROT_READ | PROT_EXEC);
  return store;
}

/** ACPI, MP table, SMBIOS and E820 from the platform as built (undefined without ACPI tables). */
function buildTables(tree: ConfigTree, pci: PciBus, layout: MemoryLayout, topology: Topology, name: string) {
  if (!tree.getBoolDefault('acpi_tables', true)) return undefined;
  const lpcFn = pci.all().find((f) => f.name === 'lpc');
  const buses: PciRootBridge[] = pci.windows.map((w) => ({
    bus: w.bus,
    windows: { io: w.io, mem32: w.mem32, mem64: w.mem64 },
    intx: pci
      .all()
      .filter((f) => f.bus === w.bus && f.lintrPin !== 0)
      .map((f) => ({ slot: f.slot, pin: f.lintrPin, pirqLink: f.pirqPin, gsi: f.ioapicPin })),
  }));
  if (!buses.some((b) => b.bus === 0)) buses.unshift({ bus: 0, intx: [] });
  const smbios: Record<string, string> = {};
  for (const section of ['bios', 'system', 'board', 'chassis']) {
    const node = tree.findNode(section);
    if (!node) continue;
    for (const key of node.children.keys()) {
      const v = tree.getIn(node, key);
      if (v !== undefined) smbios[`${section}.${key}`] = v;
    }
  }
  const tables = buildFirmwareTables({
    ncpus: topology.cpus,
    topology,
    memory: layout,
    pciBuses: buses,
    lpc: lpcFn
      ? { slot: lpcFn.slot, func: lpcFn.func, comPorts: COM_PORTS.map((c) => ({ name: c.name.toUpperCase(), iobase: c.base, irq: c.irq })) }
      : undefined,
    hpetCapabilities: hpetCapabilities(),
    smbios,
    uuid: tree.get('uuid'),
    vmName: name,
    hostname: hostname(),
    mptable: tree.getBoolDefault('x86.mptable', true),
    fwcfg: tree.get('lpc.fwcfg') === 'qemu' ? 'qemu' : 'bhyve',
    acpiTablesInMemory: tree.getBoolDefault('acpi_tables_in_memory', true),
  });
  return { ...tables, e820: withKvmReservation(tables.e820) };
}

/** The guest's memory map without firmware tables (acpi_tables=false). */
function guestE820(layout: MemoryLayout): E820Entry[] {
  return withKvmReservation(e820FromLayout(layout));
}

/** KVM's TSS and identity map live in the hole below the IOAPIC: the guest must not put anything there. */
function withKvmReservation(map: readonly E820Entry[]): E820Entry[] {
  return [...map, { base: KVM_PRIVATE.base, length: KVM_PRIVATE.size, type: E820Type.Reserved }].sort((a, b) => a.base - b.base);
}
