// Unit tests of the guest harness's pieces that need no VM: console clean-up, the batch script and the
// parsing of its output into per-guest results, the QEMU command line, and the KVM verdict.
import test from 'tape';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { cleanConsoleText, LineSplitter, type ConsoleLine } from './nested/console.js';
import { hostKvmVerdict } from './nested/detect.js';
import { batchScript, parseBatch, qemuKvmCommand, runLinuxGuests, type GuestBoot } from './nested/linux-guests.js';

test('console: SeaBIOS screen control and carriage returns are removed; lines are split with times', (t) => {
  t.equal(cleanConsoleText('\x1bc\x1b[?7l\x1b[2JBooting from ROM..\r'), 'Booting from ROM..');
  t.equal(cleanConsoleText('\x1b[0mplain\x1b[1;31m red\x1b[0m'), 'plain red');
  const got: ConsoleLine[] = [];
  const s = new LineSplitter(performance.now(), (l) => got.push(l));
  s.push('one\r\ntw');
  s.push('o\nthree');
  s.end();
  t.deepEqual(got.map((l) => l.text), ['one', 'two', 'three']);
  t.ok(got.every((l, i) => l.ms >= 0 && (i === 0 || l.ms >= got[i - 1]!.ms)), 'times never go backwards');
  t.end();
});

const boot: GuestBoot = {
  name: 'disk-test',
  kernel: '$scratch/bzImage',
  vmlinux: '$scratch/vmlinux',
  initrd: '$scratch/disk-test.cpio',
  cmdline: "console=ttyS0 quiet it's",
  memMiB: 256,
  cpus: 2,
  disks: ['$scratch/disk-test-0.img'],
};

test('qemu command: PVH kernel from the scratch copy, quoted command line, disks as shell words', (t) => {
  const cmd = qemuKvmCommand(boot);
  t.ok(cmd.includes('-kernel "$scratch/vmlinux"'), 'the ELF kernel, expanded by the shell');
  t.ok(cmd.includes(`-append 'console=ttyS0 quiet it'\\''s'`), 'the command line is one single-quoted word');
  t.ok(cmd.includes('-drive "file=$scratch/disk-test-0.img,if=virtio,format=raw"'), 'disk path expands in the shell');
  t.ok(cmd.includes('-accel kvm') && cmd.includes('-smp 2') && cmd.includes('-m 256'), 'KVM, vCPUs, memory');
  t.end();
});

test('batch script: sh runs it, staging the image, building each initramfs, making disks', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'batch-'));
  try {
    writeFileSync(join(dir, 'vmlinux'), 'ELF');
    writeFileSync(join(dir, 'base.cpio'), 'BASE');
    writeFileSync(join(dir, 'test.cpio'), 'TAIL');
    // A stand-in VMM: checks the staged kernel, the guest's initramfs and its disk, then prints what a
    // guest would.
    const fake = [
      `sh -c 'test "$(cat "$0")" = ELF && test "$(cat "$1")" = BASETAIL && test "$(stat -c %s "$2")" = 1048576`,
      '&& echo "TSBHYVE-GUEST-INIT uptime=0.5" && echo TSBHYVE-GUEST-READY uptime=0.6 && echo hello',
      `&& echo TSBHYVE-GUEST-EXIT status=3' "$scratch/vmlinux" "$scratch/disk-test.cpio" "$scratch/disk-test-0.img"`,
    ].join(' ');
    const script = batchScript(
      { kernel: join(dir, 'bzImage-not-used'), vmlinux: join(dir, 'vmlinux'), initrd: join(dir, 'base.cpio') },
      [{ boot, command: fake, disksMiB: [1], scriptArchive: join(dir, 'test.cpio') }],
      10,
    );
    t.doesNotThrow(() => execFileSync('sh', ['-n'], { input: script }), 'the script is valid sh');
    t.notOk(script.includes('bzImage-not-used'), 'a kernel no command uses is not copied');
    const out = execFileSync('sh', ['-c', script], { encoding: 'utf8' });
    const lines = out.trim().split('\n').map((text, i) => ({ ms: i * 100, text }));
    const [r] = parseBatch(lines, ['disk-test']);
    t.equal(r!.status, 3, 'the guest script status');
    t.equal(r!.vmmStatus, 0, 'the VMM status (its checks of the staged files passed)');
    t.equal(r!.output, 'hello', 'only the script output');
    t.equal(r!.initMs, 100, 'init time from the start marker');
    t.equal(r!.kernelMs, 500, "the guest kernel's uptime at init");
    t.equal(r!.readyMs, 200, 'ready time from the start marker');
    t.equal(r!.totalMs, 500, 'total time to the end marker');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  t.end();
});

test('parse: a guest that never reported keeps null status and its console', (t) => {
  const lines = [
    'L1 noise',
    'TSBHYVE-L2-START name=a',
    'qemu: something failed',
    'TSBHYVE-L2-END name=a vmm-status=1',
    'TSBHYVE-L2-START name=b',
    'TSBHYVE-GUEST-INIT uptime=1',
  ].map((text, i) => ({ ms: i, text }));
  const [a, b, c] = parseBatch(lines, ['a', 'b', 'c']);
  t.equal(a!.status, null, 'no status without the exit marker');
  t.equal(a!.vmmStatus, 1, 'the VMM failure is reported');
  t.equal(a!.console, 'qemu: something failed', 'with its message');
  t.equal(b!.vmmStatus, null, 'a guest cut off has no VMM status');
  t.equal(b!.initMs, 1, 'but what it did reach is recorded');
  t.equal(c!.totalMs, null, 'a guest never started has nothing');
  t.end();
});

test('detect: overrides, the L1 marker, and the verdict on this machine', async (t) => {
  t.equal((await hostKvmVerdict({ TSBHYVE_HOST_KVM: 'pvm' })).runsUnmodifiedLinux, false, 'forced pvm');
  const kvm = existsSync('/dev/kvm');
  t.equal((await hostKvmVerdict({ TSBHYVE_HOST_KVM: 'real' })).runsUnmodifiedLinux, true, 'forced real');
  t.equal((await hostKvmVerdict({ TSBHYVE_IN_L1: '1' })).runsUnmodifiedLinux, kvm, 'inside L1 with /dev/kvm');
  const here = await hostKvmVerdict({});
  const expected = kvm && !existsSync('/sys/module/kvm_pvm');
  t.equal(here.runsUnmodifiedLinux, expected, `this machine: ${here.reason}`);
});

test('time limits: a hung VMM is killed by its own limit, and by the batch limit with its children', async (t) => {
  let started = performance.now();
  const own = await runLinuxGuests([{ name: 'hang', script: 'true', vmm: () => 'sleep 300' }], {
    where: 'host',
    guestTimeoutSec: 1,
  });
  t.equal(own.guests[0]!.vmmStatus, 137, 'the per-guest limit kills the VMM (128 + SIGKILL)');
  t.ok(performance.now() - started < 150_000, 'long before the 300 s sleep would have ended');

  started = performance.now();
  const batch = await runLinuxGuests([{ name: 'hang', script: 'true', vmm: () => 'sleep 300' }], {
    where: 'host',
    timeoutMs: 1_000,
  });
  t.equal(batch.guests[0]!.vmmStatus, null, 'the batch limit stops everything before the guest ends');
  t.ok(performance.now() - started < 150_000, 'long before the 300 s sleep would have ended: no VMM kept the output open');
});
