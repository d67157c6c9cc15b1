// npm test's runner. Every test/**/*.test.ts (or the globs given) runs with tape, on the host when the host can
// run it and otherwise inside the nested-KVM L1 (test/harness/suite/plan.ts says which); the TAP of every run is
// merged into one stream that ends with "N passed, N failed, N skipped". Exits non-zero on any failure.
//
// Usage: node --import tsx scripts/test.ts [glob ...]
// Environment: TSBHYVE_HOST_KVM=none|pvm|hardware overrides the KVM probe (none sends every guest test into the
// L1; hardware runs them all here); TSBHYVE_L1_BATCHES=N sets how many L1 machines share the nested files.
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kvmHostStatus } from '../src/vm/kvm-host.js';
import { L1Error, runInL1 } from '../test/harness/nested/l1.js';
import { expandGlobs } from '../test/harness/suite/files.js';
import { fileNeed, planSuite } from '../test/harness/suite/plan.js';
import { TapMerger, type TapStream } from '../test/harness/suite/tap.js';
import { l1Costs } from '../test/harness/suite/l1-costs.js';
import { linuxGenericGuestImage, linuxGuestImage } from '../firmware/linux/guest-image.js';
import { debianBzImage } from '../test/loader/fixtures.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const require = createRequire(import.meta.url);
const tape = join(dirname(require.resolve('tape/package.json')), 'bin', 'tape');

/** Markers around each file a nested L1 runs (see runInNestedL1). */
const fileStart = /^TSBHYVE-TEST-FILE start (\d+)$/;
const fileEnd = /^TSBHYVE-TEST-FILE end (\d+) status=(\d+)$/;

const globs = process.argv.slice(2);
if (globs.length === 0) globs.push('test/**/*.test.ts');
const files = expandGlobs(root, globs);

const host = kvmHostStatus();
const qemu = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
const l1Unavailable = qemu.status === 0 ? undefined : 'qemu-system-x86_64 is not installed, so there is no nested-KVM L1';
// One L1 keeps one host core busy (TCG); two fit this 2-core machine beside the host's own tests.
const l1Batches = Number(process.env.TSBHYVE_L1_BATCHES) || Math.max(1, Math.min(2, availableParallelism()));
const plan = planSuite({ files, needOf: (f) => fileNeed(join(root, f)), host, l1Unavailable, l1Batches, costs: l1Costs });

const merger = new TapMerger((line) => process.stdout.write(line + '\n'));
const nestedCount = plan.l1.reduce((n, b) => n + b.length, 0);
const header = merger.stream('where the tests run');
header.line(`# KVM on this host: ${host.level} (${host.reason})`);
header.line(`# ${plan.host.length} files on the host; ${nestedCount} in ${plan.l1.length} nested-KVM L1 machine(s); ${plan.skipped.length} skipped`);

// What guests boot comes from Debian packages, which L1 cannot fetch (it has no network): build them here first. All
// are cached, so this is quick after the first run; a failure is left for the tests that need them to report.
if (plan.l1.length > 0) {
  try {
    linuxGuestImage();
    linuxGenericGuestImage();
    const bz = debianBzImage();
    if ('skip' in bz) header.line(`# the loader's Debian bzImage is not available: ${bz.skip}`);
  } catch (e) {
    process.stderr.write(`test: could not build the Linux guest image for the L1: ${(e as Error).message}\n`);
  }
}

header.line('1..0');
header.end(0);

const runs: Array<Promise<void>> = [];
if (plan.host.length > 0) runs.push(runOnHost(plan.host, merger.stream(`on the host: ${plan.host.length} files`)));
plan.l1.forEach((batch, i) => {
  const streams = batch.map((f) => merger.stream(`${f} (inside nested-KVM L1 ${i + 1} of ${plan.l1.length})`));
  runs.push(runInNestedL1(batch, streams));
});
if (plan.skipped.length > 0) {
  const s = merger.stream('files that nothing here can run');
  for (const { file, reason } of plan.skipped) s.skip(`${file}: ${reason}`);
  s.line('1..0');
  s.end(0);
}
await Promise.all(runs);
merger.finish();
process.exit(merger.counts.failed > 0 ? 1 : 0);

