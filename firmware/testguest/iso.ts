// Host-side helper for the CD tests: an ISO 9660 image made from a few named buffers with the machine's mkisofs-style
// tool (xorriso's mkisofs emulation, else genisoimage or mkisofs). No Rock Ridge or Joliet: the guest reads the plain
// ISO 9660 directory, so names are given in its level-1 form (8.3, upper case) and appear on the disc unchanged
// (with the ";1" version the guest strips).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The command lines tried, in order; each takes mkisofs's -o/-V and a source directory. */
const TOOLS: string[][] = [['xorriso', '-as', 'mkisofs'], ['genisoimage'], ['mkisofs']];

function works(cmd: string[]): boolean {
  const r = spawnSync(cmd[0], [...cmd.slice(1), '-version'], { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

let found: string[] | null | undefined;

/** The ISO tool's command line, null when none is installed (Debian: apt-get install xorriso). */
export function isoTool(): string[] | null {
  if (found === undefined) found = TOOLS.find(works) ?? null;
  return found;
}

/** Why makeIso cannot run here, or undefined when it can. */
export function isoSkipReason(): string | undefined {
  return isoTool() ? undefined : 'no ISO 9660 tool: install xorriso (or genisoimage)';
}

const LEVEL1_NAME = /^[A-Z0-9_]{1,8}(\.[A-Z0-9_]{1,3})?$/;

/**
 * Writes an ISO 9660 image holding `files` (name → contents) in its root directory and returns its path: `out` when
 * given, else `cd.iso` in a fresh temporary directory (the caller removes it). Names must be ISO 9660 level 1 (8.3,
 * A-Z 0-9 _) so the disc shows them as given.
 */
export function makeIso(files: Record<string, Buffer>, opts: { out?: string; volume?: string } = {}): string {
  const tool = isoTool();
  if (!tool) throw new Error(isoSkipReason());
  for (const name of Object.keys(files)) {
    if (!LEVEL1_NAME.test(name)) throw new Error(`makeIso: "${name}" is not an ISO 9660 level-1 name (8.3, A-Z 0-9 _)`);
  }
  const work = mkdtempSync(join(tmpdir(), 'testguest-iso-'));
  const src = join(work, 'root');
  try {
    mkdirSync(src);
    for (const [name, data] of Object.entries(files)) writeFileSync(join(src, name), data);
    const out = opts.out ?? join(mkdtempSync(join(tmpdir(), 'testguest-cd-')), 'cd.iso');
    const r = spawnSync(tool[0], [...tool.slice(1), '-quiet', '-V', opts.volume ?? 'TESTGUEST', '-o', out, src], { encoding: 'utf8' });
    if (r.error || r.status !== 0) throw new Error(`${tool.join(' ')} failed (${r.error?.message ?? `status ${r.status}`}): ${r.stderr.trim()}`);
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
