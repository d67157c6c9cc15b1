#!/bin/sh
# /init of the Linux test guest. It loads the listed modules, runs the test script the host supplied
# (/test.sh from an archive appended to the initramfs, or tsbhyve.test=<base64> on the kernel command
# line), prints its exit status between fixed markers on the console, and powers the machine off.
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
read -r up _ < /proc/uptime
echo "TSBHYVE-GUEST-INIT uptime=$up kernel=$(uname -r)"

while read -r module params; do
  [ -n "$module" ] || continue
  # Parameters for a module from the kernel command line (<module>.<param>=<value>), as modprobe would pass them.
  name=$(basename "$module" .ko | tr - _)
  for word in $(cat /proc/cmdline); do
    case $word in "$name".*=*) params="$params ${word#"$name".}" ;; esac
  done
  # shellcheck disable=SC2086 # params is a list of key=value words
  insmod "$module" $params 2>/tmp/insmod.err || echo "TSBHYVE-GUEST-WARN insmod $module: $(cat /tmp/insmod.err)"
done < /etc/modules.load

if [ ! -f /test.sh ]; then
  for word in $(cat /proc/cmdline); do
    case $word in tsbhyve.test=*) echo "${word#tsbhyve.test=}" | base64 -d > /test.sh ;; esac
  done
fi

read -r up _ < /proc/uptime
echo "TSBHYVE-GUEST-READY uptime=$up"
if [ -f /test.sh ]; then
  (cd /root && sh /test.sh)
  status=$?
else
  echo "TSBHYVE-GUEST-WARN no test script (append /test.sh to the initramfs or pass tsbhyve.test=)"
  status=127
fi
echo "TSBHYVE-GUEST-EXIT status=$status"
sync
poweroff -f
