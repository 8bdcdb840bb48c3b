#!/bin/sh
# Run inside Debian's kernel on armvisor by tests/linux/test_linux.py (through
# the initramfs's armvisor.run hook). Prints "CHECK <name>: ok" or
# "CHECK <name>: FAIL <details>" per check; the host test reads those lines.
# $1 = hotplug cycles per secondary CPU; $2 = "no-hvc" where there is no virtio-console;
# $3 = "ro" when /dev/vdb is a disk given with readonly=on.
cycles=${1:-10}
hvc=${2:-hvc}
ro=${3:-no-ro}
check() {   # check NAME CONDITION-EXIT-STATUS DETAILS
    if [ "$2" -eq 0 ]; then echo "CHECK $1: ok"; else echo "CHECK $1: FAIL $3"; fi
}

cpus=$(grep -c ^processor /proc/cpuinfo)
echo "cpus: $cpus"
[ "$cpus" -eq 4 ]; check "cpu count" $? "$cpus processors in /proc/cpuinfo"

# A command pinned to each CPU reports that CPU (field 39 of /proc/self/stat).
pinned_ok=0
for cpu in 0 1 2 3; do
    ran_on=$(taskset -c "$cpu" cut -d ' ' -f 39 /proc/self/stat)
    echo "pinned to cpu$cpu: ran on cpu$ran_on"
    [ "$ran_on" = "$cpu" ] || pinned_ok=1
done
check "taskset on every cpu" $pinned_ok ""

# CPU hotplug through PSCI CPU_OFF / CPU_ON.
hotplug_ok=0
for cpu in 1 2 3; do
    n=0
    while [ "$n" -lt "$cycles" ]; do
        echo 0 > /sys/devices/system/cpu/cpu$cpu/online || { hotplug_ok=1; echo "offline cpu$cpu failed"; }
        echo 1 > /sys/devices/system/cpu/cpu$cpu/online || { hotplug_ok=1; echo "online cpu$cpu failed"; }
        n=$((n + 1))
    done
done
online=$(cat /sys/devices/system/cpu/online)
echo "hotplug: $cycles cycles per secondary, online now: $online"
[ "$hotplug_ok" -eq 0 ] && [ "$online" = "0-3" ]; check "hotplug" $? "online=$online"
# Each secondary still runs work after its last CPU_ON.
taskset -c 3 true; check "cpu3 runs after hotplug" $? ""

# The disks by their serial ("...-vdN" for the Nth --drive), not by probe order.
disk_number() {
    for dev in /sys/block/vd*; do
        case "$(cat "$dev/serial" 2>/dev/null)" in *-vd"$1") echo "/dev/${dev##*/}"; return;; esac
    done
}
rw=$(disk_number 0)
echo "disk 0: $rw, disk 1: $(disk_number 1)"

# virtio-blk: write a pattern, sync, read it back through a fresh open.
pattern="armvisor-linux-disk-check-$cpus"
printf '%s' "$pattern" | dd of="$rw" bs=512 seek=8 conv=notrunc,fsync 2>/dev/null
sync
back=$(dd if="$rw" bs=512 skip=8 count=1 2>/dev/null | head -c ${#pattern})
[ "$back" = "$pattern" ]; check "virtio disk write sync read" $? "read back '$back'"
head -c 16 "$rw" | grep -q "HOST-WROTE-THIS"; check "virtio disk host data" $? ""

# virtio-console: hvc0 exists and takes output.
if [ "$hvc" = hvc ]; then
    echo "hvc0 says hello" > /dev/hvc0; check "virtio console write" $? ""
fi

# A disk given with readonly=on: the kernel sees it read-only (VIRTIO_BLK_F_RO)
# and a write to it fails.
if [ "$ro" = ro ]; then
    frozen=$(disk_number 1)
    flag=$(cat "/sys/block/${frozen#/dev/}/ro")
    [ "$flag" = 1 ]; check "read-only disk flagged" $? "ro=$flag"
    if printf 'guest-wrote' | dd of="$frozen" bs=512 seek=1 conv=notrunc,fsync 2>/dev/null; then
        check "read-only disk refuses writes" 1 "the write succeeded"
    else
        check "read-only disk refuses writes" 0 ""
    fi
fi

# The kernel stayed healthy.
bad=$(dmesg | grep -iE "WARNING|BUG:|stall|Oops|Unable to handle" | head -3)
[ -z "$bad" ]; check "no kernel warnings" $? "$bad"
