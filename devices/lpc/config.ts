// `-l` devices of the LPC bridge (lpc_device_parse): com1..com4 backends, the boot ROM, a TPM, pc-testdev.
import { BhyveError, ExitStatus } from '../../src/config/errors.js';
import type { ConfigTree } from '../../src/config/tree.js';
import { genericLegacyConfig } from '../legacy-config.js';

export const LPC_UART_NAMES = ['com1', 'com2', 'com3', 'com4'] as const;
export const PCTESTDEV_NAME = 'pc-testdev';

/** What `-l help` prints, one name per line. */
export function lpcDeviceNames(): string[] {
  return ['bootrom', ...LPC_UART_NAMES, 'tpm', PCTESTDEV_NAME];
}

/**
 * Applies one `-l` argument to the tree. Returns false for an unknown device or a malformed argument
 * (bhyve then exits 64 with "invalid lpc device configuration"); some errors exit 4 directly, as in bhyve.
 */
export function parseLpcDevice(tree: ConfigTree, opts: string): boolean {
  const parts = opts.split(',');
  const dev = parts[0]!;
  const name = dev.toLowerCase();
  if (name === 'bootrom') {
    const rom = parts[1];
    if (rom === undefined) throw new BhyveError(ExitStatus.ERROR, `invalid bootrom option "${opts}"`);
    tree.set('bootrom', rom);
    const third = parts[2];
    if (third === undefined) return true;
    // A third token with '=' is not a VARS file but the first of the lpc.* options (e.g. fwcfg=qemu).
    const lpc = tree.createNode('lpc');
    if (!third.includes('=')) {
      tree.set('bootvars', third);
      genericLegacyConfig(tree, lpc, parts.length > 3 ? parts.slice(3).join(',') : undefined);
    } else {
      genericLegacyConfig(tree, lpc, parts.slice(2).join(','));
    }
    return true;
  }
  if (name === 'tpm') {
    const tpm = tree.createNode('tpm');
    const type = parts[1];
    if (type === undefined) throw new BhyveError(ExitStatus.ERROR, `invalid tpm type "${opts}"`);
    tree.setIn(tpm, 'type', type);
    const path = parts[2];
    if (path === undefined) throw new BhyveError(ExitStatus.ERROR, `invalid tpm path "${opts}"`);
    tree.setIn(tpm, 'path', path);
    genericLegacyConfig(tree, tpm, parts.length > 3 ? parts.slice(3).join(',') : undefined);
    tree.setInIfUnset(tpm, 'version', '2.0');
    return true;
  }
  const uart = LPC_UART_NAMES.find((u) => u === name);
  if (uart) {
    // Everything after the first comma, commas included, is the backend.
    if (parts.length < 2) return false;
    tree.set(`lpc.${uart}.path`, parts.slice(1).join(','));
    return true;
  }
  if (name === PCTESTDEV_NAME) {
    tree.setBool(`lpc.${PCTESTDEV_NAME}`, true);
    return true;
  }
  return false;
}
