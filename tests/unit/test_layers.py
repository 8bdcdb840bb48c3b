"""Imports go down the layers only: devices never import the board, the hypervisor or
the API; the cpu layer imports nothing above it."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "armvisor"
# Each layer and the packages it must not import.
FORBIDDEN = {
    "cpu": ("armvisor.machine", "armvisor.devices", "armvisor.firmware", "armvisor.hypervisor",
            "armvisor.api", "armvisor.cli"),
    "devices": ("armvisor.machine", "armvisor.firmware", "armvisor.hypervisor", "armvisor.api",
                "armvisor.cli"),
    "firmware": ("armvisor.machine", "armvisor.hypervisor", "armvisor.api", "armvisor.cli"),
    "machine": ("armvisor.hypervisor", "armvisor.api", "armvisor.cli"),
    "hypervisor": ("armvisor.api", "armvisor.cli"),
    "debug": ("armvisor.cli",),
}


def imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_downwards(layer):
    wrong = [f"{path.relative_to(SRC)} imports {module}"
             for path in sorted((SRC / layer).rglob("*.py")) for module in imports(path)
             if module.startswith(FORBIDDEN[layer])]
    assert not wrong
