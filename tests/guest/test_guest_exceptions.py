"""exceptions: EL0/EL1 synchronous exceptions with the MMU on."""

import pytest

CHECKS = [
    "el0 svc #0x42", "el0 load unmapped", "el0 store unmapped", "el0 store read-only",
    "el0 ldp unmapped", "el0 stp unmapped", "el0 ldxr unmapped", "el0 fetch unmapped",
    "el0 fetch UXN page", "el0 mrs sctlr_el1", "el0 mrs ctr_el0 (UCT=0)", "el0 brk #0x55",
    "el1 svc #0x123", "el1 load unmapped", "el1 store unmapped", "el1 brk #0x77", "el1 udf",
    "el0 svc: SP_EL0 in frame", "el0 svc: SP_EL0 preserved", "el0 svc: handler on EL1 stack",
]

# The syndrome part of each line: "vec V ec 0xEC iss 0xISS".
SYNDROMES = {
    "el0 svc #0x42": "vec 8 ec 0x15 iss 0x42",
    "el0 load unmapped": "vec 8 ec 0x24 iss 0x7",
    "el0 store unmapped": "vec 8 ec 0x24 iss 0x47",
    "el0 store read-only": "vec 8 ec 0x24 iss 0x4f",
    "el0 fetch unmapped": "vec 8 ec 0x20 iss 0x7",
    "el0 fetch UXN page": "vec 8 ec 0x20 iss 0xf",
    "el0 mrs sctlr_el1": "vec 8 ec 0x00 iss 0x0",
    "el0 mrs ctr_el0 (UCT=0)": "vec 8 ec 0x18 iss 0x32c001",
    "el1 load unmapped": "vec 4 ec 0x25 iss 0x7",
    "el1 store unmapped": "vec 4 ec 0x25 iss 0x47",
    "el1 brk #0x77": "vec 4 ec 0x3c iss 0x77",
    "el1 udf": "vec 4 ec 0x00 iss 0x0",
}


@pytest.mark.guest
def test_exceptions_1cpu(run_guest):
    run = run_guest("exceptions", 1)
    run.assert_passed()
    for name in CHECKS:
        line = run.line_starting(name + ":")
        assert line.endswith(" ok"), run.describe()
    for name, syndrome in SYNDROMES.items():
        assert run.line_starting(name + ":").startswith(f"{name}: {syndrome} "), run.describe()
