// Turns a VM's serial console byte stream into clean, timestamped lines: carriage returns and the
// terminal control sequences firmware prints (SeaBIOS clears the screen) are removed.

export interface ConsoleLine {
  /** Milliseconds since the VM process was started. */
  ms: number;
  text: string;
}

// CSI sequences (ESC [ ... final byte) and the two-byte ESC c (reset).
const controlSequence = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[c78]/g;

export function cleanConsoleText(text: string): string {
  return text.replace(controlSequence, '').replaceAll('\r', '');
}

/** Splits chunks into lines and hands each complete one to `onLine` with its arrival time. */
export class LineSplitter {
  private pending = '';
  constructor(
    private readonly startedAt: number,
    private readonly onLine: (line: ConsoleLine) => void,
  ) {}

  push(chunk: Buffer | string): void {
    this.pending += chunk.toString();
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      const text = cleanConsoleText(this.pending.slice(0, nl));
      this.pending = this.pending.slice(nl + 1);
      this.onLine({ ms: performance.now() - this.startedAt, text });
    }
  }

  /** Emits a last line that had no newline. */
  end(): void {
    if (this.pending.length > 0) {
      const text = cleanConsoleText(this.pending);
      this.pending = '';
      this.onLine({ ms: performance.now() - this.startedAt, text });
    }
  }
}