/** One tape process for every host file, as a plain `tape` run would do. */
function runOnHost(list: string[], stream: TapStream): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', tape, ...list], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    pipeLines(child.stdout, (l) => stream.line(l));
    child.on('close', (code, signal) => {
      stream.end(code, signal ? `signal ${signal}` : undefined);
      resolve();
    });
  });
}


/**
 * One L1 boot runs the batch's files one tape process each (a crash stays in its file, and each file's TAP goes
 * to its own stream), between markers that say which file is running and how it ended. A file's lines are held
 * until it ends, so that a file L1 froze under (the TCG SVM freeze of docs/vmm.md, which the L1 heartbeat detects)
 * can run once more in a fresh L1 without counting twice; any other way an L1 dies fails the file it was running,
 * and the files after it go on in a fresh L1.
 */
async function runInNestedL1(batch: string[], streams: TapStream[]): Promise<void> {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const silenceS = Number(process.env.TSBHYVE_L1_SILENCE_S) || 120;
  const retried = new Set<number>();
  let todo = batch.map((_, i) => i);
  for (let boot = 0; todo.length > 0 && boot < batch.length + 2; boot++) {
    // A file that hangs is stopped at a generous multiple of what it costs, so the files after it still run.
    const command = todo
      .map((i) => {
        const limit = Math.max(600, 4 * (l1Costs[batch[i]!] ?? 30));
        return (
          `echo 'TSBHYVE-TEST-FILE start ${i}'; timeout -k 10 ${limit} node --import tsx ${q(tape)} ${q(batch[i]!)} 2>&1; ` +
          `s=$?; [ $s = 124 ] && echo '# stopped: it ran past its ${limit} s in L1'; echo "TSBHYVE-TEST-FILE end ${i} status=$s"`
        );
      })
      .join('\n');
    let current: number | undefined;
    let held: string[] = [];
    let startedMs = 0;
    try {
      await runInL1(command, {
        // The per-file limits above, plus L1's boot; a frozen L1 ends much sooner, through its heartbeat.
        timeoutMs: todo.reduce((ms, i) => ms + (Math.max(600, 4 * (l1Costs[batch[i]!] ?? 30)) + 30) * 1000, 120_000),
        frozenAfterMs: silenceS * 1000,
        cwd: root,
        onLine: (line) => {
          let m: RegExpExecArray | null;
          if ((m = fileStart.exec(line.text))) {
            current = Number(m[1]);
            held = [];
            startedMs = line.ms;
          } else if ((m = fileEnd.exec(line.text))) {
            const i = Number(m[1]);
            for (const l of held) streams[i]!.line(l);
            streams[i]!.line(`# ${batch[i]} took ${((line.ms - startedMs) / 1000).toFixed(1)} s in L1`);
            streams[i]!.end(Number(m[2]));
            current = undefined;
          } else if (current !== undefined) held.push(line.text);
        },
      });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      const frozen = e instanceof L1Error && e.failure === 'frozen';
      if (current !== undefined) {
        const s = streams[current]!;
        if (frozen && !retried.has(current)) {
          retried.add(current);
          s.line(`# ${why} after ${held.length} lines of ${batch[current]}; running it again in a fresh L1`);
        } else {
          for (const l of held) s.line(l);
          const detail = e instanceof L1Error ? e.console.split('\n').slice(-40).join('\n') : String(e);
          s.fail(`the nested-KVM L1 stopped: ${why}`, detail);
          s.end(null, why);
        }
      } else if (!(e instanceof L1Error) || e.failure === 'setup' || e.failure === 'not-ready') {
        // L1 cannot start: the same would happen again, so every file left fails with the reason.
        for (const i of todo) streams[i]!.fail(`the nested-KVM L1 stopped: ${why}`, e instanceof L1Error ? e.console.split('\n').slice(-40).join('\n') : undefined);
        for (const i of todo) streams[i]!.end(null, why);
      }
    }
    todo = todo.filter((i) => !streams[i]!.isEnded);
  }
  // A file the L1 never reached (its command ended early) is a failure, not a pass.
  for (const s of streams) if (!s.isEnded) s.end(null, 'the L1 never ran it');
}

function pipeLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  stream.on('end', () => {
    if (buf) onLine(buf);
  });
}
