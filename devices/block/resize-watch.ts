// Noticing that a disk changed size, for every block-backed device (bhyve's blockif hears it from kqueue on
// the vnode). Here it is polled once a second, off the request path (inotify would wake JavaScript on every
// guest write): a file by its stat size, a block device (whose stat size is 0) by calling `check`, which asks
// the device itself (BLKGETSIZE64 in the native backend). The poll never keeps the process alive on its own.
import { statSync, unwatchFile, watchFile, type Stats } from 'node:fs';

/** How often a disk is checked for resizes. */
const RESIZE_POLL_MS = 1000;

/** Calls `check` when the disk at `path` may have changed size; returns the function that stops watching. */
export function watchDiskResize(path: string, check: () => void): () => void {
  let blockDevice = false;
  try {
    blockDevice = statSync(path).isBlockDevice();
  } catch {
    // the backend holds the disk open; a path that went away just stops resize detection
  }
  if (blockDevice) {
    const timer = setInterval(check, RESIZE_POLL_MS);
    timer.unref();
    return () => clearInterval(timer);
  }
  const listener = (cur: Stats, prev: Stats): void => {
    if (cur.size !== prev.size) check();
  };
  watchFile(path, { persistent: false, interval: RESIZE_POLL_MS }, listener);
  return () => unwatchFile(path, listener);
}
