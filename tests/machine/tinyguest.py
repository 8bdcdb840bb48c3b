"""Tiny inline-assembly guests for the core and board tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from armvisor.devtools.cross import build_program, have_cross_tools


def build(tmp_path: Path, body: str, name: str = "guest") -> Path:
    if not have_cross_tools():
        pytest.skip("needs Debian's binutils-aarch64-linux-gnu")
    return build_program(tmp_path, body, name)
