// Where the per-name VM lock files live: one flock'ed NAME.lock per running VM, so a second tsbhyve
// with the same name (in any process) is refused, as /dev/vmm/NAME is unique on FreeBSD.
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function defaultLockDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['TSBHYVE_RUNDIR']) return env['TSBHYVE_RUNDIR'];
  if (env['XDG_RUNTIME_DIR']) return join(env['XDG_RUNTIME_DIR'], 'tsbhyve');
  if (typeof process.getuid === 'function' && process.getuid() === 0) return '/run/tsbhyve';
  return join(tmpdir(), `tsbhyve-${typeof process.getuid === 'function' ? process.getuid() : 'user'}`);
}
