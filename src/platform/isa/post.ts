// The POST diagnostic port 0x80: firmware and some kernels write progress codes here (Linux also uses it as an
// I/O delay). Like a POST card, it latches the last byte written; reading returns it.
import type { Machine } from '../machine.js';

export const POST_PORT = 0x80;

export class PostPort {
  /** The last value written, or undefined before the first write. */
  last: number | undefined;
  /** How many writes arrived (diagnostics). */
  writes = 0;

  constructor(machine: Machine) {
    machine.io.registerPort(POST_PORT, 1, (write, _port, size, v) => {
      if (!write) return this.last ?? 0xff;
      if (size === 1) {
        this.last = v & 0xff;
        this.writes++;
      }
      return 0;
    });
  }
}
