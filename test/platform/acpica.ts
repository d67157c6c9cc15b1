// Runs the ACPICA tools (iasl, acpiexec) on generated tables. They are the independent checkers of the
// ACPI tests; when they are missing the tests fail and say which Debian package provides them.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ACPICA_MISSING = 'iasl/acpiexec not found: install the Debian package acpica-tools';

export function haveAcpica(): boolean {
  try {
    execFileSync('iasl', ['-v'], { stdio: 'ignore' });
    execFileSync('acpiexec', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface ToolRun {
  output: string;
  status: number | null;
}

function run(cmd: string, args: string[], cwd: string): ToolRun {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { output: `${r.stdout ?? ''}${r.stderr ?? ''}`, status: r.status };
}

/** Lines of tool output that report a problem (iasl prints "Warning"/"Error"/"Remark" on each). */
export function problems(output: string): string[] {
  return output.split('\n').filter((l) => /\b(warning|error|remark)s?\b/i.test(l) && !/\b0 Errors?, 0 Warnings?, 0 Remarks?\b/.test(l));
}

export class Workdir {
  readonly path = mkdtempSync(join(tmpdir(), 'tsbhyve-acpi-'));
  write(name: string, data: Uint8Array): string {
    const p = join(this.path, name);
    writeFileSync(p, data);
    return p;
  }
  read(name: string): string {
    return readFileSync(join(this.path, name), 'utf8');
  }
  readBytes(name: string): Buffer {
    return readFileSync(join(this.path, name));
  }
  /** `iasl -d name.dat` -> the disassembly text of name.dsl and iasl's output. */
  disassemble(name: string, data: Uint8Array): { dsl: string; run: ToolRun } {
    this.write(`${name}.dat`, data);
    const r = run('iasl', ['-d', `${name}.dat`], this.path);
    let dsl = '';
    try {
      dsl = this.read(`${name}.dsl`);
    } catch {
      /* no output: the caller sees the empty text and iasl's message */
    }
    return { dsl, run: r };
  }
  /** `iasl file.dsl` (ASL or data-table source) -> the compiler's output; the .aml lands next to it. */
  compile(dslName: string): ToolRun {
    return run('iasl', [dslName], this.path);
  }
  /** Loads AML tables into acpiexec and runs batch commands (e.g. "evaluate \\_S5"). */
  acpiexec(commands: string[], files: string[]): ToolRun {
    return run('acpiexec', ['-b', commands.join('; '), ...files], this.path);
  }
  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}
