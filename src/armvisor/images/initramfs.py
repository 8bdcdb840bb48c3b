"""Build a Linux initramfs from static BusyBox, kernel modules and an init script.

Module dependencies come from the tree's modules.dep (kmod's format: each line
"path.ko: dep.ko dep2.ko", transitive) when there is one, otherwise from the
"depends=" string in each module's .modinfo ELF section (what depmod reads):
Debian's kernel package ships no modules.dep, `depmod` writes it at install.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from armvisor.errors import ArmvisorError
from armvisor.images import cpio

# The default /init prints this line, followed by " on N CPUs", once the
# modules are loaded: the Linux tests and the benchmark wait for it.
INIT_MARKER = "armvisor-init: ready"
# ... and this one, followed by the status, after an armvisor.run= script.
RUN_EXIT_MARKER = "armvisor-init: run exited with status"
# Kernel parameter naming a script to run instead of the shell.
RUN_PARAMETER = "armvisor.run"
DEFAULT_INIT = "init_scripts/default_init.sh"

# Loaded by the default /init, in dependency order; virtio core is built in.
INIT_MODULES = ("virtio_mmio", "virtio_blk", "virtio_console")
# Where the init script finds the list of modules to insmod.
MODULE_LIST = "etc/armvisor/modules"

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")
MODULES_DEP = "modules.dep"
MODULES_BUILTIN = "modules.builtin"

# devices.txt in the kernel's Documentation/admin-guide: the kernel opens
# /dev/console for init before anything is mounted, so it must be in the archive.
CONSOLE_DEVICE = (5, 1)

# The directories BusyBox's --install links its applets into, plus mount points.
BASE_DIRECTORIES = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys",
                    "tmp", "root", "etc", "etc/armvisor", "lib", "lib/modules")


def default_init_script() -> bytes:
    return resources.files("armvisor.images").joinpath(DEFAULT_INIT).read_bytes()


# --- kernel modules --------------------------------------------------------

def module_name(filename: str) -> Optional[str]:
    """"virtio-mmio.ko.xz" -> "virtio_mmio" (the kernel treats - and _ alike); None if not a module."""
    base = PurePosixPath(filename).name
    for suffix in MODULE_SUFFIXES:
        if base.endswith(suffix):
            return base[: -len(suffix)].replace("-", "_")
    return None


def decompress_module(data: bytes, filename: str) -> bytes:
    """The ELF object inside a possibly compressed .ko (BusyBox insmod wants it plain)."""
    if filename.endswith(".xz"):
        return lzma.decompress(data)
    if filename.endswith(".gz"):
        return gzip.decompress(data)
    if filename.endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            raise ArmvisorError(f"{filename} is zstd-compressed: install the 'zstandard' "
                                "Python package to unpack it") from None
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


def modinfo(data: bytes) -> Dict[str, List[str]]:
    """The key=value strings of a module's .modinfo section (one key may repeat)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        section = ELFFile(io.BytesIO(data)).get_section_by_name(".modinfo")
    except ELFError as exc:
        raise ArmvisorError(f"not a kernel module: {exc}") from None
    info: Dict[str, List[str]] = {}
    if section is None:
        return info
    for item in section.data().split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            info.setdefault(key, []).append(value)
    return info


