"""One Redistributor's LPIs: GICR_PROPBASER, GICR_PENDBASER, EnableLPIs and the pending LPIs.

LPIs (IHI0069 chapter 5) keep their configuration in guest memory: one byte
per LPI in the table GICR_PROPBASER points at (priority [7:2], enable [0];
INTID 8192 is byte 0), and one pending bit per INTID in the table of
GICR_PENDBASER (the first 1 KiB, INTIDs 0-8191, is IMPLEMENTATION DEFINED
and unused). LPIs are always Group 1 here and have no active state: an
acknowledge clears the pending bit (IHI0069 5.1).

The model keeps the pending LPIs in a dict, each with its configuration byte
as last read: a byte is read when its LPI becomes pending and again on
INV/INVALL, as the architecture allows a Redistributor to cache the
configuration until an invalidation (IHI0069 5.1.1). The pending table in
memory is written through on every change, and read when EnableLPIs goes
from 0 to 1 (unless the guest set GICR_PENDBASER.PTZ to say it is all zero).

`memory` is the guest's physical memory as the GIC sees it (`contains`,
`read`, `write`); a table outside it reads as zero and takes no writes.
"""

from __future__ import annotations

from typing import Dict, Optional, Protocol, Tuple

from armvisor.devices.gic import registers as r

_PENDING_TABLE_LPI_START = r.LPI_BASE // 8        # the byte holding INTID 8192's bit


class GuestMemory(Protocol):
    def contains(self, address: int, size: int = 1) -> bool: ...
    def read(self, address: int, size: int) -> bytes: ...
    def write(self, address: int, data: bytes) -> None: ...


class LpiState:
    def __init__(self, memory: GuestMemory):
        self._memory = memory
        self.reset()

    def reset(self) -> None:
        self.enabled = False            # GICR_CTLR.EnableLPIs
        self.propbaser = 0
        self.pendbaser = 0              # as read back: PTZ is write-only
        self.pending_table_zero = False  # PTZ written with the last PENDBASER
        self.pending: Dict[int, int] = {}   # pending LPI -> its configuration byte

    def save_state(self) -> dict:
        return {"enabled": self.enabled, "propbaser": self.propbaser,
                "pendbaser": self.pendbaser, "ptz": self.pending_table_zero,
                "pending": [[intid, config] for intid, config in sorted(self.pending.items())]}

    def restore_state(self, state: dict) -> None:
        self.enabled = state["enabled"]
        self.propbaser = state["propbaser"]
        self.pendbaser = state["pendbaser"]
        self.pending_table_zero = state["ptz"]
        self.pending = {intid: config for intid, config in state["pending"]}

    # ------------------------------------------------------------ registers
    def write_propbaser(self, value: int) -> None:
        # IHI0069 12.11 GICR_PROPBASER: writes while EnableLPIs is 1 are
        # UNPREDICTABLE; here they are ignored, so the cached state stays true.
        if not self.enabled:
            self.propbaser = value

    def write_pendbaser(self, value: int) -> None:
        if not self.enabled:
            self.pendbaser = value & ~r.PENDBASER_PTZ
            self.pending_table_zero = bool(value & r.PENDBASER_PTZ)

    def intid_limit(self) -> int:
        """One past the largest LPI INTID the configuration table covers (8192: none)."""
        bits = min((self.propbaser & r.PROPBASER_IDBITS_MASK) + 1, r.INTID_BITS)
        return 1 << bits if bits >= r.MIN_LPI_INTID_BITS else r.LPI_BASE

    def valid(self, intid: int) -> bool:
        return r.LPI_BASE <= intid < self.intid_limit()

    def set_enabled(self, enable: bool) -> bool:
        """GICR_CTLR.EnableLPIs; True if the pending LPIs may have changed."""
        if enable == self.enabled:
            return False
        self.enabled = enable
        self.pending = {}
        if enable and not self.pending_table_zero:
            self._load_pending_table()
        self.pending_table_zero = False
        return True

    # ------------------------------------------------------------ LPI state
    def set_pending(self, intid: int, pending: bool) -> bool:
        """Make `intid` pending or not (an ITS translation, CLEAR, DISCARD, an ack).

        Ignored while LPIs are disabled or for an INTID the tables do not
        cover; True if the state this Redistributor signals may have changed.
        """
        if not self.enabled or not self.valid(intid):
            return False
        if pending:
            self.pending[intid] = self._config(intid)
        elif self.pending.pop(intid, None) is None:
            return False
        self._write_pending_bit(intid, pending)
        return True

    def take_pending(self, intid: int) -> bool:
        """Remove `intid` from the pending LPIs (it moves to another PE); True if it was."""
        if intid not in self.pending:
            return False
        del self.pending[intid]
        self._write_pending_bit(intid, False)
        return True

    def invalidate(self, intid: Optional[int] = None) -> bool:
        """INV (one LPI) / INVALL (all): read the configuration bytes again."""
        if not self.enabled:
            return False
        targets = list(self.pending) if intid is None else (
            [intid] if intid in self.pending else [])
        for lpi in targets:
            self.pending[lpi] = self._config(lpi)
        return bool(targets)

    def best(self) -> Optional[Tuple[int, int]]:
        """The pending, enabled LPI to signal, as (intid, priority): the lowest priority
        value, then the lowest INTID."""
        if not self.enabled or not self.pending:
            return None
        best = None
        for intid, config in self.pending.items():
            if config & r.LPI_CONFIG_ENABLE:
                key = (config & r.LPI_CONFIG_PRIORITY_MASK, intid)
                if best is None or key < best:
                    best = key
        return None if best is None else (best[1], best[0])

    # --------------------------------------------------------------- memory
    def _config(self, intid: int) -> int:
        address = (self.propbaser & r.PROPBASER_ADDRESS_MASK) + intid - r.LPI_BASE
        if not self._memory.contains(address, 1):
            return 0
        return self._memory.read(address, 1)[0]

    def _write_pending_bit(self, intid: int, pending: bool) -> None:
        address = (self.pendbaser & r.PENDBASER_ADDRESS_MASK) + intid // 8
        if not self._memory.contains(address, 1):
            return
        byte = self._memory.read(address, 1)[0]
        bit = 1 << (intid % 8)
        new = byte | bit if pending else byte & ~bit
        if new != byte:
            self._memory.write(address, bytes((new,)))

    def _load_pending_table(self) -> None:
        base = self.pendbaser & r.PENDBASER_ADDRESS_MASK
        end = self.intid_limit() // 8
        if end <= _PENDING_TABLE_LPI_START:
            return
        start = base + _PENDING_TABLE_LPI_START
        if not self._memory.contains(start, end - _PENDING_TABLE_LPI_START):
            return
        bits = int.from_bytes(self._memory.read(start, end - _PENDING_TABLE_LPI_START), "little")
        while bits:
            low = bits & -bits
            intid = r.LPI_BASE + low.bit_length() - 1
            self.pending[intid] = self._config(intid)
            bits ^= low
