// npm run demo: boots the test guest in its interactive shell under tsbhyve, COM1 on this terminal, with a 64 MiB
// virtio-blk disk (.cache/demo/disk.img, kept between runs). Try `help`, `lspci`, `acpi`, `mem`,
// `disk write 5 hello`, `disk read 5`, then `poweroff`: tsbhyve exits 1, as bhyve does on power-off, and so does
// this script (it returns tsbhyve's status).
//
// On a host without a usable /dev/kvm (src/vm/kvm-host.ts says why) the same command runs inside the nested-KVM
// L1 (test/harness/nested): QEMU TCG with an emulated SVM CPU, whose kvm_amd gives tsbhyve a /dev/kvm. The
// terminal is then in raw mode and every key goes to the guest, except Ctrl-C, which ends the demo (status 130).
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { kvmHostStatus } from '../src/vm/kvm-host.js';
import { L1Error, runInL1 } from '../test/harness/nested/l1.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const elf = `${root}firmware/testguest/out/testguest.elf`;
const build = spawnSync('make', ['-s', '-C', `${root}firmware/testguest`], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const disk = `${root}.cache/demo/disk.img`;
if (!existsSync(disk)) {
  mkdirSync(`${root}.cache/demo`, { recursive: true });
  const fd = openSync(disk, 'w');
  ftruncateSync(fd, 64 * 1024 * 1024);
  closeSync(fd);
}
const args = [
  `${root}bin/tsbhyve.js`,
  '-c', '2', '-m', '512M',
  '-s', '0,hostbridge',
  '-s', `3,virtio-blk,${disk}`,
  '-s', '31,lpc',
  '-l', 'com1,stdio',
  '-o', `boot.kernel=${elf}`,
  '-o', 'boot.cmdline=shell',
  'demo',
];

const kvm = kvmHostStatus();
let interrupted = false;
const status = kvm.level === 'none' ? await nested() : direct();
if (!interrupted) console.error(`tsbhyve exited with status ${status}${status === 1 ? ' (powered off)' : ''}`);
process.exit(status);

function direct(): number {
  console.error(`tsbhyve ${args.slice(1).join(' ')}`);
  const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
  return r.status ?? 4;
}

async function nested(): Promise<number> {
  const qemu = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  if (qemu.status !== 0) {
    console.error(`demo: ${kvm.reason}, and qemu-system-x86_64 is not installed for the nested-KVM L1`);
    return 4;
  }
  console.error(`demo: ${kvm.reason}; booting it inside a nested-KVM L1 (QEMU TCG), slower than KVM. Ctrl-C ends it.`);
  console.error(`tsbhyve ${args.slice(1).join(' ')}`);
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const stop = new AbortController();
  const tty = process.stdin.isTTY ? process.stdin : undefined;
  const restore = () => tty?.setRawMode(false);
  process.on('exit', restore);
  tty?.setRawMode(true);
  const onKey = (chunk: Buffer) => {
    if (chunk.includes(0x03)) stop.abort();
  };
  process.stdin.on('data', onKey);
  try {
    const r = await runInL1(`exec node ${args.map(q).join(' ')}`, {
      timeoutMs: 24 * 3600_000,
      scratchMiB: 0,
      interactive: { input: process.stdin, output: process.stdout },
      signal: stop.signal,
    });
    return r.status;
  } catch (e) {
    if (stop.signal.aborted) {
      restore();
      interrupted = true;
      process.stderr.write('\r\ndemo: ended with Ctrl-C (the L1 and tsbhyve in it were stopped)\n');
      return 130;
    }
    if (e instanceof L1Error) {
      process.stderr.write(`\r\ndemo: ${e.message}\n${e.console.split('\n').slice(-20).join('\n')}\n`);
      return 4;
    }
    throw e;
  } finally {
    restore();
    process.stdin.off('data', onKey);
    process.stdin.pause();
  }
}
