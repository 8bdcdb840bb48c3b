"""`armvisor-qemu`: armvisor behind `qemu-system-aarch64`'s command line.

Tools written for QEMU call it with QEMU's arguments: kvm-unit-tests'
`run_tests.sh` (through arm/run) asks `-machine '?'`, `-device '?'` and
`-chardev '?'` what the emulator has, then runs each test as

    qemu -nodefaults -machine virt -accel tcg -cpu cortex-a57
         -device virtio-serial-device -device virtconsole,chardev=ctd
         -chardev testdev,id=ctd -display none -serial stdio
         -kernel arm/selftest.flat -smp 2 -m 256 -append 'setup smp=2 mem=256'

and reads the exit status chr-testdev gives ((code << 1) | 1). This module
answers those questions as QEMU 7.2 does for what armvisor has, turns the rest
into `armvisor run` options, and refuses anything else in one line naming it
(exit 2), so `QEMU=armvisor-qemu ./run_tests.sh` runs the suite unchanged.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional, Tuple

from armvisor.errors import ArmvisorError

# What `-machine ?`, `-device ?` and `-chardev ?` list (QEMU 7.2's wording, for
# the entries armvisor has; the callers grep for these names).
MACHINES = "Supported machines are:\nvirt                 QEMU 7.2 ARM Virtual Machine (armvisor)\n"
MACHINE_PROPERTIES = ("virt-7.2 options:\n  gic-version=<string>  - Set GIC version. Valid "
                      "values are 3 and max\n  highmem=<bool>\n  its=<bool>             - Set on/off to "
                      "enable/disable ITS instantiation\n  virtualization=<bool>  - Set "
                      "on/off to enable/disable emulating a guest CPU which implements the ARM "
                      "Virtualization Extensions\n  secure=<bool>          - Set on/off to enable/disable the ARM "
                      "Security Extensions (TrustZone)\n")
DEVICES = ('Misc devices:\nname "virtio-serial-device", bus virtio-bus\n'
           'name "virtconsole", bus virtio-serial-bus\n'
           'name "virtio-blk-device", bus virtio-bus\n')
CHARDEVS = "Available chardev backend types: \n  stdio\n  testdev\n"

QUERIES = ("?", "help")
# `-h` and `-version`: kvm-unit-tests checks the first line names QEMU, and reads
# the version from its fourth word.
VERSION = "QEMU emulator version 7.2.0 (armvisor: QEMU's virt board, QEMU's command line)\n"
# Options that take no value; every other option takes one.
FLAGS = {"-nodefaults", "-nographic", "-no-reboot", "-s", "-S", "-snapshot", "-h", "-help",
         "-version"}


def _properties(text: str) -> Tuple[str, Dict[str, str]]:
    name, *pairs = text.split(",")
    props = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        props[key] = value
    return name, props


def _memory(text: str) -> str:
    """QEMU's -m: a size, in MiB without a suffix ("256" is 256M), or size=..."""
    value = _properties(text)[1].get("size", text) if text.startswith("size=") else text
    return value + "M" if value.isdigit() else value


def _smp(text: str) -> str:
    name, props = _properties(text)
    count = name or props.get("cpus", "")
    if not count.isdigit():
        raise ArmvisorError(f"-smp {text}: give a number of CPUs")
    return count


