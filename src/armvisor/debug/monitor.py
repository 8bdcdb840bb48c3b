"""`monitor` commands (qRcmd, GDB manual "General Query Packets"): armvisor's own view."""

from __future__ import annotations

from typing import Callable, Dict, List

from armvisor.errors import ArmvisorError

HELP = """\
monitor help              this list
monitor psci              each CPU's power state, EL and PC (with its symbol)
monitor gic               pending and active interrupts per CPU (SGIs/PPIs and routed SPIs)
monitor events [N]        the last N trace events (default 20)
monitor phys ADDR LEN     hex dump of guest physical memory (RAM; a VM's own under --hyp)
monitor snapshot FILE     save the whole machine there (armvisor run --restore FILE)
"""


def _bits(mask: int) -> List[int]:
    return [n for n in range(mask.bit_length()) if mask >> n & 1]


class Monitor:
    def __init__(self, target):
        self.target = target
        self.cpu = target.cpus[0]
        self.commands: Dict[str, Callable[[List[str]], str]] = {
            "help": lambda args: HELP, "psci": self.psci, "gic": self.gic,
            "events": self.events, "phys": self.phys, "snapshot": self.snapshot}

    def run(self, line: str, cpu) -> str:
        self.cpu = cpu                         # the selected CPU: whose memory `phys` reads
        words = line.split()
        if not words:
            return HELP
        command = self.commands.get(words[0])
        if command is None:
            return f"unknown monitor command {words[0]!r}\n" + HELP
        try:
            return command(words[1:])
        except (ValueError, IndexError, ArmvisorError) as exc:
            return f"monitor {words[0]}: {exc}\n"

    def psci(self, args) -> str:
        machine = self.target.machine
        return "".join(f"{n + 1:3d} {cpu.name:12s} {cpu.power_state:11s} EL{cpu.el} "
                       f"pc={machine.symbols_of(cpu).describe(cpu.regs.pc)}\n"
                       for n, cpu in enumerate(self.target.cpus))

    def gic(self, args) -> str:
        machine = self.target.machine
        gics = ([(vm.name, vm.vgic) for vm in machine.hypervisor.vms]
                if machine.hypervisor is not None else [("", machine.board.gic)])
        lines = []
        for name, gic in gics:
            spi = gic._dist.spi
            spi_pending, spi_active = spi.pending() & spi.enabled, spi.active
            for cpu in range(gic.cpu_count):
                bank = gic._redist[cpu].bank
                routed = gic._routed[cpu]
                pending = _bits(bank.pending()) + _bits(spi_pending & routed)
                lpi = gic._redist[cpu].lpi
                if lpi is not None and lpi.enabled:        # enabled pending LPIs
                    pending += sorted(i for i, config in lpi.pending.items() if config & 1)
                active = _bits(bank.active) + _bits(spi_active & routed)
                label = f"{name}/vcpu{cpu}" if name else f"cpu{cpu}"
                lines.append(f"{label:12s} pending={pending or '-'} active={active or '-'} "
                             f"irq_line={'high' if gic.irq_pending(cpu) else 'low'}\n")
        return "".join(lines)

    def events(self, args) -> str:
        count = int(args[0]) if args else 20
        machine = self.target.machine
        recent = list(machine.trace.bus.recent)[-count:]
        return "".join(event.describe(machine.symbols) + "\n" for event in recent) or \
            "no events\n"

    def phys(self, args) -> str:
        address, length = int(args[0], 0), int(args[1], 0) if len(args) > 1 else 64
        memory = self.target.memory_of(self.cpu)
        data = memory.read(address, min(length, 4096))
        return "".join(f"{address + i:#014x}: {data[i:i + 16].hex(' ')}\n"
                       for i in range(0, len(data), 16))

    def snapshot(self, args) -> str:
        if len(args) != 1:
            raise ValueError("give the file to write: monitor snapshot FILE")
        size = self.target.machine.snapshot(args[0])
        return f"snapshot written to {args[0]} ({size / 1e6:.1f} MB)\n"
