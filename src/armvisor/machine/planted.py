"""Planted bugs: test-only model options that remove a lock, never on by default.

They exist to prove that `armvisor explore` finds the SMP races this tool is
for. Each one opens an *unlocked window*: a check and the change it guards,
which the correct model does in one step under a lock, come apart. Whether
another CPU runs inside the window is a scheduling decision (`window`, see
schedule.py): the default schedule closes every window at the end of the
caller's slice, before any other lane runs, so a default run never sees the
bug; a schedule that keeps it open until the caller's lane's next turn lets
every other lane run inside it.
"""

from __future__ import annotations

from typing import Dict, List

# name -> what removing the lock does (the --plant-bug choices).
PLANTED_BUGS = {
    "psci-off-unlocked": "bare board: the firmware publishes a CPU_OFF (AFFINITY_INFO "
                         "says OFF) before the core is down, without the target's lock "
                         "(TF-A's aff_info race): a CPU_ON inside the window is lost",
    "vpsci-unlocked": "hypervisor: virtual CPU_ON checks the target and starts it "
                      "without the per-vCPU lock: two racing CPU_ONs both get SUCCESS",
}


def check_planted(names) -> tuple:
    from armvisor.errors import ArmvisorError
    names = tuple(names)
    for name in names:
        if name not in PLANTED_BUGS:
            raise ArmvisorError(f"unknown planted bug {name!r} (one of "
                                f"{', '.join(sorted(PLANTED_BUGS))})")
    return names


class UnlockedWindows:
    """Work left for a lane's next turn: the closing half of each open window.

    Each entry is plain data ([action, args...]) so a snapshot keeps it;
    the owner (a board) knows what each action does.
    """

    def __init__(self):
        self._open: Dict[int, List[list]] = {}

    def defer(self, lane: int, action: str, *args) -> None:
        self._open.setdefault(lane, []).append([action, *args])

    def has(self, lane: int) -> bool:
        return lane in self._open

    def has_other(self, lane: int) -> bool:
        """Work is left for a lane other than `lane`."""
        return any(other != lane for other in self._open)

    def take(self, lane: int) -> List[list]:
        return self._open.pop(lane, [])

    def save_state(self) -> dict:
        return {str(lane): items for lane, items in self._open.items()}

    def restore_state(self, state: dict) -> None:
        self._open = {int(lane): [list(item) for item in items] for lane, items in state.items()}
