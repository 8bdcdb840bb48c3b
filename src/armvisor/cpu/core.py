"""One AArch64 core: a Unicorn instance that runs non-secure EL1/EL0 code in slices.

The core owns the instance, the compiled budget hook and the exception hook.
The guest's own synchronous exceptions are taken natively by QEMU's entry
from the C hook (native_exceptions.py), or rebuilt in Python when that is
off (entry.py, traps.py); the events that belong to higher exception levels
(SMC, HVC, WFI, trapped system registers) go to its host, the machine.
"""

from __future__ import annotations

import ctypes
import struct
import time
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from unicorn import (UC_ARCH_ARM64, UC_ERR_WRITE_PROT, UC_HOOK_INTR, UC_HOOK_MEM_UNMAPPED,
                     UC_MODE_ARM, UC_PROT_ALL, Uc, UcError)
from unicorn import arm64_const as A

from armvisor.cpu import syndrome
from armvisor.cpu import sysregs as sr
from armvisor.cpu.decode import decode_memory_access
from armvisor.cpu.entry import VECTOR_LOOP_LIMIT, exception_loop, take_exception_to_el1
from armvisor.cpu.guest_watchpoints import WRPS_SHIFT, GuestWatchpoints, is_watchpoint_register
from armvisor.cpu.host import CoreHost, MmioRegion, Stop
from armvisor.cpu.models import (ID_AA64DFR0_EL1, ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1, PMU_COUNTERS,
                                 CpuModel)
from armvisor.cpu.outside import (HOOK_ACCESS, PARANGE_BITS, PARANGE_MASK, UNMAPPED_ERRORS,
                                  OutsideAccess, deliver_abort, hook_ranges)
from armvisor.cpu.traps import TrapHandler
from armvisor.cpu.syndrome import EC_NAMES, EC_SVE, ESR_EC_SHIFT
from armvisor.trace import TraceBus
from armvisor.cpu.native import (EXCEPTION_RING, INTR_CALLBACK, SYSREG_CALLBACK, SYSREG_DONE,
                                 SYSREG_DONE_ADVANCE, SYSREG_NOT_HANDLED, UC_ARM64_INS_MRS,
                                 UC_ARM64_INS_MSR, UC_ARM64_INS_SYS, UC_HOOK_BLOCK, UC_HOOK_CODE,
                                 UC_HOOK_INSN, ArmvCore, ArmvException, CpReg, CpuContext,
                                 RegBatch, native)
from armvisor.cpu.native_exceptions import native_delivery
from armvisor.cpu.irq_lines import (CPU_INTERRUPT_FIQ, CPU_INTERRUPT_HARD, CPU_INTERRUPT_VFIQ,
                                    CPU_INTERRUPT_VIRQ, CpuLines, LinesUnavailable)
from armvisor.errors import ArmvisorError

__all__ = ["Core", "CoreHost", "MmioRegion", "Stop"]   # the last three live in host.py

UC_PROT_EXEC = 4
# Instructions a slice runs before a WFE or YIELD may end it (yield_to_others):
# KVM's pause-loop exiting waits 4096 cycles of PAUSE loop the same way.
YIELD_WINDOW = 2000
NEVER = 0xFFFF_FFFF_FFFF_FFFF
# `until` for uc_emu_start: Unicorn implements it as a fake WFI at until-4, so
# give it an address no guest executes (UNICORN-FACTS.md).
NO_UNTIL = 0xFFFF_FFFF_FFFF_FFFF
TARGET_PAGE_SIZE = 4096
# The exception levels whose code is the guest's: exceptions QEMU routes there
# are taken natively (a bit per EL, _hooks.c native_els).
GUEST_ELS = 1 << 1
EL2 = 2
EL3 = 3
# PSTATE for EL2h with D, A, I and F masked: where a CPU enters the kernel when
# the guest owns EL2 (--virtualization; Linux's booting.rst allows EL2).
PSTATE_EL2H_MASKED = sr.PSTATE_DAIF | (EL2 << sr.PSTATE_EL_SHIFT) | sr.PSTATE_SP
# SCTLR_EL2 with the MMU and caches off: its RES1 bits 29, 28, 23, 22, 18, 16, 11, 5, 4.
SCTLR_EL2_RESET = 0x30C5_0830
SCTLR_EL2 = sr.SysReg(3, 4, 1, 0, 0)
# EL3h with D, A, I and F masked, SCTLR_EL3 as QEMU resets it (its RES1 bits, the
# MMU and caches off): where every CPU starts when the guest owns EL3 (--secure).
PSTATE_EL3H_MASKED = sr.PSTATE_DAIF | (EL3 << sr.PSTATE_EL_SHIFT) | sr.PSTATE_SP
SCTLR_EL3_RESET = 0x30C5_0830
SCTLR_EL3 = sr.SysReg(3, 6, 1, 0, 0)
# struct armv_exception (_hooks.c): esr, elr, far, vector, target_el, has_far.
_EXCEPTION_RECORD = struct.Struct("<QQQQII4Q")      # ... and x0-x3 of an HVC or SMC
EC_HVC64, EC_SMC64 = 0x16, 0x17
INSN_WFI = 0xD503_207F
# offsetof(ARMCPU, isar.id_aa64mmfr0) in Unicorn 2.1.4 (x86-64), followed by
# id_aa64mmfr1: checked against the values MRS reads before it is written.
ISAR_MMFR0_OFFSET = 0xD5F0
PARANGE_48_BITS = 5


# Returned by the host's sysreg handler when it took an exception instead of
# completing the access (the PC is the vector's: the hook must not move it).
EXCEPTION_TAKEN = object()
VECTOR_LOWER_AARCH64_SYNC = 0x400
ESR_EL2 = sr.SysReg(3, 4, 5, 2, 0)
ELR_EL2 = sr.SysReg(3, 4, 4, 0, 1)
SPSR_EL2 = sr.SysReg(3, 4, 4, 0, 0)
VBAR_EL2 = sr.SysReg(3, 4, 12, 0, 0)


class VirtualizationUnavailable(ArmvisorError):
    """--virtualization cannot work with this Unicorn build (said in one line)."""


def unicorn_implements(reg: sr.SysReg) -> bool:
    """Whether Unicorn 2.1.4 has this trapped register (skipping it then moves PC on by itself).

    It has the timers (op1 = 3) and the PMU registers (CRn = 9) but no GIC CPU
    interface, and PMEVCNTR<n>/PMEVTYPER<n> only for n < 4 (QEMU 5.0's PMCR.N;
    the model has 6) besides PMCCFILTR_EL0 (n = 31).
    """
    if reg.op1 == 3 and reg.crn == 14 and reg.crm >= 8:
        n = ((reg.crm & 3) << 3) | reg.op2
        return n < 4 or n == 31
    if reg.op1 == 0 and reg.crn == 0:
        return True                 # MIDR, MPIDR and the ID space (--virtualization)
    if reg.op1 == 4 and reg.crn == 14:
        return True                 # CNTHP_*_EL2: present, its writes dropped
    return reg.op1 == 3 or reg.crn == 9


