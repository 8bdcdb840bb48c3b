"""The GICv3 Interrupt Translation Service (IHI0069 chapter 5.2 onwards): MSIs to LPIs.

An ITS turns an event (DeviceID, EventID), written to GITS_TRANSLATER or
named by an INT command, into an LPI made pending on the Redistributor of a
collection. Software describes the translation through a command queue in
guest memory (GITS_CBASER/CWRITER/CREADR) and gives the ITS memory for its
tables (GITS_BASER<n>). The model is QEMU 7.2's `arm-gicv3-its` for a GIC
without GICv4:

- GITS_TYPER: physical LPIs, 12-byte ITT entries, 16 EventID, DeviceID and
  collection ID bits (CIL = 1), PTA = 0 (a collection targets a PE number).
- GITS_BASER0 is the device table and GITS_BASER1 the collection table,
  8-byte entries and 64 KiB pages at reset, flat or two-level (Indirect);
  BASER2-7 are unimplemented (RAZ/WI). BASER<n> and CBASER take writes only
  while the ITS is disabled (an IMPLEMENTATION DEFINED choice QEMU makes).
- The table entry formats are IMPLEMENTATION DEFINED; QEMU's are used:
  DTE = Valid [0], Size [5:1] (EventID bits - 1), ITT address >> 8 [49:6];
  CTE = Valid [0], RDbase (PE number) [16:1]; an ITE is 12 bytes, Valid [0],
  physical [1], pINTID [25:2], ICID [47:32], then a 32-bit doorbell (1023).
- Commands run to completion when CWRITER is written (or the ITS enabled),
  so GITS_CTLR.Quiescent always reads 1 and SYNC has nothing to wait for.
  A command whose parameters are wrong is ignored and the queue moves on; a
  command the ITS cannot read, or a table it cannot read or write, stalls
  the queue (GITS_CREADR.Stalled) until CWRITER is written with Retry set,
  as QEMU does (IHI0069 5.3.2 lists both as permitted).
- A write to GITS_TRANSLATER from a CPU carries DeviceID 0, as in QEMU.

`memory` is the guest's physical memory (contains/read/write); `gic` is the
GIC the LPIs go to (see ItsListener). Every command processed is traced as
"its.command", every one ignored or stalling as "its.error".
"""

from __future__ import annotations

from typing import List, Optional, Protocol, Tuple

from armvisor.devices.gic import registers as r
from armvisor.devices.gic.lpi import GuestMemory

# ------------------------------------------------------- registers (12.19)
GITS_CTLR = 0x0000
GITS_IIDR = 0x0004
GITS_TYPER = 0x0008
GITS_CBASER = 0x0080
GITS_CWRITER = 0x0088
GITS_CREADR = 0x0090
GITS_BASER = 0x0100                 # GITS_BASER<n> at 0x0100 + 8n, n = 0..7
GITS_BASER_COUNT = 8
GITS_TRANSLATER = 0x1_0040          # in the translation frame (second 64 KiB)
TRANSLATION_FRAME = 0x1_0000
ITS_SIZE = 0x2_0000

GITS_CTLR_ENABLED = 1 << 0
GITS_CTLR_QUIESCENT = 1 << 31

ITT_ENTRY_SIZE = 12
EVENTID_BITS = 16
DEVICEID_BITS = 16
COLLECTIONID_BITS = 16
GITS_TYPER_PHYSICAL = 1 << 0
GITS_TYPER_VALUE = (GITS_TYPER_PHYSICAL
                    | (ITT_ENTRY_SIZE - 1) << 4         # ITT_entry_size [7:4]
                    | (EVENTID_BITS - 1) << 8           # IDbits [12:8]
                    | (DEVICEID_BITS - 1) << 13         # Devbits [17:13]
                    | (COLLECTIONID_BITS - 1) << 32     # CIDbits [35:32]
                    | 1 << 36)                          # CIL

