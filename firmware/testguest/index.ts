// Host-side helpers for the test guest: build it, run it under QEMU, and parse what it prints
// on COM1. The guest's line formats are documented in firmware/testguest/README.md.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kvmHostStatus } from '../../src/vm/kvm-host.js';

/** How long a test guest run may take before it is killed: a bound on a hang, generous for a loaded nested L1. */
const DEFAULT_RUN_TIMEOUT_MS = 180_000;

/** The firmware/testguest directory, found from this file whether run from source or a build output. */
export function testguestDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'Makefile')) && existsSync(join(dir, 'link.ld'))) return dir;
    const candidate = join(dir, 'firmware', 'testguest');
    if (existsSync(join(candidate, 'Makefile'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('firmware/testguest not found above ' + fileURLToPath(import.meta.url));
}

/** Path of out/testguest.elf, running make first (make rebuilds only what changed). */
export function testguestPath(): string {
  const dir = testguestDir();
  execFileSync('make', ['-s', '-C', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  return join(dir, 'out', 'testguest.elf');
}

export type CheckStatus = 'PASS' | 'FAIL';

export interface TestguestCheck {
  suite: string;
  status: CheckStatus;
  details: string;
}

export interface TestguestResult {
  /** The first suite that printed a check or DONE line ('' when none). */
  suite: string;
  /** Counted from the PASS and FAIL lines themselves. */
  pass: number;
  fail: number;
  checks: TestguestCheck[];
  /** The guest's own summary ("TESTGUEST <suite> DONE pass=N fail=M"), null when it never got there. */
  done: { pass: number; fail: number } | null;
  /** "TESTGUEST READY ..." seen: the guest reached its main program. */
  ready: boolean;
  /** The details of a "TESTGUEST EXCEPTION ..." report, if the guest crashed. */
  exception: string | null;
  /** "TESTGUEST <suite> INFO ..." lines (context that is not a check). */
  info: string[];
  /** Key/value pairs of the "TESTGUEST-INFO ..." line. */
  platform: Record<string, string>;
}

function keyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/([A-Za-z0-9_.-]+)=("[^"]*"|\S*)/g)) out[m[1]] = m[2].replace(/^"|"$/g, '');
  return out;
}

/**
 * Parses the guest's console output. Lines may carry firmware noise before "TESTGUEST"
 * (BIOS messages have no trailing newline) and end in "\r\n".
 */
export function parseTestguestOutput(text: string): TestguestResult {
  const result: TestguestResult = {
    suite: '', pass: 0, fail: 0, checks: [], done: null, ready: false, exception: null, info: [], platform: {},
  };
  for (const raw of text.split(/\r?\n/)) {
    const at = raw.indexOf('TESTGUEST');
    if (at < 0) continue;
    const line = raw.slice(at).replace(/\r$/, '');
    let m: RegExpExecArray | null;
    if (/^TESTGUEST READY\b/.test(line)) {
      result.ready = true;
    } else if ((m = /^TESTGUEST EXCEPTION (.*)$/.exec(line))) {
      result.exception = m[1];
    } else if ((m = /^TESTGUEST-INFO (.*)$/.exec(line))) {
      result.platform = keyValues(m[1]);
    } else if ((m = /^TESTGUEST (\S+) (PASS|FAIL)(?: (.*))?$/.exec(line))) {
      const status = m[2] as CheckStatus;
      result.checks.push({ suite: m[1], status, details: m[3] ?? '' });
      if (!result.suite) result.suite = m[1];
      if (status === 'PASS') result.pass++;
      else result.fail++;
    } else if ((m = /^TESTGUEST (\S+) DONE pass=(\d+) fail=(\d+)/.exec(line))) {
      if (!result.suite) result.suite = m[1];
      result.done = { pass: Number(m[2]), fail: Number(m[3]) };
    } else if ((m = /^TESTGUEST (\S+) INFO (.*)$/.exec(line))) {
      result.info.push(m[2]);
    }
  }
  return result;
}

export interface BenchResult {
  device: string;
  workload: string;
  /** Every key=value on the line, as text. */
  values: Record<string, string>;
  /** The values that are numbers (hex 0x.. included). */
  numbers: Record<string, number>;
}

/** Parses every "TESTGUEST-BENCH key=value ..." line. */
export function parseBench(text: string): BenchResult[] {
  const out: BenchResult[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const at = raw.indexOf('TESTGUEST-BENCH ');
    if (at < 0) continue;
    const values = keyValues(raw.slice(at + 'TESTGUEST-BENCH '.length));
    const numbers: Record<string, number> = {};
    for (const [k, v] of Object.entries(values)) {
      if (/^-?\d+(\.\d+)?$/.test(v)) numbers[k] = Number(v);
      else if (/^0x[0-9a-fA-F]+$/.test(v)) numbers[k] = parseInt(v, 16);
    }
    out.push({ device: values.device ?? '', workload: values.workload ?? '', values, numbers });
  }
  return out;
}

export type QemuAccel = 'kvm' | 'tcg';
/** qboot boots in well under a second here; SeaBIOS (QEMU's default) takes 10-25 s on this nested host. */
export type QemuFirmware = 'qboot' | 'seabios';

export interface QemuRunOptions {
  append: string;
  smp?: number;
  memMiB?: number;
  accel?: QemuAccel;
  firmware?: QemuFirmware;
  timeoutMs?: number;
  /** Text typed on COM1, one string per line, each sent after the previous prompt appears. */
  shellInput?: string[];
  /** Extra QEMU arguments (devices, ...). */
  extraArgs?: string[];
  /**
   * Called with the whole output so far each time more arrives; `qmp` sends one QMP command (a JSON text such as
   * '{"execute":"system_powerdown"}') once the QMP session is up.
   */
  onOutput?: (output: string, qmp: (command: string) => void) => void;
}

export interface QemuRunResult {
  output: string;
  /** QEMU's exit code, null when it was killed. */
  code: number | null;
  /** The signal that ended QEMU (SIGKILL on a time-out; SIGSEGV or SIGABRT when QEMU itself crashed), else null. */
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  accel: QemuAccel;
  /** Milliseconds from spawning QEMU to the guest's first line ("TESTGUEST READY"), null if never. */
  firstLineMs: number | null;
  elapsedMs: number;
  /** QMP SHUTDOWN event reason: "guest-shutdown" (S5), "guest-reset" (reset or triple fault with -no-reboot), ... */
  shutdownReason: string | null;
  stderr: string;
}

export const QBOOT_ROM = '/usr/share/qemu/qboot.rom';

/** QEMU's argument list for the guest (q35, COM1 on stdio, no NIC, exit on reset). */
export function qemuArgs(elf: string, opts: QemuRunOptions, accel: QemuAccel, qmpSocket?: string): string[] {
  const args = [
    '-M', 'q35', '-accel', accel, '-kernel', elf, '-append', opts.append,
    '-smp', String(opts.smp ?? 2), '-m', String(opts.memMiB ?? 256),
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-nic', 'none', '-no-reboot',
  ];
  if ((opts.firmware ?? 'qboot') === 'qboot') args.push('-bios', QBOOT_ROM);
  // wait=on: QEMU starts the guest only once our QMP client is connected, so no event is missed.
  if (qmpSocket) args.push('-qmp', `unix:${qmpSocket},server=on,wait=on`);
  if (opts.extraArgs) args.push(...opts.extraArgs);
  return args;
}

function runOnce(elf: string, opts: QemuRunOptions, accel: QemuAccel): Promise<QemuRunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'testguest-'));
  const sock = join(dir, 'qmp.sock');
  const start = Date.now();
  const child = spawn('qemu-system-x86_64', qemuArgs(elf, opts, accel, sock), { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  let stderr = '';
  let firstLineMs: number | null = null;
  let shutdownReason: string | null = null;
  let timedOut = false;
  const pending = [...(opts.shellInput ?? [])];
  let promptsSeen = 0;
  let qmpSocket: ReturnType<typeof createConnection> | null = null;
  let qmpReady = false;
  const qmpQueue: string[] = [];
  const qmp = (command: string): void => {
    if (qmpSocket && qmpReady) qmpSocket.write(command + '\n');
    else qmpQueue.push(command);
  };

  const sendNext = (): void => {
    const line = pending.shift();
    if (line === undefined) return;
    // Typed slowly: the guest polls its UART, whose receive FIFO holds 16 bytes.
    const bytes = [...(line + '\r')];
    const tick = (): void => {
      const ch = bytes.shift();
      if (ch === undefined || child.stdin.destroyed) return;
      child.stdin.write(ch);
      setTimeout(tick, 5);
    };
    tick();
  };

  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString('latin1');
    if (firstLineMs === null && output.includes('TESTGUEST READY')) firstLineMs = Date.now() - start;
    const prompts = output.split('testguest> ').length - 1;
    while (promptsSeen < prompts) {
      promptsSeen++;
      sendNext();
    }
    opts.onOutput?.(output, qmp);
  });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });

  // QMP: connect (QEMU waits for us), negotiate, then listen for SHUTDOWN.
  const connectQmp = (attempt: number): void => {
    const s = createConnection(sock);
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const obj = JSON.parse(msg) as { QMP?: unknown; event?: string; data?: { reason?: string } };
          if (obj.QMP) {
            s.write('{"execute":"qmp_capabilities"}\n');
            qmpSocket = s;
            qmpReady = true;
            for (const c of qmpQueue.splice(0)) s.write(c + '\n');
          }
          if (obj.event === 'SHUTDOWN') shutdownReason = obj.data?.reason ?? 'unknown';
        } catch { /* partial or non-JSON line: ignore */ }
      }
    });
    s.on('error', () => {
      if (attempt < 200 && child.exitCode === null) setTimeout(() => connectQmp(attempt + 1), 25);
    });
  };
  connectQmp(0);

  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      resolve({ output, code, signal, timedOut, accel, firstLineMs, elapsedMs: Date.now() - start, shutdownReason, stderr });
    });
  });
}

