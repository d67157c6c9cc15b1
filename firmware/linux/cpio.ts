// A writer for the "newc" cpio format, the one Linux unpacks as an initramfs. Archives are built in
// memory from a list of entries, with fixed owners and times so the same inputs give the same bytes.
// Linux also accepts several archives one after the other, which is how a test script is added to a
// prebuilt image (appendTo).
import { appendFileSync, copyFileSync } from 'node:fs';

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Buffer | string; mode?: number }
  | { kind: 'symlink'; path: string; target: string };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

function header(ino: number, mode: number, nlink: number, size: number, nameSize: number): string {
  const fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, nameSize, 0];
  return '070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join('');
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function record(ino: number, name: string, mode: number, nlink: number, body: Buffer): Buffer[] {
  // The path inside an initramfs is relative to its root: no leading slash.
  const nameBytes = Buffer.from(name.replace(/^\/+/, '') + '\0', 'utf8');
  const head = Buffer.from(header(ino, mode, nlink, body.length, nameBytes.length), 'latin1');
  return [head, nameBytes, pad4(head.length + nameBytes.length), body, pad4(body.length)];
}

/** The bytes of one newc archive holding `entries` in order (parents must come before children). */
export function cpioArchive(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    switch (e.kind) {
      case 'dir':
        parts.push(...record(ino++, e.path, S_IFDIR | (e.mode ?? 0o755), 2, Buffer.alloc(0)));
        break;
      case 'file': {
        const data = typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : e.data;
        parts.push(...record(ino++, e.path, S_IFREG | (e.mode ?? 0o644), 1, data));
        break;
      }
      case 'symlink':
        parts.push(...record(ino++, e.path, S_IFLNK | 0o777, 1, Buffer.from(e.target, 'utf8')));
        break;
    }
  }
  parts.push(...record(0, 'TRAILER!!!', 0, 1, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** Writes the initramfs `baseFile` followed by an archive of `extra` to `out`: the kernel unpacks both. */
export function appendTo(baseFile: string, extra: readonly CpioEntry[], out: string): void {
  copyFileSync(baseFile, out);
  appendFileSync(out, cpioArchive(extra));
}
