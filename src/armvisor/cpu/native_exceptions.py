"""Native delivery of the guest's synchronous exceptions, and its start-up self-test.

Unicorn reports every synchronous exception to UC_HOOK_INTR and then carries
on as if nothing happened (UNICORN-FACTS.md). Its library also exports QEMU's
own exception entry, `arm_cpu_do_interrupt` (qemu/target/arm/helper.c, as
`arm_cpu_do_interrupt_aarch64`): called from the hook with the instance's
CPU, it takes the pending exception to the EL QEMU routed it to, with QEMU's
syndrome, FAR, ELR, SPSR, PSTATE and vector. The C hook (_hooks.c,
armv_intr_hook) does that for exceptions whose target EL runs the guest's own
code, in about a microsecond; everything else (SMC, HVC, traps to EL2) still
comes to Python (traps.py), and so does everything when this is off.

Two things it needs are QEMU's private layout in Unicorn 2.1.4, not its API:
where `uc_struct` keeps the CPU, and where CPUARMState keeps the pending
exception. So once per process a scratch instance takes known exceptions
(SVC from EL0, UNDEFINED, BRK, a data abort on an unmapped VA with the MMU
on) and their architectural results are checked against the syndromes the
Arm ARM gives (syndrome.py) and the vectors and PSTATE of entry.py. If any
check fails, one line on stderr says native delivery is off and why, and
every exception goes through Python as before. ARMVISOR_NATIVE_EXCEPTIONS=0
turns it off the same way (to measure or compare the two paths).
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, List, Optional, Tuple

from unicorn import UC_ARCH_ARM64, UC_HOOK_INTR, UC_MODE_ARM, UC_PROT_ALL, Uc
from unicorn import arm64_const as A

from armvisor.cpu import syndrome as syn
from armvisor.cpu import sysregs as sr
from armvisor.cpu.entry import entry_pstate, vector_offset
from armvisor.cpu.native import DO_INTERRUPT_SYMBOL, INTR_CALLBACK, ArmvCore, Native, native

ENV_SWITCH = "ARMVISOR_NATIVE_EXCEPTIONS"
OFF_VALUES = ("0", "off", "no", "false")

# The Unicorn release whose layout the offsets below describe (uc_version()).
UNICORN_VERSION = (2, 1, 4)
# offsetof(struct uc_struct, cpu) (include/uc_priv.h) in Unicorn 2.1.4 on
# x86-64: the `mov 0x1b8(%rdi),%rdi` before cpu_exit in uc_emu_stop.
UC_STRUCT_CPU_OFFSET = 0x1B8
# offsetof(ARMCPU, env) + offsetof(CPUARMState, exception)
# (qemu/target/arm/cpu.h): the pending exception's syndrome, fsr, vaddress
# and target_el, as raise_exception() leaves them for the interrupt hook.
ARMCPU_EXCEPTION_OFFSET = 0xAF20
PENDING_EXCEPTION = struct.Struct("<IIQI")     # syndrome, fsr, vaddress, target_el

# QEMU's exception numbers (qemu/target/arm/cpu.h), as the hook receives them.
EXCP_SWI = 2
EXCP_HVC = 11

EL1 = 1


@dataclass(frozen=True)
class NativeDelivery:
    """Whether the C hook may take exceptions natively in this process, and with what."""

    enabled: bool
    reason: str = ""                    # why it is off
    deliver: Optional[int] = None       # address of arm_cpu_do_interrupt_aarch64
    uc_cpu_offset: int = UC_STRUCT_CPU_OFFSET
    exception_offset: int = ARMCPU_EXCEPTION_OFFSET

    def configure(self, state: ArmvCore, native_els: int, pan_hidden: bool,
                  python_ecs: int) -> None:
        """Set a core's C state: exceptions taken to an EL in `native_els` (a bit per EL)
        are delivered natively, but those of an EC in `python_ecs` still go to Python."""
        state.uc_cpu_offset = self.uc_cpu_offset
        state.exception_offset = self.exception_offset
        state.native_els = native_els
        state.pan_hidden = int(pan_hidden)
        state.python_ecs = python_ecs
        state.deliver = self.deliver if self.enabled else None


class SelfTestFailed(Exception):
    pass


# ---- the scratch instance's program --------------------------------------------
# A64 encodings (Arm ARM C6.2, the instruction's own page), checked against the
# cross assembler in tests/unit/cpu/test_native_exceptions.py.

def insn_svc(imm16: int) -> int:
    return 0xD400_0001 | (imm16 << 5)


def insn_hvc(imm16: int) -> int:
    return 0xD400_0002 | (imm16 << 5)


def insn_brk(imm16: int) -> int:
    return 0xD420_0000 | (imm16 << 5)


def insn_udf(imm16: int) -> int:
    return imm16


INSN_LDR_X0_X1 = 0xF940_0020        # LDR X0, [X1]
INSN_B_SELF = 0x1400_0000           # B .

RAM = 0x4000_0000
RAM_SIZE = 0x20_0000
VBAR = RAM + 0x800                  # VBAR_EL1 is 2 KiB aligned (bits [10:0] RES0)
CODE = RAM + 0x2000
L1_TABLE = RAM + 0x1_0000
SP_EL0_VALUE = RAM + 0x3_0000
SP_EL1_VALUE = RAM + 0x4_0000
UNMAPPED_VA = 0x8000_0000           # level-1 entry 2 of the table below: invalid
SVC_IMM, UDF_IMM, BRK_IMM = 0x5A5A, 0x1234, 0x77
# Where the test instructions sit.
AT_SVC, AT_UDF, AT_BRK, AT_LDR = CODE, CODE + 4, CODE + 8, CODE + 12

# Stage 1 for the data abort (Arm ARM D8, VMSAv8-64 translation): 4 KiB
# granule, T0SZ = 25 (39-bit VAs, the walk starts at level 1), TTBR1 walks
# disabled (EPD1), MAIR attribute 0 Normal write-back; one level-1 block maps
# RAM's gigabyte to itself, EL1 read/write.
TCR_T0SZ_39_BITS = 25
TCR_IRGN0_WB, TCR_ORGN0_WB, TCR_SH0_INNER, TCR_EPD1 = 1 << 8, 1 << 10, 3 << 12, 1 << 23
TCR_VALUE = TCR_T0SZ_39_BITS | TCR_IRGN0_WB | TCR_ORGN0_WB | TCR_SH0_INNER | TCR_EPD1
MAIR_NORMAL_WB = 0xFF
DESC_BLOCK, DESC_SH_INNER, DESC_AF = 0b01, 3 << 8, 1 << 10
L1_BLOCK_SHIFT = 30
WALK_START_LEVEL = 1

TCR_EL1 = sr.TCR_EL1
MAIR_EL1 = sr.SysReg(3, 0, 10, 2, 0)
NO_UNTIL = 0xFFFF_FFFF_FFFF_FFFF
STEP_LIMIT = 16                     # instructions per check: a missed delivery cannot loop


def _program() -> List[Tuple[int, int]]:
    """(address, word): vectors that HVC to Python, saying which vector they are, and the tests."""
    words = []
    for offset in (0x000, 0x200, 0x400):       # synchronous: current EL SP0 / SPx, lower EL
        words += [(VBAR + offset, insn_hvc(offset)), (VBAR + offset + 4, INSN_B_SELF)]
    words += [(AT_SVC, insn_svc(SVC_IMM)), (AT_UDF, insn_udf(UDF_IMM)),
              (AT_BRK, insn_brk(BRK_IMM)), (AT_LDR, INSN_LDR_X0_X1)]
    return words


def _readable(address: int, size: int) -> bool:
    """Whether [address, address+size) lies in one readable mapping of this process."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                span, perms = line.split()[:2]
                low, high = (int(x, 16) for x in span.split("-"))
                if low <= address and address + size <= high:
                    return perms.startswith("r")
    except OSError:
        return False
    return False


