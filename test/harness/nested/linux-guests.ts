// Boots real Linux guests for tests: each guest is the firmware/linux test image running a test script,
// under QEMU+KVM (or another VMM command). Where the host's KVM runs unmodified Linux, the guests boot
// right here; elsewhere one L1 machine (see l1.ts) boots them all, one after the other, so a whole test
// file pays for one L1 start. Results come back per guest with timings taken from console markers.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { guestCmdline, linuxGuestImage, testScriptArchive } from '../../../firmware/linux/guest-image.js';
import { cacheRoot } from '../../../firmware/linux/paths.js';
import { LineSplitter, type ConsoleLine } from './console.js';
import { hostKvmVerdict } from './detect.js';
import { runInL1 } from './l1.js';
import type { LinuxImage } from '../../../firmware/linux/image.js';

/**
 * What a VMM command needs to boot one guest. The paths are shell words for use inside double quotes
 * ("$scratch/..."): the batch copies the image to a scratch directory first, which in L1 is memory,
 * because reading 60 MB through 9p for every boot costs seconds.
 */
export interface GuestBoot {
  name: string;
  /** The bzImage, for a direct kernel boot by the Linux boot protocol. */
  kernel: string;
  /** The same kernel as an ELF with a PVH entry point (quicker to boot where the VMM supports it). */
  vmlinux: string;
  initrd: string;
  cmdline: string;
  memMiB: number;
  cpus: number;
  /** Blank raw disk images, already created. */
  disks: string[];
}

export interface LinuxGuest {
  /** Letters, digits, '-' and '_': it names markers and files. */
  name: string;
  /** POSIX sh run by the guest's init as /test.sh; its exit status is the guest's result. */
  script: string;
  cpus?: number;
  memMiB?: number;
  /** Blank raw disks (sizes in MiB) for the guest, created fresh for each boot. */
  disks?: number[];
  /** Extra kernel command line words. */
  cmdline?: string;
  /** The shell command that boots the guest (default: QEMU with KVM, see qemuKvmCommand). */
  vmm?: (boot: GuestBoot) => string;
}

export interface LinuxGuestResult {
  name: string;
  /** The test script's exit status, or null when the guest never reported one. */
  status: number | null;
  /** The VMM command's exit status (124 or 137 after its timeout). */
  vmmStatus: number | null;
  /** What the test script printed. */
  output: string;
  /** Every line of the guest's run (VMM messages included), for diagnosis. */
  console: string;
  /** Milliseconds from starting the VMM to the guest's init starting / being ready to run the script. */
  initMs: number | null;
  readyMs: number | null;
  /** The guest kernel's own uptime when init started (its boot without the VMM's and firmware's share). */
  kernelMs: number | null;
  /** Milliseconds from starting the VMM to its exit. */
  totalMs: number | null;
}

export interface LinuxGuestRun {
  where: 'host' | 'l1';
  /** Why the guests ran where they did. */
  reason: string;
  /** L1's start-up time (QEMU start to ready), when it was used. */
  l1ReadyMs?: number;
  /** Wall time of the whole batch. */
  totalMs: number;
  guests: LinuxGuestResult[];
}

export interface LinuxGuestOptions {
  /** Per-guest limit in seconds (default 120); the VMM is killed after it. */
  guestTimeoutSec?: number;
  /** Limit for the whole batch in milliseconds (default: guests x guestTimeout + 2 minutes). */
  timeoutMs?: number;
  /** Called with every line as it arrives (L1's console excluded). */
  onLine?: (line: ConsoleLine) => void;
  /** Force where the guests run (default: detected). */
  where?: 'host' | 'l1';
  /** CPUs of the L1 machine when the guests run inside one (default 1). */
  l1Cpus?: number;
  /** The guest image (default linuxGuestImage: the cloud kernel; linuxGenericGuestImage for AHCI). */
  image?: () => LinuxImage;
}

const namePattern = /^[A-Za-z0-9_-]+$/;

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

const qboot = '/usr/share/qemu/qboot.rom';

/** QEMU with KVM booting the guest's ELF kernel through PVH, serial console on stdout, nothing else attached. */
export function qemuKvmCommand(b: GuestBoot): string {
  const args = [
    'qemu-system-x86_64', '-accel', 'kvm', '-cpu', 'host', '-m', String(b.memMiB), '-smp', String(b.cpus),
    '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
    '-kernel', `"${b.vmlinux}"`, '-initrd', `"${b.initrd}"`, '-append', shellQuote(b.cmdline),
  ];
  // qboot (Debian's qemu-system-data) starts a kernel sooner than SeaBIOS: under nested KVM each of
  // SeaBIOS's port accesses is an exit, worth about 1.5 s per boot here.
  if (existsSync(qboot)) args.push('-bios', qboot);
  // Disk paths are shell expressions on purpose ("$scratch/x.img"): double quotes keep them expandable.
  for (const d of b.disks) args.push('-drive', `"file=${d},if=virtio,format=raw"`);
  return args.join(' ');
}

