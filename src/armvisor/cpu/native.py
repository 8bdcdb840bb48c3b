"""Raw ctypes access to libunicorn and to the package's compiled hooks.

The Python binding costs 1.7-3 us per register access; a direct ctypes call
costs about 1 us, and a batch reads many registers for the price of one
(UNICORN-FACTS.md, "Costs of going through Python"). Everything on a hot
exit path goes through the functions here.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
from functools import lru_cache
from typing import Sequence

from unicorn.unicorn_py3 import unicorn as _ucbinding

UC_ARM64_INS_MRS = 1          # uc_arm64_insn (unicorn/arm64.h)
UC_ARM64_INS_MSR = 2
UC_ARM64_INS_SYS = 3
UC_HOOK_CODE = 1 << 2
UC_HOOK_BLOCK = 1 << 3
UC_HOOK_INSN = 1 << 1
UC_CTL_IO_WRITE = 1
UC_CTL_TB_REMOVE_CACHE = 9
UC_CTL_TB_FLUSH = 10
UC_CTL_TLB_FLUSH = 11
IC_RANGES = 256               # ARMV_IC_RANGES in _hooks.c
EXCEPTION_RING = 256          # ARMV_EXCEPTION_RING in _hooks.c

# armv_sysreg_fn and its results (_hooks.c).
SYSREG_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32,
                                   ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64))
SYSREG_NOT_HANDLED = 0
SYSREG_DONE = 1
SYSREG_DONE_ADVANCE = 2
# armv_intr_fn: Python's handler for the exceptions armvisor models (QEMU's EXCP_* number).
INTR_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_uint32)


def _uc_ctl_code(nr: int, nargs: int, rw: int) -> int:
    """UC_CTL(type, nr, rw) from unicorn.h."""
    return nr | (nargs << 26) | (rw << 30)


class ArmvException(ctypes.Structure):
    """Mirror of `struct armv_exception` in _hooks.c: one natively delivered exception."""

    _fields_ = [
        ("esr", ctypes.c_uint64),
        ("elr", ctypes.c_uint64),
        ("far", ctypes.c_uint64),
        ("vector", ctypes.c_uint64),
        ("target_el", ctypes.c_uint32),
        ("has_far", ctypes.c_uint32),
        ("args", ctypes.c_uint64 * 4),
    ]


class ArmvCore(ctypes.Structure):
    """Mirror of `struct armv_core` in _hooks.c."""

    _fields_ = [
        ("budget", ctypes.c_int64),
        ("executed", ctypes.c_uint64),
        ("stop", ctypes.c_void_p),
        ("budget_expired", ctypes.c_uint32),
        ("tlbi_broadcast", ctypes.c_uint32),
        ("tlbi_count", ctypes.c_uint64),
        ("ic_count", ctypes.c_uint64),
        ("ic_all", ctypes.c_uint32),
        ("ic_used", ctypes.c_uint32),
        ("ic_start", ctypes.c_uint64 * IC_RANGES),
        ("ic_end", ctypes.c_uint64 * IC_RANGES),
        ("sysreg", SYSREG_CALLBACK),
        ("reg_read", ctypes.c_void_p),
        ("reg_write", ctypes.c_void_p),
        ("sysreg_count", ctypes.c_uint64),
        ("vclock", ctypes.c_uint32),
        ("vclock_base", ctypes.c_uint64),
        ("vclock_origin", ctypes.c_uint64),
        ("block_start", ctypes.c_uint64),
        ("block_insns", ctypes.c_uint64),
        ("access_retired", ctypes.c_uint64),
        ("retired", ctypes.c_uint64),
        ("stop_at", ctypes.c_uint64),
        ("stop_at_armed", ctypes.c_uint32),
        ("stopped_at", ctypes.c_uint32),
        ("stopped_pc", ctypes.c_uint64),
        ("intr", INTR_CALLBACK),
        ("deliver", ctypes.c_void_p),
        ("uc_cpu_offset", ctypes.c_uint64),
        ("exception_offset", ctypes.c_uint64),
        ("native_els", ctypes.c_uint32),
        ("pan_hidden", ctypes.c_uint32),
        ("python_ecs", ctypes.c_uint64),
        ("native_ec_count", ctypes.c_uint64 * 64),
        ("last_vector", ctypes.c_uint64),
        ("last_vector_valid", ctypes.c_uint32),
        ("vector_faults", ctypes.c_uint32),
        ("vector_loop_limit", ctypes.c_uint32),
        ("exception_loop", ctypes.c_uint32),
        ("first_fault_valid", ctypes.c_uint32),
        ("first_fault_has_far", ctypes.c_uint32),
        ("first_esr", ctypes.c_uint64),
        ("first_elr", ctypes.c_uint64),
        ("first_far", ctypes.c_uint64),
        ("exceptions_total", ctypes.c_uint64),
        ("exceptions_seen", ctypes.c_uint64),
        ("exceptions_keep_all", ctypes.c_uint32),
        ("exceptions_full", ctypes.c_uint32),
        ("exceptions", ArmvException * EXCEPTION_RING),
        ("yield_from", ctypes.c_uint64),
        ("yielded", ctypes.c_uint32),
        ("yield_pad", ctypes.c_uint32),
        ("yield_count", ctypes.c_uint64),
        ("virt_regs", ctypes.c_uint32),
    ]


class CpReg(ctypes.Structure):
    """uc_arm64_cp_reg."""

    _fields_ = [
        ("crn", ctypes.c_uint32),
        ("crm", ctypes.c_uint32),
        ("op0", ctypes.c_uint32),
        ("op1", ctypes.c_uint32),
        ("op2", ctypes.c_uint32),
        ("val", ctypes.c_uint64),
    ]


class Native:
    """The libunicorn entry points armvisor calls directly, with prototypes."""

    def __init__(self) -> None:
        # Same path as the binding's library: dlopen returns the same handle,
        # but this CDLL object carries our own prototypes.
        lib = ctypes.CDLL(_ucbinding.uclib._name)
        u64, p = ctypes.c_uint64, ctypes.c_void_p
        sigs = {
            "uc_emu_start": ([p, u64, u64, u64, ctypes.c_size_t], ctypes.c_int),
            "uc_emu_stop": ([p], ctypes.c_int),
            "uc_reg_read": ([p, ctypes.c_int, p], ctypes.c_int),
            "uc_reg_write": ([p, ctypes.c_int, p], ctypes.c_int),
            "uc_reg_read_batch": ([p, p, p, ctypes.c_int], ctypes.c_int),
            "uc_reg_write_batch": ([p, p, p, ctypes.c_int], ctypes.c_int),
            "uc_vmem_read": ([p, u64, ctypes.c_int, p, ctypes.c_size_t], ctypes.c_int),
            "uc_vmem_translate": ([p, u64, ctypes.c_int, ctypes.POINTER(u64)], ctypes.c_int),
            "uc_mem_read": ([p, u64, p, ctypes.c_size_t], ctypes.c_int),
            "uc_mem_write": ([p, u64, p, ctypes.c_size_t], ctypes.c_int),
            "uc_context_alloc": ([p, ctypes.POINTER(p)], ctypes.c_int),
            "uc_context_save": ([p, p], ctypes.c_int),
            "uc_context_restore": ([p, p], ctypes.c_int),
            "uc_context_free": ([p], ctypes.c_int),
        }
        for name, (args, res) in sigs.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res
            setattr(self, name, fn)
        # Variadic: no argtypes; every argument is passed with an explicit ctypes type.
        self.uc_hook_add = lib.uc_hook_add
        self.uc_hook_add.restype = ctypes.c_int
        self.uc_ctl = lib.uc_ctl
        self.uc_ctl.restype = ctypes.c_int
        self.emu_stop_address = ctypes.cast(lib.uc_emu_stop, ctypes.c_void_p).value
        self.reg_read_address = ctypes.cast(lib.uc_reg_read, ctypes.c_void_p).value
        self.reg_write_address = ctypes.cast(lib.uc_reg_write, ctypes.c_void_p).value

        # armvisor's patches to Unicorn (patches/unicorn): None on a stock build.
        self.patches = _patch_level(lib)
        self.uc_armvisor_set_exit_checks = None
        self.uc_armvisor_set_yield_reports = None
        if self.patches is not None:
            self.uc_armvisor_set_exit_checks = lib.uc_armvisor_set_exit_checks
            self.uc_armvisor_set_exit_checks.argtypes = [p, ctypes.c_bool]
            self.uc_armvisor_set_exit_checks.restype = None
            if "yield-reports" in self.patches:
                self.uc_armvisor_set_yield_reports = lib.uc_armvisor_set_yield_reports
                self.uc_armvisor_set_yield_reports.argtypes = [p, ctypes.c_bool]
                self.uc_armvisor_set_yield_reports.restype = None

        hooks = ctypes.CDLL(_hooks_library_path())
        self.block_hook_address = ctypes.cast(hooks.armv_block_hook, ctypes.c_void_p).value
        self.sys_hook_address = ctypes.cast(hooks.armv_sys_hook, ctypes.c_void_p).value
        self.mrs_hook_address = ctypes.cast(hooks.armv_mrs_hook, ctypes.c_void_p).value
        self.msr_hook_address = ctypes.cast(hooks.armv_msr_hook, ctypes.c_void_p).value
        self.count_hook_address = ctypes.cast(hooks.armv_count_hook, ctypes.c_void_p).value
        self.intr_hook_address = ctypes.cast(hooks.armv_intr_hook, ctypes.c_void_p).value
        # QEMU's exception entry (native_exceptions.py): outside Unicorn's API, so
        # looked up without failing; None when this library does not export it.
        self.do_interrupt_address = _symbol_address(lib, DO_INTERRUPT_SYMBOL)
        self.uc_version = lib.uc_version
        self.uc_version.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint)]
        self.uc_version.restype = ctypes.c_uint
        self.library_path = _ucbinding.uclib._name

    # -- uc_ctl helpers that the 2.1.4 binding lacks or wraps slowly --------

    def flush_tlb(self, handle) -> None:
        self.uc_ctl(handle, ctypes.c_int(_uc_ctl_code(UC_CTL_TLB_FLUSH, 0, UC_CTL_IO_WRITE)))

    def flush_tb(self, handle) -> None:
        self.uc_ctl(handle, ctypes.c_int(_uc_ctl_code(UC_CTL_TB_FLUSH, 0, UC_CTL_IO_WRITE)))

    def remove_cache(self, handle, start: int, end: int) -> None:
        self.uc_ctl(handle, ctypes.c_int(_uc_ctl_code(UC_CTL_TB_REMOVE_CACHE, 2, UC_CTL_IO_WRITE)),
                    ctypes.c_uint64(start), ctypes.c_uint64(end))

    def add_c_hook(self, handle, hook_type: int, callback: int, user_data, begin: int = 1,
                   end: int = 0, *extra: int) -> ctypes.c_size_t:
        hook = ctypes.c_size_t()
        status = self.uc_hook_add(handle, ctypes.byref(hook), ctypes.c_int(hook_type),
                                  ctypes.c_void_p(callback), user_data,
                                  ctypes.c_uint64(begin), ctypes.c_uint64(end),
                                  *[ctypes.c_int(x) for x in extra])
        if status != 0:
            raise RuntimeError(f"uc_hook_add failed: {status}")
        return hook


class RegBatch:
    """A preallocated batch of register ids, read or written with one call."""

    def __init__(self, native: Native, handle, reg_ids: Sequence[int]):
        n = len(reg_ids)
        self._native, self._handle, self._n = native, handle, n
        self.ids = (ctypes.c_int * n)(*reg_ids)
        self.values = (ctypes.c_uint64 * n)()
        self._ptrs = (ctypes.c_void_p * n)(
            *[ctypes.addressof(self.values) + 8 * i for i in range(n)])

    def read(self) -> "ctypes.Array[ctypes.c_uint64]":
        status = self._native.uc_reg_read_batch(self._handle, self.ids, self._ptrs, self._n)
        if status:
            raise RuntimeError(f"uc_reg_read_batch failed: {status}")
        return self.values

    def write(self, values: Sequence[int]) -> None:
        for i, v in enumerate(values):
            self.values[i] = v & 0xFFFF_FFFF_FFFF_FFFF
        status = self._native.uc_reg_write_batch(self._handle, self.ids, self._ptrs, self._n)
        if status:
            raise RuntimeError(f"uc_reg_write_batch failed: {status}")


class _UcContextHeader(ctypes.Structure):
    """struct uc_context (uc_priv.h) before its `data[]`."""

    _fields_ = [("context_size", ctypes.c_size_t), ("mode", ctypes.c_int),
                ("arch", ctypes.c_int), ("snapshot_level", ctypes.c_int),
                ("ramblock_freed", ctypes.c_bool), ("last_block", ctypes.c_void_p),
                ("fv", ctypes.c_void_p)]


class CpuContext:
    """The architectural state of one core as bytes: Unicorn's CPU context.

    uc_context_save copies QEMU's CPUARMState up to its breakpoint table
    (uc_priv.h `struct uc_context`, then `data`): every general, FP/SIMD and
    system register of every EL, PSTATE, the exclusive monitor and the
    cached translation flags. The header before `data` holds pointers of
    this process and is never saved. The bytes belong to one Unicorn build
    (the snapshot header names it), and hold no pointer for an A-profile
    core without QEMU breakpoints (the table after them is not copied).
    """

    def __init__(self, native: Native, handle):
        self._native, self._handle = native, handle
        self._context = ctypes.c_void_p()
        if native.uc_context_alloc(handle, ctypes.byref(self._context)):
            raise RuntimeError("uc_context_alloc failed")
        self.size = _UcContextHeader.from_address(self._context.value).context_size
        self._data = self._context.value + ctypes.sizeof(_UcContextHeader)

    def save(self) -> bytes:
        if self._native.uc_context_save(self._handle, self._context):
            raise RuntimeError("uc_context_save failed")
        return ctypes.string_at(self._data, self.size)

    def restore(self, data: bytes) -> None:
        if len(data) != self.size:
            raise ValueError(f"CPU state of {len(data)} bytes, this Unicorn build keeps {self.size}")
        ctypes.memmove(self._data, data, self.size)
        if self._native.uc_context_restore(self._handle, self._context):
            raise RuntimeError("uc_context_restore failed")

    def close(self) -> None:
        if self._context:
            self._native.uc_context_free(self._context)
            self._context = ctypes.c_void_p()


# QEMU's arm_cpu_do_interrupt (qemu/target/arm/helper.c), renamed by Unicorn's
# per-target symbol suffix (qemu/aarch64.h).
DO_INTERRUPT_SYMBOL = "arm_cpu_do_interrupt_aarch64"


def _symbol_address(lib, name: str) -> "int | None":
    try:
        return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    except AttributeError:
        return None


def _patch_level(lib) -> "str | None":
    """What uc_armvisor_patches() says, or None when the library is stock Unicorn."""
    try:
        query = lib.uc_armvisor_patches
    except AttributeError:
        return None
    query.restype = ctypes.c_char_p
    return query().decode()


def _hooks_library_path() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(here, "_hooks" + suffix)
        if os.path.exists(path):
            return path
    raise ImportError(
        "armvisor's compiled hook library (_hooks) is missing: reinstall the package "
        "with `pip install -e .` so that it is built")


@lru_cache(maxsize=1)
def native() -> Native:
    """The process's one set of prototypes (immutable once built)."""
    return Native()
