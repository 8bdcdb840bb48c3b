"""Arm PrimeCell GPIO PL061 (DDI0190), register level, as QEMU's virt board has it.

Eight lines. A line is an output when its GPIODIR bit is set: the PL061 then
drives it from GPIODATA, and `on_output(line, level)` hears every change of
level (the virt board wires the secure PL061's line 0 to power-off and line 1
to reset: QEMU hw/arm/virt.c create_secure_gpio_pwr). The far end drives the
inputs through `set_input(line, level)`; their changes feed the interrupt
detection, whose masked status drives the one interrupt line (GPIOINTR).

A line configured as an input is not driven by the PL061, so its output wire
takes the level of its pull resistor. Like QEMU (hw/gpio/pl061.c properties
"pullups"/"pulldowns"), each line may be pulled up, pulled down, or float; a
floating line keeps the level it last had, so nothing downstream sees a change.
The defaults here are the virt board's (pullups 0, pulldowns 0xff), not the
bare QEMU device's (pullups 0xff): a line pulled up would read as "power off"
to the board at every reset (QEMU commit "hw/arm/virt: Make PL061 GPIO lines
pulled low, not high"). TF-A's qemu_system_off writes LOW then HIGH so that it
makes a rising edge under either pull.

Where QEMU and the TRM differ, the TRM is followed:
- A level-sensitive interrupt is not latched: its GPIORIS bit follows the
  input for as long as the level holds, and GPIOIC, which clears the edge
  detection logic only (DDI0190 3.3.9), leaves it alone. QEMU latches level
  bits until GPIOIC and sets them again at once while the level holds; the
  two agree whenever software clears after the level has gone.
- Only input lines are sensed. QEMU's level check also looks at output lines
  (through the shared data register); its edge check, like this one, does not.
- An input keeps its level while the line is an output, and reads back when
  the line turns input again; QEMU drops input changes on an output line.
GPIOAFSEL is kept but selects nothing: nothing is wired to the hardware
control side on virt, as in QEMU.
"""

from __future__ import annotations

from armvisor.devices.primecell import PrimeCell
from typing import Callable, Optional

# Register offsets (DDI0190 3.2, table 3-1).
GPIODATA = 0x000                   # 0x000-0x3FC: one window, address bits [9:2] mask it
GPIODATA_END = 0x400
GPIODIR = 0x400
GPIOIS = 0x404
GPIOIBE = 0x408
GPIOIEV = 0x40C
GPIOIE = 0x410
GPIORIS = 0x414
GPIOMIS = 0x418
GPIOIC = 0x41C
GPIOAFSEL = 0x420

REGION_SIZE = 0x1000

# PeriphID0..3: part 0x061, designer 0x41 (Arm), revision 0, as QEMU reports
# (pl061_id); the cell ID comes from primecell.py.
PL061_ID_BYTES = (0x61, 0x10, 0x04, 0x00)

N_LINES = 8                        # GPIO[7:0]; every register holds one bit per line
LINES_MASK = (1 << N_LINES) - 1
# GPIODATA: PADDR[9:2] is the mask of the lines an access reads or writes (DDI0190 3.3.1).
DATA_MASK_SHIFT = 2

# The virt board's pull resistors (QEMU hw/arm/virt.c create_gpio_devices).
VIRT_PULLUPS = 0x00
VIRT_PULLDOWNS = 0xFF