class ModuleTree:
    """The modules under one lib/modules/<release> directory, by name."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._dep: Optional[Dict[str, Tuple[str, ...]]] = None
        self._paths: Dict[str, str] = {}
        dep_file = self.root / MODULES_DEP
        if dep_file.is_file():
            self._dep = {}
            for line in dep_file.read_text().splitlines():
                target, sep, deps = line.partition(":")
                name = module_name(target.strip())
                if not sep or name is None:
                    continue
                self._paths[name] = target.strip()
                self._dep[name] = tuple(n for n in map(module_name, deps.split()) if n)
        else:
            for path in sorted(self.root.rglob("*")):
                name = module_name(path.name)
                if name is not None and path.is_file():
                    self._paths.setdefault(name, path.relative_to(self.root).as_posix())
        self._builtin = frozenset(self._builtin_names())
        self._modinfo_deps: Dict[str, Tuple[str, ...]] = {}

    def _builtin_names(self) -> Iterable[str]:
        try:
            text = (self.root / MODULES_BUILTIN).read_text()
        except OSError:
            return ()
        return [name for name in map(module_name, text.split()) if name]

    def __contains__(self, name: str) -> bool:
        return name in self._paths

    def names(self) -> List[str]:
        return sorted(self._paths)

    def is_builtin(self, name: str) -> bool:
        return name in self._builtin

    def path(self, name: str) -> Path:
        try:
            return self.root / self._paths[name]
        except KeyError:
            raise ArmvisorError(f"kernel module {name!r} not found under {self.root}") from None

    def read(self, name: str) -> bytes:
        """The module's ELF object, decompressed."""
        path = self.path(name)
        return decompress_module(path.read_bytes(), path.name)

    def dependencies(self, name: str) -> Tuple[str, ...]:
        """The modules `name` needs loaded first (from modules.dep, else .modinfo)."""
        if self._dep is not None:
            self.path(name)
            return self._dep.get(name, ())
        if name not in self._modinfo_deps:
            depends = ",".join(modinfo(self.read(name)).get("depends", []))
            self._modinfo_deps[name] = tuple(d.replace("-", "_") for d in depends.split(",") if d)
        return self._modinfo_deps[name]

    def load_order(self, wanted: Sequence[str]) -> List[str]:
        """`wanted` and everything they depend on, each after its dependencies.

        Built-in modules are dropped: there is nothing to load.
        """
        order: List[str] = []
        visiting: List[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                cycle = " -> ".join(visiting[visiting.index(name):] + [name])
                raise ArmvisorError(f"kernel module dependency cycle: {cycle}")
            if name not in self._paths and self.is_builtin(name):
                return
            visiting.append(name)
            # modules.dep lists the deepest dependency last: visit it first.
            for dep in reversed(self.dependencies(name)):
                visit(dep)
            visiting.pop()
            order.append(name)

        for name in wanted:
            visit(name.replace("-", "_"))
        return order


def modules_dep_text(tree: ModuleTree, names: Sequence[str]) -> str:
    """kmod's modules.dep for `names`, flat: each dependency list ends with the deepest one."""
    lines = []
    for name in names:
        deps = [dep for dep in reversed(tree.load_order([name])) if dep != name]
        lines.append(f"{name}.ko:" + "".join(f" {dep}.ko" for dep in deps))
    return "\n".join(lines) + "\n"


def write_module_dir(tree: ModuleTree, names: Sequence[str], out: Path) -> List[str]:
    """Copy `names` and their dependencies, decompressed, flat into `out`, with a modules.dep.

    Returns the load order.
    """
    order = tree.load_order(names)
    out.mkdir(parents=True, exist_ok=True)
    for name in order:
        (out / f"{name}.ko").write_bytes(tree.read(name))
    (out / MODULES_DEP).write_text(modules_dep_text(tree, order))
    return order


# --- the archive -----------------------------------------------------------

@dataclass(frozen=True)
class ExtraFile:
    """A host file or directory to copy into the archive at `dest`."""

    source: Path
    dest: str


def parse_extra(spec: str) -> ExtraFile:
    """"SRC:DEST" as given to --add; DEST is an absolute path inside the initramfs."""
    source, sep, dest = spec.rpartition(":")
    if not sep or not source or not dest:
        raise ArmvisorError(f"--add {spec!r}: expected SRC:DEST")
    if not PurePosixPath(dest).is_absolute() or ".." in PurePosixPath(dest).parts:
        raise ArmvisorError(f"--add {spec!r}: DEST must be an absolute path without '..'")
    if not Path(source).exists():
        raise ArmvisorError(f"--add {spec!r}: {source} does not exist")
    return ExtraFile(Path(source), dest)


class _Archive:
    """Entries by name, parent directories created on demand; a later entry replaces an earlier one."""

    def __init__(self) -> None:
        self.entries: Dict[str, cpio.Entry] = {}

    def directory(self, name: str) -> None:
        parts = PurePosixPath(name.strip("/")).parts
        for depth in range(1, len(parts) + 1):
            path = "/".join(parts[:depth])
            if path not in self.entries:
                self.entries[path] = cpio.directory(path)

    def add(self, entry: cpio.Entry) -> None:
        name = entry.name.strip("/")
        parent = PurePosixPath(name).parent.as_posix()
        if parent != ".":
            self.directory(parent)
        self.entries[name] = cpio.Entry(name, entry.mode, entry.data, entry.rdev)

    def add_host(self, source: Path, dest: str) -> None:
        if source.is_dir():
            self.directory(dest)
            for child in sorted(source.iterdir()):
                self.add_host(child, f"{dest.rstrip('/')}/{child.name}")
        elif source.is_symlink():
            self.add(cpio.symlink(dest, os.readlink(source)))
        else:
            perm = 0o755 if os.access(source, os.X_OK) else 0o644
            self.add(cpio.regular(dest, source.read_bytes(), perm))


def initramfs_entries(busybox: Path, kernel_release: str, modules: Optional[Path] = None,
                      init: Optional[bytes] = None, extra: Sequence[ExtraFile] = (),
                      load: Sequence[str] = INIT_MODULES) -> List[cpio.Entry]:
    """The archive's entries: BusyBox, /init, the modules of `modules` and the `load` list.

    `modules` is a directory written by write_module_dir (or any tree ModuleTree reads).
    """
    archive = _Archive()
    for name in BASE_DIRECTORIES:
        archive.directory(name)
    archive.add(cpio.char_device("dev/console", *CONSOLE_DEVICE))
    archive.add(cpio.regular("bin/busybox", Path(busybox).read_bytes(), 0o755))
    archive.add(cpio.symlink("bin/sh", "busybox"))
    archive.add(cpio.regular("init", default_init_script() if init is None else init, 0o755))
    module_dir = f"lib/modules/{kernel_release}"
    archive.directory(module_dir)
    order: List[str] = []
    if modules is not None:
        tree = ModuleTree(modules)
        order = tree.load_order(load)
        shipped = tree.load_order(tree.names())
        for name in shipped:
            archive.add(cpio.regular(f"{module_dir}/{name}.ko", tree.read(name)))
        # BusyBox modprobe reads this, so `modprobe virtio_net` works in the shell.
        archive.add(cpio.regular(f"{module_dir}/{MODULES_DEP}", modules_dep_text(tree, shipped).encode()))
    archive.add(cpio.regular(MODULE_LIST, "".join(f"/{module_dir}/{name}.ko\n" for name in order).encode()))
    for item in extra:
        archive.add_host(item.source, item.dest)
    return list(archive.entries.values())


def build_initramfs(busybox: Path, kernel_release: str, modules: Optional[Path] = None,
                    init: Optional[bytes] = None, extra: Sequence[ExtraFile] = (),
                    load: Sequence[str] = INIT_MODULES) -> bytes:
    """A gzipped newc cpio archive (see initramfs_entries)."""
    return cpio.gzipped_archive(initramfs_entries(busybox, kernel_release, modules, init, extra, load))
