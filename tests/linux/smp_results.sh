#!/bin/sh
# Results that depend on IPIs and the virtual timer working, printed in a form
# that must be identical on armvisor and on QEMU (tests/linux/test_linux.py).
echo "RESULT cpus: $(grep -c ^processor /proc/cpuinfo)"
# Each CPU runs a pinned job: the scheduler moves work with reschedule and
# call-function IPIs.
for cpu in 0 1 2 3; do
    echo "RESULT pinned cpu$cpu: $(taskset -c $cpu cut -d ' ' -f 39 /proc/self/stat)"
done
# IPIs were delivered to every CPU (the rows of /proc/interrupts named IPI0..).
awk '/^ *IPI[0-9]+:/ { for (i = 2; i <= 5; i++) if ($i > 0) seen[i] = 1 }
     END { printf "RESULT every cpu received IPIs: %s\n", (length(seen) == 4) ? "yes" : "no" }' /proc/interrupts
# The virtual timer ticks on every CPU (arch_timer row: one count per CPU).
awk '/arch_timer/ { n = 0; for (i = 2; i <= 5; i++) if ($i > 0) n++;
     printf "RESULT cpus with timer interrupts: %d\n", n }' /proc/interrupts
# Timer-driven sleep: 1 s of sleep takes about 1 s of uptime.
start=$(cut -d ' ' -f 1 /proc/uptime)
sleep 1
end=$(cut -d ' ' -f 1 /proc/uptime)
awk -v s="$start" -v e="$end" 'BEGIN { d = e - s; printf "RESULT sleep 1 took about 1 s: %s\n", (d >= 0.9 && d < 3) ? "yes" : "no" }'
