// test-needs: linux
// Linux's own ahci driver (libata, with sd and sr above it) on tsbhyve's AHCI controller (devices/ahci), booted by
// tsbhyve's direct kernel boot on Debian's generic kernel (the cloud kernel has no AHCI driver), inside the
// nested-KVM L1 on this machine and directly on hardware KVM. One controller holds a disk (nmrr=1) and an ISO 9660
// CD made on the host, `-s 4,ahci,hd:DISK,nmrr=1,ser=LINUXAHCI1,cd:ISO`; a second is `ahci-cd` alone, as the
// handbook's installer examples use it. The guest checks what libata and sd/sr report, makes ext4 on the disk with a
// trim, mounts the ISO and checksums its files, and fails to write to the CD. The VMM's machine checks the image.
import test from 'tape';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { linuxGenericGuestImage } from '../../firmware/linux/guest-image.js';
import { cacheRoot } from '../../firmware/linux/paths.js';
import { isoSkipReason, makeIso } from '../../firmware/testguest/iso.js';
import { runLinuxGuests } from '../harness/nested/linux-guests.js';
import { hostCheck, shq, tsbhyveWithDiskChecks } from './linux-boot.js';

const skip = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0 ? isoSkipReason() : 'qemu-system-x86_64 is not installed';

const LINES = 3000;
const dataText = Array.from({ length: LINES }, (_, i) => `line ${i} of the tsbhyve ahci test\n`).join('');

const script = `
set -e
fail() { echo "CHECK FAILED: $*"; exit 1; }
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/sda ] && [ -b /dev/sr1 ] && break; sleep 0.5; done
[ -b /dev/sda ] || fail "no /dev/sda"
# Which CD is which: the one on the first controller shares its PCI function with the disk (libata makes each port
# its own SCSI host, so compare the path up to the PCI function).
pcifn() { readlink -f /sys/block/$1/device | sed 's|/ata[0-9]*/.*||'; }
for s in /sys/block/sr*; do
  s=$(basename $s)
  echo "$s on $(pcifn $s)"
  if [ "$(pcifn $s)" = "$(pcifn sda)" ]; then cd=$s; else other=$s; fi
done
echo "sda on $(pcifn sda)"
[ -n "$cd" ] || fail "no CD next to the disk"
[ -n "$other" ] || fail "no second CD (ahci-cd)"
trim() { sed 's/ *$//' "$1"; }
echo "sda: vendor=[$(trim /sys/block/sda/device/vendor)] model=[$(trim /sys/block/sda/device/model)] sectors=$(cat /sys/block/sda/size) rotational=$(cat /sys/block/sda/queue/rotational) queue_depth=$(cat /sys/block/sda/device/queue_depth) discard_max=$(cat /sys/block/sda/queue/discard_max_bytes)"
echo "cd: $cd model=[$(trim /sys/block/$cd/device/model)] type=$(cat /sys/block/$cd/device/type) other=$other"
echo "serial: $(cat /sys/block/sda/device/vpd_pg80 2>/dev/null | tr -dc 'A-Za-z0-9-' || true)"
echo "ahci irq lines: $(grep -c ahci /proc/interrupts)"
mkfs.ext4 -q /dev/sda
mkdir -p /mnt /cdrom /cdrom2
mount -t ext4 /dev/sda /mnt
i=0; while [ $i -lt ${LINES} ]; do echo "line $i of the tsbhyve ahci test"; i=$((i+1)); done > /mnt/data.txt
dd if=/dev/urandom of=/mnt/big bs=1M count=24 2>/dev/null
sync
rm /mnt/big
sync
fstrim -v /mnt
md5sum /mnt/data.txt
umount /mnt
mount -t iso9660 -o ro /dev/$cd /cdrom
for f in /cdrom/*; do echo "cdfile $(basename $f) $(md5sum < $f | cut -d' ' -f1)"; done
umount /cdrom
mount -t iso9660 -o ro /dev/$other /cdrom2
echo "second cd files: $(ls /cdrom2 | tr '\\n' ' ')"
umount /cdrom2
if dd if=/dev/zero of=/dev/$cd bs=2048 count=1 oflag=direct 2>/tmp/cdwrite.err; then fail "a write to the CD succeeded"; fi
echo "cd write refused: $(head -c 120 /tmp/cdwrite.err | tr '\\n' ' ')"
echo "ahci checks passed"
`;