class _Scratch:
    """A throwaway instance set up like a core: non-secure EL1 under EL2 and EL3."""

    def __init__(self, lib: Native, delivery: NativeDelivery):
        self.lib = lib
        self.uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        self.uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
        self.uc.ctl_set_page_size(4096)
        self.uc.ctl_set_tcg_buffer_size(4 << 20)
        self.uc.mem_map(RAM, RAM_SIZE, UC_PROT_ALL)
        for address, word in _program():
            self.uc.mem_write(address, struct.pack("<I", word))
        block = RAM | DESC_AF | DESC_SH_INNER | DESC_BLOCK
        self.uc.mem_write(L1_TABLE + 8 * (RAM >> L1_BLOCK_SHIFT), struct.pack("<Q", block))
        self.write_sysreg(sr.SCR_EL3, sr.SCR_NS | sr.SCR_RW | sr.SCR_HCE)
        self.write_sysreg(sr.HCR_EL2, sr.HCR_RW)
        self.uc.reg_write(A.UC_ARM64_REG_VBAR_EL1, VBAR)
        self.intnos: List[int] = []
        self.on_python: Optional[Callable[[int], None]] = None
        self.error: Optional[BaseException] = None
        self.state = ArmvCore()
        self.state.stop = lib.emu_stop_address
        self.state.reg_read = lib.reg_read_address
        self.state.reg_write = lib.reg_write_address
        self.state.vector_loop_limit = STEP_LIMIT
        self._callback = INTR_CALLBACK(self._python)
        self.state.intr = self._callback
        delivery.configure(self.state, native_els=1 << EL1, pan_hidden=False, python_ecs=0)
        lib.add_c_hook(self.uc._uch, UC_HOOK_INTR, lib.intr_hook_address,
                       ctypes.byref(self.state))
        self.cpu = ctypes.c_uint64.from_address(self.uc._uch.value + delivery.uc_cpu_offset).value

    def _python(self, intno: int) -> None:
        """What reached Python: with delivery on, only the vectors' HVCs should."""
        try:
            self.intnos.append(intno)
            if self.on_python is not None:
                self.on_python(intno)
        except Exception as exc:                  # noqa: BLE001 - reported by the check
            self.error = exc
        self.lib.uc_emu_stop(self.uc._uch)

    def write_sysreg(self, reg: sr.SysReg, value: int) -> None:
        self.uc.reg_write(A.UC_ARM64_REG_CP_REG, (reg.crn, reg.crm, reg.op0, reg.op1, reg.op2, value))

    def read_sysreg(self, reg: sr.SysReg) -> int:
        return self.uc.reg_read(A.UC_ARM64_REG_CP_REG, (reg.crn, reg.crm, reg.op0, reg.op1, reg.op2))

    def enter(self, pstate: int, sctlr: int) -> None:
        """PSTATE, then a CP_REG write so QEMU rebuilds its cached EL flags (UNICORN-FACTS.md)."""
        self.uc.reg_write(A.UC_ARM64_REG_PSTATE, pstate)
        self.write_sysreg(sr.SCTLR_EL1, sctlr)

    def run(self, pc: int) -> None:
        self.intnos.clear()
        self.uc.emu_start(pc, NO_UNTIL, count=STEP_LIMIT)
        if self.error is not None:
            raise SelfTestFailed(str(self.error))

    def close(self) -> None:
        self.uc = None


