"""GicV3: Distributor, Redistributors and CPU interfaces wired together.

The model is QEMU's `-M virt,gic-version=3` GIC: affinity routing always on,
5 priority bits in the CPU interface, and one Security state (GICD_CTLR.DS =
1) as without secure=on, or, given `pe_state`, two (DS = 0, the Security
Extensions, as with secure=on; IHI0069 3.1, 4.6). Given the guest's memory, it also has
LPIs (lpi.py, one table set per Redistributor) and an ITS (its.py) at
GITS_BASE, as QEMU's virt has by default (its=on); without memory it has
neither, as with QEMU's its=off. The parts keep the state; this
class routes SPIs, delivers SGIs, works out each PE's highest priority
pending interrupt (HPPI) and drives the IRQ/FIQ outputs.

Speed: every state change marks the PEs it can affect; at the end of each
public call the HPPI of those PEs alone is recomputed from bitmaps of
pending-enabled-inactive INTIDs (a few big-integer ANDs, then a walk over
the few set bits), and `on_change(cpu)` is called when that PE's IRQ or FIQ
output changed. `irq_pending` and `fiq_pending` just read the result.

1-of-N SPIs (GICD_IROUTER.IRM = 1, IHI0069 5.2 leaves the choice of PE
IMPLEMENTATION DEFINED): the lowest-numbered PE that participates, i.e.
whose GICR_WAKER.ProcessorSleep is 0 and whose ICC_IGRPEN<g>_EL1 for the
SPI's group is 1; with none, the SPI waits. The choice is redone when a
WAKER, IGRPEN, group or IROUTER changes.

Two Security states: `pe_state(cpu)` gives a PE's current Exception level
and SCR_EL3. The GIC asks it only with DS = 0 (the default GIC pays nothing)
and only about the PE making an access or receiving an output: an access
is Secure at EL3 or with SCR_EL3.NS = 0 (there is no Secure EL2), which
decides the Distributor's and Redistributors' views and which banked ICC
register an access reaches; whether a signalled Group 1 interrupt is an IRQ
or an FIQ depends on the PE's state too (cpu_interface.signals_fiq), so
`irq_pending`/`fiq_pending` work it out again when asked (the machine asks
before each slice) and every ICC access of a PE reworks its lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

from armvisor.devices.gic import registers as r
from armvisor.devices.gic.cpu_interface import CpuInterface, signals_fiq
from armvisor.devices.gic.distributor import Distributor
from armvisor.devices.gic.its import Its
from armvisor.devices.gic.lpi import GuestMemory, LpiState
from armvisor.devices.gic.redistributor import Redistributor

if TYPE_CHECKING:
    from armvisor.trace.bus import TraceBus

_ICC_REGISTERS = frozenset((
    r.ICC_PMR_EL1, r.ICC_IAR0_EL1, r.ICC_EOIR0_EL1, r.ICC_HPPIR0_EL1, r.ICC_BPR0_EL1,
    r.ICC_AP0R0_EL1, r.ICC_AP1R0_EL1, r.ICC_DIR_EL1, r.ICC_RPR_EL1, r.ICC_SGI1R_EL1,
    r.ICC_ASGI1R_EL1, r.ICC_SGI0R_EL1, r.ICC_IAR1_EL1, r.ICC_EOIR1_EL1, r.ICC_HPPIR1_EL1,
    r.ICC_BPR1_EL1, r.ICC_CTLR_EL1, r.ICC_SRE_EL1, r.ICC_IGRPEN0_EL1, r.ICC_IGRPEN1_EL1,
    *r.EL3_ICC_REGISTERS,
))

_SGI_CLUSTER_MASK = 0xFF_00FF_FF00    # Aff3, Aff2, Aff1 in MPIDR/IROUTER positions

# Which configured group an SGI register may make pending on the target, with
# GICD_CTLR.DS = 1 (IHI0069 12.2 "Forwarding an SGI to a target PE"; the
# choices are QEMU's): SGI0R Group 0 only, SGI1R Group 1 only, and ASGI1R,
# having no other Security state to aim at, Group 0 only.
_SGI_GROUP = {r.ICC_SGI0R_EL1: r.GROUP0, r.ICC_SGI1R_EL1: r.GROUP1, r.ICC_ASGI1R_EL1: r.GROUP0}

# With DS = 0 (same table, QEMU's icc_generate_sgi and gicv3_redist_send_sgi):
# SGI0R asks for Group 0; SGI1R for the sender's own Group 1 (Secure Group 1
# from Secure state, Non-secure from Non-secure); ASGI1R for the other one.
# (sender Secure?) -> group asked for.
_SGI_GROUP_TWO_STATES = {
    r.ICC_SGI0R_EL1: (r.GROUP0, r.GROUP0),
    r.ICC_SGI1R_EL1: (r.GROUP1, r.GROUP1S),
    r.ICC_ASGI1R_EL1: (r.GROUP1S, r.GROUP1),
}


class GicV3:
    def __init__(self, cpu_count: int, mpidr_of: Callable[[int], int],
                 trace: Optional["TraceBus"] = None,
                 num_irqs: int = 288, on_change: Optional[Callable[[int], None]] = None,
                 memory: Optional[GuestMemory] = None,
                 pe_state: Optional[Callable[[int], Tuple[int, int]]] = None):
        """`pe_state(cpu)` -> (Exception level, SCR_EL3): given, the GIC has two
        Security states (GICD_CTLR.DS = 0) and asks it about accessing PEs."""
        if cpu_count < 1:
            raise ValueError(f"GICv3 needs at least one CPU, not {cpu_count}")
        if num_irqs % 32 or not r.SPI_BASE < num_irqs <= r.MAX_SPI_LIMIT:
            raise ValueError(f"num_irqs must be a multiple of 32 in 64..992, not {num_irqs}")
        self.cpu_count = cpu_count
        self.num_irqs = num_irqs
        self._trace = trace
        self._on_change = on_change
        self.lpis = memory is not None
        self._pe_state = pe_state
        self.two_security_states = two = pe_state is not None
        self._dist = Distributor(num_irqs, self, lpis=self.lpis, two_security_states=two)
        self._redist: List[Redistributor] = []
        self._cif: List[CpuInterface] = []
        self._cpu_by_affinity: Dict[int, int] = {}
        self._sgi_clusters: Dict[int, List[Tuple[int, int]]] = {}
        for cpu in range(cpu_count):
            mpidr = mpidr_of(cpu)
            affinity = mpidr & r.IROUTER_AFFINITY_MASK
            if affinity in self._cpu_by_affinity:
                raise ValueError(f"CPUs {self._cpu_by_affinity[affinity]} and {cpu} "
                                 f"share the affinity {affinity:#x}")
            self._cpu_by_affinity[affinity] = cpu
            self._sgi_clusters.setdefault(affinity & _SGI_CLUSTER_MASK, []).append(
                (affinity & 0xFF, cpu))
            self._redist.append(Redistributor(cpu, mpidr, cpu == cpu_count - 1, self,
                                              LpiState(memory) if memory is not None else None,
                                              two_security_states=two))
            self._cif.append(CpuInterface(cpu, self, two_security_states=two))
        self._spi_target: List[Optional[int]] = [None] * num_irqs
        self._routed = [0] * cpu_count          # SPIs currently routed to each PE
        self._irm_spis = 0                      # SPIs with IROUTER.IRM = 1
        self._hppi: List[Optional[Tuple[int, int, int]]] = [None] * cpu_count
        self._signalled: List[Optional[int]] = [None] * cpu_count   # group of a signalled HPPI
        self._irq = [False] * cpu_count
        self._fiq = [False] * cpu_count
        self._dirty: set = set()
        self._changed: List[int] = []
        self.its: Optional[Its] = Its(memory, self, trace) if memory is not None else None
        self.reset()

    def reset(self) -> None:
        self._dist.reset()
        for part in self._redist:
            part.reset()
        for cif in self._cif:
            cif.reset()
        if self.its is not None:
            self.its.reset()
        self._irm_spis = 0
        self._spi_target = [None] * self.num_irqs
        self._routed = [0] * self.cpu_count
        for intid in range(r.SPI_BASE, self.num_irqs):
            self._retarget(intid)
        self._dirty.update(range(self.cpu_count))
        self._flush()

    # ------------------------------------------------------------- snapshots
    def save_state(self) -> dict:
        """The parts' registers and the IRQ/FIQ outputs as `on_change` last reported them.

        SPI targets and HPPIs are not saved: they follow from the registers.
        """
        state = {
            "cpu_count": self.cpu_count,
            "num_irqs": self.num_irqs,
            "distributor": self._dist.save_state(),
            "redistributors": [part.save_state() for part in self._redist],
            "cpu_interfaces": [cif.save_state() for cif in self._cif],
            "irq": list(self._irq),
            "fiq": list(self._fiq),
        }
        if self.its is not None:
            state["its"] = self.its.save_state()
        if self.two_security_states:
            state["security_states"] = 2
        return state

    def restore_state(self, state: dict) -> None:
        if state["cpu_count"] != self.cpu_count:
            raise ValueError(f"the snapshot's GIC serves {state['cpu_count']} CPUs, "
                             f"this one {self.cpu_count}")
        if state["num_irqs"] != self.num_irqs:
            raise ValueError(f"the snapshot's GIC has {state['num_irqs']} INTIDs, "
                             f"this one {self.num_irqs}")
        states = 2 if self.two_security_states else 1
        if state.get("security_states", 1) != states:
            raise ValueError(f"the snapshot's GIC has {state.get('security_states', 1)} "
                             f"Security state(s), this one {states}")
        self._dist.restore_state(state["distributor"])
        for part, saved in zip(self._redist, state["redistributors"]):
            part.restore_state(saved)
        for cif, saved in zip(self._cif, state["cpu_interfaces"]):
            cif.restore_state(saved)
        if self.its is not None:
            if "its" in state:
                self.its.restore_state(state["its"])
            else:
                self.its.reset()          # a snapshot from before the ITS
        # SPI targets from IROUTER, WAKER and IGRPEN, as reset works them out.
        self._irm_spis = 0
        self._spi_target = [None] * self.num_irqs
        self._routed = [0] * self.cpu_count
        for intid in range(r.SPI_BASE, self.num_irqs):
            self._retarget(intid)
        # The outputs as the receiver last saw them; the HPPIs are recomputed
        # against them without calling on_change. A PE whose output would
        # differ (never, for a state saved between two calls) stays in
        # _changed and is reported at the next call, as after any change.
        # With two Security states the lines also follow the PEs' state, which a
        # machine may restore after the GIC: the next irq_pending/fiq_pending
        # (before the PE's next slice) works them out again from the restored one.
        self._irq = [bool(level) for level in state["irq"]]
        self._fiq = [bool(level) for level in state["fiq"]]
        self._changed = []
        self._dirty = set(range(self.cpu_count))
        self._recompute()

    # ------------------------------------------------------------------ MMIO
    def _non_secure(self, cpu: int) -> bool:
        """Whether `cpu`'s access is Non-secure: with two Security states, below EL3
        with SCR_EL3.NS = 1; with one, never (every access behaves as a Secure one)."""
        if self._pe_state is None:
            return False
        el, scr = self._pe_state(cpu)
        return el != 3 and bool(scr & r.SCR_EL3_NS)

    def distributor_read(self, offset: int, size: int, cpu: int) -> int:
        value = self._dist.read(offset, size, self._non_secure(cpu))
        if value is None:
            self._bad_access("GICD", offset, size, False, cpu)
            return 0
        return value

    def distributor_write(self, offset: int, size: int, value: int, cpu: int) -> None:
        if not self._dist.write(offset, size, value & ((1 << (8 * size)) - 1),
                                self._non_secure(cpu)):
            self._bad_access("GICD", offset, size, True, cpu)
        if self._dirty or self._changed:
            self._flush()

    def redistributor_read(self, offset: int, size: int, cpu: int) -> int:
        frame, within = divmod(offset, r.GICR_FRAME_SIZE)
        value = self._redist[frame].read(within, size, self._non_secure(cpu)) \
            if frame < self.cpu_count else None
        if value is None:
            self._bad_access("GICR", offset, size, False, cpu)
            return 0
        return value

    def redistributor_write(self, offset: int, size: int, value: int, cpu: int) -> None:
        frame, within = divmod(offset, r.GICR_FRAME_SIZE)
        ok = frame < self.cpu_count and self._redist[frame].write(
            within, size, value & ((1 << (8 * size)) - 1), self._non_secure(cpu))
        if not ok:
            self._bad_access("GICR", offset, size, True, cpu)
        if self._dirty or self._changed:
            self._flush()

    def its_read(self, offset: int, size: int, cpu: int) -> int:
        value = self.its.read(offset, size, cpu) if self.its is not None else None
        if value is None:
            self._bad_access("GITS", offset, size, False, cpu)
            return 0
        return value

    def its_write(self, offset: int, size: int, value: int, cpu: int) -> None:
        ok = self.its is not None and self.its.write(offset, size,
                                                     value & ((1 << (8 * size)) - 1), cpu)
        if not ok:
            self._bad_access("GITS", offset, size, True, cpu)
        if self._dirty or self._changed:
            self._flush()

    def _bad_access(self, region: str, offset: int, size: int, write: bool, cpu: int) -> None:
        if self._trace is not None:
            self._trace.emit("gic.bad_access", cpu, region=region, offset=offset, size=size,
                             write=write)

    # ---------------------------------------------------------------- inputs
    def set_spi_level(self, intid: int, level: bool) -> None:
        if not r.SPI_BASE <= intid < self.num_irqs:
            raise ValueError(f"INTID {intid} is not an SPI of this GIC (32..{self.num_irqs - 1})")
        self._drive_line(self._dist.spi, intid, level, self._spi_target[intid])

    def set_ppi_level(self, cpu: int, intid: int, level: bool) -> None:
        if not r.SGI_COUNT <= intid < r.PRIVATE_COUNT:
            raise ValueError(f"INTID {intid} is not a PPI (16..31)")
        self._drive_line(self._redist[cpu].bank, intid, level, cpu)

    def _drive_line(self, bank, intid: int, level: bool, target: Optional[int]) -> None:
        """An interrupt input changed level; `target` is the CPU its pending state goes to."""
        bit = 1 << intid
        if bool(bank.line & bit) == level:
            return
        before = bank.pending() & bit
        if level:
            bank.line |= bit
            bank.latch |= bank.edge & bit       # an edge-triggered input latches on the rising edge
        else:
            bank.line &= ~bit
        if (bank.pending() & bit) != before:
            if before == 0 and self._trace is not None:
                self._trace.emit("irq.pending", target, intid=intid)
            if target is not None:
                self._dirty.add(target)
                self._flush()

    # --------------------------------------------------------- CPU interface
    @staticmethod
    def is_icc_register(reg: tuple) -> bool:
        return tuple(reg) in _ICC_REGISTERS

    def icc_read(self, cpu: int, reg: tuple) -> Optional[int]:
        if self._pe_state is not None:
            self._enter_cpu_interface(cpu)
        value = self._cif[cpu].read(reg)
        if self._dirty or self._changed:
            self._flush()
        return value

    def icc_write(self, cpu: int, reg: tuple, value: int) -> bool:
        if self._pe_state is not None:
            self._enter_cpu_interface(cpu)
        handled = self._cif[cpu].write(reg, value)
        if self._dirty or self._changed:
            self._flush()
        return handled

    def _enter_cpu_interface(self, cpu: int) -> None:
        """Two Security states: the accessing PE's state for the access, and its lines
        worked out again for that state (it may have changed EL since they were)."""
        el, scr = self._pe_state(cpu)
        self._cif[cpu].set_access(el, scr)
        self._dirty.add(cpu)

    # --------------------------------------------------------------- outputs
    def irq_pending(self, cpu: int) -> bool:
        if self._pe_state is not None:
            self._classify(cpu)
        return self._irq[cpu]

    def fiq_pending(self, cpu: int) -> bool:
        if self._pe_state is not None:
            self._classify(cpu)
        return self._fiq[cpu]

    def _lines(self, cpu: int) -> Tuple[bool, bool]:
        """(IRQ, FIQ) for the signalled HPPI's group and, with two Security states,
        the PE's current state (IHI0069 4.6.2)."""
        group = self._signalled[cpu]
        if group is None:
            return False, False
        if self._pe_state is None:
            fiq = group == r.GROUP0
        else:
            el, scr = self._pe_state(cpu)
            fiq = signals_fiq(group, el, scr)
        return not fiq, fiq

    def _classify(self, cpu: int) -> None:
        """Work out `cpu`'s lines again for its state now, for the caller about to
        read them (a change is not reported: the reader is the receiver)."""
        self._irq[cpu], self._fiq[cpu] = self._lines(cpu)

    def wake_pending(self, cpu: int) -> bool:
        return self._irq[cpu] or self._fiq[cpu]

    # ------------------------------------- callbacks from the Distributor
    def spis_changed(self, mask: int) -> None:
        for cpu, routed in enumerate(self._routed):
            if routed & mask:
                self._dirty.add(cpu)

    def spis_rerouted(self, mask: int) -> None:
        while mask:
            low = mask & -mask
            self._retarget(low.bit_length() - 1)
            mask ^= low

    def group_enables_changed(self) -> None:
        self._dirty.update(range(self.cpu_count))

    # ----------------------------------- callbacks from the Redistributors
    def private_changed(self, cpu: int, mask: int) -> None:
        self._dirty.add(cpu)

    def waker_changed(self, cpu: int) -> None:
        self.spis_rerouted(self._irm_spis)

    def lpis_changed(self, cpu: int) -> None:
        self._dirty.add(cpu)

    # ------------------------------------------------ callbacks from the ITS
    # Each is a whole operation: the outputs are reported before it returns.
    def lpi_set_pending(self, cpu: int, intid: int, pending: bool) -> None:
        """An ITS translation (pending) or CLEAR/DISCARD (not) for `intid` on `cpu`."""
        if self._redist[cpu].lpi.set_pending(intid, pending):
            if pending and self._trace is not None:
                self._trace.emit("irq.pending", cpu, intid=intid)
            self._dirty.add(cpu)
            self._flush()

    def lpi_move(self, source: int, target: int, intid: int) -> None:
        """MOVI: a pending `intid` moves from one Redistributor to another (IHI0069 5.3.13)."""
        if self._redist[source].lpi.take_pending(intid):
            self._redist[target].lpi.set_pending(intid, True)
            self._dirty.update((source, target))
            self._flush()

    def lpi_move_all(self, source: int, target: int) -> None:
        """MOVALL: every pending LPI of `source` becomes pending on `target`."""
        moving = list(self._redist[source].lpi.pending)
        for intid in moving:
            self._redist[source].lpi.take_pending(intid)
            self._redist[target].lpi.set_pending(intid, True)
        if moving:
            self._dirty.update((source, target))
            self._flush()

    def lpi_invalidate(self, cpu: int, intid: Optional[int]) -> None:
        """INV (one LPI) or INVALL (intid None): `cpu` reads LPI configuration again."""
        if self._redist[cpu].lpi.invalidate(intid):
            self._dirty.add(cpu)
            self._flush()

    # ----------------------------------- callbacks from the CPU interfaces
    def hppi(self, cpu: int) -> Optional[Tuple[int, int, int]]:
        if cpu in self._dirty:
            self._recompute()       # no callbacks in the middle of a register access
        return self._hppi[cpu]

    def activate(self, cpu: int, intid: int) -> None:
        if intid >= r.LPI_BASE:
            # An LPI has no active state: acknowledging it clears its pending bit (5.1).
            self._redist[cpu].lpi.set_pending(intid, False)
            self._dirty.add(cpu)
            if self._trace is not None:
                self._trace.emit("gic.ack", cpu, intid=intid)
            return
        bit = 1 << intid
        if intid < r.PRIVATE_COUNT:
            bank = self._redist[cpu].bank
        else:
            bank = self._dist.spi
            target = self._spi_target[intid]
            if target is not None:
                self._dirty.add(target)
        # Acknowledging clears the latch; a level interrupt whose line is still
        # high stays pending through the line: active and pending (IHI0069 4.1.2).
        bank.active |= bit
        bank.latch &= ~bit
        self._dirty.add(cpu)
        if self._trace is not None:
            self._trace.emit("gic.ack", cpu, intid=intid)

    def deactivate(self, cpu: int, intid: int) -> None:
        bit = 1 << intid
        if intid < r.PRIVATE_COUNT:
            self._redist[cpu].bank.active &= ~bit
            self._dirty.add(cpu)
        elif intid < self.num_irqs:
            self._dist.spi.active &= ~bit
            target = self._spi_target[intid]
            if target is not None:
                self._dirty.add(target)

    def end_of_interrupt(self, cpu: int, intid: int) -> None:
        if self._trace is not None:
            self._trace.emit("gic.eoi", cpu, intid=intid)

    def cpu_interface_changed(self, cpu: int) -> None:
        self._dirty.add(cpu)

    def group_enables_changed_at(self, cpu: int) -> None:
        self._dirty.add(cpu)
        self.spis_rerouted(self._irm_spis)

    def interrupt_group(self, cpu: int, intid: int) -> Optional[int]:
        """The group of an SGI/PPI of `cpu` or an SPI; None for anything else."""
        if intid < r.PRIVATE_COUNT:
            return self._redist[cpu].bank.group_of(intid)
        if intid < self.num_irqs:
            return self._dist.group_of(intid)
        return None

    def send_sgi(self, cpu: int, value: int, register: tuple, secure: bool = False) -> None:
        """ICC_SGI0R/SGI1R/ASGI1R_EL1: make an SGI pending on the PEs the value names;
        `secure`: the sender is in Secure state (two Security states only)."""
        intid = (value >> r.SGIR_INTID_SHIFT) & 0xF
        if value & r.SGIR_IRM:
            targets = [t for t in range(self.cpu_count) if t != cpu]
        else:
            cluster = ((((value >> r.SGIR_AFF3_SHIFT) & 0xFF) << 32)
                       | (((value >> r.SGIR_AFF2_SHIFT) & 0xFF) << 16)
                       | (((value >> r.SGIR_AFF1_SHIFT) & 0xFF) << 8))
            base = ((value >> r.SGIR_RS_SHIFT) & 0xF) * 16
            target_list = value & r.SGIR_TARGETLIST_MASK
            # TargetList bits naming no PE are ignored (IHI0069 12.2, ICC_SGI1R_EL1).
            targets = [t for aff0, t in self._sgi_clusters.get(cluster, ())
                       if base <= aff0 < base + 16 and target_list >> (aff0 - base) & 1]
        bit = 1 << intid
        if self._pe_state is None:
            group = _SGI_GROUP[register]
            accepts = lambda bank: bool(bank.group & bit) == bool(group)   # noqa: E731
        else:
            asked = _SGI_GROUP_TWO_STATES[register][secure]
            accepts = lambda bank: self._sgi_accepted(bank, intid, asked, secure)   # noqa: E731
        delivered = []
        for target in targets:
            bank = self._redist[target].bank
            if accepts(bank):
                bank.latch |= bit
                self._dirty.add(target)
                delivered.append(target)
        if self._trace is not None:
            self._trace.emit("gic.sgi", cpu, sender=cpu, targets=delivered, intid=intid)

    @staticmethod
    def _sgi_accepted(bank, intid: int, asked: int, secure: bool) -> bool:
        """Whether a target whose SGIs `bank` holds takes SGI `intid` sent for group
        `asked` (two Security states; IHI0069 12.2 "Forwarding an SGI to a target
        PE", QEMU's gicv3_redist_send_sgi): the SGI's configured group must be the
        one asked for, except that a Secure Group 1 request reaches a Group 0 SGI;
        a Non-secure sender reaches a Group 0 SGI only if the target's GICR_NSACR
        field is 1 or more, a Secure Group 1 one only if it is 2 or more."""
        group = bank.group_of(intid)
        if asked == r.GROUP1S and group == r.GROUP0:
            asked = r.GROUP0
        if group != asked:
            return False
        if not secure and group != r.GROUP1:
            access = (bank.nsacr >> (2 * intid)) & 0b11
            needed = r.NSACR_SET_PENDING if group == r.GROUP0 else r.NSACR_CLEAR_PENDING
            return access >= needed
        return True

    # ------------------------------------------------------------- internals
    def _retarget(self, intid: int) -> None:
        bit = 1 << intid
        router = self._dist.irouter[intid]
        if router & r.IROUTER_IRM:
            self._irm_spis |= bit
            group = self._dist.group_of(intid)
            new = next((cpu for cpu in range(self.cpu_count)
                        if not self._redist[cpu].processor_sleep and self._cif[cpu].igrpen[group]),
                       None)
        else:
            self._irm_spis &= ~bit
            new = self._cpu_by_affinity.get(router & r.IROUTER_AFFINITY_MASK)
        old = self._spi_target[intid]
        if new == old:
            return
        self._spi_target[intid] = new
        if old is not None:
            self._routed[old] &= ~bit
            self._dirty.add(old)
        if new is not None:
            self._routed[new] |= bit
            self._dirty.add(new)

    def _flush(self) -> None:
        """Recompute the marked PEs and report the outputs that changed."""
        self._recompute()
        changed, self._changed = self._changed, []
        if self._on_change is not None:
            for cpu in changed:
                self._on_change(cpu)

    def _recompute(self) -> None:
        """The HPPI and IRQ/FIQ outputs of the marked PEs; PEs whose output moved go to _changed."""
        changed = self._changed
        while self._dirty:
            dirty, self._dirty = self._dirty, set()
            dist = self._dist
            spi = dist.spi
            spi_candidates = spi.candidates()
            grp0_on = dist.group_enabled(r.GROUP0)
            grp1_on = dist.group_enabled(r.GROUP1)
            two_states = dist.two_states
            grp1s_on = two_states and dist.group_enabled(r.GROUP1S)
            for cpu in dirty:
                bank = self._redist[cpu].bank
                cif = self._cif[cpu]
                candidates = bank.candidates() | (spi_candidates & self._routed[cpu])
                best = None
                if candidates:
                    group1 = bank.group | spi.group
                    # Secure Group 1 (IGRPMODR bits exist with DS = 0 only).
                    group1s = (bank.grpmod | spi.grpmod) & ~group1 if two_states else 0
                    allowed = 0
                    if grp1_on and cif.igrpen[r.GROUP1]:
                        allowed |= group1
                    if grp1s_on and cif.igrpen[r.GROUP1S]:
                        allowed |= group1s
                    if grp0_on and cif.igrpen[r.GROUP0]:
                        allowed |= ~group1 & ~group1s
                    candidates &= allowed
                    best = self._highest(candidates, bank.priority, spi.priority, group1,
                                         group1s)
                lpi = self._redist[cpu].lpi
                if lpi is not None and lpi.pending and grp1_on and cif.igrpen[1]:
                    # LPIs are Group 1; on equal priority the lower INTID (never the LPI) wins.
                    best_lpi = lpi.best()
                    if best_lpi is not None and (best is None or best_lpi[1] < best[1]):
                        best = (best_lpi[0], best_lpi[1], 1)
                self._hppi[cpu] = best
                signalled = best[2] if best is not None and cif.can_signal(
                    best[1], best[2]) else None
                self._signalled[cpu] = signalled
                irq, fiq = self._lines(cpu)
                if irq != self._irq[cpu] or fiq != self._fiq[cpu]:
                    self._irq[cpu] = irq
                    self._fiq[cpu] = fiq
                    if cpu not in changed:
                        changed.append(cpu)

    @staticmethod
    def _highest(candidates: int, private_prio: bytearray, spi_prio: bytearray,
                 group1: int, group1s: int = 0) -> Optional[Tuple[int, int, int]]:
        # Lowest priority value wins; on a tie the lower INTID, as in QEMU.
        best = -1
        best_prio = 256
        while candidates:
            low = candidates & -candidates
            intid = low.bit_length() - 1
            prio = private_prio[intid] if intid < r.PRIVATE_COUNT else spi_prio[intid]
            if prio < best_prio:
                best, best_prio = intid, prio
            candidates ^= low
        if best < 0:
            return None
        if group1 >> best & 1:
            return (best, best_prio, r.GROUP1)
        return (best, best_prio, r.GROUP1S if group1s >> best & 1 else r.GROUP0)
