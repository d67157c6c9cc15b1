// The test files a list of globs names: `*` within a path segment, `**` across segments, or a plain path.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      // `**/` matches zero or more whole directories.
      re += glob[i + 2] === '/' ? '(?:[^/]+/)*' : '.*';
      i += glob[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function walk(root: string, dir: string, out: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(root, path, out);
    else out.push(relative(root, path).split(sep).join('/'));
  }
}

/** Files under `root` matching any glob, relative to `root`, sorted, each once. */
export function expandGlobs(root: string, globs: string[]): string[] {
  const found = new Set<string>();
  for (const glob of globs) {
    if (!/[*?]/.test(glob)) {
      if (existsSync(join(root, glob)) && statSync(join(root, glob)).isFile()) found.add(glob.replace(/^\.\//, ''));
      continue;
    }
    const fixed = glob.slice(0, glob.search(/[*?]/)).replace(/[^/]*$/, '');
    const base = join(root, fixed);
    if (!existsSync(base)) continue;
    const all: string[] = [];
    walk(root, base, all);
    const re = globToRegExp(glob.replace(/^\.\//, ''));
    for (const f of all) if (re.test(f)) found.add(f);
  }
  return [...found].sort();
}
