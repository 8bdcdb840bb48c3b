"""Debian image fetching, module dependencies and initramfs building, on fake packages (no network)."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import shutil
import stat
import struct
import subprocess
import tarfile
from pathlib import Path
from typing import Dict, List, Optional

import click
import pytest

from armvisor.errors import ArmvisorError
from armvisor.images import cache, debian, initramfs
from armvisor.images.cpio import NEWC_MAGIC, TRAILER

RELEASE = "6.1.0-7-arm64"


# --- fakes -----------------------------------------------------------------

def fake_module(name: str, depends: str = "") -> bytes:
    """A minimal ELF64 relocatable whose only content is a .modinfo section."""
    modinfo = f"license=GPL\0depends={depends}\0name={name}\0".encode()
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    data_offset = 64
    shstr_offset = data_offset + len(modinfo)
    sh_offset = (shstr_offset + len(shstrtab) + 7) & ~7
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 1, 183, 1, 0, 0, sh_offset, 0, 64, 0, 0, 64, 3, 2)
    null = bytes(64)
    info = struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, data_offset, len(modinfo), 0, 0, 1, 0)
    names = struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, shstr_offset, len(shstrtab), 0, 0, 1, 0)
    body = header + modinfo + shstrtab
    return body + bytes(sh_offset - len(body)) + null + info + names


def fake_image() -> bytes:
    image = bytearray(0x100)
    image[0x38:0x3C] = b"ARM\x64"
    return bytes(image)


def tar_bytes(files: Dict[str, bytes], compression: str, symlinks: Dict[str, str] = {}) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:" + compression) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith("busybox") else 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, target in symlinks.items():
            info = tarfile.TarInfo("./" + name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def ar_bytes(members: Dict[str, bytes]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members.items():
        out.append(f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode())
        out.append(data + (b"\n" if len(data) % 2 else b""))
    return b"".join(out)


def fake_deb(path: Path, package: str, version: str, files: Dict[str, bytes], compression: str = "xz",
             symlinks: Dict[str, str] = {}) -> Path:
    control = f"Package: {package}\nVersion: {version}\nArchitecture: arm64\nDescription: fake\n x\n"
    suffix = {"xz": ".xz", "gz": ".gz", "": ""}[compression]
    path.write_bytes(ar_bytes({
        "debian-binary": b"2.0\n",
        "control.tar.xz": tar_bytes({"control": control.encode()}, "xz"),
        f"data.tar{suffix}": tar_bytes(files, compression, symlinks),
    }))
    return path


def kernel_files(release: str = RELEASE, compressed: bool = False) -> Dict[str, bytes]:
    base = f"lib/modules/{release}/kernel"
    modules = {
        "drivers/virtio/virtio_mmio.ko": fake_module("virtio_mmio"),
        "drivers/block/virtio_blk.ko": fake_module("virtio_blk"),
        "drivers/char/virtio_console.ko": fake_module("virtio_console"),
        "drivers/net/virtio_net.ko": fake_module("virtio_net", "net_failover"),
        "drivers/net/net_failover.ko": fake_module("net_failover", "failover"),
        "net/core/failover.ko": fake_module("failover"),
        "drivers/scsi/unrelated.ko": fake_module("unrelated"),
    }
    files = {f"boot/vmlinuz-{release}": fake_image(), f"boot/config-{release}": b"CONFIG_X=y\n",
             f"lib/modules/{release}/modules.builtin": b"kernel/drivers/virtio/virtio.ko\n"}
    for rel, data in modules.items():
        if compressed:
            files[f"{base}/{rel}.xz"] = lzma.compress(data, format=lzma.FORMAT_XZ)
        else:
            files[f"{base}/{rel}"] = data
    return files


BUSYBOX = b"\x7fELF fake busybox"


def busybox_files() -> Dict[str, bytes]:
    return {"bin/busybox": BUSYBOX, "usr/share/doc/busybox-static/copyright": b"GPL"}


def read_newc(data: bytes) -> Dict[str, tuple]:
    """{name: (mode, data, (rdevmajor, rdevminor))} of a newc archive."""
    entries = {}
    pos = 0
    while True:
        assert data[pos:pos + 6] == NEWC_MAGIC
        fields = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos:pos + filesize]
        pos += filesize
        pos += -pos % 4
        if name == TRAILER:
            return entries
        entries[name] = (fields[1], body, (fields[9], fields[10]))


class FakeApt:
    """Stands in for debian.Apt: serves fake .debs and counts downloads."""

    def __init__(self, tmp: Path, unsigned: List[str], signed: List[str], reason: Optional[str] = None):
        self.tmp = tmp
        self.unsigned, self.signed = unsigned, signed
        self.reason = reason
        self.downloads: List[str] = []
        self.prepared = 0

    def unavailable_reason(self):
        return self.reason

    def knows_arm64(self):
        return self.reason is None

    def prepare(self):
        self.prepared += 1

    def kernel_versions(self):
        found: Dict[str, List[str]] = {}
        for v in self.unsigned:
            found.setdefault(v, []).append(f"linux-image-{v}-arm64-unsigned")
        for v in self.signed:
            found.setdefault(v, []).append(f"linux-image-{v}-arm64")
        return found

    def has(self, package):
        return any(package in names for names in self.kernel_versions().values()) or package == "busybox-static"

    def download(self, package, directory):
        self.downloads.append(package)
        if package == "busybox-static":
            return fake_deb(directory / "busybox-static_1.35_arm64.deb", package, "1:1.35", busybox_files())
        version = debian.KERNEL_PACKAGE.match(package)["version"]
        return fake_deb(directory / f"{package}_6.1.1_arm64.deb", package, "6.1.1-1",
                        kernel_files(f"{version}-arm64"))


@pytest.fixture
def env(tmp_path) -> Dict[str, str]:
    return {"ARMVISOR_CACHE": str(tmp_path / "cache")}


# --- .deb reading ----------------------------------------------------------

@pytest.mark.parametrize("compression", ["xz", "gz", ""])
def test_extract_deb_filters_and_keeps_modes(tmp_path, compression):
    deb = fake_deb(tmp_path / "bb.deb", "busybox-static", "1:1.35", busybox_files(), compression,
                   symlinks={"bin/sh": "busybox"})
    out = tmp_path / "out"
    got = debian.extract_deb(deb, out, lambda p: p.startswith("bin/"))
    assert sorted(got) == ["bin/busybox", "bin/sh"]
    assert (out / "bin/busybox").read_bytes() == BUSYBOX
    assert os.access(out / "bin/busybox", os.X_OK)
    assert os.readlink(out / "bin/sh") == "busybox"
    assert not (out / "usr").exists()


def test_extract_deb_never_leaves_the_destination(tmp_path):
    deb = fake_deb(tmp_path / "evil.deb", "evil", "1", {"../escape": b"x", "ok": b"y"})
    debian.extract_deb(deb, tmp_path / "out")
    assert not (tmp_path / "escape").exists()
    assert (tmp_path / "out" / "ok").read_bytes() == b"y"


def test_deb_info_reads_the_control_file(tmp_path):
    deb = fake_deb(tmp_path / "k.deb", "linux-image-6.1.0-7-arm64-unsigned", "6.1.20-1", {})
    info = debian.deb_info(deb)
    assert (info.package, info.version, info.architecture) == \
        ("linux-image-6.1.0-7-arm64-unsigned", "6.1.20-1", "arm64")


def test_not_a_deb_is_a_one_line_error(tmp_path):
    bogus = tmp_path / "bogus.deb"
    bogus.write_bytes(b"PK\3\4 a zip")
    with pytest.raises(ArmvisorError, match="not a .deb"):
        debian.deb_info(bogus)
    truncated = tmp_path / "short.deb"
    truncated.write_bytes(ar_bytes({"debian-binary": b"2.0\n"})[:-20])
    with pytest.raises(ArmvisorError):
        debian.extract_deb(truncated, tmp_path / "out")


def test_zstd_data_without_zstandard_is_explained(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_zstandard(name, *args, **kwargs):
        if name == "zstandard":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_zstandard)
    deb = tmp_path / "z.deb"
    deb.write_bytes(ar_bytes({"debian-binary": b"2.0\n", "data.tar.zst": b"\x28\xb5\x2f\xfd"}))
    with pytest.raises(ArmvisorError, match="zstandard"):
        debian.extract_deb(deb, tmp_path / "out")


def test_kernel_image_accepts_plain_and_gzipped_images():
    assert debian.kernel_image(fake_image()) == fake_image()
    assert debian.kernel_image(gzip.compress(fake_image())) == fake_image()
    with pytest.raises(ArmvisorError, match="not an arm64 Image"):
        debian.kernel_image(b"MZ" + bytes(100))


# --- modules ---------------------------------------------------------------

def test_module_names_are_normalised():
    assert initramfs.module_name("kernel/drivers/virtio/virtio-mmio.ko.xz") == "virtio_mmio"
    assert initramfs.module_name("virtio_blk.ko") == "virtio_blk"
    assert initramfs.module_name("modules.dep") is None


def write_tree(root: Path, files: Dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_load_order_from_modules_dep(tmp_path):
    root = write_tree(tmp_path, {
        "modules.dep": (b"kernel/a/virtio_net.ko.xz: kernel/b/net_failover.ko.xz kernel/c/failover.ko.xz\n"
                        b"kernel/b/net_failover.ko.xz: kernel/c/failover.ko.xz\n"
                        b"kernel/c/failover.ko.xz:\n"
                        b"kernel/d/virtio_blk.ko.xz:\n"),
        "modules.builtin": b"kernel/drivers/virtio/virtio.ko\n",
    })
    tree = initramfs.ModuleTree(root)
    assert tree.load_order(["virtio_net"]) == ["failover", "net_failover", "virtio_net"]
    assert tree.load_order(["virtio_blk", "virtio-net", "failover"]) == \
        ["virtio_blk", "failover", "net_failover", "virtio_net"]
    assert tree.load_order(["virtio"]) == []          # built in: nothing to load
    with pytest.raises(ArmvisorError, match="virtio_gpu"):
        tree.load_order(["virtio_gpu"])


def test_load_order_from_modinfo_when_there_is_no_modules_dep(tmp_path):
    files = {rel[len(f"lib/modules/{RELEASE}/"):]: data
             for rel, data in kernel_files(compressed=True).items() if rel.startswith("lib/modules/")}
    tree = initramfs.ModuleTree(write_tree(tmp_path, files))
    assert tree.load_order(debian.CACHED_MODULES) == \
        ["virtio_mmio", "virtio_blk", "virtio_console", "failover", "net_failover", "virtio_net"]
    assert tree.read("failover") == fake_module("failover")     # decompressed


def test_dependency_cycle_is_reported(tmp_path):
    root = write_tree(tmp_path, {"modules.dep": b"a.ko: b.ko\nb.ko: a.ko\n"})
    with pytest.raises(ArmvisorError, match="cycle"):
        initramfs.ModuleTree(root).load_order(["a"])


def test_write_module_dir_is_flat_and_readable_again(tmp_path):
    files = {rel[len(f"lib/modules/{RELEASE}/"):]: data
             for rel, data in kernel_files(compressed=True).items() if rel.startswith("lib/modules/")}
    tree = initramfs.ModuleTree(write_tree(tmp_path / "src", files))
    order = initramfs.write_module_dir(tree, ["virtio_net", "virtio_blk"], tmp_path / "out")
    assert order == ["failover", "net_failover", "virtio_net", "virtio_blk"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["failover.ko", "modules.dep", "net_failover.ko", "virtio_blk.ko", "virtio_net.ko"]
    assert "virtio_net.ko: net_failover.ko failover.ko" in (tmp_path / "out/modules.dep").read_text()
    assert initramfs.ModuleTree(tmp_path / "out").load_order(["virtio_net"]) == order[:3]


# --- the init script and the archive ----------------------------------------

def test_default_init_script():
    script = initramfs.default_init_script().decode()
    assert script.startswith("#!/bin/sh\n")
    assert f'echo "{initramfs.INIT_MARKER} on $(nproc) CPUs"' in script
    for needed in ("mount -t proc proc /proc", "mount -t sysfs sysfs /sys",
                   "mount -t devtmpfs devtmpfs /dev", "/bin/busybox --install -s",
                   f"/{initramfs.MODULE_LIST}", "insmod", "setsid cttyhack sh", "poweroff -f",
                   f"{initramfs.RUN_PARAMETER}=*", initramfs.RUN_EXIT_MARKER):
        assert needed in script, needed
    # The modules are loaded before the marker, the shell started after it.
    assert script.index("insmod") < script.index(initramfs.INIT_MARKER) < script.index("cttyhack")


@pytest.mark.skipif(shutil.which("sh") is None, reason="no host shell")
def test_default_init_script_parses():
    subprocess.run(["sh", "-n"], input=initramfs.default_init_script(), check=True)


def test_initramfs_layout(tmp_path):
    files = {rel[len(f"lib/modules/{RELEASE}/"):]: data
             for rel, data in kernel_files().items() if rel.startswith("lib/modules/")}
    modules = tmp_path / "modules"
    initramfs.write_module_dir(initramfs.ModuleTree(write_tree(tmp_path / "src", files)),
                               debian.CACHED_MODULES, modules)
    busybox = tmp_path / "busybox"
    busybox.write_bytes(BUSYBOX)
    extra_dir = write_tree(tmp_path / "extra", {"checks/run.sh": b"echo hi\n"})
    os.chmod(extra_dir / "checks/run.sh", 0o755)
    archive = read_newc(gzip.decompress(initramfs.build_initramfs(
        busybox, RELEASE, modules, extra=[initramfs.ExtraFile(extra_dir / "checks", "/opt/armvisor")])))

    mode, data, _ = archive["init"]
    assert stat.S_ISREG(mode) and mode & 0o777 == 0o755 and data == initramfs.default_init_script()
    assert archive["bin/busybox"][1] == BUSYBOX and archive["bin/busybox"][0] & 0o111
    assert stat.S_ISLNK(archive["bin/sh"][0]) and archive["bin/sh"][1] == b"busybox"
    mode, _, rdev = archive["dev/console"]
    assert stat.S_ISCHR(mode) and rdev == (5, 1)
    mdir = f"lib/modules/{RELEASE}"
    assert archive[initramfs.MODULE_LIST][1].decode().split() == \
        [f"/{mdir}/{name}.ko" for name in initramfs.INIT_MODULES]
    assert archive[f"{mdir}/virtio_net.ko"][1] == fake_module("virtio_net", "net_failover")
    assert b"virtio_net.ko: net_failover.ko failover.ko" in archive[f"{mdir}/modules.dep"][1]
    assert stat.S_ISDIR(archive["opt"][0]) and stat.S_ISDIR(archive["opt/armvisor"][0])
    assert archive["opt/armvisor/run.sh"][0] & 0o777 == 0o755
    names = list(archive)
    for name in names:                      # every parent comes before its children
        parent = name.rpartition("/")[0]
        assert not parent or names.index(parent) < names.index(name), name


def test_custom_init_and_replacing_files(tmp_path):
    busybox = tmp_path / "busybox"
    busybox.write_bytes(BUSYBOX)
    other = tmp_path / "other_init"
    other.write_bytes(b"#!/bin/sh\necho replaced\n")
    archive = read_newc(gzip.decompress(initramfs.build_initramfs(
        busybox, RELEASE, init=b"#!/bin/sh\necho custom\n")))
    assert archive["init"][1] == b"#!/bin/sh\necho custom\n"
    assert archive[initramfs.MODULE_LIST][1] == b""           # no modules given
    replaced = read_newc(gzip.decompress(initramfs.build_initramfs(
        busybox, RELEASE, extra=[initramfs.parse_extra(f"{other}:/init")])))
    assert replaced["init"][1] == other.read_bytes()


@pytest.mark.parametrize("spec", ["nocolon", "{src}:relative/path", "{src}:/a/../b", "/does/not/exist:/x"])
def test_parse_extra_rejects_bad_specs(tmp_path, spec):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ArmvisorError):
        initramfs.parse_extra(spec.format(src=tmp_path / "f"))


# --- cache -----------------------------------------------------------------

def test_cache_root_precedence(tmp_path):
    assert cache.cache_root({"ARMVISOR_CACHE": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c")
    assert cache.cache_root({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == Path("/x/armvisor")
    assert cache.cache_root({"HOME": "/h"}) == Path("/h/.cache/armvisor")
    assert cache.debian_dir("6.1.0-7", {"ARMVISOR_CACHE": "/c"}) == Path("/c/images/debian/6.1.0-7")


# --- fetching ----------------------------------------------------------------

def test_fetch_lays_out_the_cache_and_is_idempotent(tmp_path, env):
    apt = FakeApt(tmp_path, unsigned=["6.1.0-7", "6.1.0-12"], signed=["6.1.0-13"])
    fetcher = debian.Fetcher(apt=apt, environ=env)
    images = fetcher.fetch()
    assert images.directory == Path(env["ARMVISOR_CACHE"]) / "images/debian/6.1.0-12"
    assert apt.downloads == ["linux-image-6.1.0-12-arm64-unsigned", "busybox-static"]
    assert images.kernel.read_bytes() == fake_image()
    assert images.busybox.read_bytes() == BUSYBOX and os.access(images.busybox, os.X_OK)
    assert images.kernel_release == "6.1.0-12-arm64"
    assert images.module_names == ["virtio_mmio", "virtio_blk", "virtio_console",
                                   "failover", "net_failover", "virtio_net"]
    assert not (images.modules / "unrelated.ko").exists()
    manifest = (images.directory / cache.MANIFEST).read_text()
    assert "kernel-package: linux-image-6.1.0-12-arm64-unsigned 6.1.1-1" in manifest
    assert read_newc(gzip.decompress(images.initramfs.read_bytes()))["bin/busybox"][1] == BUSYBOX

    again = fetcher.fetch()
    assert again.directory == images.directory
    assert len(apt.downloads) == 2                       # nothing downloaded the second time
    fetcher.fetch(force=True)
    assert len(apt.downloads) == 4

    (images.modules / "virtio_blk.ko").unlink()          # incomplete: fetched again
    fetcher.fetch()
    assert len(apt.downloads) == 6
    assert cache.cached_versions(env) == ["6.1.0-12"]
    assert debian.cached_images(environ=env).directory == images.directory


def test_pinned_version_falls_back_to_the_signed_package(tmp_path, env):
    apt = FakeApt(tmp_path, unsigned=["6.1.0-12"], signed=["6.1.0-11", "6.1.0-12"])
    images = debian.Fetcher(apt=apt, environ=env).fetch(version="6.1.0-11")
    assert apt.downloads[0] == "linux-image-6.1.0-11-arm64"
    assert images.kernel_release == "6.1.0-11-arm64"
    with pytest.raises(ArmvisorError, match="6.1.0-99"):
        debian.Fetcher(apt=apt, environ=env).fetch(version="6.1.0-99")


def test_newest_version_prefers_unsigned():
    assert debian.newest_version({"6.1.0-9": ["x-unsigned"], "6.1.0-10": ["x"]}) == "6.1.0-9"
    assert debian.newest_version({"6.1.0-9": ["x"], "6.1.0-10": ["x"]}) == "6.1.0-10"
    assert debian.newest_version({}) is None


def test_without_apt_the_error_explains_from_debs(tmp_path, env):
    apt = FakeApt(tmp_path, [], [], reason="not running as root")
    with pytest.raises(ArmvisorError, match="--from-debs") as info:
        debian.Fetcher(apt=apt, environ=env).fetch(version="6.1.0-7")
    assert "\n" not in str(info.value) and "not running as root" in str(info.value)
    assert apt.downloads == []


def test_without_apt_a_cached_entry_is_still_found(tmp_path, env):
    debian.Fetcher(apt=FakeApt(tmp_path, ["6.1.0-7"], []), environ=env).fetch()
    offline = FakeApt(tmp_path, [], [], reason="apt-get not found")
    images = debian.Fetcher(apt=offline, environ=env).fetch()
    assert images.kernel_release == "6.1.0-7-arm64" and offline.downloads == []


def test_unpinned_without_root_keeps_the_newest_cached_entry(tmp_path, env):
    debian.Fetcher(apt=FakeApt(tmp_path, ["6.1.0-7"], []), environ=env).fetch()
    newer = FakeApt(tmp_path, ["6.1.0-7", "6.1.0-8"], [], reason="not running as root")
    newer.knows_arm64 = lambda: True                      # the lists are readable without root
    assert debian.Fetcher(apt=newer, environ=env).fetch().kernel_release == "6.1.0-7-arm64"
    with pytest.raises(ArmvisorError, match="not running as root"):
        debian.Fetcher(apt=newer, environ=env).fetch(version="6.1.0-8")
    assert newer.downloads == []


def test_from_debs(tmp_path, env):
    kernel = fake_deb(tmp_path / "k.deb", "linux-image-6.1.0-7-arm64-unsigned", "6.1.20-1",
                      kernel_files(compressed=True))
    busybox = fake_deb(tmp_path / "b.deb", "busybox-static", "1:1.35", busybox_files(), "gz")
    fetcher = debian.Fetcher(apt=FakeApt(tmp_path, [], [], reason="no apt"), environ=env)
    images = fetcher.fetch(from_debs=[busybox, kernel])
    assert images.directory.name == "6.1.0-7"
    assert (images.modules / "virtio_mmio.ko").read_bytes() == fake_module("virtio_mmio")
    mtime = images.initramfs.stat().st_mtime_ns
    fetcher.fetch(from_debs=[kernel, busybox])
    assert images.initramfs.stat().st_mtime_ns == mtime  # complete: left alone
    with pytest.raises(ArmvisorError, match="not 6.1.0-8"):
        fetcher.fetch(version="6.1.0-8", from_debs=[kernel, busybox])
    with pytest.raises(ArmvisorError, match="one linux-image"):
        fetcher.fetch(from_debs=[busybox, busybox], force=True)


def test_fetch_into_dest(tmp_path, env):
    dest = tmp_path / "here"
    apt = FakeApt(tmp_path, ["6.1.0-7"], [])
    images = debian.Fetcher(apt=apt, environ=env).fetch(dest=dest)
    assert images.directory == dest and (dest / "Image").is_file()
    assert not Path(env["ARMVISOR_CACHE"]).exists()
    assert debian.cached_images(dest=dest).kernel == dest / "Image"


# --- the command line --------------------------------------------------------

def test_cli_path_fetch_and_initramfs(tmp_path, env, monkeypatch, capsys):
    from armvisor.cli_images import images

    monkeypatch.setenv("ARMVISOR_CACHE", env["ARMVISOR_CACHE"])
    with pytest.raises(click.ClickException, match="images fetch debian"):
        images.main(["path", "debian"], standalone_mode=False)
    kernel = fake_deb(tmp_path / "k.deb", "linux-image-6.1.0-7-arm64-unsigned", "6.1.20-1", kernel_files())
    busybox = fake_deb(tmp_path / "b.deb", "busybox-static", "1:1.35", busybox_files())
    images.main(["fetch", "debian", "--from-debs", str(kernel), str(busybox)], standalone_mode=False)
    directory = Path(env["ARMVISOR_CACHE"]) / "images/debian/6.1.0-7"
    assert capsys.readouterr().out.splitlines() == [str(directory)]

    images.main(["path", "debian"], standalone_mode=False)
    assert capsys.readouterr().out.splitlines() == [str(directory / "Image"),
                                                    str(directory / "initramfs.cpio.gz")]

    script = tmp_path / "check.sh"
    script.write_text("echo check\n")
    out = tmp_path / "custom.cpio.gz"
    images.main(["initramfs", "--out", str(out), "--init", str(script),
                 "--add", f"{script}:/opt/check.sh"], standalone_mode=False)
    archive = read_newc(gzip.decompress(out.read_bytes()))
    assert archive["init"][1] == b"echo check\n" and "opt/check.sh" in archive
    with pytest.raises(click.ClickException, match="SRC:DEST"):
        images.main(["initramfs", "--out", str(out), "--add", "nocolon"], standalone_mode=False)
