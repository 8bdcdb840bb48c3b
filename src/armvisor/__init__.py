"""armvisor: a multi-core ARMv8-A system (EL3 firmware, virt board, Unicorn cores).

The Python API is in armvisor.api; its names are here too:

    import armvisor
    m = armvisor.Machine(kernel="guests/build/smp_demo.elf", smp=4)
    assert m.run(timeout=30) == 0
"""

__version__ = "0.1.0"

from armvisor.api import (VM, Condition, Console, Cpu, Event, Instructions,  # noqa: E402
                          Machine, Memory, Pc)
from armvisor.errors import ArmvisorError, GuestError, GuestTimeout  # noqa: E402

__all__ = ["Machine", "VM", "Cpu", "Memory", "Condition", "Console", "Event", "Pc",
           "Instructions", "ArmvisorError", "GuestError", "GuestTimeout", "__version__"]
