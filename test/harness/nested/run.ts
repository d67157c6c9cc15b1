// Runs a shell command inside the nested-KVM L1 machine and exits with its status.
// Usage: node --import tsx test/harness/nested/run.ts [--timeout SECONDS] [--mem MIB] [--cpus N] -- <command...>
// The command's output streams to stdout; L1's own console (boot, markers) goes to stderr with -v.
import { parseArgs } from 'node:util';
import { L1Error, runInL1 } from './l1.js';

const { values, positionals } = parseArgs({
  options: {
    timeout: { type: 'string', default: '600' },
    mem: { type: 'string', default: '4096' },
    cpus: { type: 'string', default: '1' },
    verbose: { type: 'boolean', short: 'v', default: false },
  },
  allowPositionals: true,
});
if (positionals.length === 0) {
  process.stderr.write('usage: run.ts [--timeout S] [--mem MIB] [--cpus N] [-v] -- <command...>\n');
  process.exit(2);
}

try {
  const result = await runInL1(positionals.join(' '), {
    timeoutMs: Number(values.timeout) * 1000,
    memMiB: Number(values.mem),
    cpus: Number(values.cpus),
    cwd: process.cwd(),
    onLine: (line) => process.stdout.write(line.text + '\n'),
    onConsole: values.verbose ? (line) => process.stderr.write(`[L1 ${(line.ms / 1000).toFixed(2)}s] ${line.text}\n`) : undefined,
  });
  process.stderr.write(`[L1] ready in ${(result.readyMs / 1000).toFixed(2)} s, total ${(result.totalMs / 1000).toFixed(2)} s, status ${result.status}\n`);
  process.exit(result.status);
} catch (e) {
  if (!(e instanceof L1Error)) throw e;
  process.stderr.write(`[L1] ${e.message}\n${e.console.split('\n').slice(-30).join('\n')}\n`);
  process.exit(125);
}