test('linux-ahci: the generic kernel\'s ahci, sd and sr drivers on tsbhyve: ext4 with trim on the disk, the ISO mounted and read', { skip, timeout: 900_000 }, async (t) => {
  // The ISO must be where the VMM's machine sees it: inside the project (the L1 mounts it over 9p).
  const isoDir = join(cacheRoot, 'nested', 'runs', `ahci-iso-${process.pid}`);
  mkdirSync(isoDir, { recursive: true });
  try {
    const files: Record<string, Buffer> = { 'README.TXT': Buffer.from('tsbhyve ahci-cd test disc\n'), 'RANDOM.BIN': randomBytes(700 * 1024 + 17) };
    const iso = makeIso(files, { out: join(isoDir, 'disc.iso'), volume: 'TSBAHCI' });
    const iso2 = makeIso({ 'OTHER.TXT': Buffer.from('the second disc\n') }, { out: join(isoDir, 'disc2.iso'), volume: 'TSBOTHER' });
    const run = await runLinuxGuests(
      [
        {
          name: 'ahci',
          script,
          cpus: 1,
          memMiB: 256,
          disks: [64],
          vmm: tsbhyveWithDiskChecks((d) => ['-s', `"4,ahci,hd:${d},nmrr=1,ser=LINUXAHCI1,cd:${iso}"`, '-s', shq(`5,ahci-cd,${iso2}`)], '/data.txt'),
        },
      ],
      { guestTimeoutSec: 300, image: linuxGenericGuestImage, onLine: (l) => process.stdout.write(`# ${l.text}\n`) },
    );
    console.log(`# the guest ran on ${run.where} (${run.reason}); batch ${Math.round(run.totalMs ?? 0)} ms`);
    const [g] = run.guests;
    const out = g!.output;
    t.equal(g!.status, 0, `the guest's script passed: ${out.trim().split('\n').at(-1)}`);
    t.equal(g!.vmmStatus, 1, 'tsbhyve exited 1 (powered off)');
    t.match(out, /sda: vendor=\[ATA\] model=\[BHYVE SATA DISK\] sectors=131072 rotational=0 queue_depth=(\d+) discard_max=[1-9]/, 'libata: an ATA disk of 131072 sectors, non-rotating (nmrr=1), with discard');
    const depth = Number(/queue_depth=(\d+)/.exec(out)?.[1]);
    t.ok(depth > 1, `NCQ in use: queue depth ${depth}`);
    t.match(out, /cd: sr\d model=\[BHYVE DVD-ROM\] type=5/, 'sr: an MMC drive (SCSI type 5) with bhyve\'s INQUIRY product');
    for (const [name, data] of Object.entries(files)) {
      t.ok(out.includes(`cdfile ${name.toLowerCase()} ${createHash('md5').update(data).digest('hex')}`) ||
        out.includes(`cdfile ${name} ${createHash('md5').update(data).digest('hex')}`), `${name} read from the mounted ISO matches the host file`);
    }
    t.match(out, /second cd files: other\.txt|second cd files: OTHER\.TXT/i, 'the ahci-cd controller\'s disc mounts too');
    t.match(out, /cd write refused/, 'a write to the CD fails (the kernel sees a write-protected disc)');
    const want = createHash('md5').update(dataText).digest('hex');
    t.ok(out.includes(want), 'the guest read its file back with the md5 the host expects');
    t.equal(hostCheck(g!.console, 'e2fsck'), '0', 'e2fsck -fn on the host finds the file system clean');
    t.equal(hostCheck(g!.console, 'md5'), want, 'debugfs on the host reads the same file');
    const kib = Number(hostCheck(g!.console, 'allocated_kib'));
    t.ok(kib > 0 && kib < 20 * 1024, `fstrim reached the image as DATA SET MANAGEMENT TRIM: ${kib} KiB allocated after deleting 24 MiB`);
  } finally {
    rmSync(isoDir, { recursive: true, force: true });
  }
});
