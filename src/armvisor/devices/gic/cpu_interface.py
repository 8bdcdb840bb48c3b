"""One PE's GICv3 CPU interface: the ICC_*_EL1 system registers (IHI0069 12.2).

Priority handling follows IHI0069 4.8: 5 priority and preemption bits (as
QEMU gives a Cortex-A57), so group priorities are bits [7:3] and the active
priorities live in ICC_AP0R0_EL1 / ICC_AP1R0_EL1, one bit per group
priority. The running priority is the lowest set bit across all of them.
Group 1 uses the Non-secure view of the binary point (ICC_BPR1_EL1 minimum 3,
group priority = BPR1 - 1, CBPR reads BPR0 + 1), as for a guest at
Non-secure EL1.

One Security state (GICD_CTLR.DS = 1): EL3's registers (firmware at EL3)
fit it: ICC_SRE_EL3 is RAO/WI like ICC_SRE_EL1, ICC_IGRPEN1_EL3.EnableGrp1NS
and ICC_CTLR_EL3's Non-secure EL1 bits are ICC_IGRPEN1_EL1's and
ICC_CTLR_EL1's, and the Secure-state controls are kept for the firmware to
read back but act on nothing, there being no Secure Group 1 interrupts.

Two Security states (DS = 0, `two_security_states`): each access comes with
the accessing PE's Exception level and SCR_EL3 (`set_access`), from which
(IHI0069 12.1.x "Security state banking", QEMU's arm_gicv3_cpuif.c):

- ICC_CTLR_EL1, ICC_BPR1_EL1, ICC_IGRPEN1_EL1 and ICC_AP1R0_EL1 have a Secure
  and a Non-secure copy; Secure EL1 reaches the first, Non-secure EL1/EL2 the
  second, EL3 the one SCR_EL3.NS names (ICC_SRE_EL1 is banked too, but both
  copies are RAO/WI here);
- ICC_IAR1/HPPIR1 give Secure Group 1 interrupts to Secure software only and
  Non-secure Group 1 ones to Non-secure software and EL3; ICC_IAR0/HPPIR0
  give Group 0 ones to Secure software, and at EL3 report a Group 1 HPPI as
  1020 (Secure) or 1021 (Non-secure) without acknowledging it;
- an EOI or DIR only acts on an interrupt of a group the PE's state may
  handle; EOImode is ICC_CTLR_EL3.EOImode_EL3's at EL3, the Secure or the
  Non-secure ICC_CTLR_EL1's below;
- with SCR_EL3.FIQ = 1 (Group 0 belongs to EL3) Non-secure software sees
  ICC_PMR_EL1 and ICC_RPR_EL1 in the Non-secure view of priorities (4.8.6);
- Non-secure software cannot write the Non-secure ICC_AP1R0_EL1, as in QEMU
  (it could otherwise claim a Secure priority active and block Secure
  interrupts; the architecture keeps those bits out of its reach).

What an access that SCR_EL3.IRQ/FIQ or ICC_SRE_EL3 would trap to EL3 does
instead: it happens (the router takes no access to EL3). TF-A routes no
interrupt to EL3 without a Secure payload, so nothing it runs traps there.

Registers the architecture makes read-only are not writable here and the
write-only ones are not readable: `read` returns None and `write` False for
them, which the machine turns into UNDEFINED as hardware would. ICC_AP0R1-3
and ICC_AP1R1-3 exist only with 6 or more preemption bits, so they are not
registers of this model either.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Protocol, Tuple

from armvisor.devices.gic import registers as r
from armvisor.devices.gic.state import ns_priority_view, ns_priority_written

SGI_REGISTERS = (r.ICC_SGI0R_EL1, r.ICC_SGI1R_EL1, r.ICC_ASGI1R_EL1)


class CpuInterfaceListener(Protocol):
    def hppi(self, cpu: int) -> Optional[Tuple[int, int, int]]: ...   # (intid, priority, group)
    def activate(self, cpu: int, intid: int) -> None: ...
    def deactivate(self, cpu: int, intid: int) -> None: ...
    def end_of_interrupt(self, cpu: int, intid: int) -> None: ...
    def send_sgi(self, cpu: int, value: int, register: tuple, secure: bool) -> None: ...
    def cpu_interface_changed(self, cpu: int) -> None: ...
    def group_enables_changed_at(self, cpu: int) -> None: ...
    def interrupt_group(self, cpu: int, intid: int) -> Optional[int]: ...


def signals_fiq(group: int, el: int, scr: int) -> bool:
    """Whether a signalled interrupt of `group` is an FIQ (else an IRQ) to a PE at
    `el` with `scr` (SCR_EL3), with two Security states (IHI0069 4.6.2, Table 4-3;
    QEMU's gicv3_cpuif_update): Group 0 is always FIQ; Secure Group 1 is IRQ in
    Secure EL1/EL0 and FIQ in Non-secure state and at EL3; Non-secure Group 1 is
    IRQ in Non-secure state and FIQ in Secure state (EL3 included).

    The machine raises the lines between slices, not at every change of
    Exception level, so a line worked out at EL3 stays as it is when EL3 ERETs
    to a lower level in the same slice: the hazard is Linux taking an FIQ (which
    it cannot handle) for a Non-secure interrupt that EL3 saw pending. While
    SCR_EL3 routes neither IRQ nor FIQ to EL3, EL3 takes no physical interrupt
    whichever line it is (both only wake a WFI), so the line is worked out for
    the state EL3 returns to (SCR_EL3.NS), which is then exact after the ERET.
    TF-A without a Secure payload runs like that. With SCR_EL3.IRQ or FIQ set
    EL3's own view is used, as QEMU does, and the hazard remains (until the
    next slice or GIC access recomputes the line)."""
    if group == r.GROUP0:
        return True
    if el == 3 and not scr & (r.SCR_EL3_IRQ | r.SCR_EL3_FIQ):
        el = 1                              # the state an ERET to SCR_EL3.NS's world gives
    secure = el == 3 or not scr & r.SCR_EL3_NS
    if group == r.GROUP1S:
        return not secure or el == 3
    return secure


class CpuInterface:
    def __init__(self, cpu: int, listener: CpuInterfaceListener,
                 two_security_states: bool = False):
        self.cpu = cpu
        self._listener = listener
        self.two_states = two_security_states
        # The accessing PE's Exception level and SCR_EL3 (two Security states only:
        # the GIC sets them before each access). The default is Non-secure EL1.
        self.el = 1
        self.scr = r.SCR_EL3_NS
        self._readers: Dict[tuple, Callable[[], int]] = {
            r.ICC_PMR_EL1: self._read_pmr,
            r.ICC_IAR0_EL1: lambda: self._acknowledge(r.GROUP0),
            r.ICC_IAR1_EL1: lambda: self._acknowledge(r.GROUP1),
            r.ICC_HPPIR0_EL1: lambda: self._highest_pending(r.GROUP0),
            r.ICC_HPPIR1_EL1: lambda: self._highest_pending(r.GROUP1),
            r.ICC_BPR0_EL1: lambda: self.bpr0,
            r.ICC_BPR1_EL1: self._read_bpr1,
            r.ICC_AP0R0_EL1: lambda: self.apr[r.GROUP0],
            r.ICC_AP1R0_EL1: lambda: self.apr[self._group1_bank()],
            r.ICC_RPR_EL1: self._read_rpr,
            r.ICC_CTLR_EL1: lambda: r.ICC_CTLR_FIXED | self._ctlr_bank(),
            r.ICC_SRE_EL1: lambda: r.ICC_SRE_VALUE,
            r.ICC_IGRPEN0_EL1: lambda: int(self.igrpen[r.GROUP0]),
            r.ICC_IGRPEN1_EL1: lambda: int(self.igrpen[self._group1_bank()]),
            r.ICC_SRE_EL3: lambda: r.ICC_SRE_VALUE | r.ICC_SRE_EL3_ENABLE,
            r.ICC_CTLR_EL3: self._read_ctlr_el3,
            r.ICC_IGRPEN1_EL3: lambda: (int(self.igrpen[r.GROUP1]) * r.ICC_IGRPEN1_EL3_GRP1NS
                                        | int(self.igrpen[r.GROUP1S]) * r.ICC_IGRPEN1_EL3_GRP1S),
        }
        self._writers: Dict[tuple, Callable[[int], None]] = {
            r.ICC_PMR_EL1: self._write_pmr,
            r.ICC_EOIR0_EL1: lambda v: self._end_of_interrupt(r.GROUP0, v),
            r.ICC_EOIR1_EL1: lambda v: self._end_of_interrupt(r.GROUP1, v),
            r.ICC_DIR_EL1: self._write_dir,
            r.ICC_BPR0_EL1: self._write_bpr0,
            r.ICC_BPR1_EL1: self._write_bpr1,
            r.ICC_AP0R0_EL1: lambda v: self._write_apr(r.GROUP0, v),
            r.ICC_AP1R0_EL1: self._write_ap1r0,
            r.ICC_CTLR_EL1: self._write_ctlr,
            r.ICC_SRE_EL1: lambda v: None,           # RAO/WI
            r.ICC_IGRPEN0_EL1: lambda v: self._write_igrpen(r.GROUP0, v),
            r.ICC_IGRPEN1_EL1: lambda v: self._write_igrpen(self._group1_bank(), v),
            r.ICC_SGI0R_EL1: lambda v: self._send_sgi(v, r.ICC_SGI0R_EL1),
            r.ICC_SGI1R_EL1: lambda v: self._send_sgi(v, r.ICC_SGI1R_EL1),
            r.ICC_ASGI1R_EL1: lambda v: self._send_sgi(v, r.ICC_ASGI1R_EL1),
            r.ICC_SRE_EL3: lambda v: None,           # RAO/WI
            r.ICC_CTLR_EL3: self._write_ctlr_el3,
            r.ICC_IGRPEN1_EL3: self._write_igrpen1_el3,
        }
        self.reset()

    def reset(self) -> None:
        self.pmr = 0
        self.bpr0 = r.MIN_BPR0
        self.bpr1 = r.MIN_BPR1              # Non-secure ICC_BPR1_EL1 (the only one with DS = 1)
        self.bpr1_s = r.MIN_BPR0            # Secure ICC_BPR1_EL1 (DS = 0): BPR0's minimum
        self.ctlr = 0                       # Non-secure ICC_CTLR_EL1's CBPR and EOImode
        self.ctlr_s = 0                     # Secure ICC_CTLR_EL1's (DS = 0)
        # Group enables and active priorities, indexed by GROUP0, GROUP1, GROUP1S:
        # ICC_IGRPEN0_EL1, ICC_IGRPEN1_EL1 (Non-secure, Secure), ICC_AP0R0_EL1,
        # ICC_AP1R0_EL1 (Non-secure, Secure). With DS = 1, the GROUP1S enable is
        # ICC_IGRPEN1_EL3.EnableGrp1S, kept for EL3 to read back.
        self.igrpen = [False, False, False]
        self.apr = [0, 0, 0]
        self.ctlr_el3 = 0                   # ICC_CTLR_EL3's bits of its own

    def save_state(self) -> dict:
        # The running priority and the active priority stack are both the APRs.
        return {"pmr": self.pmr, "bpr0": self.bpr0, "bpr1": self.bpr1, "ctlr": self.ctlr,
                "igrpen": list(self.igrpen), "apr": list(self.apr),
                "ctlr_el3": self.ctlr_el3, "bpr1_s": self.bpr1_s, "ctlr_s": self.ctlr_s}

    def restore_state(self, state: dict) -> None:
        self.pmr = state["pmr"]
        self.bpr0 = state["bpr0"]
        self.bpr1 = state["bpr1"]
        self.ctlr = state["ctlr"]
        igrpen = [bool(enabled) for enabled in state["igrpen"]]
        if len(igrpen) == 2:            # from before the Security Extensions
            igrpen.append(bool(state.get("grp1s", False)))
        self.igrpen = igrpen
        self.apr = (list(state["apr"]) + [0])[:3]
        self.ctlr_el3 = state.get("ctlr_el3", 0)         # snapshots from before --secure
        self.bpr1_s = state.get("bpr1_s", r.MIN_BPR0)
        self.ctlr_s = state.get("ctlr_s", 0)

    # ------------------------------------------------------------ register API
    def set_access(self, el: int, scr: int) -> None:
        """The Exception level and SCR_EL3 of the PE's next accesses (two Security states)."""
        self.el = el
        self.scr = scr

    def read(self, reg: tuple) -> Optional[int]:
        reader = self._readers.get(reg)
        return None if reader is None else reader()

    def write(self, reg: tuple, value: int) -> bool:
        writer = self._writers.get(reg)
        if writer is None:
            return False
        writer(value & 0xFFFF_FFFF_FFFF_FFFF)
        return True

    # ------------------------------------------------------ the accessing PE
    def _secure(self) -> bool:
        """Secure state: EL3, or below it with SCR_EL3.NS = 0 (no Secure EL2 here)."""
        return self.el == 3 or not self.scr & r.SCR_EL3_NS

    def _group1_bank(self) -> int:
        """The copy of a banked Group 1 register an access reaches: the Secure one
        (GROUP1S) when SCR_EL3.NS is 0, at EL3 too; with DS = 1 the only one."""
        if self.two_states and not self.scr & r.SCR_EL3_NS:
            return r.GROUP1S
        return r.GROUP1

    def _ctlr_bank(self) -> int:
        return self.ctlr_s if self._group1_bank() == r.GROUP1S else self.ctlr

    def _eoi_split(self) -> bool:
        """EOImode: whether EOIR drops the priority only (IHI0069 12.2.x ICC_CTLR_EL1/EL3)."""
        if not self.two_states:
            return bool(self.ctlr & r.ICC_CTLR_EOIMODE)
        if self.el == 3:
            return bool(self.ctlr_el3 & r.ICC_CTLR_EL3_EOIMODE_EL3)
        return bool(self._ctlr_bank() & r.ICC_CTLR_EOIMODE)

    def _ns_view_of_priorities(self) -> bool:
        """Non-secure software with Group 0 kept by EL3 (SCR_EL3.FIQ = 1) sees
        ICC_PMR_EL1 and ICC_RPR_EL1 in the Non-secure view (4.8.6, QEMU)."""
        return self.two_states and not self._secure() and bool(self.scr & r.SCR_EL3_FIQ)

    # -------------------------------------------------------- priority model
    def running_priority(self) -> int:
        """ICC_RPR_EL1: the group priority of the highest active priority, or idle (0xFF)."""
        active = self.apr[0] | self.apr[1] | self.apr[2]
        if not active:
            return r.IDLE_PRIORITY
        return ((active & -active).bit_length() - 1) << r.APR_SHIFT

    def group_priority_mask(self, group: int) -> int:
        """The bits of a priority that form its group priority (IHI0069 4.8.3, GroupBits())."""
        if group == r.GROUP1 and not self.ctlr & r.ICC_CTLR_CBPR:
            bpr = self.bpr1 - 1
        elif group == r.GROUP1S and not self.ctlr_s & r.ICC_CTLR_CBPR:
            bpr = self.bpr1_s
        else:
            bpr = self.bpr0
        return (0xFF << (bpr + 1)) & 0xFF

    def can_signal(self, priority: int, group: int) -> bool:
        """Whether a pending interrupt of an enabled group would be signalled now:
        above the priority mask and preempting the running priority (IHI0069 4.8.5)."""
        if priority >= self.pmr:
            return False
        active = self.apr[0] | self.apr[1] | self.apr[2]
        if not active:
            return True
        running = ((active & -active).bit_length() - 1) << r.APR_SHIFT
        mask = self.group_priority_mask(group)
        return (priority & mask) < (running & mask)

    # -------------------------------------------------------------- handlers
    def _acknowledge(self, register_group: int) -> int:
        best = self._listener.hppi(self.cpu)
        if best is None:
            return r.INTID_SPURIOUS
        intid, priority, group = best
        # IHI0069 12.2 ICC_IAR<g>_EL1: the HPPI is acknowledged only if it could be
        # signalled, and only through a register of its group that the PE's
        # Security state may read it from (_visible_intid).
        if not self.can_signal(priority, group):
            return r.INTID_SPURIOUS
        value = self._visible_intid(register_group, intid, group)
        if r.MAX_SPI_LIMIT <= value < r.LPI_BASE:
            return value                    # 1020, 1021, 1023: nothing is acknowledged
        self.apr[group] |= 1 << ((priority & self.group_priority_mask(group)) >> r.APR_SHIFT)
        self._listener.activate(self.cpu, intid)
        return intid

    def _highest_pending(self, register_group: int) -> int:
        best = self._listener.hppi(self.cpu)
        if best is None:
            return r.INTID_SPURIOUS
        return self._visible_intid(register_group, best[0], best[2])

    def _visible_intid(self, register_group: int, intid: int, group: int) -> int:
        """What ICC_IAR<register_group>/HPPIR<register_group> give for an HPPI of `group`
        (IHI0069 pseudocode CheckGroup0ForSpecialIdentifiers and
        CheckGroup1ForSpecialIdentifiers, as QEMU's icc_hppir0_value/hppir1_value)."""
        if not self.two_states:
            return intid if group == register_group else r.INTID_SPURIOUS
        secure = self._secure()
        el3 = self.el == 3
        interrupt_secure = group != r.GROUP1
        if register_group == r.GROUP0:
            if group != r.GROUP0 and not el3:
                return r.INTID_SPURIOUS
            if interrupt_secure and not secure:
                return r.INTID_SPURIOUS     # Secure interrupts are not Non-secure's to see
            if group != r.GROUP0:
                # EL3 learns that a Group 1 interrupt of either state is pending.
                return r.INTID_SECURE if interrupt_secure else r.INTID_NONSECURE
            return intid
        if group == r.GROUP0:
            return r.INTID_SPURIOUS
        if interrupt_secure:
            return intid if secure else r.INTID_SPURIOUS
        # Non-secure Group 1: Non-secure software's, and EL3's, not Secure EL1's.
        return intid if el3 or not secure else r.INTID_SPURIOUS

    def _end_of_interrupt(self, register_group: int, value: int) -> None:
        intid = value & r.ICC_INTID_MASK
        if r.MAX_SPI_LIMIT <= intid < r.LPI_BASE:
            return                          # special INTIDs: the write is ignored
        ap0, ap1, ap1s = self.apr
        active = ap0 | ap1 | ap1s
        if not active:
            return
        lowest = active & -active
        # The group of the highest active priority (Group 0 first on a tie, then
        # Secure Group 1, as QEMU's icc_highest_active_group).
        group = r.GROUP0 if ap0 & lowest else r.GROUP1S if ap1s & lowest else r.GROUP1
        if (group == r.GROUP0) != (register_group == r.GROUP0):
            # The EOI does not match the highest active priority's group: as in
            # QEMU, nothing is dropped and nothing is deactivated.
            return
        if self.two_states:
            secure = self._secure()
            # QEMU's icc_eoir_write: a Secure group's EOI must come from Secure
            # state, a Non-secure Group 1 one from Non-secure state or EL3.
            if group != r.GROUP1 and not secure:
                return
            if group == r.GROUP1 and secure and self.el != 3:
                return
        self.apr[group] &= ~lowest          # priority drop
        self._listener.end_of_interrupt(self.cpu, intid)
        if not self._eoi_split():
            self._listener.deactivate(self.cpu, intid)
        self._listener.cpu_interface_changed(self.cpu)

    def _write_dir(self, value: int) -> None:
        # With EOImode == 0 a DIR write is UNPREDICTABLE; ignore it, as QEMU does.
        intid = value & r.ICC_INTID_MASK
        if not self._eoi_split() or r.MAX_SPI_LIMIT <= intid < r.LPI_BASE:
            return
        if self.two_states and not self._may_deactivate(intid):
            return
        self._listener.deactivate(self.cpu, intid)

    def _may_deactivate(self, intid: int) -> bool:
        """Whether a DIR from the PE's state may deactivate `intid` (IHI0069 12.2.x
        ICC_DIR_EL1 pseudocode, as QEMU's icc_dir_write with DS = 0): EL3 any; Secure
        EL1 Group 0 unless EL3 takes FIQs and Group 1 unless EL3 takes IRQs;
        Non-secure software Non-secure Group 1 unless EL3 takes IRQs."""
        if self.el == 3:
            return True
        group = self._listener.interrupt_group(self.cpu, intid)
        if group is None:
            return False                    # LPIs have no active state
        if self._secure():
            if group == r.GROUP0:
                return not self.scr & r.SCR_EL3_FIQ
            return not self.scr & r.SCR_EL3_IRQ
        return group == r.GROUP1 and not self.scr & r.SCR_EL3_IRQ

    def _send_sgi(self, value: int, register: tuple) -> None:
        self._listener.send_sgi(self.cpu, value, register,
                                self.two_states and self._secure())

    def _read_pmr(self) -> int:
        value = self.pmr
        if self._ns_view_of_priorities():
            if not value & r.NS_PRIORITY_BIT:
                return 0                    # Secure priorities are not Non-secure's to see
            if value != r.IDLE_PRIORITY:
                value = ns_priority_view(value)
        return value

    def _write_pmr(self, value: int) -> None:
        value &= 0xFF
        if self._ns_view_of_priorities():
            if not self.pmr & r.NS_PRIORITY_BIT:
                return                      # a mask in the Secure range stays
            value = ns_priority_written(value)
        self.pmr = value & r.PRIORITY_MASK
        self._listener.cpu_interface_changed(self.cpu)

    def _read_rpr(self) -> int:
        value = self.running_priority()
        if self._ns_view_of_priorities() and value != r.IDLE_PRIORITY:
            value = 0 if not value & r.NS_PRIORITY_BIT else ns_priority_view(value)
        return value

    def _read_bpr1(self) -> int:
        if self._group1_bank() == r.GROUP1S:
            # CBPR_EL1S: Secure EL1's BPR1 accesses are BPR0's (not EL3's).
            if self.ctlr_s & r.ICC_CTLR_CBPR and self.el != 3:
                return self.bpr0
            return self.bpr1_s
        if self.ctlr & r.ICC_CTLR_CBPR and self.el != 3:
            return min(self.bpr0 + 1, 7)
        return self.bpr1

    def _write_bpr0(self, value: int) -> None:
        self.bpr0 = max(value & r.ICC_BPR_MASK, r.MIN_BPR0)
        self._listener.cpu_interface_changed(self.cpu)

    def _write_bpr1(self, value: int) -> None:
        if self._group1_bank() == r.GROUP1S:
            if self.ctlr_s & r.ICC_CTLR_CBPR and self.el != 3:
                self._write_bpr0(value)
                return
            self.bpr1_s = max(value & r.ICC_BPR_MASK, r.MIN_BPR0)
        else:
            if self.ctlr & r.ICC_CTLR_CBPR and self.el != 3:
                return                      # BPR0 is in charge: writes ignored
            self.bpr1 = max(value & r.ICC_BPR_MASK, r.MIN_BPR1)
        self._listener.cpu_interface_changed(self.cpu)

    def _write_apr(self, group: int, value: int) -> None:
        self.apr[group] = value & 0xFFFF_FFFF
        self._listener.cpu_interface_changed(self.cpu)

    def _write_ap1r0(self, value: int) -> None:
        group = self._group1_bank()
        if self.two_states and group == r.GROUP1:
            return                          # see the module's docstring (QEMU's icc_ap_write)
        self._write_apr(group, value)

    def _write_ctlr(self, value: int) -> None:
        if not self.two_states:
            self.ctlr = value & r.ICC_CTLR_WRITABLE
        else:
            # With DS = 0, CBPR is EL3's to set (ICC_CTLR_EL3.CBPR_EL1S/NS): RO here.
            eoimode = value & r.ICC_CTLR_EOIMODE
            if self._group1_bank() == r.GROUP1S:
                self.ctlr_s = (self.ctlr_s & ~r.ICC_CTLR_EOIMODE) | eoimode
            else:
                self.ctlr = (self.ctlr & ~r.ICC_CTLR_EOIMODE) | eoimode
        self._listener.cpu_interface_changed(self.cpu)

    def _read_ctlr_el3(self) -> int:
        value = (r.ICC_CTLR_FIXED & ~r.ICC_CTLR_WRITABLE) | self.ctlr_el3
        if self.ctlr & r.ICC_CTLR_CBPR:
            value |= r.ICC_CTLR_EL3_CBPR_EL1NS
        if self.ctlr & r.ICC_CTLR_EOIMODE:
            value |= r.ICC_CTLR_EL3_EOIMODE_EL1NS
        if self.two_states:
            if self.ctlr_s & r.ICC_CTLR_CBPR:
                value |= r.ICC_CTLR_EL3_CBPR_EL1S
            if self.ctlr_s & r.ICC_CTLR_EOIMODE:
                value |= r.ICC_CTLR_EL3_EOIMODE_EL1S
        return value

    def _write_ctlr_el3(self, value: int) -> None:
        if self.two_states:
            # The EL1 bits of each state are the two ICC_CTLR_EL1s'; EOImode_EL3 is its
            # own; RM is RAZ/WI (no AArch32 EL3 here).
            self.ctlr_el3 = value & r.ICC_CTLR_EL3_EOIMODE_EL3
            self.ctlr_s = ((r.ICC_CTLR_CBPR if value & r.ICC_CTLR_EL3_CBPR_EL1S else 0)
                           | (r.ICC_CTLR_EOIMODE if value & r.ICC_CTLR_EL3_EOIMODE_EL1S else 0))
            self.ctlr = ((r.ICC_CTLR_CBPR if value & r.ICC_CTLR_EL3_CBPR_EL1NS else 0)
                         | (r.ICC_CTLR_EOIMODE if value & r.ICC_CTLR_EL3_EOIMODE_EL1NS else 0))
            self._listener.cpu_interface_changed(self.cpu)
            return
        self.ctlr_el3 = value & r.ICC_CTLR_EL3_OWN
        self._write_ctlr((r.ICC_CTLR_CBPR if value & r.ICC_CTLR_EL3_CBPR_EL1NS else 0)
                         | (r.ICC_CTLR_EOIMODE if value & r.ICC_CTLR_EL3_EOIMODE_EL1NS else 0))

    def _write_igrpen1_el3(self, value: int) -> None:
        self._write_igrpen(r.GROUP1S, 1 if value & r.ICC_IGRPEN1_EL3_GRP1S else 0)
        self._write_igrpen(r.GROUP1, value & r.ICC_IGRPEN1_EL3_GRP1NS)

    def _write_igrpen(self, group: int, value: int) -> None:
        enable = bool(value & r.ICC_IGRPEN_ENABLE)
        if enable != self.igrpen[group]:
            self.igrpen[group] = enable
            self._listener.group_enables_changed_at(self.cpu)
