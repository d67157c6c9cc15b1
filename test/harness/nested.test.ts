// test-needs: linux
// Real Linux guests under QEMU+KVM: the Debian cloud kernel with the test initramfs, booted once per
// guest below. On this kind of machine (kvm_pvm) they run inside one L1 machine under QEMU TCG with
// emulated SVM; where the host's KVM runs unmodified Linux they run directly. Each guest checks
// something real and reports through its console; timings are printed as TAP comments.
import test from 'tape';
import { qemuKvmCommand, runLinuxGuests, type LinuxGuestResult } from './nested/linux-guests.js';

const seconds = (ms: number | null | undefined) => (ms == null ? 'n/a' : `${(ms / 1000).toFixed(2)} s`);

const topology = `
cpus=$(grep -c ^processor /proc/cpuinfo)
mem_kb=$(sed -n 's/^MemTotal: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo)
echo "cpus=$cpus mem_kb=$mem_kb"
# 384 MiB given; the kernel keeps some for itself, so expect 300..384 MiB.
[ "$cpus" = 2 ] && [ "$mem_kb" -gt $((300 * 1024)) ] && [ "$mem_kb" -le $((384 * 1024)) ]
`;

const ext4 = `
set -e
echo "sectors=$(cat /sys/block/vda/size)"
mkfs.ext4 -q -L tsbhyve /dev/vda
mount -t ext4 /dev/vda /mnt
dd if=/dev/urandom of=/mnt/data bs=64k count=64 2>/dev/null
sum=$(md5sum < /mnt/data)
umount /mnt
fsck.ext4 -fn /dev/vda >/tmp/fsck.log 2>&1 || { cat /tmp/fsck.log; exit 1; }
echo "fsck clean"
mount -t ext4 -o ro /dev/vda /mnt
[ "$(md5sum < /mnt/data)" = "$sum" ] && echo "data intact after remount"
`;

test('nested KVM: Linux guests boot under QEMU+KVM and report through their console', async (t) => {
  t.timeoutAfter(290_000);
  const run = await runLinuxGuests(
    [
      { name: 'topology', script: topology, cpus: 2, memMiB: 384 },
      { name: 'ext4', script: ext4, disks: [64], memMiB: 256 },
      { name: 'failing', script: 'echo about to fail\nexit 7\n' },
      // The bzImage, as tsbhyve's direct kernel boot will load it (QEMU's -kernel takes either form).
      {
        name: 'bzimage',
        script: 'echo "release $(uname -r)"; cat /sys/kernel/boot_params/version',
        vmm: (boot) => qemuKvmCommand({ ...boot, vmlinux: boot.kernel }),
      },
    ],
    { guestTimeoutSec: 90, timeoutMs: 280_000 },
  );
  t.comment(`guests ran on the ${run.where === 'l1' ? 'nested-KVM L1 machine' : 'host'} (${run.reason})`);
  if (run.l1ReadyMs !== undefined) t.comment(`L1 start (QEMU TCG to ready): ${seconds(run.l1ReadyMs)}`);
  for (const g of run.guests) {
    t.comment(
      `L2 ${g.name}: init ${seconds(g.initMs)} (guest kernel ${seconds(g.kernelMs)}), ready ${seconds(g.readyMs)}, ` +
        `total ${seconds(g.totalMs)}`,
    );
  }
  t.comment(`whole batch: ${seconds(run.totalMs)}`);

  const [topo, disk, failing, bz] = run.guests as [LinuxGuestResult, LinuxGuestResult, LinuxGuestResult, LinuxGuestResult];
  const show = (g: LinuxGuestResult) => (g.status === 0 ? g.output : g.console);

  t.equal(topo.status, 0, `topology: 2 vCPUs and 384 MiB seen by the guest\n${show(topo)}`);
  t.match(topo.output, /cpus=2 mem_kb=\d+/, 'topology: the guest printed what it saw');

  t.equal(disk.status, 0, `ext4: mkfs, mount, write, fsck, remount on virtio-blk\n${show(disk)}`);
  t.match(disk.output, /sectors=131072/, 'ext4: the 64 MiB disk has 131072 sectors');
  t.match(disk.output, /fsck clean/, 'ext4: e2fsck found the file system clean');
  t.match(disk.output, /data intact after remount/, 'ext4: data read back after remount');

  t.equal(failing.status, 7, 'a failing script reports its own exit status');
  t.equal(failing.output, 'about to fail', 'and its output, without the init markers');

  t.equal(bz.status, 0, `bzImage: the same image boots by the Linux boot protocol\n${show(bz)}`);
  t.match(bz.output, /release 6\.1\.0-\d+-cloud-amd64/, 'bzImage: the Debian cloud kernel runs');

  for (const g of run.guests) {
    t.equal(g.vmmStatus, 0, `${g.name}: QEMU exited cleanly after the guest powered off`);
    t.ok(g.readyMs !== null && g.totalMs !== null && g.readyMs <= g.totalMs, `${g.name}: boot timings recorded`);
  }
});
