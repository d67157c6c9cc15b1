// The tsbhyve command: parse argv into the config tree, validate it as bhyverun does, then run the VM.
// This is the only place that prints errors and picks the process exit status.
import { BhyveError, ExitStatus, HelpRequested, ListingRequested, UsageError } from '../config/errors.js';
import { parseMemsize } from '../config/memsize.js';
import { resolveTopology, resolveVcpuMaps } from '../config/topology.js';
import { parseCommandLine } from './parse.js';
import { usageText } from './usage.js';

export const PROGNAME = 'tsbhyve';

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const processIo: CliIo = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
};

/**
 * Runs the command line and returns the exit status (the caller exits with it). Never throws for bad input:
 * every failure becomes one line in bhyve's wording and bhyve's status.
 */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const warn = (m: string): void => io.stderr(`${PROGNAME}: ${m}\n`);
  try {
    const parsed = parseCommandLine(argv, warn);
    const { tree } = parsed;
    if (parsed.dump) {
      io.stdout(tree.dump());
      return ExitStatus.POWEROFF;
    }
    // The checks bhyverun makes before it opens the VM, in its order.
    const topology = resolveTopology(tree);
    const vcpuMaps = resolveVcpuMaps(tree, topology.cpus);
    const sizeText = tree.get('memory.size') ?? '';
    const memsize = parseMemsize(sizeText);
    if (memsize === undefined) throw new BhyveError(ExitStatus.USAGE, `invalid memsize '${sizeText}'`);
    if (tree.get('bootrom') === undefined && tree.get('boot.kernel') === undefined) {
      // bhyve expects bhyveload to have created the VM; a KVM VM cannot outlive its process, so without a ROM
      // tsbhyve needs boot.kernel (its in-process loader).
      throw new BhyveError(ExitStatus.ERROR, 'no bootrom was configured');
    }
    const { startVm } = await import('../vm/start.js');
    return await startVm({ tree, topology, vcpuMaps, memsize, fwcfgFiles: parsed.fwcfgFiles, warn });
  } catch (e) {
    return reportFailure(e, io);
  }
}

function reportFailure(e: unknown, io: CliIo): number {
  if (e instanceof HelpRequested) {
    io.stderr(usageText(PROGNAME));
    return e.status;
  }
  if (e instanceof ListingRequested) {
    io.stdout(e.lines.map((l) => `${l}\n`).join(''));
    return e.status;
  }
  if (e instanceof UsageError) {
    if (e.detail) io.stderr(`${PROGNAME}: ${e.detail}\n`);
    io.stderr(usageText(PROGNAME));
    return e.status;
  }
  if (e instanceof BhyveError) {
    io.stderr(e.prefixed ? `${PROGNAME}: ${e.message}\n` : `${e.message}\n`);
    return e.status;
  }
  // Anything else is a bug in tsbhyve, not bad input: still one line, still bhyve's error status.
  const msg = e instanceof Error ? e.message : String(e);
  io.stderr(`${PROGNAME}: internal error: ${msg}\n`);
  if (process.env.TSBHYVE_DEBUG) io.stderr(`${e instanceof Error ? e.stack : ''}\n`);
  return ExitStatus.ERROR;
}

export function main(argv: readonly string[]): void {
  runCli(argv).then(
    (status) => {
      process.exitCode = status;
    },
    () => {
      process.exitCode = ExitStatus.ERROR;
    },
  );
}
