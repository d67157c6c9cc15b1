// A Linux eventfd (non-blocking, close-on-exec): the handle irqfd, ioeventfd and native data-path workers
// share. Node has no eventfd API, so the addon creates it.
import { nativeCall } from './errors.js';
import { nativeVmm } from './native-vmm.js';

export class EventFd {
  readonly fd: number;
  private closed = false;

  constructor() {
    this.fd = nativeCall(() => nativeVmm().eventfd());
  }

  /** Adds n to the counter (signals the eventfd). */
  signal(n = 1): void {
    nativeCall(() => nativeVmm().eventfdWrite(this.fd, n));
  }

  /** Returns the counter and resets it to 0 (0 when nothing was signalled). */
  take(): number {
    return nativeCall(() => nativeVmm().eventfdRead(this.fd));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    nativeCall(() => nativeVmm().eventfdClose(this.fd));
  }
}
