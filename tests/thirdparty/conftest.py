"""Shows the kvm-unit-tests table (tests/thirdparty/test_kvm_unit_tests.py) after a run."""

from __future__ import annotations

from tests.thirdparty.kvm_unit_tests import TABLE_KEY


def pytest_terminal_summary(terminalreporter, config):
    text = config.stash.get(TABLE_KEY, None)
    if text:
        terminalreporter.write_sep("=", "kvm-unit-tests: QEMU against armvisor")
        terminalreporter.write_line(text)