BASER_VALID = 1 << 63
BASER_INDIRECT = 1 << 62
BASER_TYPE_SHIFT = 56
BASER_TYPE_MASK = 0x7 << BASER_TYPE_SHIFT
BASER_ENTRY_SIZE_SHIFT = 48
BASER_ENTRY_SIZE_MASK = 0x1F << BASER_ENTRY_SIZE_SHIFT
BASER_PAGE_SIZE_SHIFT = 8
BASER_SIZE_MASK = 0xFF               # pages - 1
BASER_TYPE_DEVICE = 1
BASER_TYPE_COLLECTION = 4
BASER_READ_ONLY = BASER_TYPE_MASK | BASER_ENTRY_SIZE_MASK
L1_ENTRY_SIZE = 8                    # two-level tables (IHI0069 5.2.1): level-1 entries
L1_VALID = 1 << 63
L1_ADDRESS_MASK = 0x000F_FFFF_FFFF_F000
PAGE_SIZES = (0x1000, 0x4000, 0x1_0000, 0x1_0000)   # Page_Size 0b11 is reserved: 64 KiB
DTE_SIZE = 8
CTE_SIZE = 8

CBASER_VALID = 1 << 63
CBASER_ADDRESS_MASK = 0x000F_FFFF_FFFF_F000
CBASER_SIZE_MASK = 0xFF              # 4 KiB pages - 1
COMMAND_SIZE = 32
QUEUE_OFFSET_MASK = 0xF_FFE0         # CWRITER/CREADR Offset [19:5]
CWRITER_RETRY = 1 << 0
CREADR_STALLED = 1 << 0

ITS_ID_BYTES = (0x44, 0x00, 0x00, 0x00, 0x94, 0xB4, 0x3B, 0x00, 0x0D, 0xF0, 0x05, 0xB1)

# ------------------------------------------------------- commands (5.3)
CMD_MOVI = 0x01
CMD_INT = 0x03
CMD_CLEAR = 0x04
CMD_SYNC = 0x05
CMD_MAPD = 0x08
CMD_MAPC = 0x09
CMD_MAPTI = 0x0A
CMD_MAPI = 0x0B
CMD_INV = 0x0C
CMD_INVALL = 0x0D
CMD_MOVALL = 0x0E
CMD_DISCARD = 0x0F
COMMAND_NAMES = {CMD_MOVI: "MOVI", CMD_INT: "INT", CMD_CLEAR: "CLEAR", CMD_SYNC: "SYNC",
                 CMD_MAPD: "MAPD", CMD_MAPC: "MAPC", CMD_MAPTI: "MAPTI", CMD_MAPI: "MAPI",
                 CMD_INV: "INV", CMD_INVALL: "INVALL", CMD_MOVALL: "MOVALL",
                 CMD_DISCARD: "DISCARD"}

DTE_VALID = 1 << 0
CTE_VALID = 1 << 0
ITE_VALID = 1 << 0
ITE_PHYSICAL = 1 << 1
ITE_DOORBELL_NONE = r.INTID_SPURIOUS
_ITT_ADDRESS_MASK = 0x000F_FFFF_FFFF_FF00       # MAPD ITT_addr [51:8]
_RDBASE_MASK = 0xFFFF                          # PTA = 0: RDbase is a PE number


class ItsListener(Protocol):
    cpu_count: int

    def lpi_set_pending(self, cpu: int, intid: int, pending: bool) -> None: ...
    def lpi_move(self, source: int, target: int, intid: int) -> None: ...
    def lpi_move_all(self, source: int, target: int) -> None: ...
    def lpi_invalidate(self, cpu: int, intid: Optional[int]) -> None: ...


class _Stall(Exception):
    """Memory the ITS needs cannot be read or written: the command queue stalls."""


class _Ignored(Exception):
    """A command with wrong parameters: ignored, and the queue moves on."""


def _reset_baser(kind: int) -> int:
    size = DTE_SIZE if kind == BASER_TYPE_DEVICE else CTE_SIZE
    return (kind << BASER_TYPE_SHIFT | (size - 1) << BASER_ENTRY_SIZE_SHIFT
            | 2 << BASER_PAGE_SIZE_SHIFT)


