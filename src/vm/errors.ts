// Typed errors of the VM layer. The native side reports "E<errno>: message"; these classes give callers
// something to switch on instead of parsing text.

/** A failed VMM call (KVM ioctl, lock, invalid state). `code` is the errno name, e.g. 'EEXIST'. */
export class VmmError extends Error {
  override readonly name = 'VmmError';
  constructor(
    readonly code: string,
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 4: 'EINTR', 5: 'EIO', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES',
  16: 'EBUSY', 17: 'EEXIST', 22: 'EINVAL', 24: 'EMFILE', 28: 'ENOSPC', 95: 'ENOTSUP', 7: 'E2BIG', 19: 'ENODEV',
};

/** Runs a native call, turning its "E<errno>: text" errors into VmmError. TypeErrors pass through. */
export function nativeCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Error && !(e instanceof TypeError)) {
      const m = /^E(\d+): ([\s\S]*)$/.exec(e.message);
      if (m) {
        const errno = Number(m[1]);
        throw new VmmError(ERRNO_NAMES[errno] ?? `E${errno}`, errno, m[2]!);
      }
    }
    throw e;
  }
}

export type GuestMemoryFault = 'out-of-range' | 'overflow' | 'read-only';

/** A guest-physical access that the memory map refused; never a host crash. */
export class GuestMemoryError extends Error {
  override readonly name = 'GuestMemoryError';
  constructor(
    readonly fault: GuestMemoryFault,
    readonly gpa: number | bigint,
    readonly length: number,
  ) {
    super(`guest memory ${fault}: [0x${gpa.toString(16)}, +0x${length.toString(16)})`);
  }
}

/** Maps native MemError codes (native/guestmem/guest_memory.h) to faults. */
export function memFault(code: number): GuestMemoryFault | undefined {
  switch (code) {
    case 0: return undefined;
    case 2: return 'overflow';
    case 3: return 'read-only';
    default: return 'out-of-range';
  }
}
