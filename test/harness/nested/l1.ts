// Runs one shell command inside an L1 Linux machine: QEMU with TCG emulating an AMD CPU with SVM, so
// the L1 kernel's kvm_amd offers a /dev/kvm that boots unmodified Linux guests (the host's kvm_pvm
// cannot). The host's /usr and the project directory are shared over virtio-9p, so the command sees
// the host's programs and the project's files at the same paths, and runs with /dev/kvm present.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, realpathSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { cacheRoot, projectRoot } from '../../../firmware/linux/paths.js';
import { LineSplitter, type ConsoleLine } from './console.js';
import { l1Image } from './l1-image.js';

export interface L1Options {
  /** Kills the L1 machine after this long (default 10 minutes). */
  timeoutMs?: number;
  /** L1 memory in MiB (default 4096). */
  memMiB?: number;
  /** L1 vCPUs (default 1: see README.md for the measurement). */
  cpus?: number;
  /** Working directory of the command, inside the project (default: the project root). */
  cwd?: string;
  /** Extra environment variables for the command. */
  env?: Record<string, string>;
  /** Size of the scratch disk L1 mounts at /var/tmp (ext4, sparse on the host; default 8192 MiB, 0 for none). */
  scratchMiB?: number;
  /** Called with each line the command prints, as it arrives. */
  onLine?: (line: ConsoleLine) => void;
  /**
   * A terminal session instead of lines: bytes from `input` go to L1's console (the command's stdin), and what the
   * command prints goes to `output` byte for byte, from L1 being ready to the command's end.
   */
  interactive?: { input: NodeJS.ReadableStream; output: NodeJS.WritableStream };
  /** Aborting it kills L1; runInL1 then rejects with an L1Error. */
  signal?: AbortSignal;
  /** Called with each console line of L1 outside the command (boot, markers, warnings). */
  onConsole?: (line: ConsoleLine) => void;
  /**
   * L1 counts as frozen, and is killed, when its heartbeat (a line every 5 s on its second serial port) has been
   * silent this long (default 120 s; 0 never). A busy L1 still beats; a frozen one (docs/vmm.md) gets no CPU at all.
   */
  frozenAfterMs?: number;
}

export interface L1Result {
  /** The command's exit status. */
  status: number;
  /** What the command printed (stdout and stderr together), lines joined with '\n'. */
  output: string;
  lines: ConsoleLine[];
  /** Milliseconds from starting QEMU to L1 being ready to run the command. */
  readyMs: number;
  /** Milliseconds from starting QEMU to its exit. */
  totalMs: number;
}

/** Why an L1 run failed: it never got ready, stopped early, ran past its time limit, froze, or was stopped. */
export type L1Failure = 'setup' | 'not-ready' | 'stopped' | 'timeout' | 'frozen' | 'aborted';

export class L1Error extends Error {
  override name = 'L1Error';
  constructor(
    message: string,
    /** Everything L1 printed, for diagnosis. */
    readonly console: string,
    readonly failure: L1Failure = 'stopped',
  ) {
    super(message);
  }
}

const readyMarker = /TSBHYVE-L1-READY /;
const exitMarker = /TSBHYVE-L1-EXIT status=(\d+)/;

