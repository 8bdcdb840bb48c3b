"""The VMs of `armvisor run --hyp`: the `--vm` option, the `--config` TOML file,
and the checks across VMs.

`--vm` follows QEMU's option syntax: comma-separated key=value items, and a
literal comma inside a value is written twice (",,"). As a convenience the
pCPU list may also be written with single commas ("pcpus=0,2"): an item
without "=" that looks like a pCPU number or range continues the pcpus
list before it.

In the TOML file, relative paths (kernel, initrd, drives) are taken relative
to the file's directory, and an integer memory means MiB, like a size
without a suffix on the command line.

Every error is an ArmvisorError of one line (the CLI prints it, exits 2).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Optional

from armvisor.cpu.models import CPU_MODELS
from armvisor.errors import ArmvisorError
from armvisor.machine.config import MAX_MEMORY, MIN_MEMORY, MiB, check_whole_number, parse_size
from armvisor.machine.dtb import check_bootargs
from armvisor.machine.memmap import MAX_CPUS
from armvisor.machine.memory import read_input_file
from armvisor.machine.memmap import VIRTIO_MMIO_SLOTS as VIRTIO_SLOTS

DEFAULT_MEMORY = 512 * MiB
# RAM is mapped into the vCPUs' cores in 64 KiB granules, as in bare mode.
MEMORY_GRANULE = 64 << 10
PLACEMENTS = ("pinned", "shared")
# A VM description is a few hundred bytes; a bigger --config file is not one.
MAX_CONFIG_FILE = 1 << 20

_OPTION_KEYS = ("kernel", "smp", "memory", "initrd", "append", "drive", "placement", "pcpus",
                "name", "cpu")
_FILE_VM_KEYS = ("name", "kernel", "smp", "memory", "initrd", "append", "drives", "placement",
                 "pcpus", "cpu")
_FILE_TOP_KEYS = ("pcpus", "vm")
# A name ends up in console prefixes and trace events: keep it to one plain word.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_CPU_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


@dataclass(frozen=True)
class VmConfig:
    name: str
    kernel: str
    smp: int = 1
    memory: int = DEFAULT_MEMORY        # bytes
    initrd: Optional[str] = None
    append: str = ""
    drives: tuple[str, ...] = ()
    placement: str = "pinned"
    pcpus: Optional[tuple[int, ...]] = None
    cpu: str = "cortex-a57"
    # What the VM's DTB names for PSCI; a guest's SMC and HVC are both served
    # (SMC is trapped by HCR_EL2.TSC), as under KVM.
    psci_conduit: str = "hvc"
    dtb: Optional[str] = None            # the guest's DTB instead of the generated one
    virtio_console: bool = False         # a virtio-console (hvc0) after the disks
    # Paths whose disks the guest may not write (QEMU's readonly=on).
    readonly_drives: tuple[str, ...] = ()


# -- one VM --------------------------------------------------------------------------------


def check_vm(vm: VmConfig) -> None:
    """The checks that need nothing but the VM itself; raises ArmvisorError."""
    if not _NAME.match(vm.name):
        raise ArmvisorError(f"bad name {vm.name!r}: up to 32 letters, digits, '_', '.' or '-'")
    if not vm.kernel:
        raise ArmvisorError("kernel=FILE is required")
    check_whole_number("smp", vm.smp)
    check_whole_number("memory", vm.memory)
    if not 1 <= vm.smp <= MAX_CPUS:
        raise ArmvisorError(f"smp must be between 1 and {MAX_CPUS}, not {vm.smp}")
    if not MIN_MEMORY <= vm.memory <= MAX_MEMORY:
        raise ArmvisorError(f"memory must be between {MIN_MEMORY // MiB}M and "
                            f"{MAX_MEMORY >> 30}G, not {vm.memory} bytes")
    if vm.memory % MEMORY_GRANULE:
        raise ArmvisorError("memory must be a multiple of 64K")
    if vm.placement not in PLACEMENTS:
        raise ArmvisorError(f"placement must be pinned or shared, not {vm.placement!r}")
    if vm.cpu not in CPU_MODELS:
        raise ArmvisorError(f"cpu must be one of {', '.join(CPU_MODELS)}, not {vm.cpu!r}")
    if vm.psci_conduit not in ("smc", "hvc"):
        raise ArmvisorError(f"psci-conduit must be smc or hvc, not {vm.psci_conduit!r}")
    if len(vm.drives) + vm.virtio_console > VIRTIO_SLOTS:
        raise ArmvisorError(f"at most {VIRTIO_SLOTS} drives per VM")
    if any(not drive for drive in vm.drives):
        raise ArmvisorError("drive needs a FILE")
    check_bootargs(vm.append, "append")
    if vm.pcpus is not None:
        if not vm.pcpus:
            raise ArmvisorError("pcpus is empty")
        if len(set(vm.pcpus)) != len(vm.pcpus):
            raise ArmvisorError(f"pcpus names a pCPU twice: {_cpus_text(vm.pcpus)}")
        if any(p < 0 for p in vm.pcpus):
            raise ArmvisorError(f"pcpus must not be negative: {_cpus_text(vm.pcpus)}")
        if any(p >= MAX_CPUS for p in vm.pcpus):
            raise ArmvisorError(f"pcpus names a pCPU that cannot exist (at most {MAX_CPUS}, "
                                f"0-{MAX_CPUS - 1}): {_cpus_text(vm.pcpus)}")


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """'0-3', '0,2', '1,4-5' -> the pCPU numbers in the order given."""
    cpus: list[int] = []
    for item in text.split(","):
        match = _CPU_RANGE.match(item)
        if not match:
            raise ArmvisorError(f"bad pCPU list {text!r}: expected numbers and ranges "
                                "such as 0-3 or 0,2")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ArmvisorError(f"bad pCPU range {item.strip()!r}: the end is below the start")
        if last >= MAX_CPUS:
            # Checked before expanding the range: "0-999999999999" would
            # otherwise build a list of a trillion numbers.
            raise ArmvisorError(f"bad pCPU list {text!r}: pCPU {last} does not exist "
                                f"(at most {MAX_CPUS} pCPUs, 0-{MAX_CPUS - 1})")
        cpus.extend(range(first, last + 1))
    return tuple(cpus)


def _cpus_text(cpus: tuple[int, ...]) -> str:
    return ",".join(str(c) for c in cpus)


# -- the --vm option -----------------------------------------------------------------------


def _split_option(text: str) -> list[str]:
    """QEMU's rule (util/qemu-option.c get_opt_value): ',' ends an item, ',,' is a
    literal comma, read left to right."""
    items: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == ",":
            if text[i + 1:i + 2] == ",":
                current.append(",")
                i += 2
                continue
            items.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    items.append("".join(current))
    return items


def parse_vm_option(text: str, index: int) -> VmConfig:
    """One `--vm` option; `index` (from 0) names the VM "vm<index>" unless name= is given."""
    where = f"--vm #{index + 1}"
    try:
        return _parse_vm_option(text, index)
    except ArmvisorError as exc:
        raise ArmvisorError(f"{where}: {exc}") from None


def _parse_vm_option(text: str, index: int) -> VmConfig:
    values: dict[str, str] = {}
    drives: list[str] = []
    last_key = None
    for item in _split_option(text):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            if last_key == "pcpus" and _CPU_RANGE.match(item):
                values["pcpus"] += "," + item
                continue
            if not item.strip():
                raise ArmvisorError("empty item (a stray comma? ',,' is a literal comma "
                                    "inside a value)")
            raise ArmvisorError(f"expected key=value, not {item!r} (write a comma inside a "
                                "value as ',,')")
        if key not in _OPTION_KEYS:
            raise ArmvisorError(f"unknown key {key!r} (known: {', '.join(_OPTION_KEYS)})")
        last_key = key
        if key == "drive":
            drives.append(value)
            continue
        if key in values:
            raise ArmvisorError(f"{key} given twice")
        values[key] = value
    if "kernel" not in values:
        raise ArmvisorError("kernel=FILE is required")
    vm = VmConfig(
        name=values.get("name", f"vm{index}"),
        kernel=values["kernel"],
        smp=_parse_int("smp", values["smp"]) if "smp" in values else 1,
        memory=parse_size(values["memory"]) if "memory" in values else DEFAULT_MEMORY,
        initrd=values.get("initrd") or None,
        append=values.get("append", ""),
        drives=tuple(drives),
        placement=values.get("placement", "pinned"),
        pcpus=parse_cpu_list(values["pcpus"]) if "pcpus" in values else None,
        cpu=values.get("cpu", "cortex-a57"),
    )
    check_vm(vm)
    return vm


def _parse_int(key: str, text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise ArmvisorError(f"{key} must be a number, not {text!r}") from None


# -- the TOML file -------------------------------------------------------------------------


def load_vm_file(path: str) -> tuple[Optional[int], list[VmConfig]]:
    """A `--config` file: optional top-level `pcpus = N`, then [[vm]] tables.
    Returns (pcpus or None, the VMs in file order)."""
    try:
        import tomllib
    except ModuleNotFoundError:     # Python 3.10: the same parser, from PyPI
        import tomli as tomllib
    text = _config_text(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ArmvisorError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:         # tomllib recurses once per nested array or inline table
        raise ArmvisorError(f"{path}: not valid TOML: arrays or tables nested too deeply") \
            from None
    for key in document:
        if key not in _FILE_TOP_KEYS:
            raise ArmvisorError(f"{path}: unknown top-level key {key!r} "
                                f"(known: pcpus, and [[vm]] tables)")
    pcpus = document.get("pcpus")
    if pcpus is not None and (not _is_int(pcpus) or not 1 <= pcpus <= MAX_CPUS):
        raise ArmvisorError(f"{path}: pcpus must be a number between 1 and {MAX_CPUS}, "
                            f"not {pcpus!r}")
    tables = document.get("vm")
    if not isinstance(tables, list) or not tables:
        raise ArmvisorError(f"{path}: no VM: describe each one in a [[vm]] table")
    base = os.path.dirname(os.path.abspath(path))
    vms = []
    for index, table in enumerate(tables):
        try:
            vms.append(_vm_from_table(table, index, base))
        except ArmvisorError as exc:
            raise ArmvisorError(f"{path}: [[vm]] #{index + 1}: {exc}") from None
    return pcpus, vms


def _config_text(path: str) -> str:
    """The file's text: a regular file (not a FIFO that would block), in UTF-8 as TOML requires."""
    data = read_input_file(path, "config", MAX_CONFIG_FILE, "a VM description can need")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ArmvisorError(f"{path}: not UTF-8 text: byte {data[exc.start]:#04x} at line "
                            f"{line}, column {column}; a TOML file must be UTF-8") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _vm_from_table(table: Any, index: int, base: str) -> VmConfig:
    if not isinstance(table, dict):
        raise ArmvisorError("expected a table")
    for key in table:
        if key not in _FILE_VM_KEYS:
            raise ArmvisorError(f"unknown key {key!r} (known: {', '.join(_FILE_VM_KEYS)})")

    def text(key: str, default: Optional[str]) -> Optional[str]:
        value = table.get(key, default)
        if value is not None and not isinstance(value, str):
            raise ArmvisorError(f"{key} must be a string, not {value!r}")
        return value

    def path(value: Optional[str]) -> Optional[str]:
        return os.path.join(base, value) if value else value

    kernel = text("kernel", None)
    if not kernel:
        raise ArmvisorError("kernel = \"FILE\" is required")
    smp = table.get("smp", 1)
    if not _is_int(smp):
        raise ArmvisorError(f"smp must be a number, not {smp!r}")
    memory = table.get("memory", DEFAULT_MEMORY)
    if isinstance(memory, str):
        memory = parse_size(memory)
    elif _is_int(memory):
        memory = memory * MiB if "memory" in table else memory
    else:
        raise ArmvisorError(f"memory must be a size such as \"512M\", not {memory!r}")
    drives = table.get("drives", [])
    if not isinstance(drives, list) or not all(isinstance(d, str) for d in drives):
        raise ArmvisorError(f"drives must be a list of file names, not {drives!r}")
    pcpus = table.get("pcpus")
    if isinstance(pcpus, str):
        pcpus = parse_cpu_list(pcpus)
    elif isinstance(pcpus, list) and all(_is_int(p) for p in pcpus):
        pcpus = tuple(pcpus)
    elif pcpus is not None:
        raise ArmvisorError(f"pcpus must be a list of numbers or a string such as \"0-3\", "
                            f"not {pcpus!r}")
    vm = VmConfig(
        name=text("name", f"vm{index}") or "",
        kernel=path(kernel) or "",
        smp=smp,
        memory=memory,
        initrd=path(text("initrd", None)),
        append=text("append", "") or "",
        drives=tuple(path(d) or "" for d in drives),
        placement=text("placement", "pinned") or "",
        pcpus=pcpus,
        cpu=text("cpu", "cortex-a57") or "",
    )
    check_vm(vm)
    return vm


