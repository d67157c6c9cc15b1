// The PCI uart (`-s S,uart[,BACKEND]`): bhyve's pci_uart.c, a 16550 behind a PCI function with the IDs of a
// one-port SIIG CyberSerial card (131F:2000, class 07/00) that guests' serial drivers know, its eight registers in
// an I/O BAR0 and its interrupt on INTx. The 16550 model and the backends (stdio, a tty, tcp=IP:PORT) are the LPC
// COM ports' own (src/platform/isa).
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import { createUartBackend, TcpBackend } from '../../src/platform/isa/uart-backends.js';
import { Uart16550, UART_REG_COUNT, type UartBackend } from '../../src/platform/isa/uart16550.js';
import { PCIC_SIMPLECOMM, PCIR_CLASS, PCIR_DEVICE, PCIR_SUBCLASS, PCIR_VENDOR } from '../../src/platform/pci/regs.js';
import type { PciDeviceFactory } from '../device.js';

export const PCI_UART_VENDOR = 0x131f;
export const PCI_UART_DEVICE = 0x2000;
export const PCI_UART_BAR = 0;

export const createPciUart: PciDeviceFactory = (ctx) => {
  const { fn } = ctx;
  fn.set16(PCIR_VENDOR, PCI_UART_VENDOR);
  fn.set16(PCIR_DEVICE, PCI_UART_DEVICE);
  fn.set8(PCIR_CLASS, PCIC_SIMPLECOMM);
  fn.set8(PCIR_SUBCLASS, 0); // 16450-compatible serial controller
  fn.requestLintr();
  ctx.bus.allocBar(fn, PCI_UART_BAR, 'io', UART_REG_COUNT);

  const path = ctx.tree.getIn(ctx.node, 'path');
  let backend: UartBackend | undefined;
  if (path !== undefined) {
    try {
      backend = createUartBackend(path);
    } catch (e) {
      throw new BhyveError(ExitStatus.ERROR, `Unable to initialize backend '${path}' for pci uart at ${fn.slot}:${fn.func}: ${(e as Error).message}`, false);
    }
  }
  // The INTx pin follows the 16550's interrupt output, as the COM ports drive their ISA line.
  const uart = new Uart16550(backend, { set: (_source, level) => (level ? fn.assertLintr() : fn.deassertLintr()) });
  ctx.machine.dataPath?.onClose(() => uart.close());
  const ready =
    backend instanceof TcpBackend
      ? backend.ready.catch((e: Error) => {
          throw new BhyveError(ExitStatus.ERROR, `Unable to initialize backend '${path}' for pci uart at ${fn.slot}:${fn.func}: ${e.message}`, false);
        })
      : undefined;
  ready?.catch(() => undefined); // start-up awaits it; an unobserved failure must not end the process
  return {
    barRead: (_bar, offset, size) => uart.access(false, offset, size, 0),
    barWrite: (_bar, offset, size, value) => void uart.access(true, offset, size, value),
    ready,
  };
};
