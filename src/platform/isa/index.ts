// The legacy platform devices behind bhyve's LPC bridge, and the timers KVM lacks, built from the config tree:
// COM1-4, the RTC/CMOS, the ACPI PM block with its timer and SCI, the reset register, the 8042, the POST port,
// the HPET and fw_cfg (lpc.fwcfg=qemu) or fwctl (lpc.fwcfg=bhyve with a boot ROM). Port and MMIO ranges are in README.md next to this file.
import type { ConfigTree } from '../../config/tree.js';
import type { FwcfgUserFile } from '../../config/options.js';
import { encodeE820, type E820Entry } from '../e820.js';
import type { IoSpace, Machine } from '../machine.js';
import type { MemoryLayout } from '../../vm/memmap.js';
import { COM_PORTS, Uart16550, type UartBackend } from './uart16550.js';
import { createUartBackend, TcpBackend } from './uart-backends.js';
import { Rtc } from './rtc.js';
import { PowerManagement, installSigtermPowerButton } from './pm.js';
import { ResetControl } from './reset.js';
import { KeyboardController, setKeyboardOf } from './i8042.js';
import { PostPort } from './post.js';
import { Hpet } from './hpet.js';
import { FwCfg } from './fwcfg.js';
import { Fwctl } from './fwctl.js';

export { COM_PORTS, Uart16550, type UartBackend } from './uart16550.js';
export { createUartBackend, parseTcpEndpoint, StdioBackend, TcpBackend, TtyBackend, UartBackendError } from './uart-backends.js';
export { Rtc } from './rtc.js';
export { PowerManagement, installSigtermPowerButton, type SignalSource } from './pm.js';
export { ResetControl } from './reset.js';
export { KeyboardController } from './i8042.js';
export { PostPort } from './post.js';
export { Hpet, hpetCapabilities } from './hpet.js';
export { FwCfg, parseFwCfgDirectory } from './fwcfg.js';
export { Fwctl } from './fwctl.js';

export class IsaConfigError extends Error {
  override name = 'IsaConfigError';
}

export interface IsaOptions {
  layout: MemoryLayout;
  ncpus: number;
  /** -f files for fw_cfg. */
  fwcfgFiles?: readonly FwcfgUserFile[];
  /** The guest's memory map, published as fw_cfg etc/e820. */
  e820?: readonly E820Entry[];
  /** fw_cfg "bootorder" (one device path per line), only when some device has a bootindex. */
  bootorder?: string;
  /** bhyve's SIGTERM rule for the power button (default true; tests turn it off). */
  sigtermPowerButton?: boolean;
  /** Where a COM port's `path` leads; tests substitute their own. */
  createBackend?: (path: string) => UartBackend;
}

export interface IsaDevices {
  /** COM1..COM4, always present. */
  uarts: Uart16550[];
  /** The backend behind each COM port, if configured. */
  backends: Array<UartBackend | undefined>;
  rtc: Rtc;
  pm: PowerManagement;
  reset: ResetControl;
  kbc: KeyboardController;
  post: PostPort;
  hpet: Hpet;
  /** Present with lpc.fwcfg=qemu; the ACPI table loader files are added to it later with addFile(). */
  fwcfg: FwCfg | undefined;
  /** Present with lpc.fwcfg=bhyve when a boot ROM is configured (bhyve's own firmware asks it for hw.ncpu). */
  fwctl: Fwctl | undefined;
  /** Resolves when every backend is usable (TCP listeners bound); rejects with the first failure. */
  ready: Promise<void>;
  pressPowerButton(): void;
  close(): void;
}