/**
 * Boots the guest under QEMU and collects its console output. With accel 'kvm' (the default)
 * a QEMU that cannot use KVM is retried once with TCG; the result says which ran.
 */
export async function runTestguestInQemu(opts: QemuRunOptions): Promise<QemuRunResult> {
  const elf = testguestPath();
  const accel = opts.accel ?? 'kvm';
  const first = await runOnce(elf, opts, accel);
  const kvmFailed = accel === 'kvm' && first.firstLineMs === null && /kvm/i.test(first.stderr) && first.code !== 0;
  if (!kvmFailed) return first;
  return runOnce(elf, opts, 'tcg');
}

export interface TsbhyveRunOptions {
  append: string;
  cpus?: number;
  memMiB?: number;
  /** Extra tsbhyve arguments placed before the VM name (for example ['-s', '3,virtio-rnd']). */
  extraArgs?: string[];
  timeoutMs?: number;
  /** Called with the whole output so far each time more arrives, and the tsbhyve process (to signal it). */
  onOutput?: (output: string, child: ChildProcess) => void;
  /** The VM name; by default one unique to this run, since tsbhyve locks a name while its VM runs. */
  vmName?: string;
}

/** Name slots in use by this process's running VMs: sequential runs reuse slot 0 (one lock file per process). */
const vmSlots = new Set<number>();