@dataclass(frozen=True)
class Expected:
    name: str
    esr: int
    elr: int
    spsr: int
    vector: int
    pstate: int
    far: Optional[int] = None
    sp: Optional[int] = None
    sp_el0: Optional[int] = None


def _check_pending(scratch: _Scratch, delivery: NativeDelivery) -> None:
    """With delivery off, an SVC from EL0 comes to Python: read QEMU's pending exception
    through the offsets and compare it with the SVC's syndrome and target EL."""
    size = delivery.exception_offset + PENDING_EXCEPTION.size
    if not scratch.cpu or not _readable(scratch.cpu, size):
        raise SelfTestFailed(f"uc_struct+{delivery.uc_cpu_offset:#x} does not point at a CPU "
                             f"({scratch.cpu:#x})")
    seen = []

    def read_pending(intno: int) -> None:
        raw = ctypes.string_at(scratch.cpu + delivery.exception_offset, PENDING_EXCEPTION.size)
        seen.append((intno, *PENDING_EXCEPTION.unpack(raw)))

    scratch.on_python = read_pending
    scratch.enter(0, sr.SCTLR_EL1_RESET)                 # EL0t
    scratch.run(AT_SVC)
    scratch.on_python = None
    want = (EXCP_SWI, syn.esr_svc(SVC_IMM), EL1)
    if not seen or (seen[0][0], seen[0][1], seen[0][4]) != want:
        got = "nothing" if not seen else \
            f"EXCP {seen[0][0]}, syndrome {seen[0][1]:#x}, target EL {seen[0][4]}"
        raise SelfTestFailed(f"the pending exception at CPU+{delivery.exception_offset:#x} reads "
                             f"{got} for SVC #{SVC_IMM:#x} from EL0 (expected EXCP {want[0]}, "
                             f"syndrome {want[1]:#x}, target EL {want[2]})")


