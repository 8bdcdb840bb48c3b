"""Where fetched guest images live, and how to tell a complete one from a partial one.

Layout (one directory per Debian kernel ABI version, e.g. "6.1.0-50"):

    <root>/images/debian/<version>/
        Image               the kernel, an arm64 Linux Image
        busybox             static BusyBox
        modules/            the virtio modules and their dependencies, uncompressed,
                            with a modules.dep naming them (kmod's format)
        initramfs.cpio.gz   the default interactive initramfs
        versions.txt        the manifest, written last: its presence means complete

<root> is $ARMVISOR_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/armvisor.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

CACHE_ENV = "ARMVISOR_CACHE"
MANIFEST = "versions.txt"
KERNEL_FILE = "Image"
BUSYBOX_FILE = "busybox"
MODULES_DIR = "modules"
INITRAMFS_FILE = "initramfs.cpio.gz"
# Bumped when the layout changes, so an older cache entry is fetched again.
LAYOUT_VERSION = "1"


def cache_root(environ: Optional[Mapping[str, str]] = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    xdg = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", str(Path.home()))) / ".cache")
    return Path(xdg).expanduser() / "armvisor"


def debian_root(environ: Optional[Mapping[str, str]] = None) -> Path:
    return cache_root(environ) / "images" / "debian"


def debian_dir(version: str, environ: Optional[Mapping[str, str]] = None) -> Path:
    return debian_root(environ) / version


@dataclass(frozen=True)
class ImageSet:
    """The files of one complete cache entry."""

    directory: Path
    manifest: dict

    @property
    def kernel(self) -> Path:
        return self.directory / KERNEL_FILE

    @property
    def busybox(self) -> Path:
        return self.directory / BUSYBOX_FILE

    @property
    def modules(self) -> Path:
        return self.directory / MODULES_DIR

    @property
    def initramfs(self) -> Path:
        return self.directory / INITRAMFS_FILE

    @property
    def kernel_release(self) -> str:
        return self.manifest["kernel-release"]

    @property
    def module_names(self) -> list[str]:
        return self.manifest.get("modules", "").split()


def write_manifest(directory: Path, fields: Mapping[str, str]) -> None:
    lines = [f"layout: {LAYOUT_VERSION}"] + [f"{key}: {value}" for key, value in fields.items()]
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(directory / MANIFEST)


def read_manifest(directory: Path) -> Optional[dict]:
    try:
        text = (directory / MANIFEST).read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def complete(directory: Path) -> Optional[ImageSet]:
    """The entry in `directory` if its manifest is current and every file it names exists."""
    manifest = read_manifest(directory)
    if manifest is None or manifest.get("layout") != LAYOUT_VERSION or "kernel-release" not in manifest:
        return None
    images = ImageSet(directory, manifest)
    needed = [images.kernel, images.busybox, images.initramfs, images.modules / "modules.dep"]
    needed += [images.modules / f"{name}.ko" for name in images.module_names]
    if not all(path.is_file() for path in needed):
        return None
    return images


def _version_key(name: str) -> tuple:
    # "6.1.0-50" sorts after "6.1.0-9": compare the numbers, not the text.
    return tuple(int(part) for part in re.findall(r"\d+", name))


def cached_versions(environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """Versions with a complete cache entry, oldest first."""
    root = debian_root(environ)
    if not root.is_dir():
        return []
    names = [entry.name for entry in root.iterdir() if entry.is_dir() and complete(entry)]
    return sorted(names, key=_version_key)