GPR_IDS = [A.UC_ARM64_REG_X0 + i for i in range(29)] + [A.UC_ARM64_REG_X29, A.UC_ARM64_REG_X30]


class Core:
    def __init__(self, index: int, mpidr: int, model: CpuModel, ram: Tuple[int, int, int],
                 mmio: Sequence[MmioRegion], host: CoreHost, trace: Optional[TraceBus] = None,
                 tcg_buffer_size: int = 0, extra_hcr: int = 0, virtualization: bool = False,
                 secure: bool = False, describe_call: Optional[Callable[[int], str]] = None):
        self.index = index
        # Names an SMCCC call (x0) for the trace of calls to the guest's own firmware.
        self._describe_call = describe_call
        # The guest's own code runs at EL2 (and owns HCR_EL2): exceptions routed
        # there are taken natively, interrupts come on the CPU's own inputs.
        # With `secure` it owns EL3 as well (its firmware starts at the reset
        # vector), which takes EL2's place here even when EL2 is hidden from it.
        self.secure = secure
        # --secure alone: QEMU's CPU then has no EL2 (the ID registers say so, see
        # machine/el2_registers.py), but Unicorn's always has one.
        self.hidden_el2 = secure and not virtualization
        virtualization = virtualization or secure
        self.virtualization = virtualization
        self.trace = trace
        self.mpidr = mpidr
        self.model = model
        self.host = host
        self.stop_reason: Optional[Stop] = None
        self.error: Optional[BaseException] = None
        self.exits = {}                     # exit counters by kind, for the benchmark
        self.run_seconds = 0.0              # host time inside uc_emu_start
        self._next_pc: Optional[int] = None
        self._native = native()
        self.uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        self.uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
        # 4 KiB target pages, before anything is mapped: the default 1 KiB makes
        # a guest page four TLB entries and a "large page" whose TLBI by
        # address flushes the whole TLB (UNICORN-FACTS.md).
        self.uc.ctl_set_page_size(TARGET_PAGE_SIZE)
        if tcg_buffer_size:
            self.uc.ctl_set_tcg_buffer_size(tcg_buffer_size)
        self.handle = self.uc._uch
        if self._native.uc_armvisor_set_exit_checks is not None:
            # Patched Unicorn: no exit-request check after every load and store
            # (9% of a Linux boot). Stops still happen at safe points only: the
            # block hook's, exceptions, and a faulting store leaves its block.
            self.set_exit_checks(False)
        ram_base, ram_size, ram_ptr = ram
        self.uc.mem_map_ptr(ram_base, ram_size, UC_PROT_ALL, ram_ptr)
        self._mapped: List[Tuple[int, int]] = [(ram_base, ram_size)]   # (base, size), all kinds
        self._outside: Optional[OutsideAccess] = None
        self._mmio_callbacks = []
        for region in mmio:
            self._map_mmio(region)
        self._budget = ArmvCore()
        self._budget.yield_from = NEVER             # until yield_to_others says otherwise
        self._budget.stop = self._native.emu_stop_address
        self._budget.vector_loop_limit = VECTOR_LOOP_LIMIT
        # The block hook must be the only one and must exist before any translation.
        self._native.add_c_hook(self.handle, UC_HOOK_BLOCK, self._native.block_hook_address,
                                ctypes.byref(self._budget))
        self._native.add_c_hook(self.handle, UC_HOOK_INSN, self._native.sys_hook_address,
                                ctypes.byref(self._budget), 1, 0, UC_ARM64_INS_SYS)
        # Timer and GIC CPU interface registers: filtered in C, modelled in Python.
        self._sysreg_plans: Dict[int, Tuple[Callable[..., Optional[int]], int]] = {}
        self._sysreg_callback = SYSREG_CALLBACK(self._on_sysreg)
        self._budget.sysreg = self._sysreg_callback
        self._budget.reg_read = self._native.reg_read_address
        self._budget.reg_write = self._native.reg_write_address
        for insn, hook in ((UC_ARM64_INS_MRS, self._native.mrs_hook_address),
                           (UC_ARM64_INS_MSR, self._native.msr_hook_address)):
            self._native.add_c_hook(self.handle, UC_HOOK_INSN, hook, ctypes.byref(self._budget),
                                    1, 0, insn)
        self._count_hook = None                   # count_exactly()'s hook
        self.count_stopped = False                # the last slice ended at stop_before's count
        self._irq_lines = (False, False)          # what HCR_EL2.VI / VF say now
        # Lines that rose inside a block, raised where run() stops at its end, and
        # the slice's budget left for after that (irq_lines_changed_in_slice).
        self._rising_lines: Optional[Tuple[bool, bool]] = None
        self._rising_virtual_lines: Optional[Tuple[bool, bool]] = None
        self._resume_budget: Optional[int] = None
        # Synchronous exceptions: the guest's are taken natively in C, the rest
        # (and all of them if the start-up self-test failed) come to _on_intr.
        self._intr_callback = INTR_CALLBACK(self._on_intr)
        self._budget.intr = self._intr_callback
        # A model without SVE: its SVE instructions are UNDEFINED (traps.py
        # rebuilds EC 0), where QEMU's max reports an SVE access trap (EC 0x19).
        python_ecs = 0 if model.sve else 1 << EC_SVE
        delivery = native_delivery()
        if virtualization and not delivery.enabled:
            raise VirtualizationUnavailable(
                f"{'--secure' if secure else '--virtualization'} needs native exception "
                f"delivery, which is off ({delivery.reason})")
        delivery.configure(self._budget,
                           native_els=GUEST_ELS | ((1 << EL2) if virtualization else 0) |
                           ((1 << EL3) if secure else 0),
                           pan_hidden=not model.pan, python_ecs=python_ecs)
        self._native.add_c_hook(self.handle, UC_HOOK_INTR, self._native.intr_hook_address,
                                ctypes.byref(self._budget))
        self._cpreg = CpReg()
        self._pc = RegBatch(self._native, self.handle, [A.UC_ARM64_REG_PC])
        self._entry_read = RegBatch(self._native, self.handle, [
            A.UC_ARM64_REG_PSTATE, A.UC_ARM64_REG_SP, A.UC_ARM64_REG_SP_EL1,
            A.UC_ARM64_REG_VBAR_EL1])
        self._entry_write = RegBatch(self._native, self.handle, [
            A.UC_ARM64_REG_ESR_EL1, A.UC_ARM64_REG_ELR_EL1, A.UC_ARM64_REG_SP_EL0,
            A.UC_ARM64_REG_SP, A.UC_ARM64_REG_PSTATE, A.UC_ARM64_REG_PC])
        self._entry_write_no_sp0 = RegBatch(self._native, self.handle, [
            A.UC_ARM64_REG_ESR_EL1, A.UC_ARM64_REG_ELR_EL1,
            A.UC_ARM64_REG_SP, A.UC_ARM64_REG_PSTATE, A.UC_ARM64_REG_PC])
        self._x0_3 = RegBatch(self._native, self.handle, GPR_IDS[:4])
        self._x0_7 = RegBatch(self._native, self.handle, GPR_IDS[:8])
        self._insn_buf = ctypes.c_uint32()
        self._traps = TrapHandler(self)
        self._lines: Optional[CpuLines] = None
        # ID register values the guest's EL2 and EL1 read instead of Unicorn's.
        self.id_overrides = {}
        self._virtual_lines = (False, False)
        if virtualization:
            self._budget.virt_regs = 1
            try:
                self._lines = CpuLines(self._native.library_path, ctypes.c_uint64.from_address(
                    self.handle.value + delivery.uc_cpu_offset).value)
            except LinesUnavailable as exc:
                raise VirtualizationUnavailable(f"--virtualization: {exc}") from None
            self._configure_el2_guest()
        else:
            self._configure_higher_els(extra_hcr)
        self._hook_outside_accesses(ram_base, ram_size)
        dfr0 = (model.id_register(ID_AA64DFR0_EL1) if model.trap_id_registers
                else self.read_sysreg(ID_AA64DFR0_EL1))
        self.watchpoints = GuestWatchpoints(self, ((dfr0 >> WRPS_SHIFT) & 0xF) + 1)
        # On a stock Unicorn a hook's stop comes after the access (patches/unicorn/0005).
        self._stops_after_access = "hooked-pages" not in (self._native.patches or "")
        # WFE and YIELD reach the C interrupt hook (patches/unicorn/0006), which
        # ends the slice there while another CPU could run (yield_to_others).
        if self._native.uc_armvisor_set_yield_reports is not None:
            self._native.uc_armvisor_set_yield_reports(self.handle, True)

    # -- setup -------------------------------------------------------------

    def map_memory(self, base: int, size: int, pointer: int, perms: int) -> None:
        """Map host memory at `base` (between slices only)."""
        self.uc.mem_map_ptr(base, size, perms, pointer)
        self._mapped.append((base, size))

    def map_mmio(self, region: MmioRegion) -> None:
        """Route `region` to its device model (between slices only)."""
        self._map_mmio(region)

    def unmap(self, base: int, size: int) -> None:
        self.uc.mem_unmap(base, size)
        self._native.remove_cache(self.handle, base, base + size)
        self._mapped = [(b, n) for b, n in self._mapped if b + n <= base or b >= base + size]

    def is_mapped(self, pa: int) -> bool:
        """Whether anything (RAM, a device, a flash bank) is mapped at physical address `pa`."""
        return any(base <= pa < base + size for base, size in self._mapped)

    def write_protect_fault(self) -> Optional[int]:
        """After a slice that failed on a store to read-only memory: the address it stored to.

        Worked out from the instruction at PC (where Unicorn leaves it) rather
        than with a UC_HOOK_MEM_WRITE_PROT hook: any memory hook moves every
        guest load and store off Unicorn's fast path (measured: +40% on a
        Linux boot).
        """
        if not isinstance(self.error, UcError) or self.error.errno != UC_ERR_WRITE_PROT:
            return None
        pc = self.pc
        insn = self.read_insn(pc)
        access = decode_memory_access(insn, self.read_x, pc=pc) if insn is not None else None
        return access.address if access is not None and access.is_write else None

    def _map_mmio(self, region: MmioRegion) -> None:
        cpu = self.index
        kind = "mmio:" + getattr(region, "name", "device")
        exits = self.exits

        def read(uc, offset, size, _user):
            exits[kind] = exits.get(kind, 0) + 1
            try:
                self.catch_up_exceptions()
                return region.read(offset, size, cpu)
            except Exception as exc:                      # noqa: BLE001 - reported, never lost
                self.fail(exc)
                return 0

        def write(uc, offset, size, value, _user):
            exits[kind] = exits.get(kind, 0) + 1
            try:
                self.catch_up_exceptions()
                region.write(offset, size, value, cpu)
            except Exception as exc:                      # noqa: BLE001
                self.fail(exc)

        self._mmio_callbacks.append((read, write))
        self.uc.mmio_map(region.base, region.size, read, None, write, None)
        self._mapped.append((region.base, region.size))

    def _hook_outside_accesses(self, ram_base: int, ram_size: int) -> None:
        """Catch loads, stores and fetches that reach nothing (see outside.py).

        These hooks run only on Unicorn's slow path, after it found no memory
        region, so accesses to RAM and devices do not see them.
        """
        parange = self.read_sysreg(ID_AA64MMFR0_EL1) & PARANGE_MASK
        pa_bits = PARANGE_BITS.get(parange, max(PARANGE_BITS.values()))
        for begin, end in hook_ranges(ram_base, ram_size, pa_bits):
            self.uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_unmapped, None, begin, end)

    def _on_unmapped(self, uc, kind: int, address: int, size: int, _value: int, _user) -> bool:
        """Record the first access to nothing in this slice; Unicorn then ends the slice.

        Returning False leaves the access unhandled: uc_emu_start returns
        UC_ERR_*_UNMAPPED with the instruction not done (no register or
        base write-back; measured with the outside guest), and run() delivers
        the abort. An address
        inside something mapped but refused is left alone, so the slice ends
        as Stop.FAULT for the board (a flash bank's mode, for instance).
        """
        try:
            if self._outside is None and not self.is_mapped(address):
                self._outside = OutsideAccess(HOOK_ACCESS[kind], address, size, self.pc)
        except Exception as exc:                          # noqa: BLE001 - hooks must not lose errors
            self.fail(exc)
        return False

    def _configure_higher_els(self, extra_hcr: int) -> None:
        """Make the instance a non-secure EL1 guest under our (absent) EL2 and EL3."""
        scr = sr.SCR_NS | sr.SCR_RW | sr.SCR_HCE
        hcr = sr.HCR_RW | sr.HCR_IMO | sr.HCR_FMO | sr.HCR_AMO | sr.HCR_TWI | sr.HCR_TDZ | extra_hcr
        if self.model.pauth:
            scr |= sr.SCR_API | sr.SCR_APK
            hcr |= sr.HCR_API | sr.HCR_APK
        if self.model.trap_id_registers:
            hcr |= sr.HCR_TID3
        self.hcr = hcr
        self.write_sysreg(sr.SCR_EL3, scr)
        self.write_sysreg(sr.HCR_EL2, hcr)
        if self.model.midr is not None:
            self.write_sysreg(sr.VPIDR_EL2, self.model.midr)
        self.write_sysreg(sr.VMPIDR_EL2, (1 << 31) | self.mpidr)
        if self.model.sve:
            # Only CPACR_EL1.ZEN decides: EL3 and EL2 let SVE through at any length.
            self.write_sysreg(sr.CPTR_EL3, sr.CPTR_EL3_EZ)
            self.write_sysreg(sr.ZCR_EL3, sr.ZCR_LEN_MAX)
            self.write_sysreg(sr.ZCR_EL2, sr.ZCR_LEN_MAX)
        # EL1PCTEN | EL1PCEN: EL1 reaches the physical counter and timer without trapping.
        self.write_sysreg(sr.CNTHCTL_EL2, 0b11)
        # MDCR_EL2 resets to 0 in Unicorn: HPMN = 0 would reserve every event
        # counter for EL2. The PMU model answers EL1/EL0 itself, but an access
        # Unicorn executes natively must see the same ownership: all N counters
        # belong to EL1 and EL0, and nothing traps to EL2 (TPM, TPMCR = 0).
        self.write_sysreg(sr.MDCR_EL2, PMU_COUNTERS << sr.MDCR_HPMN_SHIFT)

    def _configure_el2_guest(self) -> None:
        """Non-secure EL2 is the guest's (QEMU's virt with virtualization=on): only EL3's
        controls are ours; EL2's registers keep their reset values for the guest to set."""
        scr = sr.SCR_NS | sr.SCR_RW | sr.SCR_HCE
        if self.model.pauth:
            scr |= sr.SCR_API | sr.SCR_APK
        self.hcr = 0
        self.write_sysreg(sr.SCR_EL3, scr)
        self.write_sysreg(sr.HCR_EL2, 0)
        # Reset values as QEMU gives them: VPIDR_EL2 = MIDR, VMPIDR_EL2 = MPIDR.
        if self.model.midr is not None:
            self.write_sysreg(sr.VPIDR_EL2, self.model.midr)
        self.write_sysreg(sr.VMPIDR_EL2, (1 << 31) | self.mpidr)
        if self.model.sve:
            self.write_sysreg(sr.CPTR_EL3, sr.CPTR_EL3_EZ)
            self.write_sysreg(sr.ZCR_EL3, sr.ZCR_LEN_MAX)
        self.write_sysreg(sr.MDCR_EL2, PMU_COUNTERS << sr.MDCR_HPMN_SHIFT)
        if not self.model.trap_id_registers:
            self._widen_parange()

    def _widen_parange(self) -> None:
        """The `max` CPU: 48-bit physical addresses, as QEMU's max offers (52 with FEAT_LPA,
        which this QEMU lacks), instead of the 44 bits Unicorn's max reports, so a
        hypervisor's 48-bit IPA stage 2 translates (UNICORN-FACTS.md). QEMU reads the
        PARange it enforces from ARMCPU.isar, so that is corrected; what MRS reads comes from
        `id_overrides` (machine/el2_registers.py). Only where the layout checks out."""
        mmfr0 = self.read_sysreg(ID_AA64MMFR0_EL1)
        mmfr1 = self.read_sysreg(ID_AA64MMFR1_EL1)
        cpu = ctypes.c_uint64.from_address(self.handle.value + native_delivery().uc_cpu_offset).value
        isar = (ctypes.c_uint64 * 2).from_address(cpu + ISAR_MMFR0_OFFSET)
        if (isar[0], isar[1]) != (mmfr0, mmfr1) or mmfr0 & PARANGE_MASK >= PARANGE_48_BITS:
            return
        isar[0] = mmfr0 & ~PARANGE_MASK | PARANGE_48_BITS
        self.id_overrides[ID_AA64MMFR0_EL1] = isar[0]

    def _act_as_absent_el2(self) -> None:
        """Make Unicorn's EL2 act as an EL that is not implemented (--secure alone): its
        controls take the effective values the Arm ARM gives them then. EL1 is AArch64
        as SCR_EL3.RW says, and nothing EL1 does traps to EL2: the physical counter and
        timer, the pointer authentication keys and instructions, SVE at any length."""
        hcr = sr.HCR_RW
        if self.model.pauth:
            hcr |= sr.HCR_API | sr.HCR_APK
        self.write_sysreg(sr.HCR_EL2, hcr)
        self.write_sysreg(sr.CNTHCTL_EL2, 0b11)           # EL1PCTEN | EL1PCEN
        if self.model.sve:
            self.write_sysreg(sr.ZCR_EL2, sr.ZCR_LEN_MAX)

    # -- power -------------------------------------------------------------

    def reset(self, entry: int, x0: int = 0, x1: int = 0, x2: int = 0, x3: int = 0) -> None:
        """Warm reset into EL1h at `entry` (EL2h when the guest owns EL2): MMU off, DAIF
        masked (PSCI CPU_ON, boot protocol)."""
        self._native.flush_tlb(self.handle)
        self._native.flush_tb(self.handle)
        gprs = RegBatch(self._native, self.handle, GPR_IDS + [A.UC_ARM64_REG_SP])
        gprs.write([x0, x1, x2, x3] + [0] * 28)
        if self.secure:
            # A CPU reset (the machine's): the firmware at EL3 finds EL3's controls at
            # their reset values, not what it set before a SYSTEM_RESET.
            self.write_sysreg(sr.SCR_EL3, 0)
            if self.hidden_el2:
                self._act_as_absent_el2()
            else:
                self.write_sysreg(sr.HCR_EL2, 0)
            self.write_sysreg(SCTLR_EL2, SCTLR_EL2_RESET)
            self.write_sysreg(SCTLR_EL3, SCTLR_EL3_RESET)
            self.uc.reg_write(A.UC_ARM64_REG_PSTATE, PSTATE_EL3H_MASKED)
        elif self.virtualization:
            # A powered-on CPU starts from reset, as QEMU's CPU_ON resets it: no routing,
            # trap or stage 2 left over from what its EL2 did before.
            self.write_sysreg(sr.HCR_EL2, 0)
            self.uc.reg_write(A.UC_ARM64_REG_PSTATE, PSTATE_EL2H_MASKED)
            self.write_sysreg(SCTLR_EL2, SCTLR_EL2_RESET)
        else:
            self.uc.reg_write(A.UC_ARM64_REG_PSTATE, sr.PSTATE_EL1H_MASKED)
        self.write_sysreg(sr.SCTLR_EL1, sr.SCTLR_EL1_RESET)   # also rebuilds EL flags
        self._pc.write([entry])
        self._next_pc = entry
        self.stop_reason = None

    # -- snapshots -----------------------------------------------------------

    def registers(self) -> bytes:
        """The architectural state as Unicorn's CPU context (see native.CpuContext)."""
        context = CpuContext(self._native, self.handle)
        try:
            return context.save()
        finally:
            context.close()

    def set_registers(self, data: bytes) -> None:
        """Take the state `registers()` gave; what was translated for the old one goes."""
        context = CpuContext(self._native, self.handle)
        try:
            context.restore(data)
        finally:
            context.close()
        self._native.flush_tlb(self.handle)
        self._native.flush_tb(self.handle)
        self.watchpoints.reload()

    def save_state(self) -> dict:
        """Everything this core holds, between slices: the architectural state and our counts."""
        state = self._budget
        return {
            "context": self.registers(),
            "next_pc": self._next_pc,
            "irq_lines": list(self._irq_lines),
            "virtual_lines": list(self._virtual_lines),
            "executed": state.executed,
            "retired": state.retired,
            "vclock": [state.vclock, state.vclock_base, state.vclock_origin],
            "last_vector": self.last_vector,
            "vector_faults": self.vector_faults,
            "first_fault": None if self.first_fault is None else list(self.first_fault),
        }

    def restore_state(self, saved: dict) -> None:
        """Take the state of `save_state` (from a core of the same model and Unicorn build)."""
        self.set_registers(saved["context"])
        self._next_pc = saved["next_pc"]
        self._irq_lines = tuple(saved["irq_lines"])       # HCR_EL2.VI/VF came with the context
        self._virtual_lines = tuple(saved.get("virtual_lines", (False, False)))
        if self._lines is not None:
            # The CPU's own inputs are not part of Unicorn's context: drive them again.
            lines = self._lines
            (lines.levels[CPU_INTERRUPT_HARD], lines.levels[CPU_INTERRUPT_FIQ]) = self._irq_lines
            (lines.levels[CPU_INTERRUPT_VIRQ], lines.levels[CPU_INTERRUPT_VFIQ]) = \
                self._virtual_lines
            lines.refresh()
        state = self._budget
        state.executed = saved["executed"]
        state.retired = saved.get("retired", 0)
        state.stop_at_armed = state.stopped_at = 0
        state.vclock, state.vclock_base, state.vclock_origin = saved["vclock"]
        self.last_vector = saved["last_vector"]
        self.vector_faults = saved["vector_faults"]
        first = saved["first_fault"]
        self.first_fault = None if first is None else tuple(first)
        state.exceptions_seen = state.exceptions_total
        state.exception_loop = state.exceptions_full = 0
        self.stop_reason = None
        self.error = None

    # -- exact counts (reverse execution) -------------------------------------

    def count_exactly(self) -> None:
        """Count every instruction as it starts (`retired`), for a debugger's history.

        A code hook on every address (C, no Python): the run gets slower, so
        only a debugger that keeps a history turns it on, before anything runs.
        """
        if self._count_hook is None:
            self._count_hook = self._native.add_c_hook(
                self.handle, UC_HOOK_CODE, self._native.count_hook_address,
                ctypes.byref(self._budget), 1, 0)
            self.flush_code()

    @property
    def counting(self) -> bool:
        return self._count_hook is not None

    @property
    def retired(self) -> int:
        """Instructions started since reset, exactly (while count_exactly is on)."""
        return self._budget.retired

    def uncount(self) -> None:
        """The instruction just counted did not happen (a breakpoint or watchpoint stopped
        it, and it runs again on resume)."""
        self._budget.retired -= 1

    def stop_before(self, count: Optional[int]) -> None:
        """Stop the core before the instruction that would make `retired` pass `count`."""
        state = self._budget
        state.stop_at_armed = 0 if count is None else 1
        state.stop_at = 0 if count is None else count

    def _take_count_stop(self) -> bool:
        state = self._budget
        if not state.stopped_at:
            return False
        state.stopped_at = 0
        self._next_pc = state.stopped_pc
        self.count_stopped = True
        return True

    # -- running -----------------------------------------------------------

    def run(self, budget: int) -> Stop:
        """Run one slice of about `budget` instructions; returns why it ended.

        An access to an address with nothing mapped does not end the slice:
        the guest takes a synchronous external abort (outside.py) and the
        slice goes on in its handler. Stop.FAULT means Unicorn refused an
        access to something mapped (a store to read-only memory, a fetch
        from a device), with `error` saying which.
        """
        self.stop_reason = None
        state = self._budget
        state.budget = budget
        state.budget_expired = 0
        self._resume_budget = None
        self._rising_lines = self._rising_virtual_lines = None   # the machine raises them now
        # A subscriber sees every natively taken exception (catch_up_exceptions).
        state.exceptions_keep_all = self.trace is not None and self.trace.watched
        begin = self._next_pc if self._next_pc is not None else self.pc
        self._next_pc = None
        while True:
            self._outside = None
            started = time.perf_counter()
            status = self._native.uc_emu_start(self.handle, begin, NO_UNTIL, 0, 0)
            self.run_seconds += time.perf_counter() - started
            self.catch_up_exceptions()
            if self._take_count_stop():
                return Stop.BUDGET
            if self._take_exception_loop():
                return Stop.MACHINE
            if status != 0 and not self._take_outside_abort(status):
                if self.error is None:
                    self.error = UcError(status)
                    return Stop.FAULT
                return Stop.MACHINE
            if self.error is not None:
                return Stop.MACHINE
            hit = self.watchpoints.take_pending(self._stops_after_access)
            if self.stop_reason is not None:
                # A debugger's stop comes first: the access runs again on resume.
                return self.stop_reason
            if hit is not None:
                self._take_watchpoint(hit)
                if self.error is not None:
                    return Stop.MACHINE
                begin = self.pc
                continue
            if state.yielded:
                # A WFE or YIELD while another CPU could run: the guest spins
                # waiting for something another CPU will do, so the rest of
                # this slice goes to them.
                state.yielded = 0
                self.count_exit("yield")
                return Stop.BUDGET
            if state.exceptions_full:
                # The C hook stopped at an exception for Python to read its
                # records (catch_up_exceptions): the slice goes on.
                state.exceptions_full = 0
                if state.budget <= 0:
                    return Stop.BUDGET
            elif status == 0 or state.budget <= 0:
                if self.virtualization and status == 0 and not state.budget_expired \
                        and state.budget > 0 and self._stopped_on_wfi():
                    self.count_exit("wfi")
                    return Stop.WFI
                if self._resume_budget is not None and state.budget_expired \
                        and self._raise_rising_lines():
                    begin = self.pc
                    continue
                return Stop.BUDGET
            # The guest took an abort: the rest of the slice runs its handler.
            begin = self.pc

    def trap_access_to_el2(self) -> object:
        """From an MRS/MSR hook at EL1: take the access to the guest's EL2 as a trapped
        system register access (EC 0x18), as QEMU's access checks do for the registers
        Unicorn lacks (ICC_SGI*R_EL1 under HCR_EL2.IMO/FMO). Returns EXCEPTION_TAKEN.

        Arm ARM D1.10 (exception entry to EL2 from AArch64 EL1): ESR/ELR/SPSR_EL2, EL2h
        with D, A, I, F masked, VBAR_EL2 + 0x400; the CP_REG write rebuilds QEMU's EL flags.
        """
        pc = self.pc
        insn = self.read_insn(pc)
        esr = syndrome.esr_sysreg_trap_for_insn(insn) if insn is not None else None
        if esr is None:
            raise RuntimeError(f"trapping the access at {pc:#x} to EL2: no MRS/MSR there")
        pstate = self.pstate
        self.write_sysreg(ESR_EL2, esr)
        self.write_sysreg(ELR_EL2, pc)
        self.write_sysreg(SPSR_EL2, pstate)
        self.write_reg(A.UC_ARM64_REG_PSTATE, PSTATE_EL2H_MASKED)
        self.write_sysreg(SPSR_EL2, pstate)            # a CP_REG write: EL flags rebuilt
        self.set_pc(self.read_sysreg(VBAR_EL2) + VECTOR_LOWER_AARCH64_SYNC)
        self.count_exit("trap to EL2")
        if self.trace is not None:
            self.trace.emit("exception", self.index, ec=esr >> ESR_EC_SHIFT, esr=esr, elr=pc,
                            far=None, vector=self.pc, el=EL2)
        return EXCEPTION_TAKEN

    def _stopped_on_wfi(self) -> bool:
        """Whether Unicorn ended the slice by itself on a WFI: without HCR_EL2.TWI (the
        guest's EL2 owns it now) it returns quietly with PC after the WFI (UNICORN-FACTS.md)."""
        return self.read_insn(self.pc - 4) == INSN_WFI

    def _take_exception_loop(self) -> bool:
        """After a slice: whether the C hook found the guest looping on a vector."""
        state = self._budget
        if not state.exception_loop:
            return False
        state.exception_loop = 0
        if self.error is None:
            # The C hook stopped the core before the exception: it is at the EL it loops in
            # (EL1, or the guest's EL2 with --virtualization).
            self.error = exception_loop(self.last_vector, self.first_fault,
                                        el=max(self.el, 1))
        return True

    def _take_outside_abort(self, status: int) -> bool:
        """After uc_emu_start failed: deliver the abort for an access to nothing, if it was one."""
        outside = self._outside
        if status not in UNMAPPED_ERRORS or outside is None or self.error is not None:
            return False
        self.count_exit("abort:outside")
        try:
            far = deliver_abort(self, outside, self.mmu_enabled, self.translate)
        except Exception as exc:                          # noqa: BLE001 - an exception loop, ...
            self.error = exc
            return True
        if self.trace is not None:
            self.trace.emit("abort.outside", self.index, access=outside.access.value,
                            pa=outside.pa, far=far, elr=outside.pc)
        return True

    def _take_watchpoint(self, hit) -> None:
        """The guest's own watchpoint fired (guest_watchpoints.py): PC is on the access."""
        self.count_exit("watchpoint")
        pc = self.pc
        if self.trace is not None:
            self.trace.emit("debug.watchpoint", self.index, va=hit.far, pc=pc, write=hit.is_write)
        try:
            take_exception_to_el1(self, hit.esr, pc, hit.far)
        except Exception as exc:                          # noqa: BLE001 - an exception loop
            self.error = exc

    def yield_to_others(self, others_can_run: bool) -> None:
        """Whether a WFE or YIELD in the next slice ends it (between slices): only while
        another CPU could run, and after YIELD_WINDOW instructions of the slice, so
        that CPUs spinning against each other (a deadlock, a contended lock) do not
        switch every few instructions at Python's cost."""
        state = self._budget
        state.yield_from = state.executed + YIELD_WINDOW if others_can_run else NEVER

    @property
    def yields(self) -> int:
        """WFE and YIELD instructions run so far (0 on a Unicorn without patch 0006)."""
        return self._budget.yield_count

    def stop_for_debug_exception(self) -> None:
        """From a memory hook: end the slice before the access; `run` takes the exception."""
        self._native.uc_emu_stop(self.handle)

    def stop(self, reason: Stop, resume_pc: Optional[int] = None) -> None:
        """Stop the slice from inside a hook (a safe point); resume at `resume_pc` later.

        The PC is not written here: a PC write inside a hook cancels a pending
        stop in Unicorn, so the next slice starts at the recorded address.
        """
        self.stop_reason = reason
        if resume_pc is not None:
            self._next_pc = resume_pc
        self._native.uc_emu_stop(self.handle)

    def start_virtual_clock(self, now: int) -> None:
        """Deterministic mode: the guest's counter reads `now` plus the instructions run since."""
        state = self._budget
        state.vclock = 1
        state.vclock_base = now
        state.vclock_origin = state.executed

    def offset_host_counter(self, offset: int) -> None:
        """Host clock: the guest's counter reads QEMU's plus `offset` (a restored machine)."""
        state = self._budget
        state.vclock = 2 if offset else 0           # ARMV_CLOCK_HOST_OFFSET in _hooks.c
        state.vclock_base = offset & 0xFFFF_FFFF_FFFF_FFFF

    def virtual_now(self) -> int:
        state = self._budget
        return state.vclock_base + (state.executed - state.vclock_origin)

    def shorten_slice(self, instructions: int) -> None:
        """Let the running slice go on for at most `instructions` more (from a hook)."""
        self._budget.budget = min(self._budget.budget, instructions)
        if self._resume_budget is not None:
            self._resume_budget = min(self._resume_budget, instructions)

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.stop(Stop.MACHINE)

    @property
    def executed(self) -> int:
        return self._budget.executed

    @property
    def retired_at_access(self) -> int:
        """Inside a trapped system register access: the instructions retired before it, exactly."""
        return self._budget.access_retired

    def take_maintenance(self) -> Tuple[bool, bool, List[Tuple[int, int]]]:
        """What the last slice invalidated and others must see; clears it.

        (TLBI ...IS seen?, IC IALLUIS or too many ranges?, IC IVAU VA ranges,
        each within one page).
        """
        state = self._budget
        tlbi, ic_all, ranges = bool(state.tlbi_broadcast), bool(state.ic_all), []
        if state.ic_used and not ic_all:
            ranges = list(zip(state.ic_start[:state.ic_used], state.ic_end[:state.ic_used]))
        state.tlbi_broadcast = 0
        state.ic_all = 0
        state.ic_used = 0
        return tlbi, ic_all, ranges

    def exit_counts(self) -> dict:
        """Exits to Python by kind, plus what the C hooks counted without leaving C."""
        counts = dict(self.exits)
        counts["sysreg (timer, GIC CPU interface, PMU)"] = self._budget.sysreg_count
        counts["tlbi broadcast (C)"] = self._budget.tlbi_count
        counts["ic ivau (C)"] = self._budget.ic_count
        for ec, count in enumerate(self._budget.native_ec_count):
            if count:
                counts[f"exception {EC_NAMES.get(ec, f'EC {ec:#x}')} (C)"] = count
        return counts

    def set_exit_checks(self, enabled: bool) -> None:
        """Whether a stop asked for inside a block (a memory hook's) ends the slice at the
        very next load or store, as on stock Unicorn, or at the next block.

        Only a patched Unicorn can turn the checks off; code translated before
        keeps what it had, so the cache is flushed.
        """
        setter = self._native.uc_armvisor_set_exit_checks
        if setter is None:
            return
        setter(self.handle, enabled)
        self._native.flush_tb(self.handle)

    def flush_tlb(self) -> None:
        self._native.flush_tlb(self.handle)

    def flush_code(self, ranges: Optional[List[Tuple[int, int]]] = None) -> None:
        """Drop translated code: all of it, or the given [start, end) ranges.

        Unicorn finds a range's physical page through this core's own MMU, so
        each range must lie in one page and be named by an address this core
        can translate (see Machine._broadcast_maintenance).
        """
        if ranges is None:
            self._native.flush_tb(self.handle)
            return
        for start, end in ranges:
            self._native.remove_cache(self.handle, start, end)

    @property
    def mmu_enabled(self) -> bool:
        return bool(self.read_sysreg(sr.SCTLR_EL1) & sr.SCTLR_M)

    # -- the exception hook --------------------------------------------------

    def _on_intr(self, intno: int) -> None:
        """An exception the C hook did not take natively (see _hooks.c armv_intr_hook)."""
        try:
            self.catch_up_exceptions()
            self._traps.handle(intno)
        except Exception as exc:                          # noqa: BLE001 - hooks must not lose errors
            self.fail(exc)

    # -- exceptions taken natively, and the state shared with entry.py ------------

    def catch_up_exceptions(self) -> None:
        """Trace the exceptions the C hook delivered since the last call, in order.

        Called between slices and whenever a hook enters Python, so they come
        before whatever Python emits next. While a subscriber watches the
        trace, the C hook stops the slice when its ring is full (run() goes
        on with the slice), so none is lost; otherwise only the last ones
        could ever be read (the bus's `recent`), and only those are emitted.
        """
        state = self._budget
        total, seen = state.exceptions_total, state.exceptions_seen
        if total == seen:
            return
        state.exceptions_seen = total
        trace = self.trace
        if trace is None:
            return
        wanted = total - seen if trace.watched else min(total - seen, trace.recent.maxlen)
        if total - seen > EXCEPTION_RING and trace.watched:
            trace.emit("exception.untraced", self.index, count=total - seen - EXCEPTION_RING)
            wanted = EXCEPTION_RING
        emit, cpu = trace.emit, self.index
        for esr, elr, far, vector, el, has_far, *args in \
                self._exception_records(total - wanted, total):
            ec = esr >> ESR_EC_SHIFT
            if el == 1:
                emit("exception", cpu, ec=ec, esr=esr, elr=elr,
                     far=far if has_far else None, vector=vector)
                continue
            # Taken to the guest's own EL2 (--virtualization) or EL3 (--secure).
            emit("exception", cpu, ec=ec, esr=esr, elr=elr, far=far if has_far else None,
                 vector=vector, el=el)
            if ec in (EC_HVC64, EC_SMC64):
                # The call it makes, as SMCCC names it; what it returns is the guest
                # firmware's business (its ERET back is not seen).
                emit("smc" if ec == EC_SMC64 else "hvc", cpu, el=el, imm=esr & 0xFFFF,
                     fid=args[0] & 0xFFFF_FFFF, args=tuple(args[1:]),
                     **({} if self._describe_call is None
                        else {"function": self._describe_call(args[0])}))

    def _exception_records(self, first: int, end: int):
        """The C ring's records `first` to `end` (exclusive; at most a ring's worth), as tuples."""
        size = ctypes.sizeof(ArmvException)
        base = ctypes.addressof(self._budget.exceptions)
        start, count = first % EXCEPTION_RING, end - first
        head = min(count, EXCEPTION_RING - start)
        raw = ctypes.string_at(base + start * size, head * size) + \
            ctypes.string_at(base, (count - head) * size)
        return _EXCEPTION_RECORD.iter_unpack(raw)

    @property
    def native_exceptions(self) -> bool:
        """Whether the guest's synchronous exceptions are taken natively (native_exceptions.py)."""
        return bool(self._budget.deliver)

    @property
    def exceptions_taken_natively(self) -> int:
        return self._budget.exceptions_total

    @property
    def last_vector(self) -> Optional[int]:
        """The vector the core last entered (exception-loop detection, entry.py and _hooks.c)."""
        state = self._budget
        return state.last_vector if state.last_vector_valid else None

    @last_vector.setter
    def last_vector(self, value: Optional[int]) -> None:
        state = self._budget
        state.last_vector_valid = value is not None
        state.last_vector = value or 0

    @property
    def vector_faults(self) -> int:
        return self._budget.vector_faults

    @vector_faults.setter
    def vector_faults(self, value: int) -> None:
        self._budget.vector_faults = value

    @property
    def first_fault(self) -> Optional[Tuple[int, int, Optional[int]]]:
        """(ESR, ELR, FAR or None) of the exception before an exception loop (entry.py)."""
        state = self._budget
        if not state.first_fault_valid:
            return None
        far = state.first_far if state.first_fault_has_far else None
        return state.first_esr, state.first_elr, far

    @first_fault.setter
    def first_fault(self, value: Optional[Tuple[int, int, Optional[int]]]) -> None:
        state = self._budget
        state.first_fault_valid = value is not None
        esr, elr, far = value if value is not None else (0, 0, None)
        state.first_esr, state.first_elr = esr, elr
        state.first_fault_has_far = far is not None
        state.first_far = far or 0

    def _on_sysreg(self, key: int, el: int, is_write: int, value: int, result) -> int:
        # Every trapped timer and ICC access of every interrupt comes here: what
        # each register is was worked out once (_plan_sysreg).
        try:
            plan = self._sysreg_plans.get(key)
            if plan is None:
                plan = self._sysreg_plans[key] = self._plan_sysreg(key)
            handler, done = plan
            self.catch_up_exceptions()
            answer = handler(self, el, bool(is_write), value)
            if answer is None:
                return SYSREG_NOT_HANDLED
            if answer is EXCEPTION_TAKEN:
                return SYSREG_DONE          # PC is the vector's already
            result[0] = answer & 0xFFFF_FFFF_FFFF_FFFF
            return done
        except Exception as exc:                          # noqa: BLE001
            self.fail(exc)
            return SYSREG_NOT_HANDLED

    def _plan_sysreg(self, key: int) -> Tuple[Callable[..., Optional[int]], int]:
        """(handler, status of a completed access) for the register the C hook's key names."""
        reg = sr.SysReg.from_key(key)
        if is_watchpoint_register(reg):
            return partial(self._observe_watchpoint_register, reg), SYSREG_NOT_HANDLED
        # Skipping a register Unicorn lacks leaves PC on the instruction.
        return (self.host.sysreg_handler(reg),
                SYSREG_DONE if unicorn_implements(reg) else SYSREG_DONE_ADVANCE)

    def _observe_watchpoint_register(self, reg: sr.SysReg, core: "Core", el: int, is_write: bool,
                                     value: int) -> None:
        # Unicorn stores the value itself (the access goes on); its watchpoints are
        # compiled out, so the guest's are modelled from what it writes.
        if is_write and el >= 1:
            self.watchpoints.observe(reg, value)

    # -- interrupt lines -------------------------------------------------------------

    @property
    def irq_lines(self) -> Tuple[bool, bool]:
        return self._irq_lines

    def set_irq_lines(self, irq: bool, fiq: bool) -> None:
        """Drive the virtual IRQ/FIQ inputs (HCR_EL2.VI/VF), which the guest takes natively;
        when the guest owns EL2, the CPU's physical IRQ/FIQ inputs (QEMU routes them).

        Raising a line from inside a block (an MMIO or MSR callback) makes
        Unicorn re-execute half-done instructions: callers raise only at safe
        points (between slices, in an exception hook); lowering is safe anywhere.
        """
        if (irq, fiq) == self._irq_lines:
            return
        self._irq_lines = (irq, fiq)
        if self._lines is not None:
            self._lines.set(CPU_INTERRUPT_HARD, irq)
            self._lines.set(CPU_INTERRUPT_FIQ, fiq)
            return
        self.write_sysreg(sr.HCR_EL2, self.hcr | (sr.HCR_VI if irq else 0) | (sr.HCR_VF if fiq else 0))

    @property
    def virtual_lines(self) -> Tuple[bool, bool]:
        return self._virtual_lines

    def set_virtual_lines(self, virq: bool, vfiq: bool) -> None:
        """The GIC virtualization interface's virtual IRQ/FIQ inputs (--virtualization only),
        which QEMU ORs with the guest's HCR_EL2.VI/VF. Raised at safe points only."""
        if (virq, vfiq) == self._virtual_lines or self._lines is None:
            return
        self._virtual_lines = (virq, vfiq)
        self._lines.set(CPU_INTERRUPT_VIRQ, virq)
        self._lines.set(CPU_INTERRUPT_VFIQ, vfiq)

    def virtual_lines_changed_in_slice(self, virq: bool, vfiq: bool) -> None:
        """As irq_lines_changed_in_slice, for the virtual inputs."""
        old_virq, old_vfiq = self._virtual_lines
        if (virq and not old_virq) or (vfiq and not old_vfiq):
            self._rising_virtual_lines = (virq, vfiq)
            self._leave_block_to_raise()
        else:
            self._rising_virtual_lines = None
            self.set_virtual_lines(virq, vfiq)

    def irq_lines_changed_in_slice(self, irq: bool, fiq: bool) -> None:
        """New line levels decided while this core runs (from an MMIO or MSR callback).

        A line that falls is lowered at once (safe anywhere); one that rises
        is raised at the next block boundary, where run() stops Unicorn, raises
        it and goes on with the rest of the slice.
        """
        old_irq, old_fiq = self._irq_lines
        if (irq and not old_irq) or (fiq and not old_fiq):
            self._rising_lines = (irq, fiq)
            self._leave_block_to_raise()
        else:
            self._rising_lines = None
            self.set_irq_lines(irq, fiq)

    def _leave_block_to_raise(self) -> None:
        # Stop at the next block boundary, keeping what was left of the slice for
        # after the raise. A later shorten_slice (another CPU kicked, a deadline)
        # cuts the kept budget as it would have cut the slice.
        state = self._budget
        if self._resume_budget is None and state.budget > 0:
            self._resume_budget = state.budget
        state.budget = 0

    def _raise_rising_lines(self) -> bool:
        """At the block boundary run() stopped at for rising lines: raise them; whether
        the slice goes on (budget was left)."""
        resume, self._resume_budget = self._resume_budget, None
        if self._rising_lines is not None:
            self.set_irq_lines(*self._rising_lines)
            self._rising_lines = None
        if self._rising_virtual_lines is not None:
            self.set_virtual_lines(*self._rising_virtual_lines)
            self._rising_virtual_lines = None
        if not resume:
            return False
        self._budget.budget = resume
        self._budget.budget_expired = 0
        self.count_exit("irq line raised in slice")
        return True

    def count_exit(self, kind: str) -> None:
        self.exits[kind] = self.exits.get(kind, 0) + 1

    # -- register access (raw ctypes: the hot exits use these) ---------------

    @property
    def pc(self) -> int:
        return self._pc.read()[0]

    def set_pc(self, value: int) -> None:
        self._pc.write([value])

    def read_x(self, n: int) -> int:
        """Xn for n in 0..30; n == 31 reads SP (the base-register meaning)."""
        reg = GPR_IDS[n] if n < 31 else A.UC_ARM64_REG_SP
        value = ctypes.c_uint64()
        self._native.uc_reg_read(self.handle, reg, ctypes.byref(value))
        return value.value

    def write_x(self, n: int, value: int) -> None:
        if n == 31:                      # XZR as a destination
            return
        v = ctypes.c_uint64(value & 0xFFFF_FFFF_FFFF_FFFF)
        self._native.uc_reg_write(self.handle, GPR_IDS[n], ctypes.byref(v))

    def read_args(self) -> List[int]:
        """x0..x7, the SMCCC argument registers."""
        return list(self._x0_7.read())

    def write_results(self, values: Sequence[int]) -> None:
        """x0..x3, the SMCCC result registers."""
        self._x0_3.write(list(values) + [0] * (4 - len(values)))

    def read_reg(self, reg_id: int) -> int:
        value = ctypes.c_uint64()
        self._native.uc_reg_read(self.handle, reg_id, ctypes.byref(value))
        return value.value

    def write_reg(self, reg_id: int, value: int) -> None:
        v = ctypes.c_uint64(value & 0xFFFF_FFFF_FFFF_FFFF)
        self._native.uc_reg_write(self.handle, reg_id, ctypes.byref(v))

    def read_sysreg(self, reg: sr.SysReg) -> int:
        cp = self._cpreg
        cp.op0, cp.op1, cp.crn, cp.crm, cp.op2 = reg
        self._native.uc_reg_read(self.handle, A.UC_ARM64_REG_CP_REG, ctypes.byref(cp))
        return cp.val

    def write_sysreg(self, reg: sr.SysReg, value: int) -> None:
        cp = self._cpreg
        cp.op0, cp.op1, cp.crn, cp.crm, cp.op2 = reg
        cp.val = value & 0xFFFF_FFFF_FFFF_FFFF
        self._native.uc_reg_write(self.handle, A.UC_ARM64_REG_CP_REG, ctypes.byref(cp))

    def exception_state(self) -> Sequence[int]:
        return self._entry_read.read()

    def write_exception_entry(self, *, esr: int, far: Optional[int], elr: int,
                              sp_el0: Optional[int], sp: int, pstate: int, pc: int) -> None:
        if sp_el0 is None:
            self._entry_write_no_sp0.write([esr, elr, sp, pstate, pc])
        else:
            self._entry_write.write([esr, elr, sp_el0, sp, pstate, pc])
        if far is not None:
            self.write_reg(A.UC_ARM64_REG_FAR_EL1, far)

    def read_insn(self, va: int) -> Optional[int]:
        """The instruction word at a virtual address, or None if it cannot be fetched."""
        status = self._native.uc_vmem_read(self.handle, va, UC_PROT_EXEC,
                                           ctypes.byref(self._insn_buf), 4)
        return None if status else self._insn_buf.value

    def translate(self, va: int, prot: int = 1) -> Optional[int]:
        pa = ctypes.c_uint64()
        status = self._native.uc_vmem_translate(self.handle, va, prot, ctypes.byref(pa))
        return None if status else pa.value

    def read_virtual(self, va: int, size: int) -> Optional[bytes]:
        buf = ctypes.create_string_buffer(size)
        status = self._native.uc_vmem_read(self.handle, va, 1, buf, size)
        return None if status else buf.raw

    def read_phys(self, pa: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(pa, size))

    @property
    def pstate(self) -> int:
        return self.read_reg(A.UC_ARM64_REG_PSTATE)

    @property
    def el(self) -> int:
        return sr.pstate_el(self.pstate)

    def close(self) -> None:
        self.uc = None
