"""Shows the kvm-unit-tests table (tests/thirdparty/test_kvm_unit_tests.py) and the seed
hypervisor's comparison with QEMU (test_seed_hypervisor.py) after a run."""

from __future__ import annotations

from tests.thirdparty.kvm_unit_tests import TABLE_KEY
from tests.thirdparty.seed_transcripts import SUMMARY_KEY


def pytest_terminal_summary(terminalreporter, config):
    text = config.stash.get(TABLE_KEY, None)
    if text:
        terminalreporter.write_sep("=", "kvm-unit-tests: QEMU against armvisor")
        terminalreporter.write_line(text)
    seed = config.stash.get(SUMMARY_KEY, None)
    if seed:
        terminalreporter.write_sep("=", "seed hypervisor: QEMU against armvisor")
        for report in seed:
            terminalreporter.write_line(report)
