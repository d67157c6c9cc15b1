// Noticing that a disk changed size, for every block-backed device (bhyve's blockif hears it from kqueue on
// the vnode). Here `check` is called once a second, off the request path (inotify would wake JavaScript on every
// guest write): it asks the backend for the size of what it holds open (fstat for a file, BLKGETSIZE64 for a
// block device) and compares it with the size the guest was given. The comparison lives in the device, with the
// size the guest knows; a stat watcher that compared two of its own samples missed a resize made before its
// first sample. The timer never keeps the process alive on its own.

/** How often a disk is checked for resizes. */
const RESIZE_POLL_MS = 1000;

/** Calls `check` once a second until the returned function is called. */
export function watchDiskResize(check: () => void): () => void {
  const timer = setInterval(check, RESIZE_POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