# -- across VMs ----------------------------------------------------------------------------


def validate(vms: list[VmConfig], pcpu_count: int) -> None:
    """Everything that must hold before the hypervisor builds the VMs: each VM on
    its own (check_vm), unique names, pCPUs that exist, and pinned vCPUs that
    fit, one pinned vCPU per pCPU (the rules of placement.Placement)."""
    if not vms:
        raise ArmvisorError("no VM to run: give --vm or --config")
    if not 1 <= pcpu_count <= MAX_CPUS:
        raise ArmvisorError(f"--pcpus must be between 1 and {MAX_CPUS}, not {pcpu_count}")
    seen: set[str] = set()
    for vm in vms:
        try:
            check_vm(vm)
        except ArmvisorError as exc:
            raise ArmvisorError(f"VM {vm.name}: {exc}") from None
        if vm.name in seen:
            raise ArmvisorError(f"two VMs are named {vm.name!r}: give each a different name=")
        seen.add(vm.name)
    for vm in vms:
        if vm.pcpus is not None:
            outside = [p for p in vm.pcpus if p >= pcpu_count]
            if outside:
                raise ArmvisorError(f"VM {vm.name}: pCPU {outside[0]} does not exist "
                                    f"(the machine has pCPUs 0-{pcpu_count - 1})")
    # The placement rules themselves, tried on a placement nobody uses.
    from armvisor.hypervisor.placement import Placement, Policy
    trial = Placement(pcpu_count)
    for index, vm in enumerate(vms):
        try:
            trial.add_vm(index, vm.smp, Policy(vm.placement), vm.pcpus, name=vm.name)
        except ArmvisorError as exc:
            raise ArmvisorError(f"{exc} (give pcpus= or placement=shared)") from None
