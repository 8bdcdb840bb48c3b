"""Debian's arm64 kernel and static BusyBox, fetched by package name into the cache.

With apt (as root): the arm64 architecture is added if missing, the lists
updated if they know no arm64 packages, and `apt-get download` fetches the
packages. Without it, the user downloads the two .debs and passes them with
--from-debs; those are read by Python alone (a .deb is an ar archive holding
control.tar.* and data.tar.*, deb(5)).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from armvisor.errors import ArmvisorError
from armvisor.images import cache
from armvisor.images.initramfs import ModuleTree, build_initramfs, write_module_dir

ARCH = "arm64"
# Bookworm's kernel ABI series, the one booted and tested on armvisor.
KERNEL_SERIES = "6.1.0"
FLAVOUR = "arm64"
BUSYBOX_PACKAGE = "busybox-static"
# Kept in the cache and the initramfs; the default /init loads the first three.
CACHED_MODULES = ("virtio_mmio", "virtio_blk", "virtio_console", "virtio_net")

# Documentation/arch/arm64/booting.rst: the Image header's magic, at offset 0x38.
ARM64_IMAGE_MAGIC = b"ARM\x64"
ARM64_IMAGE_MAGIC_OFFSET = 0x38
GZIP_MAGIC = b"\x1f\x8b"

AR_MAGIC = b"!<arch>\n"
AR_HEADER_SIZE = 60
AR_HEADER_END = b"`\n"

KERNEL_PACKAGE = re.compile(r"^linux-image-(?P<version>\d+\.\d+\.\d+-\d+)-" + FLAVOUR
                            + r"(?P<unsigned>-unsigned)?$")

NO_APT_HELP = (
    "run as root on Debian (apt-get download is used), or download "
    f"linux-image-{KERNEL_SERIES}-N-{FLAVOUR}-unsigned and {BUSYBOX_PACKAGE} (arm64) .debs "
    "yourself and pass them with `armvisor images fetch debian --from-debs KERNEL.deb BUSYBOX.deb`")

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


# --- .deb files ------------------------------------------------------------

def ar_members(data: bytes, what: str = "archive") -> Dict[str, bytes]:
    """The members of a Unix ar archive (the .deb container), by name."""
    if not data.startswith(AR_MAGIC):
        raise ArmvisorError(f"{what} is not a .deb (no ar header)")
    members: Dict[str, bytes] = {}
    pos = len(AR_MAGIC)
    while pos + AR_HEADER_SIZE <= len(data):
        header = data[pos:pos + AR_HEADER_SIZE]
        if header[58:60] != AR_HEADER_END:
            raise ArmvisorError(f"{what}: corrupt ar member header at offset {pos}")
        name = header[0:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise ArmvisorError(f"{what}: corrupt ar member size at offset {pos}") from None
        start = pos + AR_HEADER_SIZE
        if start + size > len(data):
            raise ArmvisorError(f"{what} is truncated")
        members[name] = data[start:start + size]
        pos = start + size + (size & 1)       # members are 2-byte aligned
    return members


def _open_tar(members: Dict[str, bytes], stem: str, what: str) -> tarfile.TarFile:
    """control.tar.* or data.tar.* as a streaming tar reader, whatever the compression."""
    for name, payload in members.items():
        if not name.startswith(stem):
            continue
        suffix = name[len(stem):]
        if suffix in ("", ".gz", ".xz", ".bz2"):
            return tarfile.open(fileobj=io.BytesIO(payload), mode="r|" + suffix.lstrip("."))
        if suffix == ".zst":
            try:
                import zstandard
            except ImportError:
                raise ArmvisorError(f"{what}: {name} is zstd-compressed; install the 'zstandard' "
                                    "Python package, or use `dpkg-deb -x` on it") from None
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload))
            return tarfile.open(fileobj=reader, mode="r|")
        raise ArmvisorError(f"{what}: unsupported member compression {name}")
    raise ArmvisorError(f"{what}: no {stem}.* member")


def _member_path(name: str) -> Optional[PurePosixPath]:
    """A tar member's path relative to the root, or None if it would leave it."""
    path = PurePosixPath(name.lstrip("/"))
    parts = [part for part in path.parts if part not in (".", "")]
    if not parts or ".." in parts:
        return None
    return PurePosixPath(*parts)