export interface TsbhyveRunResult {
  /** stdout and stderr as they arrived, interleaved (tsbhyve's own messages can split a guest line). */
  output: string;
  /** stdout alone: the guest's COM1. */
  stdout: string;
  /** stderr alone: tsbhyve's messages. */
  stderr: string;
  /** tsbhyve's exit status, bhyve's meanings: 0 reset, 1 powered off, 2 halted, 3 triple fault, 4 error. */
  code: number | null;
  /** The signal that ended tsbhyve (SIGTERM before the guest enabled ACPI, SIGKILL on a time-out), else null. */
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  firstLineMs: number | null;
  elapsedMs: number;
}

/** The repository's bin/tsbhyve.js (two levels above firmware/testguest). */
export function tsbhyveBin(): string {
  return join(testguestDir(), '..', '..', 'bin', 'tsbhyve.js');
}

/**
 * Why the guest cannot be booted under tsbhyve here, or undefined when it can: no usable /dev/kvm (npm test then runs
 * the file inside the nested-KVM L1 instead, see scripts/test.ts) or tsbhyve not built.
 */
export function tsbhyveSkipReason(): string | undefined {
  const kvm = kvmHostStatus();
  if (kvm.level === 'none') return `${kvm.reason} (npm test runs this file inside the nested-KVM L1)`;
  const addon = join(testguestDir(), '..', '..', 'build', 'Release', 'tsbhyve.node');
  if (!existsSync(tsbhyveBin()) || !existsSync(addon)) return 'tsbhyve is not built (bin/tsbhyve.js, build/Release/tsbhyve.node)';
  return undefined;
}

/** Boots the guest with tsbhyve's direct PVH boot, COM1 on stdio, as bhyve would run it. */
export function runTestguestInTsbhyve(opts: TsbhyveRunOptions): Promise<TsbhyveRunResult> {
  let slot = 0;
  while (vmSlots.has(slot)) slot++;
  vmSlots.add(slot);
  const args = [
    tsbhyveBin(), '-c', String(opts.cpus ?? 2), '-m', `${opts.memMiB ?? 256}M`,
    '-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio',
    '-o', `boot.kernel=${testguestPath()}`, '-o', `boot.cmdline=${opts.append}`,
    ...(opts.extraArgs ?? []), opts.vmName ?? `testguest-${process.pid}-${slot}`,
  ];
  const start = Date.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let firstLineMs: number | null = null;
  let timedOut = false;
  let stdout = '';
  let stderr = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString('latin1');
    if (firstLineMs === null && output.includes('TESTGUEST READY')) firstLineMs = Date.now() - start;
    opts.onOutput?.(output, child);
  };
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('latin1');
    collect(chunk);
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('latin1');
    collect(chunk);
  });
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      vmSlots.delete(slot);
      resolve({ output, stdout, stderr, code, signal, timedOut, firstLineMs, elapsedMs: Date.now() - start });
    });
  });
}
