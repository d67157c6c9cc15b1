// Debian packages as build inputs: find the newest matching name, learn the candidate version, and
// unpack it once with `apt-get download` + `dpkg -x` into the cache. Nothing is installed on the host.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot, progress } from './paths.js';

export class DebianError extends Error {
  override name = 'DebianError';
}

export interface UnpackedPackage {
  name: string;
  version: string;
  /** Directory holding the package's files as dpkg would install them (root = this directory). */
  root: string;
}

let indexRefreshed = false;

function aptCache(args: string[]): string {
  return execFileSync('apt-cache', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs `lookup`; when it finds nothing and the package index was never fetched, refreshes it once. */
function withFreshIndex<T>(lookup: () => T | undefined, what: string): T {
  const first = lookup();
  if (first !== undefined) return first;
  if (!indexRefreshed) {
    indexRefreshed = true;
    progress(`${what} not in the package index: running apt-get update`);
    execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const second = lookup();
    if (second !== undefined) return second;
  }
  throw new DebianError(`${what}: no such package in the apt index`);
}

const candidates = new Map<string, string>();

/**
 * The versions apt would install for `names`, asked in one apt-cache call (each call re-reads the
 * whole package index, which takes about a second where apt's binary cache is disabled).
 */
export function candidateVersions(names: readonly string[]): Map<string, string> {
  const unknown = names.filter((n) => !candidates.has(n));
  if (unknown.length > 0) {
    withFreshIndex(() => {
      const text = aptCache(['policy', ...unknown]);
      // The output is one block per package: "name:\n  Installed: ...\n  Candidate: ...".
      for (const m of text.matchAll(/^(\S+?)(?::amd64)?:\n(?:\s+Installed:.*\n)?\s+Candidate:\s*(\S+)/gm)) {
        if (m[2] !== '(none)') candidates.set(m[1]!, m[2]!);
      }
      const missing = unknown.filter((n) => !candidates.has(n));
      return missing.length === 0 ? true : undefined;
    }, unknown.filter((n) => !candidates.has(n)).join(', '));
  }
  return new Map(names.map((n) => [n, candidates.get(n)!]));
}

/** The candidate version apt would install for `name`. */
export function candidateVersion(name: string): string {
  return candidateVersions([name]).get(name)!;
}

/**
 * The newest Debian kernel image of a flavour, e.g. flavour "cloud-amd64" on series "6.1.0" picks
 * linux-image-6.1.0-<highest ABI>-cloud-amd64.
 */
export function newestKernelPackage(series: string, flavour: string): string {
  const pattern = new RegExp(`^linux-image-${series.replaceAll('.', '\\.')}-(\\d+)-${flavour}$`);
  return withFreshIndex(() => {
    const names = aptCache(['pkgnames', `linux-image-${series}-`])
      .split('\n')
      .map((n) => n.trim())
      .filter((n) => pattern.test(n));
    if (names.length === 0) return undefined;
    const abi = (n: string) => Number(pattern.exec(n)![1]);
    return names.sort((a, b) => abi(b) - abi(a))[0];
  }, `linux-image-${series}-*-${flavour}`);
}

/** Downloads and unpacks the candidate version of `name` (once; later calls reuse the cache). */
export function unpackPackage(name: string): UnpackedPackage {
  const version = candidateVersion(name);
  const base = join(cacheRoot, 'debian');
  const root = join(base, 'unpacked', `${name}_${version.replaceAll(':', '%3a')}`);
  if (existsSync(join(root, '.unpacked'))) return { name, version, root };

  mkdirSync(base, { recursive: true });
  const work = mkdtempSync(join(base, 'tmp-'));
  try {
    progress(`downloading ${name} ${version}`);
    execFileSync('apt-get', ['download', '-q', `${name}=${version}`], {
      cwd: work,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const debs = readdirSync(work).filter((f) => f.endsWith('.deb'));
    if (debs.length !== 1) throw new DebianError(`apt-get download ${name} left ${debs.length} .deb files`);
    const tree = join(work, 'tree');
    execFileSync('dpkg', ['-x', join(work, debs[0]!), tree], { stdio: ['ignore', 'ignore', 'inherit'] });
    writeFileSync(join(tree, '.unpacked'), `${name} ${version}\n`);
    mkdirSync(join(base, 'unpacked'), { recursive: true });
    // A parallel build may have unpacked the same package meanwhile; then ours is simply dropped.
    try {
      renameSync(tree, root);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !existsSync(join(root, '.unpacked'))) throw e;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { name, version, root };
}
