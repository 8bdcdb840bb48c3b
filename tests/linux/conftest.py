"""Fixtures for the tests that boot Debian's arm64 kernel.

`debian_images` fetches the kernel, modules and BusyBox through the same code
as `armvisor images fetch debian` (once; later sessions find them cached).
Where they cannot be had (no apt, not root, no network) the tests are
skipped, except in CI (CI=true), where that is a failure: CI must never
silently skip Linux.
"""

from __future__ import annotations

import os
import sys

import pytest

from armvisor.errors import ArmvisorError
from armvisor.images.cache import ImageSet
from armvisor.images.debian import Fetcher

# Pins the kernel, e.g. 6.1.0-50; default: the newest one apt knows (or the newest cached).
KERNEL_VERSION_ENV = "ARMVISOR_DEBIAN_KERNEL"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def debian_images() -> ImageSet:
    """The cached images: .kernel (Image), .modules (dir), .busybox, .initramfs, .kernel_release."""
    version = os.environ.get(KERNEL_VERSION_ENV) or None
    try:
        return Fetcher(log=lambda message: print(f"armvisor: {message}", file=sys.stderr)).fetch(
            version=version)
    except (ArmvisorError, OSError) as exc:
        reason = f"Debian arm64 kernel and BusyBox unavailable: {exc}"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
