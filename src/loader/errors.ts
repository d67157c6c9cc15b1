// Typed errors for the direct-boot loader. Kernel, initrd and command line are untrusted input: every
// check that fails raises a LoaderError with a one-line message naming the field and the bad value.

export type LoaderErrorCode =
  /** the file ends before a structure it declares */
  | 'truncated'
  /** a header field holds a value the spec does not allow (bad size, misalignment, overflow) */
  | 'bad-field'
  /** a checksum does not add up */
  | 'bad-checksum'
  /** a valid image that asks for something this loader does not do */
  | 'unsupported'
  /** the content matches no supported format */
  | 'unknown-format'
  /** something does not fit in guest RAM */
  | 'out-of-ram'
  /** two things would occupy the same guest memory */
  | 'overlap'
  /** the command line is longer than the kernel or the loader accepts */
  | 'cmdline-too-long'
  /** the caller's own arguments (memory layout, E820 map, RSDP address) are inconsistent */
  | 'bad-input';

export class LoaderError extends Error {
  override readonly name = 'LoaderError';
  constructor(
    readonly code: LoaderErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Formats a guest address or size the way the messages print them. */
export function hex(v: number | bigint): string {
  return '0x' + v.toString(16);
}
