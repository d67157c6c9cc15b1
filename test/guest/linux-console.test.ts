// test-needs: linux
// The handbook's console devices with Linux on tsbhyve: `-s 29,fbuf,tcp=127.0.0.1:PORT,w=800,h=600 -s 30,xhci,tablet`
// and a direct kernel boot, on Debian's generic kernel (the cloud flavour has no USB). The loader describes the
// framebuffer in screen_info, so the kernel's efifb takes it and fbcon draws the console there; the guest fills
// /dev/fb0 with white, a VNC client on the VMM's side sees the whole 800x600 screen white through the RFB server,
// then moves the pointer, and the guest's usbhid tablet (on xhci_hcd) delivers the event to /dev/input.
// Inside the nested-KVM L1 where the host's KVM cannot run Linux.
import test from 'tape';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { linuxGenericGuestImage } from '../../firmware/linux/guest-image.js';
import { runLinuxGuests } from '../harness/nested/linux-guests.js';
import { hostCheck, shq, tsbhyve } from './linux-boot.js';

const skip = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0 ? undefined : 'qemu-system-x86_64 is not installed';
const peer = fileURLToPath(new URL('./fixtures/vnc-peer.mjs', import.meta.url));
const VNC_PORT = 47190;

const script = `
set -e
fail() { echo "CHECK FAILED: $*"; exit 1; }
for i in $(seq 1 20); do [ -e /sys/class/graphics/fb0 ] && break; sleep 0.5; done
[ -e /sys/class/graphics/fb0 ] || fail "no fb0"
echo "fb0 name=$(cat /sys/class/graphics/fb0/name) size=$(cat /sys/class/graphics/fb0/virtual_size) bpp=$(cat /sys/class/graphics/fb0/bits_per_pixel) stride=$(cat /sys/class/graphics/fb0/stride)"
for v in /sys/class/vtconsole/vtcon*; do echo "vtcon $(cat $v/name) bound=$(cat $v/bind)"; done
echo 0 > /sys/class/graphics/fbcon/cursor_blink 2>/dev/null || true
# The tablet: xhci_hcd and usbhid make it an input device named after bhyve's strings.
ev=""
for i in $(seq 1 30); do
  for e in /sys/class/input/event*; do grep -q "HID Tablet" $e/device/name 2>/dev/null && ev=$(basename $e); done
  [ -n "$ev" ] && break
  sleep 0.5
done
[ -n "$ev" ] || fail "no tablet input device"
echo "tablet $ev: $(cat /sys/class/input/$ev/device/name)"
# Fill the screen with white, then wait for the pointer event the VNC client sends once it has seen it.
dd if=/dev/zero bs=3200 count=600 2>/dev/null | tr '\\000' '\\377' > /dev/fb0
echo "fb filled"
echo "tablet bytes=$(timeout 150 head -c 24 /dev/input/$ev | wc -c)"
echo "console checks done"
`;

function vmm(b: Parameters<ReturnType<typeof tsbhyve>>[0]): string {
  const inner = tsbhyve(['-s', `29,fbuf,tcp=127.0.0.1:${VNC_PORT},w=800,h=600`, '-s', '30,xhci,tablet'])({ ...b, kernel: '$1', initrd: '$2' });
  const steps = [
    'out=$(mktemp)',
    `node ${shq(peer)} ${VNC_PORT} > $out 2>&1 & p=$!`,
    inner,
    'st=$?',
    'kill $p 2>/dev/null; wait $p; cat $out; rm -f $out',
    'exit $st',
  ];
  return `sh -c ${shq(steps.join('; '))} sh "${b.kernel}" "${b.initrd}"`;
}

test('linux-console: efifb on the fbuf through screen_info, seen over VNC, and the xhci tablet as an input device', { skip, timeout: 900_000 }, async (t) => {
  const run = await runLinuxGuests([{ name: 'console', script, cpus: 1, memMiB: 256, disks: [], vmm }], {
    guestTimeoutSec: 600,
    image: linuxGenericGuestImage,
    onLine: (l) => process.stdout.write(`# ${l.text}\n`),
  });
  console.log(`# the guest ran on ${run.where} (${run.reason}); batch ${Math.round(run.totalMs ?? 0)} ms`);
  const [g] = run.guests;
  const out = g!.output;
  t.equal(g!.status, 0, `the guest's script passed: ${out.trim().split('\n').at(-1)}`);
  t.equal(g!.vmmStatus, 1, 'tsbhyve exited 1 (powered off)');
  t.match(out, /fb0 name=EFI VGA size=800,600 bpp=32 stride=3200/, "the kernel's efifb took the framebuffer screen_info describes");
  t.match(out, /vtcon \(M\) frame buffer device bound=1/, 'fbcon draws the console on it');
  t.match(out, /tablet event\d+: BHYVE HID Tablet/, "the xhci tablet is an input device (usbhid on xhci_hcd)");
  t.equal(hostCheck(g!.console, 'vnc_size'), '800x600', 'the VNC screen is the mode');
  t.equal(hostCheck(g!.console, 'vnc_white'), '1', 'over VNC the whole screen is what the guest wrote to /dev/fb0');
  t.match(out, /tablet bytes=24/, "the VNC client's pointer event reached the guest's input device");
});