/** Builds every device and claims its ranges on `machine`. */
export function createIsaDevices(hostMachine: Machine, tree: ConfigTree, opts: IsaOptions): IsaDevices {
  const closers: Array<() => void> = [];
  // Every range the devices claim is released again by close() (and if construction fails half-way).
  const machine = trackingMachine(hostMachine, closers);
  const closeAll = (): void => {
    for (const c of closers.splice(0).reverse()) {
      try {
        c();
      } catch {
        // closing is best-effort; one failure must not keep the rest open
      }
    }
  };
  try {
    const makeBackend = opts.createBackend ?? createUartBackend;
    const uarts: Uart16550[] = [];
    const backends: Array<UartBackend | undefined> = [];
    const waits: Promise<void>[] = [];
    for (const com of COM_PORTS) {
      const path = tree.get(`lpc.${com.name}.path`);
      let backend: UartBackend | undefined;
      if (path !== undefined) {
        try {
          backend = makeBackend(path);
        } catch (e) {
          throw new IsaConfigError(
            `Unable to initialize backend '${path}' for LPC device ${com.name}: ${(e as Error).message}`,
          );
        }
        if (backend instanceof TcpBackend) waits.push(backend.ready);
      }
      const uart = Uart16550.attach(machine, com.base, com.irq, backend);
      closers.push(() => uart.close());
      uarts.push(uart);
      backends.push(backend);
    }

    const rtc = new Rtc(machine, { localTime: tree.getBoolDefault('rtc.use_localtime', true) });
    rtc.setMemorySize(opts.layout);
    closers.push(() => rtc.close());

    const pm = new PowerManagement(machine);
    closers.push(() => pm.close());
    if (opts.sigtermPowerButton ?? true) closers.push(installSigtermPowerButton(pm));

    const reset = new ResetControl(machine);
    const kbc = new KeyboardController(machine);
    setKeyboardOf(hostMachine, kbc);
    const post = new PostPort(machine);
    const hpet = new Hpet(machine);
    closers.push(() => hpet.close());

    let fwcfg: FwCfg | undefined;
    let fwctl: Fwctl | undefined;
    const mode = tree.get('lpc.fwcfg') ?? 'bhyve';
    if (mode === 'qemu') {
      fwcfg = new FwCfg(machine, { ncpus: opts.ncpus });
      fwcfg.addFile('opt/bhyve/hw.ncpu', le32(opts.ncpus));
      if (opts.e820) fwcfg.addFile('etc/e820', encodeE820(opts.e820));
      if (opts.bootorder !== undefined) fwcfg.addFile('bootorder', new TextEncoder().encode(opts.bootorder));
      for (const f of opts.fwcfgFiles ?? []) fwcfg.addFile(f.name, f.data);
    } else if (mode === 'bhyve') {
      // bhyve starts fwctl only for its own firmware, i.e. when a boot ROM is loaded.
      if (tree.get('bootrom') !== undefined) fwctl = new Fwctl(machine, Fwctl.defaultValues(opts.ncpus));
    } else {
      throw new IsaConfigError(`invalid fwcfg type "${mode}"`);
    }

    const ready = Promise.all(waits).then(() => undefined);
    ready.catch(() => undefined);
    return {
      uarts,
      backends,
      rtc,
      pm,
      reset,
      kbc,
      post,
      hpet,
      fwcfg,
      fwctl,
      ready,
      pressPowerButton: () => pm.pressPowerButton(),
      close: closeAll,
    };
  } catch (e) {
    closeAll();
    throw e;
  }
}

/** The same machine, but each claimed range also queues its release on `closers` (released last, after devices). */
function trackingMachine(m: Machine, closers: Array<() => void>): Machine {
  const releases: Array<() => void> = [];
  closers.unshift(() => {
    for (const r of releases.splice(0).reverse()) r();
  });
  const io: IoSpace = {
    registerPort: (base, len, handler) => {
      m.io.registerPort(base, len, handler);
      releases.push(() => m.io.unregisterPort(base));
    },
    unregisterPort: (base) => m.io.unregisterPort(base),
    registerMmio: (base, len, handler) => {
      m.io.registerMmio(base, len, handler);
      releases.push(() => m.io.unregisterMmio(base));
    },
    unregisterMmio: (base) => m.io.unregisterMmio(base),
  };
  return { io, irq: m.irq, memory: m.memory, suspend: (how) => m.suspend(how) };
}

function le32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}
