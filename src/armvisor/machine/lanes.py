"""A lane is one physical CPU as the scheduler sees it: a core and its run state."""

from __future__ import annotations

import enum
from typing import Optional, Tuple

from armvisor.cpu.core import Core


class LaneState(enum.Enum):
    OFF = "off"                 # powered off (reset, CPU_OFF)
    RUNNING = "running"         # gets slices
    WFI = "wfi"                 # parked in WFI or a standby suspend until an interrupt
    POWERDOWN = "powerdown"     # power-down suspend: restarts at its entry on a wake-up


class Lane:
    def __init__(self, index: int, core: Core):
        self.index = index
        self.core = core
        self.state = LaneState.OFF
        # True from CPU_ON until the core's first slice: the firmware's ON_PENDING window.
        self.warm_boot_pending = False
        self.resume: Optional[Tuple[int, int]] = None     # (entry, context_id) after power-down

    def start(self, warm: bool) -> None:
        self.state = LaneState.RUNNING
        self.warm_boot_pending = warm

    def power_off(self) -> None:
        self.state = LaneState.OFF
        self.warm_boot_pending = False
        self.resume = None

    def suspend(self, entry: int, context_id: int) -> None:
        self.state = LaneState.POWERDOWN
        self.resume = (entry, context_id)
