// A real Linux guest (Debian's cloud kernel + a busybox initramfs, firmware/linux) booted by tsbhyve's direct
// kernel boot. It checks from inside what tsbhyve presents (CPUs, memory, PCI functions, ACPI tables, the COM
// port) and powers off through ACPI S5, so tsbhyve exits 1. On this machine's kvm_pvm the guest runs inside the
// nested-KVM L1 (test/harness/nested); on hardware KVM it runs right here.
import test from 'tape';
import { runLinuxGuests, type GuestBoot } from '../harness/nested/linux-guests.js';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const kvmMissing = (): string | undefined => (existsSync('/dev/kvm') ? undefined : 'no /dev/kvm on this host');

const skip = kvmMissing();
if (skip) console.log(`# skipping Linux guest tests: ${skip}`);

/** The tsbhyve command line that boots one harness guest (paths are shell words, see GuestBoot). */
function tsbhyve(b: GuestBoot): string {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  return [
    'node', q(`${root}bin/tsbhyve.js`),
    '-c', String(b.cpus), '-m', `${b.memMiB}M`,
    '-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio',
    '-o', `"boot.kernel=${b.kernel}"`, '-o', `"boot.initrd=${b.initrd}"`, '-o', q(`boot.cmdline=${b.cmdline}`),
    `l2-${b.name}`,
  ].join(' ');
}

// What the guest checks; each failing check prints why and fails the script.
const platformScript = `
set -e
fail() { echo "CHECK FAILED: $*"; exit 1; }
cpus=$(grep -c ^processor /proc/cpuinfo)
[ "$cpus" = 2 ] || fail "cpus=$cpus"
mem=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
[ "$mem" -gt 400000 ] && [ "$mem" -le 524288 ] || fail "MemTotal=$mem kB"
for t in APIC DSDT FACP HPET MCFG; do [ -e /sys/firmware/acpi/tables/$t ] || fail "no ACPI table $t"; done
ls /sys/bus/pci/devices/ | tr '\\n' ' '; echo
[ "$(cat /sys/bus/pci/devices/0000:00:00.0/vendor)" = 0x1275 ] || fail "hostbridge vendor"
[ "$(cat /sys/bus/pci/devices/0000:00:1f.0/device)" = 0x7000 ] || fail "lpc device"
grep -q 'ttyS0 at I/O 0x3f8' /proc/tty/driver/serial 2>/dev/null || dmesg | grep -q 'ttyS0 at I/O 0x3f8' || fail "no COM1"
echo "platform checks passed: cpus=$cpus mem=$mem"
`;

test('linux: a Debian kernel boots under tsbhyve, sees the platform and powers off with status 1', { skip: !!skip, timeout: 900_000 }, async (t) => {
  const run = await runLinuxGuests(
    [{ name: 'platform', script: platformScript, cpus: 2, memMiB: 512, vmm: tsbhyve }],
    { guestTimeoutSec: 240, onLine: (l) => process.stdout.write(`# ${l.text}\n`) },
  );
  console.log(`# guests ran on ${run.where} (${run.reason}); L1 ready in ${run.l1ReadyMs ?? '-'} ms, batch ${run.totalMs} ms`);
  const g = run.guests[0]!;
  console.log(`# guest init after ${g.initMs} ms (kernel uptime ${g.kernelMs} ms), tsbhyve exited after ${g.totalMs} ms`);
  t.equal(g.status, 0, `the guest's checks passed: ${g.output.trim().split('\n').at(-1)}`);
  t.equal(g.vmmStatus, 1, 'tsbhyve exited 1 (powered off)');
});