class Pl061(PrimeCell):
    """One PL061. `read`/`write` are the MMIO handlers for offsets within its 4 KiB page."""

    PERIPH_ID_BYTES = PL061_ID_BYTES

    def __init__(self, on_output: Optional[Callable[[int, bool], None]] = None,
                 on_irq_change: Optional[Callable[[bool], None]] = None,
                 trace=None, name: str = "gpio",
                 pullups: int = VIRT_PULLUPS, pulldowns: int = VIRT_PULLDOWNS):
        # The same checks as QEMU's pl061_realize: a line has at most one pull.
        if not 0 <= pullups <= LINES_MASK or not 0 <= pulldowns <= LINES_MASK:
            raise ValueError("pullups and pulldowns are 8-bit line masks")
        if pullups & pulldowns:
            raise ValueError("a line cannot be pulled both up and down")
        super().__init__(name, trace, on_irq_change)
        self._on_output = on_output
        self._pullups = pullups
        self._pulldowns = pulldowns
        # Levels on the input pins: the far end drives them, a reset does not change them.
        self.inputs = 0
        # The wires start at their reset levels, so building the model reports nothing.
        self.out_levels = pullups
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Registers to their reset values (DDI0190 3.2: all zero, so every line is an
        input). Lines whose wire level changes with that are reported to `on_output`, as
        QEMU's reset drives every pulled line."""
        self.data = 0
        self.dir = 0
        self.isense = 0
        self.ibe = 0
        self.iev = 0
        self.ie = 0
        self.edge = 0                  # latched edge detections; GPIORIS adds the levels
        self.afsel = 0
        self.irq_level = False
        self._update_outputs()
        self._update_irq()

    def save_state(self) -> dict:
        # The pulls are how the board built the model, not state: a restore builds the same.
        state = super().save_state()
        state.update(data=self.data, dir=self.dir, isense=self.isense, ibe=self.ibe,
                     iev=self.iev, ie=self.ie, edge=self.edge, afsel=self.afsel,
                     inputs=self.inputs, out_levels=self.out_levels)
        return state

    def restore_state(self, state: dict) -> None:
        """Calls no listener: the board restores what the lines drive along with the rest."""
        super().restore_state(state)
        self.data = state["data"]
        self.dir = state["dir"]
        self.isense = state["isense"]
        self.ibe = state["ibe"]
        self.iev = state["iev"]
        self.ie = state["ie"]
        self.edge = state["edge"]
        self.afsel = state["afsel"]
        self.inputs = state["inputs"]
        self.out_levels = state["out_levels"]

    # ------------------------------------------------------------------ lines
    def output_level(self, line: int) -> bool:
        """The level on output wire `line` as the PL061 or its pull resistor sets it."""
        return bool(self.out_levels >> self._check_line(line) & 1)

    def set_input(self, line: int, level: bool) -> None:
        """The far end drives input pin `line` to `level`."""
        bit = 1 << self._check_line(line)
        if bool(self.inputs & bit) == bool(level):
            return
        self.inputs ^= bit
        if self._trace is not None:
            self._trace.emit("gpio.input", None, device=self._name, line=line,
                             level=bool(level))
        # Edges are detected on input lines only; an output line just remembers the level.
        if bit & ~self.dir & ~self.isense:
            rising = bool(level)
            # GPIOIBE takes both edges; otherwise GPIOIEV set means rising (DDI0190 3.3.4-5).
            if bit & self.ibe or rising == bool(bit & self.iev):
                self.edge |= bit
        self._update_irq()

    @staticmethod
    def _check_line(line: int) -> int:
        if not 0 <= line < N_LINES:
            raise ValueError(f"PL061 line {line} out of range 0..{N_LINES - 1}")
        return line

    @property
    def pin_levels(self) -> int:
        """What GPIODATA reads through a full mask: outputs as driven, inputs as sensed."""
        return (self.data & self.dir) | (self.inputs & ~self.dir & LINES_MASK)

    @property
    def raw_status(self) -> int:
        """GPIORIS: latched edges, and the level-sensitive inputs at their active level."""
        levels = ~(self.inputs ^ self.iev) & self.isense & ~self.dir & LINES_MASK
        return self.edge | levels

    # -------------------------------------------------------------------- MMIO
    def read(self, offset: int, size: int) -> int:
        if not self._valid_access(offset, size):
            self.bad_access("read", offset, size)
            return 0
        return self._read_reg(offset) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if not self._valid_access(offset, size):
            self.bad_access("write", offset, size)
            return
        self._write_reg(offset, value & ((1 << (8 * size)) - 1))

    @staticmethod
    def _valid_access(offset: int, size: int) -> bool:
        # Registers are word aligned; TF-A's driver and Linux's gpio-pl061 use byte accesses.
        return size in (1, 2, 4) and offset % 4 == 0 and 0 <= offset < REGION_SIZE

    def _read_reg(self, offset: int) -> int:
        if GPIODATA <= offset < GPIODATA_END:
            return self.pin_levels & (offset >> DATA_MASK_SHIFT)
        if offset == GPIODIR:
            return self.dir
        if offset == GPIOIS:
            return self.isense
        if offset == GPIOIBE:
            return self.ibe
        if offset == GPIOIEV:
            return self.iev
        if offset == GPIOIE:
            return self.ie
        if offset == GPIORIS:
            return self.raw_status
        if offset == GPIOMIS:
            return self.raw_status & self.ie
        if offset == GPIOAFSEL:
            return self.afsel
        ident = self.id_register(offset)
        if ident is not None:
            return ident
        self.bad_access("read", offset, 4)         # GPIOIC is write only
        return 0

    def _write_reg(self, offset: int, value: int) -> None:
        value &= LINES_MASK
        if GPIODATA <= offset < GPIODATA_END:
            # Only lines both in the address mask and configured as outputs take the write
            # (DDI0190 3.3.1); Linux writes the value again after setting GPIODIR for this.
            mask = (offset >> DATA_MASK_SHIFT) & self.dir
            self.data = (self.data & ~mask) | (value & mask)
            self._update_outputs()
        elif offset == GPIODIR:
            self.dir = value
            self._update_outputs()
            self._update_irq()
        elif offset == GPIOIS:
            self.isense = value
            self._update_irq()
        elif offset == GPIOIBE:
            self.ibe = value
            self._update_irq()
        elif offset == GPIOIEV:
            self.iev = value
            self._update_irq()
        elif offset == GPIOIE:
            self.ie = value
            self._update_irq()
        elif offset == GPIOIC:
            self.edge &= ~value
            self._update_irq()
        elif offset == GPIOAFSEL:
            self.afsel = value
        elif offset in (GPIORIS, GPIOMIS):
            pass                                    # read-only registers
        else:
            self.bad_access("write", offset, 4)

    # ------------------------------------------------------------------ wires
    def _wire_levels(self) -> int:
        # QEMU pl061_update: outputs from GPIODATA, inputs from their pull, floating
        # inputs keep the level they had.
        inputs = ~self.dir & LINES_MASK
        floating = inputs & ~(self._pullups | self._pulldowns)
        return (self.data & self.dir) | (self._pullups & inputs) | (self.out_levels & floating)

    def _update_outputs(self) -> None:
        if self._wire_levels() == self.out_levels:
            return
        # One line at a time, each recorded before it is reported and the target taken
        # afresh: a listener may reset the machine, and so this model, from inside the
        # call, and must then hear neither a stale rise nor a fall it never saw rise.
        for line in range(N_LINES):
            bit = 1 << line
            target = self._wire_levels()
            if not (target ^ self.out_levels) & bit:
                continue
            self.out_levels ^= bit
            level = bool(target & bit)
            if self._trace is not None:
                self._trace.emit("gpio.output", None, device=self._name, line=line,
                                 level=level)
            if self._on_output is not None:
                self._on_output(line, level)

    def _update_irq(self) -> None:
        self.set_irq(bool(self.raw_status & self.ie))
