"""One PE's GICv3 CPU interface: the ICC_*_EL1 system registers (IHI0069 12.2).

Priority handling follows IHI0069 4.8: 5 priority and preemption bits (as
QEMU gives a Cortex-A57), so group priorities are bits [7:3] and the active
priorities live in ICC_AP0R0_EL1 / ICC_AP1R0_EL1, one bit per group
priority. The running priority is the lowest set bit across both. Group 1
uses the Non-secure view of the binary point (ICC_BPR1_EL1 minimum 3, group
priority = BPR1 - 1, CBPR reads BPR0 + 1), as for a guest at Non-secure EL1.

EL3's registers (for firmware at EL3, --secure) fit the single Security
state: ICC_SRE_EL3 is RAO/WI like ICC_SRE_EL1, ICC_IGRPEN1_EL3.EnableGrp1NS
and ICC_CTLR_EL3's Non-secure EL1 bits are ICC_IGRPEN1_EL1's and
ICC_CTLR_EL1's, and the Secure-state controls are kept for the firmware to
read back but act on nothing, there being no Secure Group 1 interrupts.

Registers the architecture makes read-only are not writable here and the
write-only ones are not readable: `read` returns None and `write` False for
them, which the machine turns into UNDEFINED as hardware would. ICC_AP0R1-3
and ICC_AP1R1-3 exist only with 6 or more preemption bits, so they are not
registers of this model either.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Protocol, Tuple

from armvisor.devices.gic import registers as r

SGI_REGISTERS = (r.ICC_SGI0R_EL1, r.ICC_SGI1R_EL1, r.ICC_ASGI1R_EL1)


class CpuInterfaceListener(Protocol):
    def hppi(self, cpu: int) -> Optional[Tuple[int, int, int]]: ...   # (intid, priority, group)
    def activate(self, cpu: int, intid: int) -> None: ...
    def deactivate(self, cpu: int, intid: int) -> None: ...
    def end_of_interrupt(self, cpu: int, intid: int) -> None: ...
    def send_sgi(self, cpu: int, value: int, register: tuple) -> None: ...
    def cpu_interface_changed(self, cpu: int) -> None: ...
    def group_enables_changed_at(self, cpu: int) -> None: ...


class CpuInterface:
    def __init__(self, cpu: int, listener: CpuInterfaceListener):
        self.cpu = cpu
        self._listener = listener
        self._readers: Dict[tuple, Callable[[], int]] = {
            r.ICC_PMR_EL1: lambda: self.pmr,
            r.ICC_IAR0_EL1: lambda: self._acknowledge(r.GROUP0),
            r.ICC_IAR1_EL1: lambda: self._acknowledge(r.GROUP1),
            r.ICC_HPPIR0_EL1: lambda: self._highest_pending(r.GROUP0),
            r.ICC_HPPIR1_EL1: lambda: self._highest_pending(r.GROUP1),
            r.ICC_BPR0_EL1: lambda: self.bpr0,
            r.ICC_BPR1_EL1: self._read_bpr1,
            r.ICC_AP0R0_EL1: lambda: self.apr[r.GROUP0],
            r.ICC_AP1R0_EL1: lambda: self.apr[r.GROUP1],
            r.ICC_RPR_EL1: self.running_priority,
            r.ICC_CTLR_EL1: lambda: r.ICC_CTLR_FIXED | self.ctlr,
            r.ICC_SRE_EL1: lambda: r.ICC_SRE_VALUE,
            r.ICC_IGRPEN0_EL1: lambda: int(self.igrpen[r.GROUP0]),
            r.ICC_IGRPEN1_EL1: lambda: int(self.igrpen[r.GROUP1]),
            r.ICC_SRE_EL3: lambda: r.ICC_SRE_VALUE | r.ICC_SRE_EL3_ENABLE,
            r.ICC_CTLR_EL3: self._read_ctlr_el3,
            r.ICC_IGRPEN1_EL3: lambda: (int(self.igrpen[r.GROUP1]) * r.ICC_IGRPEN1_EL3_GRP1NS
                                        | int(self.grp1s) * r.ICC_IGRPEN1_EL3_GRP1S),
        }
        self._writers: Dict[tuple, Callable[[int], None]] = {
            r.ICC_PMR_EL1: self._write_pmr,
            r.ICC_EOIR0_EL1: lambda v: self._end_of_interrupt(r.GROUP0, v),
            r.ICC_EOIR1_EL1: lambda v: self._end_of_interrupt(r.GROUP1, v),
            r.ICC_DIR_EL1: self._write_dir,
            r.ICC_BPR0_EL1: self._write_bpr0,
            r.ICC_BPR1_EL1: self._write_bpr1,
            r.ICC_AP0R0_EL1: lambda v: self._write_apr(r.GROUP0, v),
            r.ICC_AP1R0_EL1: lambda v: self._write_apr(r.GROUP1, v),
            r.ICC_CTLR_EL1: self._write_ctlr,
            r.ICC_SRE_EL1: lambda v: None,           # RAO/WI
            r.ICC_IGRPEN0_EL1: lambda v: self._write_igrpen(r.GROUP0, v),
            r.ICC_IGRPEN1_EL1: lambda v: self._write_igrpen(r.GROUP1, v),
            r.ICC_SGI0R_EL1: lambda v: self._listener.send_sgi(self.cpu, v, r.ICC_SGI0R_EL1),
            r.ICC_SGI1R_EL1: lambda v: self._listener.send_sgi(self.cpu, v, r.ICC_SGI1R_EL1),
            r.ICC_ASGI1R_EL1: lambda v: self._listener.send_sgi(self.cpu, v, r.ICC_ASGI1R_EL1),
            r.ICC_SRE_EL3: lambda v: None,           # RAO/WI
            r.ICC_CTLR_EL3: self._write_ctlr_el3,
            r.ICC_IGRPEN1_EL3: self._write_igrpen1_el3,
        }
        self.reset()

    def reset(self) -> None:
        self.pmr = 0
        self.bpr0 = r.MIN_BPR0
        self.bpr1 = r.MIN_BPR1
        self.ctlr = 0                       # CBPR and EOImode
        self.igrpen = [False, False]
        self.apr = [0, 0]                   # ICC_AP0R0_EL1, ICC_AP1R0_EL1
        self.ctlr_el3 = 0                   # ICC_CTLR_EL3's bits of its own
        self.grp1s = False                  # ICC_IGRPEN1_EL3.EnableGrp1S

    def save_state(self) -> dict:
        # The running priority and the active priority stack are both the APRs.
        return {"pmr": self.pmr, "bpr0": self.bpr0, "bpr1": self.bpr1, "ctlr": self.ctlr,
                "igrpen": list(self.igrpen), "apr": list(self.apr),
                "ctlr_el3": self.ctlr_el3, "grp1s": self.grp1s}

    def restore_state(self, state: dict) -> None:
        self.pmr = state["pmr"]
        self.bpr0 = state["bpr0"]
        self.bpr1 = state["bpr1"]
        self.ctlr = state["ctlr"]
        self.igrpen = [bool(enabled) for enabled in state["igrpen"]]
        self.apr = list(state["apr"])
        self.ctlr_el3 = state.get("ctlr_el3", 0)         # snapshots from before --secure
        self.grp1s = bool(state.get("grp1s", False))

    # ------------------------------------------------------------ register API
    def read(self, reg: tuple) -> Optional[int]:
        reader = self._readers.get(reg)
        return None if reader is None else reader()

    def write(self, reg: tuple, value: int) -> bool:
        writer = self._writers.get(reg)
        if writer is None:
            return False
        writer(value & 0xFFFF_FFFF_FFFF_FFFF)
        return True

    # -------------------------------------------------------- priority model
    def running_priority(self) -> int:
        """ICC_RPR_EL1: the group priority of the highest active priority, or idle (0xFF)."""
        active = self.apr[0] | self.apr[1]
        if not active:
            return r.IDLE_PRIORITY
        return ((active & -active).bit_length() - 1) << r.APR_SHIFT

    def group_priority_mask(self, group: int) -> int:
        """The bits of a priority that form its group priority (IHI0069 4.8.3, GroupBits())."""
        if group == r.GROUP1 and not self.ctlr & r.ICC_CTLR_CBPR:
            bpr = self.bpr1 - 1
        else:
            bpr = self.bpr0
        return (0xFF << (bpr + 1)) & 0xFF

    def can_signal(self, priority: int, group: int) -> bool:
        """Whether a pending interrupt of an enabled group would be signalled now:
        above the priority mask and preempting the running priority (IHI0069 4.8.5)."""
        if priority >= self.pmr:
            return False
        active = self.apr[0] | self.apr[1]
        if not active:
            return True
        running = ((active & -active).bit_length() - 1) << r.APR_SHIFT
        mask = self.group_priority_mask(group)
        return (priority & mask) < (running & mask)

    # -------------------------------------------------------------- handlers
    def _acknowledge(self, group: int) -> int:
        best = self._listener.hppi(self.cpu)
        if best is None:
            return r.INTID_SPURIOUS
        intid, priority, best_group = best
        # IHI0069 12.2 ICC_IAR<g>_EL1: the HPPI is acknowledged only through the
        # register of its own group and only if it could be signalled.
        if best_group != group or not self.can_signal(priority, group):
            return r.INTID_SPURIOUS
        self.apr[group] |= 1 << ((priority & self.group_priority_mask(group)) >> r.APR_SHIFT)
        self._listener.activate(self.cpu, intid)
        return intid

    def _highest_pending(self, group: int) -> int:
        best = self._listener.hppi(self.cpu)
        if best is None or best[2] != group:
            return r.INTID_SPURIOUS
        return best[0]

    def _end_of_interrupt(self, group: int, value: int) -> None:
        intid = value & r.ICC_INTID_MASK
        if r.MAX_SPI_LIMIT <= intid < r.LPI_BASE:
            return                          # special INTIDs: the write is ignored
        ap0, ap1 = self.apr
        active = ap0 | ap1
        if not active:
            return
        lowest = active & -active
        highest_group = r.GROUP0 if ap0 & lowest else r.GROUP1
        if highest_group != group:
            # The EOI does not match the highest active priority's group: as in
            # QEMU, nothing is dropped and nothing is deactivated.
            return
        self.apr[group] &= ~lowest          # priority drop
        self._listener.end_of_interrupt(self.cpu, intid)
        if not self.ctlr & r.ICC_CTLR_EOIMODE:
            self._listener.deactivate(self.cpu, intid)
        self._listener.cpu_interface_changed(self.cpu)

    def _write_dir(self, value: int) -> None:
        # With EOImode == 0 a DIR write is UNPREDICTABLE; ignore it, as QEMU does.
        intid = value & r.ICC_INTID_MASK
        if self.ctlr & r.ICC_CTLR_EOIMODE and not r.MAX_SPI_LIMIT <= intid < r.LPI_BASE:
            self._listener.deactivate(self.cpu, intid)

    def _write_pmr(self, value: int) -> None:
        self.pmr = value & r.PRIORITY_MASK
        self._listener.cpu_interface_changed(self.cpu)

    def _read_bpr1(self) -> int:
        if self.ctlr & r.ICC_CTLR_CBPR:
            return min(self.bpr0 + 1, 7)
        return self.bpr1

    def _write_bpr0(self, value: int) -> None:
        self.bpr0 = max(value & r.ICC_BPR_MASK, r.MIN_BPR0)
        self._listener.cpu_interface_changed(self.cpu)

    def _write_bpr1(self, value: int) -> None:
        if self.ctlr & r.ICC_CTLR_CBPR:
            return                          # BPR0 is in charge: writes ignored
        self.bpr1 = max(value & r.ICC_BPR_MASK, r.MIN_BPR1)
        self._listener.cpu_interface_changed(self.cpu)

    def _write_apr(self, group: int, value: int) -> None:
        self.apr[group] = value & 0xFFFF_FFFF
        self._listener.cpu_interface_changed(self.cpu)

    def _write_ctlr(self, value: int) -> None:
        self.ctlr = value & r.ICC_CTLR_WRITABLE
        self._listener.cpu_interface_changed(self.cpu)

    def _read_ctlr_el3(self) -> int:
        value = (r.ICC_CTLR_FIXED & ~r.ICC_CTLR_WRITABLE) | self.ctlr_el3
        if self.ctlr & r.ICC_CTLR_CBPR:
            value |= r.ICC_CTLR_EL3_CBPR_EL1NS
        if self.ctlr & r.ICC_CTLR_EOIMODE:
            value |= r.ICC_CTLR_EL3_EOIMODE_EL1NS
        return value

    def _write_ctlr_el3(self, value: int) -> None:
        self.ctlr_el3 = value & r.ICC_CTLR_EL3_OWN
        self._write_ctlr((r.ICC_CTLR_CBPR if value & r.ICC_CTLR_EL3_CBPR_EL1NS else 0)
                         | (r.ICC_CTLR_EOIMODE if value & r.ICC_CTLR_EL3_EOIMODE_EL1NS else 0))

    def _write_igrpen1_el3(self, value: int) -> None:
        self.grp1s = bool(value & r.ICC_IGRPEN1_EL3_GRP1S)
        self._write_igrpen(r.GROUP1, value & r.ICC_IGRPEN1_EL3_GRP1NS)

    def _write_igrpen(self, group: int, value: int) -> None:
        enable = bool(value & r.ICC_IGRPEN_ENABLE)
        if enable != self.igrpen[group]:
            self.igrpen[group] = enable
            self._listener.group_enables_changed_at(self.cpu)
