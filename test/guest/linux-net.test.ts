// test-needs: linux
// Linux's own virtio_net driver on tsbhyve's virtio-net (devices/virtio-net), on a tap in a network namespace
// the VMM side makes (inside the nested-KVM L1 on this machine; directly on hardware KVM). The guest sees the MAC
// and MTU it was given and its queues' interrupt vectors, takes a static address, pings the host (also with
// fragmented 8000-byte pings) and downloads 4 MiB over TCP from busybox httpd in the namespace, checked by md5:
// the download goes through the tap's offloads (GUEST_CSUM, GUEST_TSO4) and mergeable receive buffers. A
// virtio-rnd beside it becomes the kernel's hw_random source. A virtio-console with two ports on unix sockets:
// a named data port (/sys/class/virtio-ports/*/name) that exchanges a line with a host client both ways, and a port
// announced as a console, which the kernel makes /dev/hvc0; the sockets are gone after tsbhyve exits.
import test from 'tape';
import { spawnSync } from 'node:child_process';
import { runLinuxGuests } from '../harness/nested/linux-guests.js';
import { fileURLToPath } from 'node:url';
import { hostCheck, shq, tsbhyve } from './linux-boot.js';

const peerScript = fileURLToPath(new URL('./fixtures/console-peer.mjs', import.meta.url));

const skip = spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0 ? undefined : 'qemu-system-x86_64 is not installed';

const MAC = '02:54:42:4c:4e:01';

const script = `
set -e
fail() { echo "CHECK FAILED: $*"; exit 1; }
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/class/net/eth0 ] && break; sleep 0.5; done
[ -e /sys/class/net/eth0 ] || fail "no eth0"
echo "driver=$(basename $(readlink /sys/class/net/eth0/device/driver)) mac=$(cat /sys/class/net/eth0/address) mtu=$(cat /sys/class/net/eth0/mtu)"
echo "features: $(cat /sys/class/net/eth0/device/features)"
echo "vectors: $(grep -c 'virtio[0-9]*-\\(input\\|output\\)' /proc/interrupts)"
ip addr add 10.79.0.2/24 dev eth0
ip link set eth0 up
for i in 1 2 3 4 5 6 7 8 9 10; do [ "$(cat /sys/class/net/eth0/operstate)" = up ] && break; sleep 0.5; done
echo "operstate=$(cat /sys/class/net/eth0/operstate)"
ping -c 3 -W 5 10.79.0.1 | tail -2
ping -c 2 -W 5 -s 8000 10.79.0.1 | tail -2
echo "download md5=$(wget -q -O - http://10.79.0.1:8080/blob | md5sum | cut -d' ' -f1)"
echo "rx_packets=$(cat /sys/class/net/eth0/statistics/rx_packets) rx_errors=$(cat /sys/class/net/eth0/statistics/rx_errors) tx_errors=$(cat /sys/class/net/eth0/statistics/tx_errors)"
# virtio-rnd behind the kernel's hw_random: the current source, and bytes read from /dev/hwrng.
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /dev/hwrng ] && break; sleep 0.5; done
echo "hwrng=$(cat /sys/class/misc/hw_random/rng_current) read=$(head -c 4096 /dev/hwrng | wc -c)"
# virtio-console: the named data port and the console port (hvc0).
for i in 1 2 3 4 5 6 7 8 9 10; do [ -n "$(ls /sys/class/virtio-ports 2>/dev/null)" ] && break; sleep 0.5; done
echo "vtcon pci driver=$(basename "$(readlink /sys/bus/pci/devices/0000:00:05.0/driver)") modules=$(grep -c virtio_console /proc/modules)"
dmesg | grep -i -E 'virtio_console|virtio-ports|hvc|00:05.0' | tail -5
for p in /sys/class/virtio-ports/*; do echo "vport $(basename $p) name=$(cat $p/name)"; done
vp=""
for p in /sys/class/virtio-ports/*; do [ "$(cat $p/name)" = org.tsbhyve.data ] && vp=$(basename $p); done
[ -n "$vp" ] || fail "no port named org.tsbhyve.data"
echo "vport read=$(timeout 60 head -n 1 /dev/$vp)"
echo "guest-to-host-data" > /dev/$vp
[ -c /dev/hvc0 ] && echo "hvc0 present"
echo "hvc-hello" > /dev/hvc0
echo "net checks done"
`;

