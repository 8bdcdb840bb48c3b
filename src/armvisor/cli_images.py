"""`armvisor images ...`: fetch Debian's arm64 kernel and BusyBox, build initramfs archives.

    armvisor images fetch debian [--kernel-version 6.1.0-50] [--dest DIR] [--force]
                                 [--from-debs KERNEL.deb BUSYBOX.deb]
    armvisor images path debian          # prints the kernel, then the initramfs
    armvisor images initramfs --out FILE [--init FILE] [--add SRC:DEST ...]

Errors become click exceptions: `main()` prints them on one line, exit code 2.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional, Sequence

import click

from armvisor.cli_errors import one_line_errors

DISTROS = click.Choice(["debian"])
VERSION_HELP = "Debian kernel ABI version, e.g. 6.1.0-50 (default: the newest)."


def _progress(message: str) -> None:
    click.echo(f"armvisor: {message}", err=True)


@click.group()
def images() -> None:
    """Guest images: Debian's arm64 kernel and static BusyBox, initramfs archives."""


@images.command()
@click.argument("distro", type=DISTROS)
@click.option("--kernel-version", metavar="VERSION", help=VERSION_HELP)
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="Write the images into DIR instead of the cache.")
@click.option("--force", is_flag=True, help="Fetch again even if the images are there.")
@click.option("--from-debs", nargs=2, type=click.Path(dir_okay=False, path_type=Path),
              metavar="KERNEL.deb BUSYBOX.deb",
              help="Use these arm64 .debs (linux-image-*-arm64[-unsigned], busybox-static) "
                   "instead of apt.")
@one_line_errors
def fetch(distro: str, kernel_version: Optional[str], dest: Optional[Path], force: bool,
          from_debs: Sequence[Path]) -> None:
    """Fetch DISTRO's kernel, modules and BusyBox; build the default initramfs.

    Prints the directory holding Image, initramfs.cpio.gz, busybox and modules/.
    """
    from armvisor.images.debian import Fetcher

    result = Fetcher(log=_progress).fetch(version=kernel_version, dest=dest, force=force,
                                          from_debs=tuple(from_debs or ()))
    click.echo(str(result.directory))


@images.command()
@click.argument("distro", type=DISTROS)
@click.option("--kernel-version", metavar="VERSION", help=VERSION_HELP)
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="The directory given to `fetch --dest`.")
@click.option("--run-options", is_flag=True,
              help="Print them as `--kernel IMAGE --initrd INITRAMFS` for `armvisor run`.")
@one_line_errors
def path(distro: str, kernel_version: Optional[str], dest: Optional[Path],
         run_options: bool) -> None:
    """Print the cached kernel Image and initramfs, one per line."""
    from armvisor.images.debian import cached_images

    found = cached_images(kernel_version, dest)
    if run_options:
        click.echo(f"--kernel {shlex.quote(str(found.kernel))} "
                   f"--initrd {shlex.quote(str(found.initramfs))}")
        return
    click.echo(str(found.kernel))
    click.echo(str(found.initramfs))


@images.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the gzipped cpio archive.")
@click.option("--init", "init_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Script to use as /init (default: the interactive BusyBox init).")
@click.option("--add", "extra", multiple=True, metavar="SRC:DEST",
              help="Copy a host file or directory to DEST in the archive (repeatable).")
@click.option("--kernel-version", metavar="VERSION",
              help="Cached Debian images to take BusyBox and the modules from (default: the newest).")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="Take them from the directory given to `fetch --dest` instead.")
@one_line_errors
def initramfs(out: Path, init_file: Optional[Path], extra: Sequence[str], kernel_version: Optional[str],
              dest: Optional[Path]) -> None:
    """Build an initramfs from the fetched BusyBox and virtio modules."""
    from armvisor.images.debian import cached_images
    from armvisor.images.initramfs import build_initramfs, parse_extra

    found = cached_images(kernel_version, dest)
    additions = [parse_extra(spec) for spec in extra]
    data = build_initramfs(found.busybox, found.kernel_release, found.modules,
                           init=init_file.read_bytes() if init_file else None, extra=additions)
    out.write_bytes(data)
    click.echo(str(out))
