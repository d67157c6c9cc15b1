// Start-up time: process start -> the guest's first line on COM1, for tsbhyve and for QEMU+KVM booting the same
// test guest ELF (QEMU's -kernel takes the PVH entry), in the same run. Prints medians and their ratio.
// Usage: node --import tsx bench/boot/run.ts [rounds]
import { spawn, spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { report } from '../report.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const elf = `${root}firmware/testguest/out/testguest.elf`;
const rounds = Number(process.argv[2] ?? 7);
const FIRST_LINE = 'TESTGUEST READY';

interface Contender {
  name: string;
  command: string;
  args: string[];
}

const contenders: Contender[] = [
  {
    name: 'tsbhyve',
    command: process.execPath,
    args: [`${root}bin/tsbhyve.js`, '-c', '1', '-m', '256M', '-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio',
      '-o', `boot.kernel=${elf}`, '-o', 'boot.cmdline=shell', 'bootbench'],
  },
  // QEMU's microvm machine boots a PVH kernel through qboot: the closest match to a direct kernel boot.
  {
    name: 'qemu-microvm',
    command: 'qemu-system-x86_64',
    args: ['-M', 'microvm', '-accel', 'kvm', '-cpu', 'host', '-smp', '1', '-m', '256', '-kernel', elf, '-append', 'shell',
      '-nographic', '-nodefaults', '-serial', 'stdio', '-no-reboot'],
  },
  // q35 runs SeaBIOS and its linuxboot option ROM first (real mode, which this host's KVM emulates slowly).
  {
    name: 'qemu-q35',
    command: 'qemu-system-x86_64',
    args: ['-M', 'q35', '-accel', 'kvm', '-cpu', 'host', '-smp', '1', '-m', '256', '-kernel', elf, '-append', 'shell',
      '-nographic', '-nodefaults', '-serial', 'stdio', '-no-reboot'],
  },
];

/** Milliseconds from spawn to the first line of guest output; the process is killed then. */
function timeToFirstLine(c: Contender): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(c.command, c.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${c.name}: no "${FIRST_LINE}" within 30 s\n${out}${err}`));
    }, 30_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(FIRST_LINE)) {
        const ms = performance.now() - t0;
        clearTimeout(timer);
        child.kill('SIGKILL');
        resolve(ms);
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const build = spawnSync('make', ['-s', '-C', `${root}firmware/testguest`], { stdio: 'inherit' });
if (build.status !== 0) process.exit(1);
const results = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
for (let r = 0; r < rounds; r++) {
  // Alternate the order so neither side always runs on a warmer cache.
  for (const c of r % 2 ? [...contenders].reverse() : contenders) results.get(c.name)!.push(await timeToFirstLine(c));
}
console.log(`boot to first guest line, ${rounds} rounds (median, min, max in ms)`);
for (const [name, xs] of results) {
  console.log(`${name.padEnd(10)} ${median(xs).toFixed(1).padStart(8)} ${Math.min(...xs).toFixed(1).padStart(8)} ${Math.max(...xs).toFixed(1).padStart(8)}`);
}
report('boot', `Boot to the guest's first line (median of ${rounds})`, [
  { metric: 'boot to first line', unit: 'ms', values: Object.fromEntries([...results].map(([k, xs]) => [k, median(xs)])) },
]);
const ts = median(results.get('tsbhyve')!);
for (const q of ['qemu-microvm', 'qemu-q35']) {
  const ratio = ts / median(results.get(q)!);
  console.log(`ratio tsbhyve/${q} = ${ratio.toFixed(2)} (below 1: tsbhyve reaches the guest's first line sooner)`);
}
