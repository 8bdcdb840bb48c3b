#!/bin/sh
# armvisor's default /init (BusyBox). The kernel runs it as PID 1 from the
# initramfs; the lines starting "armvisor-init:" are what tests wait for.
#
# Kernel command line: armvisor.run=/path runs that script instead of the
# interactive shell, prints its exit status and powers off.

export PATH=/sbin:/usr/sbin:/bin:/usr/bin
export HOME=/root
/bin/busybox mkdir -p /proc /sys /dev /tmp /root /sbin /usr/bin /usr/sbin
# Symlinks for every applet, so the rest of this script reads as plain shell.
/bin/busybox --install -s

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts

# One module per line, dependencies first (written by armvisor's builder).
if [ -r /etc/armvisor/modules ]; then
    while read -r module; do
        [ -n "$module" ] || continue
        insmod "$module" || echo "armvisor-init: insmod $module failed"
    done < /etc/armvisor/modules
fi
echo "armvisor-init: modules loaded:" $(cut -d ' ' -f 1 /proc/modules)

echo "armvisor-init: ready on $(nproc) CPUs"

# Parameters with a dot are not passed to init as arguments or environment:
# read them from /proc/cmdline.
run=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        armvisor.run=*) run="${arg#armvisor.run=}" ;;
    esac
done

if [ -n "$run" ]; then
    /bin/sh "$run"
    echo "armvisor-init: run exited with status $?"
else
    # A session of its own with the console as controlling terminal, so job
    # control and Ctrl-C work; the shell ends at exit or end of input.
    setsid cttyhack sh
fi
poweroff -f
