// Runs the tsbhyve command line in-process and captures what it prints.
import { runCli } from '../../src/cli/main.js';

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

export async function cli(...argv: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const status = await runCli(argv, {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
  });
  return { status, stdout, stderr };
}

/** The dump bhyve would print: the argv with `-o config.dump=1` inserted before the VM name. */
export async function dumpOf(argv: string[]): Promise<string[]> {
  const name = argv[argv.length - 1]!;
  const r = await cli(...argv.slice(0, -1), '-o', 'config.dump=1', name);
  if (r.status !== 1 || r.stderr !== '') throw new Error(`dump failed (${r.status}): ${r.stderr}`);
  return r.stdout.trimEnd().split('\n');
}
