// Reading boot.kernel and boot.initrd from the host. A path that is missing, not a regular file or too
// large for any guest load is a LoaderError naming the config key, like every other bad input.
import { readFileSync, statSync } from 'node:fs';
import { LoaderError } from './errors.js';

/** Nothing this loader places can exceed the 4 GiB a 32-bit address reaches. */
export const MAX_BOOT_FILE = 2 ** 32;

export interface BootFiles {
  kernel: Uint8Array;
  initrd?: Uint8Array;
}

function readOne(key: string, path: string): Uint8Array {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new LoaderError('bad-input', `${key}: ${path} is not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof LoaderError) throw e;
    throw new LoaderError('bad-input', `${key}: cannot open ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (size >= MAX_BOOT_FILE) throw new LoaderError('bad-input', `${key}: ${path} is ${size} bytes, larger than any direct boot can load`);
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new LoaderError('bad-input', `${key}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Reads the kernel (boot.kernel) and, when given, the initrd (boot.initrd). */
export function readBootFiles(kernelPath: string, initrdPath?: string): BootFiles {
  const kernel = readOne('boot.kernel', kernelPath);
  return initrdPath === undefined ? { kernel } : { kernel, initrd: readOne('boot.initrd', initrdPath) };
}