/** Where the batch keeps the shared image files. */
export interface BatchImage {
  kernel: string;
  vmlinux: string;
  initrd: string;
}

/** One guest of a batch: its boot, the VMM command, its disks and its test-script archive file. */
export interface BatchEntry {
  boot: GuestBoot;
  command: string;
  disksMiB: number[];
  scriptArchive: string;
}

/** Scratch-directory names of the image files, as GuestBoot shell words. */
export const scratchImage: BatchImage = {
  kernel: '$scratch/bzImage',
  vmlinux: '$scratch/vmlinux',
  initrd: '$scratch/base.cpio',
};

/**
 * The sh script that boots every guest in turn, framing each with START/END markers. It copies the
 * image files a command uses into the scratch directory once, and gives each guest its own initramfs:
 * the image's followed by the guest's test-script archive.
 */
export function batchScript(image: BatchImage, entries: readonly BatchEntry[], timeoutSec: number): string {
  const out = [
    '# Generated by test/harness/nested/linux-guests.ts: boots each Linux test guest in turn.',
    'scratch=$(mktemp -d "${TMPDIR:-/tmp}/tsbhyve-guests.XXXXXX") || exit 1',
    'trap \'rm -rf "$scratch"\' EXIT',
  ];
  const used = entries.map((e) => e.command).join('\n');
  for (const key of ['kernel', 'vmlinux'] as const) {
    if (used.includes(scratchImage[key])) out.push(`cp ${shellQuote(image[key])} "${scratchImage[key]}" || exit 1`);
  }
  out.push(`cp ${shellQuote(image.initrd)} "${scratchImage.initrd}" || exit 1`);
  for (const { boot, command, disksMiB, scriptArchive } of entries) {
    out.push(`echo "TSBHYVE-L2-START name=${boot.name}"`);
    out.push(`cat "${scratchImage.initrd}" ${shellQuote(scriptArchive)} > "${boot.initrd}"`);
    boot.disks.forEach((d, i) => out.push(`truncate -s ${disksMiB[i]}M "${d}"`));
    // stdin from /dev/null: a VMM must not put the console it inherited into raw mode.
    // --foreground keeps the VMM in our process group, so the batch's own time limit reaches it too.
    out.push(`timeout --foreground -s KILL ${timeoutSec} ${command} </dev/null 2>&1`);
    out.push(`echo "TSBHYVE-L2-END name=${boot.name} vmm-status=$?"`);
    out.push(`rm -f "${boot.initrd}"${boot.disks.map((d) => ` "${d}"`).join('')}`);
  }
  return out.join('\n') + '\n';
}

const markers = {
  start: /TSBHYVE-L2-START name=(\S+)/,
  end: /TSBHYVE-L2-END name=(\S+) vmm-status=(\d+)/,
  init: /TSBHYVE-GUEST-INIT uptime=([\d.]+)/,
  ready: /TSBHYVE-GUEST-READY /,
  exit: /TSBHYVE-GUEST-EXIT status=(\d+)/,
};

/** Splits the batch's timestamped output into one result per guest. */
export function parseBatch(lines: readonly ConsoleLine[], names: readonly string[]): LinuxGuestResult[] {
  const results = new Map<string, LinuxGuestResult>();
  for (const name of names) {
    results.set(name, { name, status: null, vmmStatus: null, output: '', console: '', initMs: null, readyMs: null, kernelMs: null, totalMs: null });
  }
  let current: LinuxGuestResult | undefined;
  let startMs = 0;
  let inScript = false;
  const output: string[] = [];
  const consoleLines: string[] = [];
  for (const { ms, text } of lines) {
    let m: RegExpExecArray | null;
    if ((m = markers.start.exec(text))) {
      current = results.get(m[1]!);
      startMs = ms;
      inScript = false;
      output.length = 0;
      consoleLines.length = 0;
      continue;
    }
    if (!current) continue;
    if ((m = markers.end.exec(text))) {
      current.vmmStatus = Number(m[2]);
      current.totalMs = ms - startMs;
      current.output = output.join('\n');
      current.console = consoleLines.join('\n');
      current = undefined;
      continue;
    }
    consoleLines.push(text);
    if ((m = markers.init.exec(text))) {
      current.initMs = ms - startMs;
      current.kernelMs = Number(m[1]) * 1000;
    } else if (markers.ready.test(text)) {
      current.readyMs = ms - startMs;
      inScript = true;
    } else if ((m = markers.exit.exec(text))) {
      current.status = Number(m[1]);
      inScript = false;
    } else if (inScript) output.push(text);
  }
  // A guest cut off mid-run still shows what it printed.
  if (current) {
    current.output = output.join('\n');
    current.console = consoleLines.join('\n');
  }
  return names.map((n) => results.get(n)!);
}

