// How the Linux guest tests boot a harness guest (test/harness/nested/linux-guests.ts) under tsbhyve, and the
// checks of a disk image that run on the VMM's machine after tsbhyve exits (inside the nested-KVM L1 that is
// L1, since the disk lives in the batch's scratch directory there).
import { fileURLToPath } from 'node:url';
import type { GuestBoot } from '../harness/nested/linux-guests.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

export const shq = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** The tsbhyve command line that boots one harness guest (paths are shell words, see GuestBoot). */
export function tsbhyve(extra: string[] = []): (b: GuestBoot) => string {
  return (b) =>
    [
      'node', shq(`${root}bin/tsbhyve.js`),
      '-c', String(b.cpus), '-m', `${b.memMiB}M`,
      '-s', '0,hostbridge', ...extra, '-s', '31,lpc', '-l', 'com1,stdio',
      '-o', `"boot.kernel=${b.kernel}"`, '-o', `"boot.initrd=${b.initrd}"`, '-o', shq(`boot.cmdline=${b.cmdline}`),
      `l2-${b.name}`,
    ].join(' ');
}

/**
 * tsbhyve with the guest's first scratch disk on the device `slotArgs(disk)` names (e.g.
 * `d => ['-s', `"3,virtio-blk,${d}"`]`), then, on the VMM's machine, `HOSTCHECK` lines about the image: e2fsck -fn's
 * status, the md5 of `file` read back with debugfs, and the KiB the image holds. The harness runs the command
 * under timeout(1), so it is one `sh -c` whose arguments carry the scratch paths.
 */
export function tsbhyveWithDiskChecks(slotArgs: (disk: string) => string[], file: string): (b: GuestBoot) => string {
  return (b) => {
    const inner = tsbhyve(slotArgs('$1'))({ ...b, kernel: '$2', initrd: '$3' });
    const script = [
      inner,
      'st=$?',
      'e2fsck -fn "$1" >/dev/null 2>&1; echo "HOSTCHECK e2fsck=$?"',
      `echo "HOSTCHECK md5=$(debugfs -R 'cat ${file}' "$1" 2>/dev/null | md5sum | cut -d' ' -f1)"`,
      'echo "HOSTCHECK allocated_kib=$(du -k "$1" | cut -f1)"',
      'exit $st',
    ].join('; ');
    return `sh -c ${shq(script)} sh "${b.disks[0]}" "${b.kernel}" "${b.initrd}"`;
  };
}

/** The value of a `HOSTCHECK key=value` line in a guest's console. */
export function hostCheck(console: string, key: string): string | undefined {
  return new RegExp(`HOSTCHECK ${key}=(\\S*)`).exec(console)?.[1];
}