def _expectations() -> List[Tuple[Callable[[_Scratch], int], Expected]]:
    """Each test: how to set the core up (returns the PC to start at), and what entry must give."""
    el1h = sr.PSTATE_EL1H_MASKED
    mmu_off, mmu_on = sr.SCTLR_EL1_RESET, sr.SCTLR_EL1_RESET | sr.SCTLR_M

    def on_entry(old: int, sctlr: int) -> int:
        return entry_pstate(old, sctlr, pan_implemented=True)

    def from_el0(s: _Scratch) -> int:
        s.enter(0, mmu_off)
        # At EL0 the live SP is SP_EL0; SP_EL1 waits in its bank for the entry.
        s.uc.reg_write(A.UC_ARM64_REG_SP, SP_EL0_VALUE)
        s.uc.reg_write(A.UC_ARM64_REG_SP_EL1, SP_EL1_VALUE)
        return AT_SVC

    def at_el1(pc: int, sctlr: int) -> Callable[[_Scratch], int]:
        def setup(s: _Scratch) -> int:
            s.enter(el1h, sctlr)
            s.uc.reg_write(A.UC_ARM64_REG_SP, SP_EL1_VALUE)
            s.uc.reg_write(A.UC_ARM64_REG_X1, UNMAPPED_VA)
            return pc
        return setup

    def mmu(s: _Scratch) -> int:
        s.write_sysreg(MAIR_EL1, MAIR_NORMAL_WB)
        s.write_sysreg(TCR_EL1, TCR_VALUE)
        s.uc.reg_write(A.UC_ARM64_REG_TTBR0_EL1, L1_TABLE)
        return at_el1(AT_LDR, mmu_on)(s)

    same_el = VBAR + vector_offset(el1h)
    return [
        (from_el0, Expected("SVC from EL0", syn.esr_svc(SVC_IMM), AT_SVC + 4, 0,
                            VBAR + vector_offset(0), on_entry(0, mmu_off),
                            sp=SP_EL1_VALUE, sp_el0=SP_EL0_VALUE)),
        (at_el1(AT_UDF, mmu_off), Expected("UDF at EL1", syn.esr_unknown(), AT_UDF, el1h,
                                           same_el, on_entry(el1h, mmu_off), sp=SP_EL1_VALUE)),
        (at_el1(AT_BRK, mmu_off), Expected("BRK at EL1", syn.esr_brk(BRK_IMM), AT_BRK, el1h,
                                           same_el, on_entry(el1h, mmu_off))),
        (mmu, Expected("load from an unmapped VA, MMU on",
                       syn.esr_data_abort(same_el=True, dfsc=syn.fsc_translation(WALK_START_LEVEL),
                                          wnr=False),
                       AT_LDR, el1h, same_el, on_entry(el1h, mmu_on), far=UNMAPPED_VA)),
    ]