/** The VMM side: a namespace with tap0 at 10.79.0.1 and httpd serving 4 MiB of random data, tsbhyve inside it. */
function vmm(b: Parameters<ReturnType<typeof tsbhyve>>[0]): string {
  // The boot paths are the batch script's shell words: hand them in as arguments of the sh -c.
  const inner = tsbhyve([
    '-s', `3,virtio-net,tap0,mac=${MAC}`, '-s', '4,virtio-rnd',
    '-s', '5,virtio-console,org.tsbhyve.data=$cdir/data.sock,hvc=$cdir/con.sock', '-o', 'pci.0.5.0.port.1.console=true',
  ])({ ...b, kernel: '$1', initrd: '$2' });
  const ns = `tsbhyve-lnet-${process.pid}`;
  const steps = [
    `ns=${ns}`,
    'ip netns add $ns',
    'ip netns exec $ns ip link set lo up',
    'ip netns exec $ns ip tuntap add dev tap0 mode tap vnet_hdr',
    'ip netns exec $ns ip addr add 10.79.0.1/24 dev tap0',
    'ip netns exec $ns ip link set tap0 up',
    'www=$(mktemp -d)',
    'head -c 4194304 /dev/urandom > $www/blob',
    'echo "HOSTCHECK md5=$(md5sum < $www/blob | cut -d" " -f1)"',
    'ip netns exec $ns busybox httpd -p 10.79.0.1:8080 -h $www',
    'cdir=$(mktemp -d)',
    `node ${shq(peerScript)} $cdir > $cdir/peer.out 2>&1 & peer=$!`,
    `ip netns exec $ns ${inner}`,
    'st=$?',
    'wait $peer; cat $cdir/peer.out',
    'echo "HOSTCHECK sockets_left=$(ls $cdir | grep -c sock)"',
    'rm -rf $cdir',
    'echo "HOSTCHECK tap_rx=$(ip netns exec $ns cat /sys/class/net/tap0/statistics/rx_packets)"',
    'ip netns pids $ns | xargs -r kill',
    'ip netns delete $ns',
    'rm -rf $www',
    'exit $st',
  ];
  return `sh -c ${shq(steps.join('; '))} sh "${b.kernel}" "${b.initrd}"`;
}

// The slirp guest: bhyve's user-mode network with `open` (the guest may reach out) and a hostfwd rule. It serves a
// page on port 80, fetches one from the host's loopback through the gateway 10.0.2.2, and waits until the host has
// fetched its page through the forward (the host then publishes /done).
const FWD_PORT = 47180;
const HOST_PORT = 47181;
const slirpScript = `
set -e
fail() { echo "CHECK FAILED: $*"; exit 1; }
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/class/net/eth0 ] && break; sleep 0.5; done
[ -e /sys/class/net/eth0 ] || fail "no eth0"
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
mkdir -p /www && echo served-by-the-guest > /www/g.txt
busybox httpd -p 80 -h /www
echo "outbound=$(wget -q -O - http://10.0.2.2:${HOST_PORT}/h.txt)"
for i in $(seq 1 90); do wget -q -O /dev/null http://10.0.2.2:${HOST_PORT}/done 2>/dev/null && break; sleep 1; done
echo "host fetched=$(wget -q -O - http://10.0.2.2:${HOST_PORT}/done)"
echo "slirp checks done"
`;

function slirpVmm(b: Parameters<ReturnType<typeof tsbhyve>>[0]): string {
  const inner = tsbhyve(['-s', `3,virtio-net,slirp,hostfwd=tcp:127.0.0.1:${FWD_PORT}-:80,open`])({ ...b, kernel: '$1', initrd: '$2' });
  const steps = [
    'd=$(mktemp -d)',
    'echo served-by-the-host > $d/h.txt',
    `busybox httpd -f -p 127.0.0.1:${HOST_PORT} -h $d & web=$!`,
    `(for i in $(seq 1 150); do if busybox wget -q -O $d/got http://127.0.0.1:${FWD_PORT}/g.txt 2>/dev/null; then cp $d/got $d/done; break; fi; sleep 1; done) & poller=$!`,
    inner,
    'st=$?',
    'echo "HOSTCHECK fwd=$(cat $d/got 2>/dev/null)"',
    'kill $web $poller 2>/dev/null; wait $web 2>/dev/null',
    'rm -rf $d',
    'exit $st',
  ];
  return `sh -c ${shq(steps.join('; '))} sh "${b.kernel}" "${b.initrd}"`;
}