function openAndClose(path: string): string {
  closeSync(openSync(path, 'w'));
  return path;
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Directories the project reaches through symlinks that point outside it (a git worktree whose `.cache` is a
 * link to another checkout's): L1 mounts them at their real paths too, or the links would dangle there.
 */
export function linkedOutsideProject(): string[] {
  const out: string[] = [];
  for (const dir of [cacheRoot]) {
    let real: string;
    try {
      real = realpathSync(dir);
    } catch {
      continue;
    }
    const rel = relative(realpathSync(projectRoot), real);
    if ((rel.startsWith('..') || rel.startsWith('/')) && !/[\s:]/.test(real)) out.push(real);
  }
  return out;
}

/** The QEMU command line for an L1 machine that runs `script` (a path inside the project). `kernel` may be a
 * bzImage or a vmlinux ELF with a PVH note (quicker under TCG: nothing to decompress). */
export function l1QemuArgs(kernel: string, initrd: string, script: string, memMiB: number, cpus: number, scratch?: string, heartbeat?: string): string[] {
  const extra = linkedOutsideProject();
  const mounts = extra.map((p, i) => ` tsbhyve.mount=extra${i}:${p}`).join('');
  return [
    // TCG emulates SVM with nested paging; la57 is dropped because kvm_amd in 6.1 does not expect it.
    '-accel', 'tcg', '-cpu', 'max,-la57', '-m', String(memMiB), '-smp', String(cpus),
    '-kernel', kernel, '-initrd', initrd,
    // mitigations=off: speculative-execution defences only slow an emulated CPU down; nor do we need
    // the crypto self-tests, one of the slowest parts of a kernel boot under emulation.
    '-append', `console=ttyS0 quiet panic=-1 mitigations=off cryptomgr.notests tsbhyve.project=${projectRoot} tsbhyve.run=${script}${mounts}`,
    // The serial port on stdio without -nographic's monitor multiplexer, so every byte (Ctrl-A too) reaches L1.
    // The second port (ttyS1) carries the init's heartbeat into a file, when one is asked for.
    '-display', 'none', '-serial', 'stdio', ...(heartbeat ? ['-serial', `file:${heartbeat}`] : []), '-no-reboot', '-vga', 'none', '-nic', 'none',
    '-virtfs', 'local,path=/usr,mount_tag=usr,security_model=none,readonly=on',
    '-virtfs', `local,path=${projectRoot},mount_tag=project,security_model=none`,
    ...extra.flatMap((p, i) => ['-virtfs', `local,path=${p},mount_tag=extra${i},security_model=none`]),
    // L1's /var/tmp: a sparse file that lives as long as the run; cache=unsafe since nothing on it outlives L1.
    ...(scratch ? ['-drive', `file=${scratch},if=virtio,format=raw,cache=unsafe,discard=unmap`] : []),
    ...(process.env.TSBHYVE_L1_MONITOR ? ['-monitor', `unix:${process.env.TSBHYVE_L1_MONITOR},server,nowait`] : []),
  ];
}

/** Boots L1, runs `command` there with bash, and resolves with its status and output. */
export async function runInL1(command: string, opts: L1Options = {}): Promise<L1Result> {
  if (/\s/.test(projectRoot)) throw new L1Error(`the project path must not contain spaces: ${projectRoot}`, '', 'setup');
  const image = l1Image();
  const runs = join(cacheRoot, 'nested', 'runs');
  mkdirSync(runs, { recursive: true });
  const runDir = mkdtempSync(join(runs, 'l1-'));
  const script = join(runDir, 'command.sh');
  const env = Object.entries(opts.env ?? {}).map(([k, v]) => `export ${k}=${shellQuote(v)}\n`).join('');
  writeFileSync(script, `${env}cd ${shellQuote(opts.cwd ?? projectRoot)} || exit 126\n${command}\n`);

  const scratchMiB = opts.scratchMiB ?? 8192;
  const scratch = scratchMiB > 0 ? join(runDir, 'scratch.img') : undefined;
  if (scratch) truncateSync(openAndClose(scratch), scratchMiB * 1024 * 1024);

  const timeoutMs = opts.timeoutMs ?? 600_000;
  const frozenAfterMs = opts.frozenAfterMs ?? 120_000;
  const heartbeat = frozenAfterMs > 0 ? openAndClose(join(runDir, 'heartbeat')) : undefined;
  const args = l1QemuArgs(image.vmlinux ?? image.kernel, image.initrd, script, opts.memMiB ?? 4096, opts.cpus ?? 1, scratch, heartbeat);
  const startedAt = performance.now();
  const child = spawn('qemu-system-x86_64', args, { stdio: [opts.interactive ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  const passThrough = opts.interactive ? new RawPassThrough(opts.interactive.output) : undefined;
  if (opts.interactive) {
    const input = opts.interactive.input;
    const forward = (chunk: Buffer | string) => child.stdin?.write(chunk);
    input.on('data', forward);
    child.on('close', () => input.off('data', forward));
  }

  const consoleText: string[] = [];
  const lines: ConsoleLine[] = [];
  let readyMs: number | undefined;
  let status: number | undefined;
  // Blank lines are held back until more output follows: the init prints one before the exit marker.
  const blanks: ConsoleLine[] = [];
  const splitter = new LineSplitter(startedAt, (line) => {
    consoleText.push(line.text);
    const exit = exitMarker.exec(line.text);
    if (readyMs !== undefined && status === undefined && !exit) {
      if (line.text === '') {
        blanks.push(line);
        return;
      }
      for (const l of [...blanks.splice(0), line]) {
        lines.push(l);
        opts.onLine?.(l);
      }
      return;
    }
    if (exit) status = Number(exit[1]);
    else if (readyMarker.test(line.text)) {
      readyMs = line.ms;
      passThrough?.start();
    }
    opts.onConsole?.(line);
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    splitter.push(chunk);
    passThrough?.push(chunk);
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  // The heartbeat file grows every few seconds while L1 runs; the clock starts at QEMU's start, so a boot counts.
  let frozen = false;
  let beats = 0;
  let lastBeatMs = performance.now();
  const watchdog = heartbeat
    ? setInterval(() => {
        const size = statSync(heartbeat, { throwIfNoEntry: false })?.size ?? 0;
        const now = performance.now();
        if (size !== beats) {
          beats = size;
          lastBeatMs = now;
        } else if (now - lastBeatMs > frozenAfterMs && status === undefined) {
          frozen = true;
          child.kill('SIGKILL');
        }
      }, Math.min(5_000, frozenAfterMs / 4))
    : undefined;
  const abort = () => child.kill('SIGKILL');
  opts.signal?.addEventListener('abort', abort);
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, s) => resolve([c, s]));
    });
    splitter.end();
    const totalMs = performance.now() - startedAt;
    const log = consoleText.join('\n') + (stderr ? `\n[qemu stderr]\n${stderr}` : '');
    if (opts.signal?.aborted) throw new L1Error('L1 was stopped on request', log, 'aborted');
    if (timedOut) throw new L1Error(`L1 timed out after ${timeoutMs} ms`, log, 'timeout');
    if (frozen) throw new L1Error(`L1 froze: no heartbeat for ${Math.round(frozenAfterMs / 1000)} s, so it was killed`, log, 'frozen');
    if (readyMs === undefined) throw new L1Error(`L1 never became ready (qemu exit ${code ?? signal})`, log, 'not-ready');
    if (status === undefined) throw new L1Error(`L1 stopped before the command finished (qemu exit ${code ?? signal})`, log, 'stopped');
    return { status, output: lines.map((l) => l.text).join('\n'), lines, readyMs, totalMs };
  } finally {
    clearTimeout(timer);
    clearInterval(watchdog);
    opts.signal?.removeEventListener('abort', abort);
    rmSync(runDir, { recursive: true, force: true });
  }
}

/**
 * The command's bytes, unchanged, for an interactive session: nothing of L1's boot (up to the end of the ready
 * line), and not the init's closing marker line. A tail that could still become the marker is held until it cannot.
 */
class RawPassThrough {
  private static readonly marker = '\nTSBHYVE-L1-EXIT ';
  private state: 'booting' | 'ready' | 'passing' | 'done' = 'booting';
  private held = '';

  constructor(private readonly out: NodeJS.WritableStream) {}

  /** The line splitter saw the ready line, in the chunk about to be pushed or an earlier one. */
  start(): void {
    if (this.state === 'booting') this.state = 'ready';
  }

  push(chunk: Buffer): void {
    let text = chunk.toString('latin1');
    if (this.state === 'ready') {
      // Skip the rest of the ready line.
      const at = text.indexOf('TSBHYVE-L1-READY');
      const nl = text.indexOf('\n', Math.max(at, 0));
      text = nl >= 0 ? text.slice(nl + 1) : '';
      this.state = 'passing';
    }
    if (this.state !== 'passing') return;
    text = this.held + text;
    this.held = '';
    const end = text.indexOf(RawPassThrough.marker);
    if (end >= 0) {
      this.state = 'done';
      text = text.slice(0, end);
    } else {
      for (let k = Math.min(RawPassThrough.marker.length - 1, text.length); k > 0; k--) {
        if (RawPassThrough.marker.startsWith(text.slice(text.length - k))) {
          this.held = text.slice(text.length - k);
          text = text.slice(0, text.length - k);
          break;
        }
      }
    }
    if (text) this.out.write(Buffer.from(text, 'latin1'));
  }
}
