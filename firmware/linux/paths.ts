// Where the project lives and where built images are cached (git-ignored).
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const cacheRoot = resolve(projectRoot, '.cache');

/** Progress goes to stderr so a command's stdout stays clean. */
export function progress(message: string): void {
  process.stderr.write(`[linux-image] ${message}\n`);
}