test('linux-net: the Debian kernel\'s virtio_net on tsbhyve over a tap and over slirp', { skip, timeout: 900_000 }, async (t) => {
  const run = await runLinuxGuests(
    [
      { name: 'net', script, cpus: 1, memMiB: 256, disks: [], vmm },
      { name: 'slirp', script: slirpScript, cpus: 1, memMiB: 256, disks: [], vmm: slirpVmm },
    ],
    { guestTimeoutSec: 300, onLine: (l) => process.stdout.write(`# ${l.text}\n`) },
  );
  console.log(`# the guests ran on ${run.where} (${run.reason}); batch ${Math.round(run.totalMs ?? 0)} ms`);
  const [g, sg] = run.guests;
  const sout = sg!.output;
  t.equal(sg!.status, 0, `slirp: the guest's script passed: ${sout.trim().split('\n').at(-1)}`);
  t.match(sout, /outbound=served-by-the-host/, 'slirp open: the guest fetched a page from the host\'s loopback through 10.0.2.2');
  t.equal(hostCheck(sg!.console, 'fwd'), 'served-by-the-guest', 'slirp hostfwd: the host fetched the guest\'s page through 127.0.0.1');
  t.match(sout, /host fetched=served-by-the-guest/, 'and the guest saw the host finish');
  const out = g!.output;
  t.equal(g!.status, 0, `the guest's script passed: ${out.trim().split('\n').at(-1)}`);
  t.equal(g!.vmmStatus, 1, 'tsbhyve exited 1 (powered off)');
  t.match(out, new RegExp(`driver=virtio_net mac=${MAC} mtu=1500`), 'virtio_net bound, with the configured MAC and MTU');
  t.match(out, /vectors: [2-9]/, 'receive and transmit queues have interrupt vectors');
  t.match(out, /operstate=up/, 'link up');
  const pings = [...out.matchAll(/(\d+) packets transmitted, (\d+) packets received/g)].map((m) => [m[1], m[2]]);
  t.deepEqual(pings, [['3', '3'], ['2', '2']], 'every ping answered, also 8000-byte ones (fragments)');
  const md5 = hostCheck(g!.console, 'md5');
  t.ok(md5 && md5.length === 32, 'the host made the file');
  t.match(out, new RegExp(`download md5=${md5}`), 'the 4 MiB download arrived intact over TCP');
  t.match(out, /rx_errors=0 tx_errors=0/, 'no driver errors');
  t.match(out, /hwrng=virtio_rng\.\d+ read=4096/, 'virtio-rnd is the kernel\'s hw_random source and /dev/hwrng gives 4096 bytes');
  t.match(out, /vport vport\d+p0 name=org\.tsbhyve\.data/, 'the data port carries its name');
  t.match(out, /vport vport\d+p1 name=hvc/, 'the console port too');
  t.match(out, /vport read=hello-from-host/, 'the host client\'s line reached the guest');
  t.equal(hostCheck(g!.console, 'vtcon_data'), 'guest-to-host-data.', 'the guest\'s line reached the host client');
  t.match(out, /hvc0 present/, 'the console port became /dev/hvc0');
  t.equal(hostCheck(g!.console, 'vtcon_hvc'), 'hvc-hello', 'what the guest wrote to hvc0 reached the console socket');
  t.equal(hostCheck(g!.console, 'sockets_left'), '0', 'tsbhyve removed its socket files');
  t.ok(Number(hostCheck(g!.console, 'tap_rx')) > 10, `the tap saw the guest's frames (${hostCheck(g!.console, 'tap_rx')})`);
});
