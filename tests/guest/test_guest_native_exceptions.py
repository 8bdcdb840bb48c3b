"""The guests' own exceptions, taken natively (QEMU's entry) or through Python: same console."""

import pytest

from armvisor.cpu.native_exceptions import ENV_SWITCH


@pytest.mark.guest
@pytest.mark.parametrize("name", ["exceptions", "outside"])
def test_native_and_python_entry_give_the_same_run(run_guest, on_armvisor, monkeypatch, name,
                                                   request):
    if not on_armvisor:
        pytest.skip("compares armvisor's two ways of taking an exception")
    if request.node.callspec.params["run_guest"] == "el2":
        # Code at EL2 needs native delivery: without it --virtualization is refused.
        monkeypatch.setenv(ENV_SWITCH, "0")
        refused = run_guest(name, 1)
        assert refused.returncode == 2 and refused.stderr.splitlines()[-1] == (
            f"armvisor: error: --virtualization needs native exception delivery, which is "
            f"off ({ENV_SWITCH}=0)"), refused.describe()
        return
    monkeypatch.delenv(ENV_SWITCH, raising=False)
    native = run_guest(name, 1)
    native.assert_passed()
    assert "native exception delivery" not in native.stderr
    monkeypatch.setenv(ENV_SWITCH, "0")
    python = run_guest(name, 1)
    python.assert_passed()
    assert python.stderr.startswith(f"armvisor: native exception delivery is off ({ENV_SWITCH}=0)")
    assert python.lines == native.lines
