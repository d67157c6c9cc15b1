// Merges the TAP of several tape runs (the host's, and each nested-KVM L1 batch's) into one stream with one
// numbering and one summary. Streams run at the same time, so output would interleave: instead one stream
// at a time owns the output and prints as it arrives; the others are held and printed whole when they get
// their turn. Counting is done here from the assertion lines, not taken from each run's own summary:
// - `ok N ...` passes, `ok N ... # SKIP` and tape's `# SKIP <test>` (a test skipped with its reason) skip;
// - `not ok N ...` fails, unless marked `# TODO` (tape's expected failures);
// - a run that ended without its plan or exited non-zero adds one failure, unless it reported one itself.

export interface TapCounts {
  passed: number;
  failed: number;
  skipped: number;
}

const assertion = /^(not ok|ok)\b\s*(\d+)?\s?(.*)$/;
/** A directive is the line's last `#` part: a description may quote TAP (`# SKIP` inside a message is not one). */
const skipDirective = /#\s*SKIP\b[^#]*$/i;
const todoDirective = /#\s*TODO\b[^#]*$/i;
/** tape's per-run trailer and header: replaced by the merged ones. */
const perRunLine = /^(TAP version \d+|1\.\.\d+|# (tests|pass|fail|skip|todo)\s+\d+|# ok|# not ok)\s*$/;

export class TapStream {
  private held: string[] = [];
  private ended = false;
  private sawPlan = false;
  private failures = 0;

  constructor(
    private readonly merger: TapMerger,
    readonly label: string,
  ) {}

  /** One line of the run's standard output, without its newline. */
  line(text: string): void {
    if (this.ended) return;
    if (/^1\.\.\d+\s*$/.test(text)) this.sawPlan = true;
    if (perRunLine.test(text)) return;
    // The blank line tape prints before its trailer would pile up between merged runs.
    if (text.trim() === '') return;
    this.emit(text);
  }

  /** A failure that is not in the run's own TAP (the machine it ran on broke, a file could not start). */
  fail(description: string, detail?: string): void {
    this.emit(`not ok 0 ${description}`);
    if (detail) {
      this.emit('  ---');
      for (const l of detail.split('\n')) this.emit(`    ${l}`);
      this.emit('  ...');
    }
  }

  /** A test that could not run anywhere here, with the reason. */
  skip(description: string): void {
    this.emit(`ok 0 ${description} # SKIP`);
  }

  /** The run is over: `exitCode` is its status (null when it never ran to completion). */
  end(exitCode: number | null, why?: string): void {
    if (this.ended) return;
    const abnormal = !this.sawPlan || exitCode !== 0;
    // One failure says the run is broken; a run that already reported its own needs no second.
    if (abnormal && this.failures === 0) this.fail(`${this.label} ended abnormally (${why ?? `exit ${exitCode}`})`);
    else if (!this.sawPlan) this.emit(`# ${this.label} ended abnormally (${why ?? `exit ${exitCode}`})`);
    this.ended = true;
    this.merger.streamEnded(this);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Lines held while another stream owned the output; the merger takes them when this one's turn comes. */
  takeHeld(): string[] {
    return this.held.splice(0);
  }

  private emit(text: string): void {
    if (/^not ok\b/.test(text) && !todoDirective.test(text)) this.failures++;
    if (this.merger.owner === this) this.merger.print(text);
    else this.held.push(text);
  }
}

export class TapMerger {
  readonly counts: TapCounts = { passed: 0, failed: 0, skipped: 0 };
  owner: TapStream | undefined;
  private readonly waiting: TapStream[] = [];
  private number = 0;
  private started = false;

  constructor(private readonly write: (line: string) => void) {}

  /** A new stream; `banner` is printed as a comment when it takes the output. */
  stream(label: string): TapStream {
    const s = new TapStream(this, label);
    this.waiting.push(s);
    if (!this.owner) this.advance();
    return s;
  }

  /** Called by a stream that owns the output, for each of its lines (and for its held lines on its turn). */
  print(text: string): void {
    if (!this.started) {
      this.write('TAP version 13');
      this.started = true;
    }
    const m = assertion.exec(text);
    if (m) {
      const rest = m[3] ?? '';
      this.number++;
      if (m[1] === 'ok') {
        if (skipDirective.test(rest)) this.counts.skipped++;
        else this.counts.passed++;
      } else if (todoDirective.test(rest)) {
        this.counts.passed++;
      } else {
        this.counts.failed++;
      }
      this.write(`${m[1]} ${this.number} ${rest}`.trimEnd());
      return;
    }
    if (/^# SKIP\b/.test(text)) this.counts.skipped++;
    this.write(text);
  }

  streamEnded(s: TapStream): void {
    if (this.owner === s) this.advance();
  }

  /** Hands the output to the next stream, printing what it held; streams already over are printed at once. */
  private advance(): void {
    this.owner = undefined;
    while (this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      this.owner = next;
      this.print(`# ---- ${next.label}`);
      for (const l of next.takeHeld()) this.print(l);
      if (!next.isEnded) return;
      this.owner = undefined;
    }
  }

  /** True when every stream has ended. */
  get done(): boolean {
    return !this.owner && this.waiting.length === 0;
  }

  /** The merged plan and summary, ending with the line CI reads: "N passed, N failed, N skipped". */
  finish(): void {
    if (!this.started) this.write('TAP version 13');
    this.write('');
    this.write(`1..${this.number}`);
    this.write(`# tests ${this.number}`);
    this.write(`# pass  ${this.counts.passed}`);
    if (this.counts.skipped) this.write(`# skip  ${this.counts.skipped}`);
    this.write(`# fail  ${this.counts.failed}`);
    this.write('');
    this.write(`${this.counts.passed} passed, ${this.counts.failed} failed, ${this.counts.skipped} skipped`);
  }
}