@dataclass(frozen=True)
class DebInfo:
    path: Path
    package: str
    version: str
    architecture: str


def deb_info(deb: Path) -> DebInfo:
    """Package, Version and Architecture from the .deb's control file."""
    members = ar_members(Path(deb).read_bytes(), str(deb))
    fields: Dict[str, str] = {}
    with _open_tar(members, "control.tar", str(deb)) as tar:
        for member in tar:
            if _member_path(member.name) == PurePosixPath("control") and member.isfile():
                for line in tar.extractfile(member).read().decode(errors="replace").splitlines():
                    key, sep, value = line.partition(":")
                    if sep and not key.startswith(" "):
                        fields[key.strip()] = value.strip()
                break
    if "Package" not in fields:
        raise ArmvisorError(f"{deb}: no control file")
    return DebInfo(Path(deb), fields["Package"], fields.get("Version", "?"), fields.get("Architecture", "?"))


def extract_deb(deb: Path, dest: Path, wanted: Callable[[str], bool] = lambda path: True) -> List[str]:
    """Like `dpkg-deb -x` for the data members whose relative path `wanted` accepts.

    Regular files, directories, symlinks and hard links; never a path outside `dest`.
    Returns the paths extracted.
    """
    members = ar_members(Path(deb).read_bytes(), str(deb))
    dest = Path(dest)
    extracted: List[str] = []
    with _open_tar(members, "data.tar", str(deb)) as tar:
        for member in tar:
            rel = _member_path(member.name)
            if rel is None or not wanted(rel.as_posix()):
                continue
            target = dest / rel
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            if member.issym():
                os.symlink(member.linkname, target)
            elif member.islnk():
                source = _member_path(member.linkname)
                if source is None or not (dest / source).is_file():
                    continue
                shutil.copyfile(dest / source, target)
            elif member.isfile():
                with tar.extractfile(member) as data, open(target, "wb") as out:
                    shutil.copyfileobj(data, out)
                os.chmod(target, member.mode & 0o755)
            else:
                continue
            extracted.append(rel.as_posix())
    return extracted


def _wanted_image_member(path: str) -> bool:
    """The parts of the kernel and BusyBox packages the cache needs."""
    return (path.startswith(("boot/vmlinuz-", "lib/modules/", "usr/lib/modules/"))
            or path in ("bin/busybox", "usr/bin/busybox"))


# --- what the packages hold ------------------------------------------------

def kernel_release(version: str) -> str:
    """"6.1.0-50" -> "6.1.0-50-arm64" (uname -r, the modules directory)."""
    return f"{version}-{FLAVOUR}"


def version_of_release(release: str) -> str:
    suffix = f"-{FLAVOUR}"
    return release[: -len(suffix)] if release.endswith(suffix) else release


def kernel_packages(version: str) -> Tuple[str, str]:
    """The unsigned package (a plain Image) first, the signed one as the fallback."""
    return (f"linux-image-{version}-{FLAVOUR}-unsigned", f"linux-image-{version}-{FLAVOUR}")


def find_kernel(tree: Path) -> Tuple[Path, Path]:
    """(vmlinuz, lib/modules/<release>) inside an extracted kernel package."""
    images = sorted((tree / "boot").glob("vmlinuz-*"))
    if len(images) != 1:
        raise ArmvisorError(f"expected one boot/vmlinuz-* in the kernel package, found {len(images)}")
    release = images[0].name[len("vmlinuz-"):]
    for base in ("lib/modules", "usr/lib/modules"):
        modules = tree / base / release
        if modules.is_dir():
            return images[0], modules
    raise ArmvisorError(f"the kernel package has no lib/modules/{release}")


