// test-needs: kvm
// vm_openf semantics and the per-name lock across processes.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'tape';

import { Vm, VmmError } from '../../src/vm/index.js';
import { defaultLockDir } from '../../src/vm/lock-dir.js';
import { lockDir, withKvm } from './guest.js';

const child = fileURLToPath(new URL('./fixtures/open-vm.ts', import.meta.url));

function openElsewhere(name: string): { ok: boolean; code?: string; message?: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', child, name, lockDir], { encoding: 'utf8' });
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
}

test('a second process cannot open a VM name that is running', (t) =>
  withKvm(t, () => {
    const name = `lock-${process.pid}`;
    const vm = Vm.open(name, { create: true, lockDir });
    const other = openElsewhere(name);
    t.equal(other.ok, false, 'the second opener is refused');
    t.equal(other.code, 'EEXIST', 'with EEXIST');
    t.match(other.message ?? '', new RegExp(`VM '${name}' is already running \\(process ${process.pid}`), 'naming the holder process');
    t.ok(existsSync(join(lockDir, `${name}.lock`)), 'the lock file exists while the VM is open');
    vm.close();
    t.notOk(existsSync(join(lockDir, `${name}.lock`)), 'close removes the lock file');
    t.deepEqual(openElsewhere(name), { ok: true }, 'after close the name is free again');
    t.notOk(existsSync(join(lockDir, `${name}.lock`)), 'the other process removed it too: lock files do not pile up');
  }));

test('vm_openf flags: CREATE, plain open of a missing VM, REINIT of an open one', (t) =>
  withKvm(t, () => {
    const name = `flags-${process.pid}`;
    t.throws(() => Vm.open(name, { lockDir }), (e: unknown) => e instanceof VmmError && e.code === 'ENOENT', 'missing VM without CREATE is ENOENT');
    const vm = Vm.open(name, { create: true, lockDir });
    t.equal(Vm.open(name, { lockDir }), vm, 'opening an existing name returns the same VM');
    vm.createVcpus(1);
    vm.setupMemory(1 << 20);
    vm.vcpus[0]!.updateRegs({ rip: 0x1234n });
    t.equal(Vm.open(name, { reinit: true, lockDir }), vm, 'REINIT returns it');
    t.equal(vm.vcpus[0]!.getRegs().rip, 0xfff0n, 'REINIT put the vCPU back at the reset vector');
    vm.close();
    t.throws(() => Vm.open('bad/name', { create: true, lockDir }), /invalid VM name/, 'names with a slash are refused');
  }));

test('lock directory default follows XDG_RUNTIME_DIR, then /run for root', (t) => {
  t.equal(defaultLockDir({ XDG_RUNTIME_DIR: '/run/user/1000' }), '/run/user/1000/tsbhyve');
  t.equal(defaultLockDir({ TSBHYVE_RUNDIR: '/x' }), '/x');
  t.end();
});
