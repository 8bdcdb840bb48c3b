"""What every Arm PrimeCell peripheral shares: ID registers, one IRQ line, access reports."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

# PeriphID0..3 then PCellID0..3, one byte per word (e.g. DDI0183 3.3.14-15, DDI0224 3.3.9-10).
PERIPH_ID_BASE = 0xFE0
# PCellID0..3 = 0x0D, 0xF0, 0x05, 0xB1: the PrimeCell identification every cell reports.
PCELL_ID_BYTES = (0x0D, 0xF0, 0x05, 0xB1)


class PrimeCell:
    """Base for a PrimeCell model; subclasses set PERIPH_ID_BYTES (PeriphID0..3)."""

    PERIPH_ID_BYTES: Sequence[int] = ()

    def __init__(self, name: str, trace=None,
                 on_irq_change: Optional[Callable[[bool], None]] = None):
        self._name = name
        self._trace = trace
        self._on_irq_change = on_irq_change
        self.irq_level = False

    def save_state(self) -> dict:
        """What every cell holds: its line as last driven (the GIC keeps its own view)."""
        return {"irq_level": self.irq_level}

    def restore_state(self, state: dict) -> None:
        self.irq_level = bool(state["irq_level"])

    def id_register(self, offset: int) -> Optional[int]:
        """The byte an ID register reads as, or None if `offset` is not one."""
        ids = tuple(self.PERIPH_ID_BYTES) + PCELL_ID_BYTES
        if PERIPH_ID_BASE <= offset < PERIPH_ID_BASE + 4 * len(ids) and offset % 4 == 0:
            return ids[(offset - PERIPH_ID_BASE) // 4]
        return None

    def set_irq(self, level: bool) -> None:
        """Drive the interrupt line; the trace and the listener see changes only."""
        if level != self.irq_level:
            self.irq_level = level
            if self._trace is not None:
                self._trace.emit("irq.line", None, device=self._name, level=level)
            if self._on_irq_change is not None:
                self._on_irq_change(level)

    def bad_access(self, op: str, offset: int, size: int) -> None:
        if self._trace is not None:
            self._trace.emit("device.bad_access", None, device=self._name, op=op,
                             offset=offset, size=size)