class Translation:
    def __init__(self):
        # QEMU's virt without EL2 or EL3 names HVC as the PSCI conduit in its DTB
        # (and answers it): so does this machine.
        self.run: List[str] = ["--psci-conduit", "hvc"]
        self.kernel: Optional[str] = None
        self.smp: Optional[int] = None
        self.virtio_serial = False
        self.consoles: Dict[str, str] = {}      # virtconsole chardev id -> ""
        self.chardevs: Dict[str, str] = {}      # id -> backend
        self.query: Optional[str] = None

    def option(self, name: str, value: Optional[str]) -> None:
        handler = getattr(self, "_" + name.lstrip("-").replace("-", "_"), None)
        if handler is None:
            raise ArmvisorError(f"unsupported QEMU option {name}")
        handler(value)

    # -- the machine ---------------------------------------------------------------------

    def _machine(self, value):
        if value in QUERIES:
            self.query = MACHINES
            return
        name, props = _properties(value)
        if "=" in name:                      # `-machine gic-version=3`: more properties
            key, _, setting = name.partition("=")
            name, props = "virt", dict({key: setting}, **props)
        if name != "virt" and not name.startswith("virt-"):
            raise ArmvisorError(f"unsupported machine {name!r} (armvisor is QEMU's virt)")
        for key, setting in props.items():
            if key in QUERIES:
                self.query = MACHINE_PROPERTIES
            elif key == "gic-version" and setting in ("3", "max"):
                continue
            elif key in ("highmem", "accel") and setting in ("on", "off", "tcg", ""):
                continue
            elif key == "its" and setting in ("on", "true", ""):
                continue                     # the ITS is always there, as QEMU's default
            elif key == "virtualization" and setting in ("on", "off"):
                self._virtualization(setting == "on")
            elif key == "secure" and setting in ("on", "off"):
                if "--secure" in self.run:
                    self.run.remove("--secure")
                self.run += ["--secure"] if setting == "on" else []
            else:
                raise ArmvisorError(f"unsupported machine property {key}={setting} "
                                    "(armvisor has a GICv3, virtualization=on and secure=on)")

    _M = _machine

    def _virtualization(self, on: bool) -> None:
        """virtualization=on: the guest owns EL2 and QEMU's DTB names SMC as the conduit."""
        if "--psci-conduit" in self.run:
            conduit = self.run.index("--psci-conduit")
            del self.run[conduit:conduit + 2]
        if "--virtualization" in self.run:
            self.run.remove("--virtualization")
        self.run += ["--virtualization"] if on else ["--psci-conduit", "hvc"]

    def _accel(self, value):
        if value.split(",")[0] != "tcg":
            raise ArmvisorError(f"unsupported accelerator {value!r} (armvisor is its own)")

    def _cpu(self, value):
        self.run += ["--cpu", value]

    def _smp(self, value):
        self.smp = int(_smp(value))
        self.run += ["--smp", str(self.smp)]

    def _m(self, value):
        self.run += ["--memory", _memory(value)]

    def _kernel(self, value):
        self.kernel = value
        self.run += ["--kernel", value]

    def _initrd(self, value):
        self.run += ["--initrd", value]

    def _append(self, value):
        self.run += ["--append", value]

    def _bios(self, value):
        self.run += ["--bios", value]

    def _dtb(self, value):
        self.run += ["--dtb", value]

    def _no_reboot(self, value):
        self.run.append("--no-reboot")

    def _snapshot(self, value):
        self.run.append("--snapshot")

    def _s(self, value):
        self.run.append("-s")

    def _S(self, value):
        self.run.append("-S")

    def _gdb(self, value):
        self.run += ["--gdb", value]

    # -- devices and character devices ------------------------------------------------------

    def _device(self, value):
        if value in QUERIES:
            self.query = DEVICES
            return
        name, props = _properties(value)
        if name == "virtio-serial-device":
            self.virtio_serial = True
        elif name == "virtconsole":
            self.consoles[props.get("chardev", "")] = ""
        else:
            raise ArmvisorError(f"unsupported device {name!r}")

    def _chardev(self, value):
        if value in QUERIES:
            self.query = CHARDEVS
            return
        backend, props = _properties(value)
        if backend not in ("testdev", "stdio"):
            raise ArmvisorError(f"unsupported chardev backend {backend!r}")
        self.chardevs[props.get("id", "")] = backend

    def _drive(self, value):
        self.run += ["--drive", value]

    # -- what armvisor does anyway ----------------------------------------------------------

    def _h(self, value):
        self.query = VERSION

    _help = _version = _h

    def _nodefaults(self, value):
        pass                               # armvisor adds no default devices to remove

    def _nographic(self, value):
        pass                               # no display; the serial port is stdio

    def _nic(self, value):
        # QEMU installed without recommends has no efi-virtio.rom for its default
        # network card, so its command lines carry `-nic none`; armvisor has no card.
        if value != "none":
            raise ArmvisorError(f"unsupported network card {value!r} (armvisor has none: -nic none)")

    def _display(self, value):
        if value != "none":
            raise ArmvisorError(f"unsupported display {value!r} (armvisor has none)")

    def _serial(self, value):
        if value not in ("stdio", "mon:stdio"):
            raise ArmvisorError(f"unsupported serial backend {value!r} (only stdio)")

    def finish(self) -> List[str]:
        """The `armvisor run` arguments; checks that the devices fit together."""
        for chardev in self.consoles:
            backend = self.chardevs.get(chardev)
            if backend is None:
                raise ArmvisorError(f"virtconsole chardev={chardev!r} names no -chardev")
            if not self.virtio_serial:
                raise ArmvisorError("virtconsole needs -device virtio-serial-device")
            self.run.append("--chr-testdev" if backend == "testdev" else "--virtio-console")
        return self.run


def translate(argv: List[str]) -> Translation:
    translation = Translation()
    args = iter(argv)
    for arg in args:
        if not arg.startswith("-"):
            raise ArmvisorError(f"unexpected argument {arg!r}")
        name = "-" + arg.lstrip("-")            # QEMU takes --opt as -opt too
        value = None
        if name not in FLAGS:
            value = next(args, None)
            if value is None:
                raise ArmvisorError(f"{name} needs a value")
        translation.option(name, value)
    return translation


# Limits QEMU words its own way, which callers parse (kvm-unit-tests' vmm.bash).
MAX_CPUS = 64


def _qemu_errors(translation: Translation) -> Optional[str]:
    """What QEMU itself would say and exit 1 with, in its words."""
    if translation.kernel is not None and not os.path.isfile(translation.kernel):
        return f"could not load kernel '{translation.kernel}'"
    if translation.smp is not None and translation.smp > MAX_CPUS:
        return (f"Invalid SMP CPUs {translation.smp}. The max CPUs supported by machine "
                f"'virt' is {MAX_CPUS}")
    return None


def main(argv: Optional[List[str]] = None) -> None:
    from armvisor.cli import main as armvisor_main
    argv = sys.argv[1:] if argv is None else argv
    try:
        translation = translate(argv)
        if translation.query is not None:
            sys.stdout.write(translation.query)
            sys.exit(0)
        run_args = translation.finish()
    except ArmvisorError as exc:
        sys.stderr.write(f"armvisor-qemu: error: {exc}\n")
        sys.exit(2)
    complaint = _qemu_errors(translation)
    if complaint is not None:
        sys.stderr.write(f"qemu-system-aarch64: {complaint}\n")
        sys.exit(1)
    armvisor_main(["run", "--quiet", *run_args])


if __name__ == "__main__":
    main()
