#!/bin/sh
# /init of the L1 machine (Linux under QEMU TCG with emulated AMD SVM). It loads kvm_amd so /dev/kvm
# exists, mounts the host's /usr (read-only) and the project directory (read-write, at the host's own
# path) over virtio-9p, runs the one script named on the kernel command line with the host's bash,
# prints its exit status between fixed markers and powers off.
# Kernel command line words read here: tsbhyve.project=<path> tsbhyve.run=<script path>, and any number of
# tsbhyve.mount=<9p tag>:<path> (host directories the project links to, mounted read-write at the same path)
PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run /usr
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
read -r up _ < /proc/uptime
echo "TSBHYVE-L1-INIT uptime=$up kernel=$(uname -r)"

while read -r module params; do
  [ -n "$module" ] || continue
  # shellcheck disable=SC2086 # params is a list of key=value words
  insmod "$module" $params 2>/tmp/insmod.err || echo "TSBHYVE-L1-WARN insmod $module: $(cat /tmp/insmod.err)"
done < /etc/modules.load
[ -c /dev/kvm ] || echo "TSBHYVE-L1-WARN no /dev/kvm (is the CPU model missing svm?)"

project=
run=
mounts=
for word in $(cat /proc/cmdline); do
  case $word in
    tsbhyve.project=*) project=${word#tsbhyve.project=} ;;
    tsbhyve.run=*) run=${word#tsbhyve.run=} ;;
    tsbhyve.mount=*) mounts="$mounts ${word#tsbhyve.mount=}" ;;
  esac
done

# 9p: a large msize cuts round trips; /usr never changes under us, so it may be cached loosely.
opts=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "$opts,ro,cache=loose" usr /usr || echo "TSBHYVE-L1-WARN cannot mount the host /usr"
# The host's programs expect its (merged-/usr) library layout.
mkdir -p /lib
ln -s /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu
ln -s /usr/lib64 /lib64
# On a merged-/usr host, /usr/sbin/ip is a link to /bin/ip, which here is busybox's applet (no ip netns): point
# the names the tests need at the host's programs in /usr/bin.
for p in ip; do [ -x "/usr/bin/$p" ] && ln -sf "/usr/bin/$p" "/bin/$p"; done
# Loopback up, as on any host: servers the tests start on 127.0.0.1 (VNC, slirp's host side) need it.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null || true
if [ -n "$project" ]; then
  mkdir -p "$project"
  mount -t 9p -o "$opts" project "$project" || echo "TSBHYVE-L1-WARN cannot mount the project at $project"
fi
for m in $mounts; do
  mkdir -p "${m#*:}"
  mount -t 9p -o "$opts" "${m%%:*}" "${m#*:}" || echo "TSBHYVE-L1-WARN cannot mount ${m%%:*} at ${m#*:}"
done

# The scratch disk, when QEMU gives one: a fresh ext4 at /var/tmp, for what tmpfs cannot do (O_DIRECT, which
# nocache disks and QEMU's cache=none need). No journal: it lives only as long as this boot.
if [ -b /dev/vda ]; then
  mkdir -p /var/tmp
  if /usr/sbin/mkfs.ext4 -q -F -O ^has_journal -N 65536 -E lazy_itable_init=0,lazy_journal_init=0 /dev/vda >/tmp/mkfs.err 2>&1 &&
    mount -t ext4 /dev/vda /var/tmp; then
    chmod 1777 /var/tmp
  else
    echo "TSBHYVE-L1-WARN no scratch file system at /var/tmp: $(cat /tmp/mkfs.err)"
  fi
fi

# A heartbeat on the second serial port, which the host reads from a file: when L1 itself freezes (the TCG SVM
# freeze of docs/vmm.md, where L1 gets no CPU back from its guest), the beats stop and the host can end it at once
# instead of at its time limit. A separate port, so the beats never split a line of the command's output.
if [ -c /dev/ttyS1 ]; then
  (while :; do read -r up _ < /proc/uptime; echo "$up"; sleep 5; done) > /dev/ttyS1 2>/dev/null &
fi

shell=/usr/bin/bash
[ -x "$shell" ] || shell=/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TMPDIR=/tmp TSBHYVE_IN_L1=1
read -r up _ < /proc/uptime
echo "TSBHYVE-L1-READY uptime=$up"
if [ -n "$run" ] && [ -f "$run" ]; then
  (cd "${project:-/}" && exec "$shell" "$run")
  status=$?
else
  echo "TSBHYVE-L1-WARN no script to run (tsbhyve.run=$run)"
  status=127
fi
# A newline first, in case the command's last line had none.
echo
echo "TSBHYVE-L1-EXIT status=$status"
poweroff -f
