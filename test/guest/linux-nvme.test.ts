// test-needs: linux
// Linux's own nvme driver on tsbhyve's NVMe controller (devices/nvme), booted by tsbhyve's direct kernel boot in
// one batch (inside the nested-KVM L1 on this machine; directly on hardware KVM). The guest finds two controllers,
// one on a disk file and one in RAM with 4 KiB sectors; it reads what Identify says (serial, model, size, sector
// size), sees the I/O queues' interrupt vectors, makes ext4 on the file-backed namespace, writes, syncs and trims,
// and checks data on the RAM one. After tsbhyve exits, the VMM's machine checks the image (e2fsck, debugfs, the
// allocation that the trim left).
import test from 'tape';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { runLinuxGuests } from '../harness/nested/linux-guests.js';
import { hostCheck, tsbhyveWithDiskChecks } from './linux-boot.js';

const skip = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0 ? undefined : 'qemu-system-x86_64 is not installed';

const LINES = 3000;
const dataText = Array.from({ length: LINES }, (_, i) => `line ${i} of the tsbhyve nvme test\n`).join('');

const script = `
set -e
fail() { echo "CHECK FAILED: $*"; exit 1; }
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/nvme1n1 ] && break; sleep 0.5; done
[ -b /dev/nvme0n1 ] || fail "no /dev/nvme0n1"
[ -b /dev/nvme1n1 ] || fail "no /dev/nvme1n1"
# Identify's strings are space padded (NVMe 1.4 §5.15.2), and Linux shows them so: trim for the comparisons.
trim() { sed 's/ *$//' "$1"; }
# Which controller is which comes from the serial numbers, not the probe order.
for c in /sys/class/nvme/nvme*; do
  echo "$(basename $c): serial=[$(trim $c/serial)] model=[$(trim $c/model)] firmware=[$(trim $c/firmware_rev)] namespaces=$(ls -d $c/nvme*n1 2>/dev/null | wc -l)"
  case "$(trim $c/serial)" in LINUXNVME1) disk=$(basename $c)n1 ;; NVME-5-0) ram=$(basename $c)n1 ;; esac
done
[ -n "$disk" ] || fail "no controller with serial LINUXNVME1"
[ -n "$ram" ] || fail "no controller with the default serial NVME-5-0"
echo "disk=$disk sectors=$(cat /sys/block/$disk/size) lbs=$(cat /sys/block/$disk/queue/logical_block_size) discard_max=$(cat /sys/block/$disk/queue/discard_max_bytes)"
echo "ram=$ram sectors=$(cat /sys/block/$ram/size) lbs=$(cat /sys/block/$ram/queue/logical_block_size)"
echo "io queue vectors: $disk $(grep -c "\${disk%n1}q[1-9]" /proc/interrupts), $ram $(grep -c "\${ram%n1}q[1-9]" /proc/interrupts)"
mkfs.ext4 -q /dev/$disk
mkdir -p /mnt
mount -t ext4 /dev/$disk /mnt
i=0; while [ $i -lt ${LINES} ]; do echo "line $i of the tsbhyve nvme test"; i=$((i+1)); done > /mnt/data.txt
dd if=/dev/urandom of=/mnt/big bs=1M count=24 2>/dev/null
sync
rm /mnt/big
sync
fstrim -v /mnt
md5sum /mnt/data.txt
umount /mnt
# The RAM namespace: 4 MiB of random data written with O_DIRECT, read back the same way.
dd if=/dev/urandom of=/tmp/pattern bs=1M count=4 2>/dev/null
dd if=/tmp/pattern of=/dev/$ram bs=64k oflag=direct 2>/dev/null
[ "$(dd if=/dev/$ram bs=64k count=64 iflag=direct 2>/dev/null | md5sum)" = "$(md5sum < /tmp/pattern)" ] || fail "ram namespace read back differs"
echo "ram namespace read back intact"
echo "nvme checks passed"
`;

test('linux-nvme: the Debian kernel\'s nvme driver on tsbhyve: two controllers, ext4 with trim, data checked by the VMM host', { skip, timeout: 900_000 }, async (t) => {
  const run = await runLinuxGuests(
    [
      {
        name: 'nvme',
        script,
        // One vCPU (docs/vmm.md, "Two vCPUs inside the nested-KVM L1"); nvme.write_queues=1 still has the driver
        // create two I/O queue pairs per controller (reads and writes apart), each with its own MSI-X vector.
        cpus: 1,
        memMiB: 256,
        disks: [64],
        vmm: (b) =>
          tsbhyveWithDiskChecks((d) => ['-s', `"4,nvme,${d},ser=LINUXNVME1"`, '-s', '5,nvme,ram=16'], '/data.txt')({
            ...b,
            cmdline: `${b.cmdline} nvme.write_queues=1`,
          }),
      },
    ],
    { guestTimeoutSec: 300, onLine: (l) => process.stdout.write(`# ${l.text}\n`) },
  );
  console.log(`# the guest ran on ${run.where} (${run.reason}); batch ${Math.round(run.totalMs ?? 0)} ms`);
  const [g] = run.guests;
  const out = g!.output;
  t.equal(g!.status, 0, `the guest's script passed: ${out.trim().split('\n').at(-1)}`);
  t.equal(g!.vmmStatus, 1, 'tsbhyve exited 1 (powered off)');
  t.match(out, /serial=\[LINUXNVME1\] model=\[bhyve-NVMe\]/, 'Identify: the serial given with ser= and bhyve\'s model');
  t.match(out, /serial=\[NVME-5-0\]/, 'the RAM controller has bhyve\'s default serial for slot 5');
  t.match(out, /disk=nvme\dn1 sectors=131072 lbs=512 discard_max=[1-9]/, 'the 64 MiB file: 131072 512-byte sectors, with discard');
  t.match(out, /ram=nvme\dn1 sectors=32768 lbs=4096/, 'ram=16: 16 MiB in 4 KiB sectors');
  const vectors = /io queue vectors: nvme\dn1 (\d+), nvme\dn1 (\d+)/.exec(out);
  t.ok(vectors && Number(vectors[1]) >= 2 && Number(vectors[2]) >= 2, `each controller has two I/O queues on their own vectors in /proc/interrupts (${vectors?.slice(1).join(' and ')})`);
  t.match(out, /ram namespace read back intact/, 'O_DIRECT data on the RAM namespace reads back');

  const want = createHash('md5').update(dataText).digest('hex');
  t.ok(out.includes(want), 'the guest read its file back with the md5 the host expects');
  t.equal(hostCheck(g!.console, 'e2fsck'), '0', 'e2fsck -fn on the host finds the file system clean');
  t.equal(hostCheck(g!.console, 'md5'), want, 'debugfs on the host reads the same file');
  const kib = Number(hostCheck(g!.console, 'allocated_kib'));
  t.ok(kib > 0 && kib < 20 * 1024, `fstrim reached the image as Dataset Management deallocate: ${kib} KiB allocated after deleting 24 MiB`);
});
