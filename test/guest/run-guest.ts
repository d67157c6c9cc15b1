// Boots firmware/testguest under the real tsbhyve binary and collects what it prints on COM1.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const bin = `${root}bin/tsbhyve.js`;
export const guestElf = `${root}firmware/testguest/out/testguest.elf`;

/** Builds the test guest (make is incremental). */
export function buildTestguest(): void {
  const r = spawnSync('make', ['-s', '-C', `${root}firmware/testguest`], { encoding: 'utf8' });
  if (r.status !== 0 || !existsSync(guestElf)) throw new Error(`building the test guest failed:\n${r.stdout}${r.stderr}`);
}

/** /dev/kvm is needed; tests say why they skip where it is absent. */
export function kvmMissing(): string | undefined {
  return existsSync('/dev/kvm') ? undefined : 'no /dev/kvm on this host';
}

export interface GuestRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  lines: string[];
}

export interface BootOptions {
  args?: string[];
  /** ms before the run is killed */
  timeout?: number;
  /** called for each COM1 line as it arrives (e.g. to send a signal) */
  onLine?: (line: string, child: ReturnType<typeof spawn>) => void;
}

/** tsbhyve [args] -s 0,hostbridge -s 31,lpc -l com1,stdio -o boot.kernel=testguest -o boot.cmdline=CMDLINE vm */
export function bootTestguest(cmdline: string, opts: BootOptions = {}): Promise<GuestRun> {
  const argv = [
    bin,
    ...(opts.args ?? ['-c', '1', '-m', '256M']),
    '-s', '0,hostbridge',
    '-s', '31,lpc',
    '-l', 'com1,stdio',
    '-o', `boot.kernel=${guestElf}`,
    '-o', `boot.cmdline=${cmdline}`,
    `tg${process.pid}`,
  ];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let pending = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeout ?? 60_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString('utf8');
      pending += d.toString('utf8');
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl).replace(/\r$/, '');
        pending = pending.slice(nl + 1);
        opts.onLine?.(line, child);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, lines: stdout.split('\n').map((l) => l.replace(/\r$/, '')) });
    });
  });
}

/** The PASS/FAIL lines of one suite and its DONE summary. */
export function suiteResult(run: GuestRun, suite: string): { pass: string[]; fail: string[]; done?: { pass: number; fail: number } } {
  const pass: string[] = [];
  const fail: string[] = [];
  let done: { pass: number; fail: number } | undefined;
  for (const l of run.lines) {
    const m = /^TESTGUEST (\S+) (PASS|FAIL|DONE) ?(.*)$/.exec(l);
    if (!m || m[1] !== suite) continue;
    if (m[2] === 'PASS') pass.push(m[3]!);
    else if (m[2] === 'FAIL') fail.push(m[3]!);
    else {
      const d = /pass=(\d+) fail=(\d+)/.exec(m[3]!);
      if (d) done = { pass: Number(d[1]), fail: Number(d[2]) };
    }
  }
  return { pass, fail, done };
}