async function runOnHost(script: string, timeoutMs: number, onLine?: (l: ConsoleLine) => void): Promise<ConsoleLine[]> {
  const startedAt = performance.now();
  const lines: ConsoleLine[] = [];
  const splitter = new LineSplitter(startedAt, (l) => {
    lines.push(l);
    onLine?.(l);
  });
  // Its own process group, so that a timeout ends the VMM it started along with it.
  const child = spawn('sh', [script], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout.on('data', (c: Buffer) => splitter.push(c));
  child.stderr.on('data', (c: Buffer) => splitter.push(c));
  const timer = setTimeout(() => {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  }, timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', () => resolve());
    });
  } finally {
    clearTimeout(timer);
  }
  splitter.end();
  return lines;
}

/**
 * Boots each guest once, in order, and returns their results. The guest image is built (or taken
 * from the cache) first; each guest's script is appended to its initramfs as /test.sh.
 */
export async function runLinuxGuests(guests: readonly LinuxGuest[], opts: LinuxGuestOptions = {}): Promise<LinuxGuestRun> {
  for (const g of guests) if (!namePattern.test(g.name)) throw new Error(`bad guest name ${JSON.stringify(g.name)}`);
  const names = guests.map((g) => g.name);
  if (new Set(names).size !== names.length) throw new Error('guest names must be unique');

  const verdict = await hostKvmVerdict();
  const where = opts.where ?? (verdict.runsUnmodifiedLinux ? 'host' : 'l1');
  const reason = opts.where ? `forced to ${opts.where}` : verdict.reason;
  const guestTimeoutSec = opts.guestTimeoutSec ?? 120;
  const timeoutMs = opts.timeoutMs ?? guests.length * guestTimeoutSec * 1000 + 120_000;

  const image = (opts.image ?? linuxGuestImage)();
  // The run directory is inside the project so that L1 sees it at the same path.
  const runs = join(cacheRoot, 'nested', 'runs');
  mkdirSync(runs, { recursive: true });
  const runDir = mkdtempSync(join(runs, 'guests-'));
  try {
    const entries: BatchEntry[] = guests.map((g) => {
      const scriptArchive = join(runDir, `${g.name}.test.cpio`);
      writeFileSync(scriptArchive, testScriptArchive(g.script));
      const boot: GuestBoot = {
        name: g.name,
        kernel: scratchImage.kernel,
        vmlinux: image.vmlinux ? scratchImage.vmlinux : scratchImage.kernel,
        initrd: `$scratch/${g.name}.cpio`,
        cmdline: `${guestCmdline} ${g.cmdline ?? ''}`.trim(),
        memMiB: g.memMiB ?? 256,
        cpus: g.cpus ?? 1,
        disks: (g.disks ?? []).map((_, i) => `$scratch/${g.name}-${i}.img`),
      };
      return { boot, command: (g.vmm ?? qemuKvmCommand)(boot), disksMiB: g.disks ?? [], scriptArchive };
    });
    const script = join(runDir, 'guests.sh');
    const files: BatchImage = { kernel: image.kernel, vmlinux: image.vmlinux ?? image.kernel, initrd: image.initrd };
    writeFileSync(script, batchScript(files, entries, guestTimeoutSec));

    const startedAt = performance.now();
    if (where === 'host') {
      const lines = await runOnHost(script, timeoutMs, opts.onLine);
      return { where, reason, totalMs: performance.now() - startedAt, guests: parseBatch(lines, names) };
    }
    const l1 = await runInL1(`sh ${shellQuote(script)}`, { timeoutMs, onLine: opts.onLine, cpus: opts.l1Cpus });
    return {
      where,
      reason,
      l1ReadyMs: l1.readyMs,
      totalMs: performance.now() - startedAt,
      guests: parseBatch(l1.lines, names),
    };
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
}
