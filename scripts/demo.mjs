#!/usr/bin/env node
// npm run demo: boots the test guest in its interactive shell under tsbhyve, COM1 on this terminal, with a 64 MiB
// virtio-blk disk (.cache/demo/disk.img, kept between runs). Try `help`, `lspci`, `acpi`, `mem`,
// `disk write 5 hello`, `disk read 5`, then `poweroff` (tsbhyve exits 1, as bhyve does on power-off).
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

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
console.error(`tsbhyve ${args.slice(1).join(' ')}`);
const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
console.error(`tsbhyve exited with status ${r.status}${r.status === 1 ? ' (powered off)' : ''}`);
process.exit(r.status === 1 || r.status === 0 ? 0 : (r.status ?? 1));