def find_busybox(tree: Path) -> Path:
    for rel in ("bin/busybox", "usr/bin/busybox"):
        if (tree / rel).is_file():
            return tree / rel
    raise ArmvisorError("the BusyBox package has no bin/busybox")


def kernel_image(vmlinuz: bytes) -> bytes:
    """The arm64 Image inside a vmlinuz (Debian ships it plain or gzipped)."""
    if vmlinuz.startswith(GZIP_MAGIC):
        vmlinuz = gzip.decompress(vmlinuz)
    magic = vmlinuz[ARM64_IMAGE_MAGIC_OFFSET:ARM64_IMAGE_MAGIC_OFFSET + len(ARM64_IMAGE_MAGIC)]
    if magic != ARM64_IMAGE_MAGIC:
        raise ArmvisorError("the kernel package's vmlinuz is not an arm64 Image")
    return vmlinuz


def install(kernel_tree: Path, busybox_tree: Path, target: Path, provenance: Mapping[str, str]) -> cache.ImageSet:
    """Write a complete cache entry into `target` from the extracted package trees.

    The manifest goes first out and last in, so an interrupted install is not
    mistaken for a complete one.
    """
    vmlinuz, module_root = find_kernel(kernel_tree)
    release = module_root.name
    target.mkdir(parents=True, exist_ok=True)
    (target / cache.MANIFEST).unlink(missing_ok=True)
    _write_atomic(target / cache.KERNEL_FILE, kernel_image(vmlinuz.read_bytes()))
    _write_atomic(target / cache.BUSYBOX_FILE, find_busybox(busybox_tree).read_bytes(), 0o755)
    modules = target / cache.MODULES_DIR
    staging = target / (cache.MODULES_DIR + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    order = write_module_dir(ModuleTree(module_root), CACHED_MODULES, staging)
    shutil.rmtree(modules, ignore_errors=True)
    staging.rename(modules)
    _write_atomic(target / cache.INITRAMFS_FILE,
                  build_initramfs(target / cache.BUSYBOX_FILE, release, modules))
    cache.write_manifest(target, {**provenance, "kernel-release": release, "modules": " ".join(order)})
    images = cache.complete(target)
    assert images is not None, "install left an incomplete cache entry"
    return images


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


# --- apt -------------------------------------------------------------------

Runner = Callable[..., subprocess.CompletedProcess]


class Apt:
    """The few apt/dpkg commands the fetch needs; `run` is replaceable for tests."""

    def __init__(self, run: Runner = subprocess.run, log: Log = _quiet):
        self._run = run
        self._log = log

    def _call(self, *argv: str, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
        try:
            return self._run(list(argv), cwd=cwd, capture_output=True, text=True)
        except OSError as exc:
            raise ArmvisorError(f"cannot run {argv[0]}: {exc.strerror}") from None

    def _check(self, *argv: str, cwd: Optional[Path] = None) -> str:
        result = self._call(*argv, cwd=cwd)
        if result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ArmvisorError(f"`{' '.join(argv)}` failed: {last[0]}")
        return result.stdout

    def unavailable_reason(self) -> Optional[str]:
        """Why this host cannot download with apt, or None if it can."""
        for tool in ("apt-get", "apt-cache", "dpkg"):
            if shutil.which(tool) is None:
                return f"{tool} not found"
        if os.geteuid() != 0:
            return "not running as root"
        return None

    def knows_arm64(self) -> bool:
        """True if the apt lists hold arm64 packages (reading them needs no root)."""
        if shutil.which("apt-cache") is None:
            return False
        return self._call("apt-cache", "show", f"{BUSYBOX_PACKAGE}:{ARCH}").returncode == 0

    def prepare(self) -> None:
        """Make the arm64 packages known: add the architecture, update the lists."""
        native = self._check("dpkg", "--print-architecture").split()
        foreign = self._check("dpkg", "--print-foreign-architectures").split()
        if ARCH not in native + foreign:
            self._log(f"adding the {ARCH} architecture to dpkg")
            self._check("dpkg", "--add-architecture", ARCH)
        if not self.knows_arm64():
            self._log("apt-get update (to learn the arm64 packages)")
            self._check("apt-get", "update")
            if not self.knows_arm64():
                raise ArmvisorError(f"apt knows no {BUSYBOX_PACKAGE}:{ARCH} even after apt-get update")

    def kernel_versions(self) -> Dict[str, List[str]]:
        """{version: [packages]} for the kernels of KERNEL_SERIES the lists know."""
        pattern = rf"^linux-image-{re.escape(KERNEL_SERIES)}-[0-9]+-{FLAVOUR}(-unsigned)?$"
        found: Dict[str, List[str]] = {}
        for line in self._call("apt-cache", "search", "--names-only", pattern).stdout.splitlines():
            match = KERNEL_PACKAGE.match(line.split(" - ")[0].strip())
            if match:
                found.setdefault(match["version"], []).append(match.group(0))
        return found

    def has(self, package: str) -> bool:
        return self._call("apt-cache", "show", f"{package}:{ARCH}").returncode == 0

    def download(self, package: str, directory: Path) -> Path:
        self._log(f"downloading {package}:{ARCH}")
        self._check("apt-get", "download", f"{package}:{ARCH}", cwd=directory)
        debs = sorted(directory.glob(f"{package}_*.deb"))
        if not debs:
            raise ArmvisorError(f"apt-get download {package}:{ARCH} left no .deb")
        return debs[-1]


def newest_version(versions: Mapping[str, Sequence[str]]) -> Optional[str]:
    """The newest version with an unsigned package, else the newest at all."""
    def key(version: str) -> Tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", version))

    unsigned = [v for v, packages in versions.items() if any(p.endswith("-unsigned") for p in packages)]
    pool = unsigned or list(versions)
    return max(pool, key=key) if pool else None


# --- the command -----------------------------------------------------------


@dataclass
class Fetcher:
    """`armvisor images fetch debian`: make sure a complete cache entry exists."""

    apt: Optional[Apt] = None
    environ: Optional[Mapping[str, str]] = None
    log: Log = _quiet

    def fetch(self, version: Optional[str] = None, dest: Optional[Path] = None, force: bool = False,
              from_debs: Sequence[Path] = ()) -> cache.ImageSet:
        if from_debs:
            return self._from_debs([Path(p) for p in from_debs], version, dest, force)
        apt = self.apt or Apt(log=self.log)
        pinned = version is not None
        if version is None:
            version = self._default_version(apt)
        target = Path(dest) if dest else cache.debian_dir(version, self.environ)
        existing = cache.complete(target)
        if existing is not None and not force:
            self.log(f"already fetched: {target}")
            return existing
        reason = apt.unavailable_reason()
        if reason:
            cached = cache.cached_versions(self.environ)
            if not pinned and not dest and not force and cached:
                self.log(f"cannot fetch {version} ({reason}); using the cached {cached[-1]}")
                return cache.complete(cache.debian_dir(cached[-1], self.environ))
            raise ArmvisorError(f"cannot fetch Debian's kernel ({reason}): {NO_APT_HELP}")
        apt.prepare()
        packages = [p for p in kernel_packages(version) if apt.has(p)]
        if not packages:
            raise ArmvisorError(f"apt knows no {' or '.join(kernel_packages(version))} for {ARCH}")
        with tempfile.TemporaryDirectory(prefix="armvisor-debs-") as tmp:
            work = Path(tmp)
            # apt-get download drops to the _apt user, which must be able to enter it.
            os.chmod(work, 0o755)
            downloads = work / "debs"
            downloads.mkdir()
            self._allow_apt_user(downloads)
            kernel_deb = apt.download(packages[0], downloads)
            busybox_deb = apt.download(BUSYBOX_PACKAGE, downloads)
            return self._install([kernel_deb, busybox_deb], work, target, expected_version=version)

    def _default_version(self, apt: Apt) -> str:
        """The newest kernel apt knows, or without apt's lists the newest one cached."""
        reason = apt.unavailable_reason()
        if not apt.knows_arm64() and reason is None:
            apt.prepare()
        if apt.knows_arm64():
            version = newest_version(apt.kernel_versions())
            if version is None:
                raise ArmvisorError(f"apt knows no linux-image-{KERNEL_SERIES}-N-{FLAVOUR} package")
            return version
        cached = cache.cached_versions(self.environ)
        if cached:
            return cached[-1]
        raise ArmvisorError(f"cannot fetch Debian's kernel ({reason or 'apt knows no arm64 packages'}): "
                            f"{NO_APT_HELP}")

    @staticmethod
    def _allow_apt_user(directory: Path) -> None:
        try:
            import pwd
            entry = pwd.getpwnam("_apt")
            os.chown(directory, entry.pw_uid, -1)
        except (ImportError, KeyError, PermissionError):
            os.chmod(directory, 0o777)

    def _from_debs(self, debs: List[Path], version: Optional[str], dest: Optional[Path],
                   force: bool) -> cache.ImageSet:
        for deb in debs:
            if not deb.is_file():
                raise ArmvisorError(f"--from-debs: {deb} does not exist")
        kernel = [info for info in map(deb_info, debs) if KERNEL_PACKAGE.match(info.package)]
        if len(kernel) != 1:
            raise ArmvisorError(f"--from-debs: expected one linux-image-*-{FLAVOUR} package, "
                                f"got {len(kernel)}")
        found = KERNEL_PACKAGE.match(kernel[0].package)["version"]
        if version is not None and version != found:
            raise ArmvisorError(f"--from-debs: the kernel package is {found}, not {version}")
        target = Path(dest) if dest else cache.debian_dir(found, self.environ)
        existing = cache.complete(target)
        if existing is not None and not force:
            self.log(f"already fetched: {target}")
            return existing
        with tempfile.TemporaryDirectory(prefix="armvisor-debs-") as tmp:
            return self._install(debs, Path(tmp), target, expected_version=found)

    def _install(self, debs: Sequence[Path], work: Path, target: Path, expected_version: str) -> cache.ImageSet:
        infos = [deb_info(deb) for deb in debs]
        for info in infos:
            if info.architecture not in (ARCH, "all"):
                raise ArmvisorError(f"{info.path.name} is for {info.architecture}, not {ARCH}")
        kernel = next((i for i in infos if KERNEL_PACKAGE.match(i.package)), None)
        busybox = next((i for i in infos if i.package in (BUSYBOX_PACKAGE, "busybox")), None)
        if kernel is None or busybox is None:
            raise ArmvisorError(f"need a linux-image-*-{FLAVOUR} and a {BUSYBOX_PACKAGE} package, "
                                f"got {', '.join(i.package for i in infos)}")
        trees = {}
        for info in (kernel, busybox):
            self.log(f"extracting {info.path.name}")
            tree = work / info.package
            extract_deb(info.path, tree, _wanted_image_member)
            trees[info.package] = tree
        self.log(f"writing {target}")
        images = install(trees[kernel.package], trees[busybox.package], target, {
            "version": expected_version,
            "kernel-package": f"{kernel.package} {kernel.version}",
            "busybox-package": f"{busybox.package} {busybox.version}",
        })
        shutil.rmtree(trees[kernel.package], ignore_errors=True)
        return images


def cached_images(version: Optional[str] = None, dest: Optional[Path] = None,
                  environ: Optional[Mapping[str, str]] = None) -> cache.ImageSet:
    """The complete entry for `version` (default: the newest cached), without fetching."""
    if dest is not None:
        target = Path(dest)
    else:
        if version is None:
            versions = cache.cached_versions(environ)
            if not versions:
                raise ArmvisorError("no Debian images cached: run `armvisor images fetch debian` first")
            version = versions[-1]
        target = cache.debian_dir(version, environ)
    images = cache.complete(target)
    if images is None:
        raise ArmvisorError(f"no complete Debian images in {target}: run `armvisor images fetch debian`")
    return images
