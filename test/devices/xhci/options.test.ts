// xhci on the command line and in the config tree: `-s 30,xhci,tablet` in the dump, the ports devices get, and
// bhyve's start-up errors (unknown USB device, too many devices, a second controller): one line, status 4.
import test from 'tape';
import { parseCommandLine } from '../../../src/cli/parse.js';
import { BhyveError } from '../../../src/config/errors.js';
import { findUsbTablet, XhciController } from '../../../devices/xhci/device.js';
import { readXhciOptions } from '../../../devices/xhci/options.js';
import { cli } from '../../cli/run-cli.js';
import { xhciMachine } from '../../harness/xhci-driver.js';

function ports(...args: string[]) {
  const { tree } = parseCommandLine([...args, 'vm'], () => {});
  return readXhciOptions(tree, tree.findNode('pci.0.30.0')!);
}

function throwsBhyve(t: test.Test, f: () => unknown, expected: string, what: string): void {
  try {
    f();
    t.fail(`${what}: no error`);
  } catch (e) {
    t.ok(e instanceof BhyveError && e.message === expected && e.status === 4 && !e.prefixed, `${what}: "${(e as Error).message}", status 4, unprefixed`);
  }
}

test('config.dump: -s 30,xhci,tablet', async (t) => {
  const r = await cli('-s', '0,hostbridge', '-s', '30,xhci,tablet', '-s', '31,lpc', '-o', 'config.dump=1', 'vm');
  t.equal(r.status, 1, 'dump exits 1');
  t.equal(r.stderr, '', 'nothing on stderr');
  const lines = r.stdout.split('\n');
  t.ok(lines.includes('pci.0.30.0.device=xhci'), 'pci.0.30.0.device=xhci');
  t.ok(lines.includes('pci.0.30.0.slot.1.device=tablet'), 'pci.0.30.0.slot.1.device=tablet');
  const help = await cli('-s', 'help');
  t.ok(help.stdout.split('\n').includes('xhci'), '-s help lists xhci');
});

test('USB devices and their ports', (t) => {
  t.deepEqual(ports('-s', '30,xhci,tablet'), [{ slot: 1, name: 'tablet', port: 5 }], 'one tablet: slot 1 on port 5 (the first USB 2 port)');
  t.deepEqual(
    ports('-s', '30,xhci,tablet,tablet').map((d) => d.port),
    [5, 6],
    'two tablets: ports 5 and 6',
  );
  t.deepEqual(ports('-s', '30,xhci'), [], 'no devices');
  t.deepEqual(
    ports('-s', '30,xhci', '-o', 'pci.0.30.0.slot.3.device=tablet', '-o', 'pci.0.30.0.slot.1.device=tablet').map((d) => [d.slot, d.port]),
    [[1, 5], [3, 6]],
    'slots set with -o are taken in slot order',
  );
  throwsBhyve(t, () => ports('-s', '30,xhci,mouse'), 'Invalid USB emulation "mouse"', 'an unknown USB device');
  throwsBhyve(t, () => ports('-s', '30,xhci,tablet,tablet,tablet,tablet,tablet'), 'pci_xhci max number of USB 2 or 3 devices reached, max 4', 'five tablets');
  throwsBhyve(t, () => ports('-s', '30,xhci', '-o', 'pci.0.30.0.slot.x.device=tablet'), 'xhci: invalid USB slot "x"', 'a slot that is not a number');
  throwsBhyve(t, () => ports('-s', '30,xhci', '-o', 'pci.0.30.0.slot.2.opt=1'), 'xhci: USB slot 2: missing "device" value', 'a slot without a device');
  t.end();
});

test('device start: the controller comes up, errors stop it with status 4', (t) => {
  const { bus, drv } = xhciMachine(['-s', '30,xhci,tablet'], 30);
  t.ok(drv.controller instanceof XhciController, 'the xhci model is registered and starts');
  t.equal(findUsbTablet(bus), drv.controller.tablets()[0], 'findUsbTablet(bus) finds the tablet');
  t.ok(findUsbTablet(bus), '... which exists');
  const none = xhciMachine(['-s', '30,xhci'], 30);
  t.equal(findUsbTablet(none.bus), undefined, 'no tablet configured: undefined');
  throwsBhyve(t, () => xhciMachine(['-s', '30,xhci,keyboard'], 30), 'Invalid USB emulation "keyboard"', 'starting with an unknown USB device');
  throwsBhyve(t, () => xhciMachine(['-s', '29,xhci,tablet', '-s', '30,xhci,tablet'], 30), 'pci_xhci controller already defined', 'a second controller');
  t.end();
});