def _check_delivery(scratch: _Scratch) -> None:
    """With delivery on, each exception runs its vector's HVC: only that reaches Python."""
    for setup, want in _expectations():
        scratch.run(setup(scratch))
        if scratch.intnos != [EXCP_HVC]:
            raise SelfTestFailed(f"{want.name}: Python saw EXCP {scratch.intnos}, expected only "
                                 f"the vector's HVC ({EXCP_HVC})")
        uc = scratch.uc
        got = {"ESR_EL1": uc.reg_read(A.UC_ARM64_REG_ESR_EL1),
               "ELR_EL1": uc.reg_read(A.UC_ARM64_REG_ELR_EL1),
               "SPSR_EL1": scratch.read_sysreg(sr.SPSR_EL1),
               "vector": uc.reg_read(A.UC_ARM64_REG_PC) - 4,     # PC is after the HVC
               "PSTATE": uc.reg_read(A.UC_ARM64_REG_PSTATE)}
        expected = {"ESR_EL1": want.esr, "ELR_EL1": want.elr, "SPSR_EL1": want.spsr,
                    "vector": want.vector, "PSTATE": want.pstate}
        if want.far is not None:
            got["FAR_EL1"], expected["FAR_EL1"] = uc.reg_read(A.UC_ARM64_REG_FAR_EL1), want.far
        if want.sp is not None:
            got["SP"], expected["SP"] = uc.reg_read(A.UC_ARM64_REG_SP), want.sp
        if want.sp_el0 is not None:
            got["SP_EL0"], expected["SP_EL0"] = uc.reg_read(A.UC_ARM64_REG_SP_EL0), want.sp_el0
        for name, value in expected.items():
            if got[name] != value:
                raise SelfTestFailed(f"{want.name}: {name} {got[name]:#x}, expected {value:#x}")


def self_test(lib: Optional[Native] = None, uc_cpu_offset: Optional[int] = None,
              exception_offset: Optional[int] = None) -> NativeDelivery:
    """Check the symbol and the offsets on a scratch instance; the delivery to use."""
    lib = lib or native()
    uc_cpu_offset = UC_STRUCT_CPU_OFFSET if uc_cpu_offset is None else uc_cpu_offset
    exception_offset = ARMCPU_EXCEPTION_OFFSET if exception_offset is None else exception_offset

    def off(reason: str) -> NativeDelivery:
        return NativeDelivery(False, reason, None, uc_cpu_offset, exception_offset)

    if os.environ.get(ENV_SWITCH, "").strip().lower() in OFF_VALUES:
        return off(f"{ENV_SWITCH}={os.environ[ENV_SWITCH]}")
    major, minor = ctypes.c_uint(), ctypes.c_uint()
    patch = (lib.uc_version(ctypes.byref(major), ctypes.byref(minor)) >> 8) & 0xFF
    version = (major.value, minor.value, patch)
    if version != UNICORN_VERSION:
        return off(f"Unicorn {'.'.join(map(str, version))}: the offsets are Unicorn "
                   f"{'.'.join(map(str, UNICORN_VERSION))}'s")
    if lib.do_interrupt_address is None:
        return off(f"{lib.library_path} does not export {DO_INTERRUPT_SYMBOL}")
    # First the offsets, with nothing called through them; then the entry itself.
    probe = NativeDelivery(False, "", None, uc_cpu_offset, exception_offset)
    candidate = NativeDelivery(True, "", lib.do_interrupt_address, uc_cpu_offset, exception_offset)
    scratch = None
    try:
        scratch = _Scratch(lib, probe)
        _check_pending(scratch, probe)
        candidate.configure(scratch.state, native_els=1 << EL1, pan_hidden=False, python_ecs=0)
        _check_delivery(scratch)
    except SelfTestFailed as exc:
        return off(str(exc))
    except Exception as exc:                      # noqa: BLE001 - any surprise turns it off
        return off(f"self-test error: {type(exc).__name__}: {exc}")
    finally:
        if scratch is not None:
            scratch.close()
    return candidate


@lru_cache(maxsize=1)
def native_delivery() -> NativeDelivery:
    """This process's answer, from one self-test; says on stderr when it is off."""
    delivery = self_test()
    if not delivery.enabled:
        print(f"armvisor: native exception delivery is off ({delivery.reason}); the guest's "
              f"exceptions go through Python, more slowly", file=sys.stderr)
    return delivery
