// Errors that end a tsbhyve run with one of bhyve's exit statuses. Inside the library they are ordinary typed
// errors; only the CLI edge turns them into a message on stderr and process.exit(status).

/** bhyve's exit statuses (bhyve(8) EXIT STATUS, sysexits(3)). */
export const ExitStatus = {
  REBOOT: 0,
  POWEROFF: 1,
  HALT: 2,
  TRIPLEFAULT: 3,
  ERROR: 4,
  /** EX_USAGE: bad -c, -p, -l, -o, -f, -n values and an invalid memory size */
  USAGE: 64,
  /** EX_OSERR: the host refused something bhyve needs */
  OSERR: 71,
} as const;

export class BhyveError extends Error {
  /**
   * @param status the process exit status bhyve uses for this failure
   * @param message bhyve's wording where bhyve has one
   * @param prefixed whether bhyve prints it through err(3)/errx(3) ("prog: message") or as a bare line
   */
  constructor(
    readonly status: number,
    message: string,
    readonly prefixed = true,
  ) {
    super(message);
    this.name = 'BhyveError';
  }
}

/** A configuration tree rule was broken (bhyve exits 4 for all of these). */
export class ConfigError extends BhyveError {
  constructor(message: string) {
    super(ExitStatus.ERROR, message);
    this.name = 'ConfigError';
  }
}

/** The command line could not be parsed at all: bhyve prints its usage text and exits 1. */
export class UsageError extends BhyveError {
  constructor(readonly detail?: string) {
    super(ExitStatus.POWEROFF, detail ?? 'usage');
    this.name = 'UsageError';
  }
}

/** -h: usage on stderr, exit 0. */
export class HelpRequested extends BhyveError {
  constructor() {
    super(ExitStatus.REBOOT, 'help');
    this.name = 'HelpRequested';
  }
}

/** Something that must print a listing on stdout and exit 0 (-s help, -l help). */
export class ListingRequested extends BhyveError {
  constructor(readonly lines: readonly string[]) {
    super(ExitStatus.REBOOT, 'listing');
    this.name = 'ListingRequested';
  }
}

/** strerror(3)'s text for the errors a file open usually meets, as bhyve prints them. */
export function describeErrno(e: NodeJS.ErrnoException): string {
  const texts: Record<string, string> = {
    ENOENT: 'No such file or directory',
    EACCES: 'Permission denied',
    EISDIR: 'Is a directory',
    EROFS: 'Read-only file system',
    ENOTDIR: 'Not a directory',
    ELOOP: 'Too many levels of symbolic links',
  };
  return (e.code && texts[e.code]) || e.code || e.message;
}