class Its:
    def __init__(self, memory: GuestMemory, gic: ItsListener, trace=None):
        self._memory = memory
        self._gic = gic
        self._trace = trace
        self.reset()

    def reset(self) -> None:
        self.enabled = False
        self.cbaser = 0
        self.cwriter = 0
        self.creadr = 0                  # Offset and Stalled
        self.baser: List[int] = [_reset_baser(BASER_TYPE_DEVICE),
                                 _reset_baser(BASER_TYPE_COLLECTION)] + [0] * 6

    def save_state(self) -> dict:
        return {"enabled": self.enabled, "cbaser": self.cbaser, "cwriter": self.cwriter,
                "creadr": self.creadr, "baser": list(self.baser)}

    def restore_state(self, state: dict) -> None:
        self.enabled = state["enabled"]
        self.cbaser = state["cbaser"]
        self.cwriter = state["cwriter"]
        self.creadr = state["creadr"]
        self.baser = list(state["baser"])

    # ------------------------------------------------------------------ MMIO
    def read(self, offset: int, size: int, cpu: Optional[int] = None) -> Optional[int]:
        """A read of the ITS frames; None for an offset or size that has no register."""
        if offset >= TRANSLATION_FRAME:
            return 0 if size in (2, 4) and not offset % size else None
        if size not in (4, 8) or offset % size:
            return None
        if offset in (GITS_TYPER, GITS_CBASER, GITS_CWRITER, GITS_CREADR) or \
                GITS_BASER <= offset < GITS_BASER + 8 * GITS_BASER_COUNT:
            value = self._read64(offset & ~7)
            if size == 4:
                value = value >> 32 if offset & 4 else value & 0xFFFF_FFFF
            return value
        if size == 8:
            return None
        if offset == GITS_CTLR:
            return GITS_CTLR_QUIESCENT | (GITS_CTLR_ENABLED if self.enabled else 0)
        if offset == GITS_IIDR:
            return r.GIC_IIDR
        if offset in (GITS_TYPER + 4, GITS_CBASER + 4, GITS_CWRITER + 4, GITS_CREADR + 4):
            return self._read64(offset - 4) >> 32
        if r.ID_REGS_BASE <= offset <= 0xFFFC:
            return ITS_ID_BYTES[(offset - r.ID_REGS_BASE) // 4]
        return None

    def _read64(self, offset: int) -> int:
        if offset == GITS_TYPER:
            return GITS_TYPER_VALUE
        if offset == GITS_CBASER:
            return self.cbaser
        if offset == GITS_CWRITER:
            return self.cwriter
        if offset == GITS_CREADR:
            return self.creadr
        return self.baser[(offset - GITS_BASER) // 8]

    def write(self, offset: int, size: int, value: int, cpu: Optional[int] = None) -> bool:
        """A write of the ITS frames; False for an offset or size that has no register."""
        if offset >= TRANSLATION_FRAME:
            if size not in (2, 4) or offset % size:
                return False
            if offset == GITS_TRANSLATER:
                self._translate(0, value, cpu)
            return True
        if size not in (4, 8) or offset % size:
            return False
        wide = offset in (GITS_CBASER, GITS_CWRITER, GITS_CREADR) or \
            GITS_BASER <= offset < GITS_BASER + 8 * GITS_BASER_COUNT
        if size == 8 and not (wide or offset == GITS_TYPER):
            return False
        if offset == GITS_CTLR:
            self._write_ctlr(value, cpu)
        elif wide or offset - 4 in (GITS_CBASER, GITS_CWRITER, GITS_CREADR) or \
                GITS_BASER <= offset < GITS_BASER + 8 * GITS_BASER_COUNT:
            base = offset & ~7
            old = self._read64(base)
            if size == 8:
                new = value
            elif offset & 4:
                new = (old & 0xFFFF_FFFF) | (value & 0xFFFF_FFFF) << 32
            else:
                new = (old & ~0xFFFF_FFFF) | (value & 0xFFFF_FFFF)
            self._write64(base, new, cpu)
        elif not (offset in (GITS_IIDR, GITS_TYPER, GITS_TYPER + 4)
                  or r.ID_REGS_BASE <= offset <= 0xFFFC):
            return False
        return True       # IIDR, TYPER and the ID registers are read-only

    def _write_ctlr(self, value: int, cpu: Optional[int]) -> None:
        enable = bool(value & GITS_CTLR_ENABLED)
        if enable == self.enabled:
            return
        self.enabled = enable
        if self._trace is not None:
            self._trace.emit("its.enable", cpu, enabled=enable)
        if enable:
            self._process(cpu)

    def _write64(self, offset: int, value: int, cpu: Optional[int]) -> None:
        if offset == GITS_CBASER:
            if not self.enabled:
                self.cbaser = value & (CBASER_VALID | 0x7 << 59 | 0x7 << 53
                                       | CBASER_ADDRESS_MASK | 0x3 << 10 | CBASER_SIZE_MASK)
                self.creadr = self.cwriter = 0
        elif offset == GITS_CWRITER:
            self.cwriter = value & QUEUE_OFFSET_MASK
            if value & CWRITER_RETRY:
                self.creadr &= ~CREADR_STALLED
            self._process(cpu)
        elif offset == GITS_CREADR:
            # Writable with one Security state (GICD_CTLR.DS = 1), as QEMU has it.
            if not self.enabled:
                self.creadr = (self.creadr & CREADR_STALLED) | (value & QUEUE_OFFSET_MASK)
        elif offset >= GITS_BASER:
            index = (offset - GITS_BASER) // 8
            if self.baser[index] and not self.enabled:    # BASER2-7: unimplemented
                self.baser[index] = (self.baser[index] & BASER_READ_ONLY) | \
                    (value & ~BASER_READ_ONLY)

    # --------------------------------------------------------- command queue
    def _queue_size(self) -> int:
        return ((self.cbaser & CBASER_SIZE_MASK) + 1) * 0x1000

    def _process(self, cpu: Optional[int]) -> None:
        """Run the commands between CREADR and CWRITER (IHI0069 5.3)."""
        if not self.enabled or not self.cbaser & CBASER_VALID or self.creadr & CREADR_STALLED:
            return
        size = self._queue_size()
        if self.cwriter >= size or self.creadr >= size:
            self._error(cpu, None, f"queue offsets {self.creadr:#x}/{self.cwriter:#x} "
                        f"outside the {size:#x}-byte queue")
            return
        base = self.cbaser & CBASER_ADDRESS_MASK
        while self.creadr != self.cwriter:
            address = base + self.creadr
            try:
                words = self._read_words(address, 4)
                self._command(words, cpu)
            except _Stall as stall:
                self.creadr |= CREADR_STALLED
                self._error(cpu, None, f"stalled at {self.creadr & QUEUE_OFFSET_MASK:#x}: {stall}")
                return
            self.creadr = (self.creadr + COMMAND_SIZE) % size

    def _command(self, words: Tuple[int, ...], cpu: Optional[int]) -> None:
        code = words[0] & 0xFF
        name = COMMAND_NAMES.get(code, f"{code:#04x}")
        if self._trace is not None:
            self._trace.emit("its.command", cpu, command=name,
                             words=[f"{w:#018x}" for w in words])
        device = words[0] >> 32
        event = words[1] & 0xFFFF_FFFF
        try:
            if code == CMD_INT:
                self._translate(device, event, cpu, command=True)
            elif code in (CMD_CLEAR, CMD_DISCARD):
                intid, target, dte = self._lookup(device, event)
                self._gic.lpi_set_pending(target, intid, False)
                if code == CMD_DISCARD:
                    self._write_ite(dte, event, None)
            elif code == CMD_MAPD:
                self._mapd(device, words[1] & 0x1F, words[2] & _ITT_ADDRESS_MASK,
                           bool(words[2] >> 63))
            elif code == CMD_MAPC:
                self._mapc(words[2] & 0xFFFF, (words[2] >> 16) & _RDBASE_MASK,
                           bool(words[2] >> 63))
            elif code in (CMD_MAPTI, CMD_MAPI):
                intid = words[1] >> 32 if code == CMD_MAPTI else event
                self._mapti(device, event, intid, words[2] & 0xFFFF)
            elif code == CMD_MOVI:
                self._movi(device, event, words[2] & 0xFFFF)
            elif code == CMD_MOVALL:
                self._movall((words[2] >> 16) & _RDBASE_MASK, (words[3] >> 16) & _RDBASE_MASK)
            elif code == CMD_INV:
                intid, target, _dte = self._lookup(device, event)
                self._gic.lpi_invalidate(target, intid)
            elif code == CMD_INVALL:
                self._gic.lpi_invalidate(self._collection_target(words[2] & 0xFFFF), None)
            # SYNC: every earlier command has already taken effect. Any other
            # command (GICv4's, or none at all) is ignored, as QEMU does.
        except _Ignored as ignored:
            self._error(cpu, name, str(ignored))

    def _error(self, cpu: Optional[int], command: Optional[str], reason: str) -> None:
        if self._trace is not None:
            self._trace.emit("its.error", cpu, command=command, reason=reason)

    # -------------------------------------------------------------- commands
    def _translate(self, device: int, event: int, cpu: Optional[int],
                   command: bool = False) -> None:
        """An event from `device`: an INT command, or a write to GITS_TRANSLATER."""
        if not self.enabled:
            return
        try:
            intid, target, _dte = self._lookup(device, event)
        except _Ignored as ignored:
            if not command:
                self._error(cpu, "TRANSLATER", str(ignored))
                return
            raise
        except _Stall as stall:
            if command:
                raise
            self._error(cpu, "TRANSLATER", str(stall))
            return
        self._gic.lpi_set_pending(target, intid, True)

    def _mapd(self, device: int, size: int, itt: int, valid: bool) -> None:
        if device >= 1 << DEVICEID_BITS or size >= EVENTID_BITS:
            raise _Ignored(f"DeviceID {device} or Size {size} out of range")
        dte = (DTE_VALID | size << 1 | (itt >> 8) << 6) if valid else 0
        self._write_entry(BASER_TYPE_DEVICE, device, dte)

    def _mapc(self, icid: int, rdbase: int, valid: bool) -> None:
        if valid and rdbase >= self._gic.cpu_count:
            raise _Ignored(f"RDbase {rdbase}: there are {self._gic.cpu_count} PEs")
        self._write_entry(BASER_TYPE_COLLECTION, icid, (CTE_VALID | rdbase << 1) if valid else 0)

    def _mapti(self, device: int, event: int, intid: int, icid: int) -> None:
        dte = self._device(device)
        if event >= self._events(dte):
            raise _Ignored(f"EventID {event} beyond device {device}'s {self._events(dte)}")
        if not r.LPI_BASE <= intid < 1 << r.INTID_BITS:
            raise _Ignored(f"pINTID {intid} is not an LPI")
        if icid >= 1 << COLLECTIONID_BITS or icid >= self._table_entries(BASER_TYPE_COLLECTION):
            raise _Ignored(f"ICID {icid} out of range")
        self._write_ite(dte, event, (intid, icid))

    def _movi(self, device: int, event: int, icid: int) -> None:
        intid, source, dte = self._lookup(device, event)
        target = self._collection_target(icid)
        if source != target:
            self._gic.lpi_move(source, target, intid)
        self._write_ite(dte, event, (intid, icid))

    def _movall(self, source: int, target: int) -> None:
        count = self._gic.cpu_count
        if source >= count or target >= count:
            raise _Ignored(f"RDbase {source} or {target}: there are {count} PEs")
        if source != target:
            self._gic.lpi_move_all(source, target)

    # ---------------------------------------------------------------- tables
    def _lookup(self, device: int, event: int) -> Tuple[int, int, int]:
        """(pINTID, target PE, DTE) an event translates to; _Ignored if it does not."""
        dte = self._device(device)
        if event >= self._events(dte):
            raise _Ignored(f"EventID {event} beyond device {device}'s {self._events(dte)}")
        ite = self._read_ite(dte, event)
        if ite is None:
            raise _Ignored(f"device {device} event {event} is not mapped")
        intid, icid = ite
        return intid, self._collection_target(icid), dte

    def _device(self, device: int) -> int:
        if device >= 1 << DEVICEID_BITS:
            raise _Ignored(f"DeviceID {device} out of range")
        dte = self._read_entry(BASER_TYPE_DEVICE, device)
        if not dte & DTE_VALID:
            raise _Ignored(f"device {device} is not mapped")
        return dte

    @staticmethod
    def _events(dte: int) -> int:
        return 1 << (((dte >> 1) & 0x1F) + 1)

    def _collection_target(self, icid: int) -> int:
        if icid >= 1 << COLLECTIONID_BITS:
            raise _Ignored(f"ICID {icid} out of range")
        cte = self._read_entry(BASER_TYPE_COLLECTION, icid)
        if not cte & CTE_VALID:
            raise _Ignored(f"collection {icid} is not mapped")
        target = (cte >> 1) & _RDBASE_MASK
        if target >= self._gic.cpu_count:
            raise _Ignored(f"collection {icid} targets PE {target}, which does not exist")
        return target

    def _table(self, kind: int) -> Optional[Tuple[int, int, int, int, bool]]:
        """(base address, entry size, entries, page size, indirect) of a valid table, or None."""
        index = 0 if kind == BASER_TYPE_DEVICE else 1
        baser = self.baser[index]
        if not baser & BASER_VALID:
            return None
        page = PAGE_SIZES[(baser >> BASER_PAGE_SIZE_SHIFT) & 3]
        if page == 0x1_0000:          # 64 KiB pages: PA[51:48] in bits [15:12]
            base = (baser & 0x0000_FFFF_FFFF_0000) | ((baser >> 12) & 0xF) << 48
        else:
            base = baser & 0x0000_FFFF_FFFF_F000
        entry = ((baser & BASER_ENTRY_SIZE_MASK) >> BASER_ENTRY_SIZE_SHIFT) + 1
        size = ((baser & BASER_SIZE_MASK) + 1) * page
        if baser & BASER_INDIRECT:
            # Level 1: 8-byte entries, each naming one page of level-2 entries.
            return base, entry, size // L1_ENTRY_SIZE * (page // entry), page, True
        return base, entry, size // entry, page, False

    def _table_entries(self, kind: int) -> int:
        table = self._table(kind)
        return 0 if table is None else table[2]

    def _entry_address(self, kind: int, index: int) -> Optional[int]:
        """Where entry `index` is; None if no table or level-2 page holds it (not mapped).

        An index past the table is _Ignored; a level-1 entry that cannot be read stalls.
        """
        table = self._table(kind)
        if table is None:
            return None
        base, entry, count, page, indirect = table
        if index >= count:
            raise _Ignored(f"ID {index} past the {count}-entry table")
        if not indirect:
            return base + index * entry
        per_page = page // entry
        level1 = self._read_words(base + index // per_page * L1_ENTRY_SIZE, 1)[0]
        if not level1 & L1_VALID:
            return None
        return (level1 & L1_ADDRESS_MASK) + index % per_page * entry

    def _read_entry(self, kind: int, index: int) -> int:
        try:
            address = self._entry_address(kind, index)
        except _Ignored:
            return 0                  # past the table's end: not mapped
        return 0 if address is None else self._read_words(address, 1)[0]

    def _write_entry(self, kind: int, index: int, value: int) -> None:
        address = self._entry_address(kind, index)
        if address is not None:       # as QEMU: no table (or level-2 page), no effect
            self._store(address, value.to_bytes(8, "little"))

    def _read_ite(self, dte: int, event: int) -> Optional[Tuple[int, int]]:
        address = ((dte >> 6) << 8) + event * ITT_ENTRY_SIZE
        low = self._read_words(address, 1)[0]
        if not low & ITE_VALID or not low & ITE_PHYSICAL:
            return None
        return (low >> 2) & 0xFF_FFFF, (low >> 32) & 0xFFFF

    def _write_ite(self, dte: int, event: int, mapping: Optional[Tuple[int, int]]) -> None:
        address = ((dte >> 6) << 8) + event * ITT_ENTRY_SIZE
        if mapping is None:
            data = bytes(ITT_ENTRY_SIZE)
        else:
            intid, icid = mapping
            low = ITE_VALID | ITE_PHYSICAL | intid << 2 | icid << 32
            data = low.to_bytes(8, "little") + ITE_DOORBELL_NONE.to_bytes(4, "little")
        self._store(address, data)

    def _read_words(self, address: int, count: int) -> Tuple[int, ...]:
        if not self._memory.contains(address, 8 * count):
            raise _Stall(f"cannot read {8 * count} bytes at {address:#x}")
        data = self._memory.read(address, 8 * count)
        return tuple(int.from_bytes(data[i:i + 8], "little") for i in range(0, 8 * count, 8))

    def _store(self, address: int, data: bytes) -> None:
        if not self._memory.contains(address, len(data)):
            raise _Stall(f"cannot write {len(data)} bytes at {address:#x}")
        self._memory.write(address, data)
