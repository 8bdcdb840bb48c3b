"""Per-interrupt state, held as bitmaps indexed by INTID.

One `IrqBank` holds the private interrupts (SGIs and PPIs, INTIDs 0-31) of
one PE, another the SPIs of the whole GIC (bits 32 and up). Bitmaps make the
set/clear register pairs one integer operation each and let the core find
the pending-and-enabled candidates of a PE with a handful of ANDs, instead of
walking every INTID (IHI0069 4.1 "Interrupt lifecycle" gives the states).

A level-sensitive interrupt is pending while its input line is high OR its
software latch (ISPENDR, SETSPI) is set; an edge-triggered one only through
the latch, which a rising edge sets (IHI0069 4.1.2).
"""

from __future__ import annotations

from armvisor.devices.gic.registers import GROUP0, GROUP1, GROUP1S, NS_PRIORITY_BIT

WORD_MASK = 0xFFFF_FFFF


class IrqBank:
    """Bitmaps for the INTIDs in `valid`; `priority` is indexed by INTID."""

    __slots__ = ("valid", "group", "enabled", "latch", "line", "active", "edge",
                 "priority", "fixed_edge", "grpmod", "nsacr", "group1_at_reset")

    def __init__(self, size: int, valid: int, fixed_edge: int = 0, group1_at_reset: bool = True):
        self.valid = valid              # INTIDs this bank implements
        self.fixed_edge = fixed_edge    # INTIDs whose config is edge and read-only (SGIs)
        self.group1_at_reset = group1_at_reset
        self.priority = bytearray(size)
        self.line = 0                   # input levels: wires, not state a reset changes
        self.reset()

    def reset(self) -> None:
        # With one Security state, Group 1 at reset, as QEMU's virt does when it
        # boots a kernel without Secure firmware (GICv3State.irq_reset_nonsecure):
        # the guest runs in Non-secure EL1 and Group 0 would only ever signal FIQs.
        # With two, Group 0, the architectural reset (IHI0069 12.9 GICD_IGROUPR<n>):
        # the Secure firmware hands interrupts to the Non-secure world itself.
        self.group = self.valid if self.group1_at_reset else 0
        self.grpmod = 0                 # IGRPMODR: Secure Group 1 where group is 0 (DS == 0)
        self.nsacr = 0                  # NSACR: 2 bits per INTID, bits [2x+1:2x] (DS == 0)
        self.enabled = 0
        self.latch = 0
        self.active = 0
        self.edge = self.fixed_edge
        self.priority[:] = bytes(len(self.priority))

    def secure_group1(self) -> int:
        """INTIDs in Secure Group 1 (IGROUPR 0, IGRPMODR 1); only DS == 0 sets grpmod."""
        return self.grpmod & ~self.group

    def group_of(self, intid: int) -> int:
        """GROUP0, GROUP1 (Non-secure) or GROUP1S of one INTID (IHI0069 Table 3-1)."""
        bit = 1 << intid
        if self.group & bit:
            return GROUP1
        return GROUP1S if self.grpmod & bit else GROUP0

    def nsacr_at_least(self, level: int) -> int:
        """INTIDs whose NSACR NS_access field is `level` or more."""
        mask = 0
        fields = self.nsacr
        x = 0
        while fields:
            if fields & 0b11 >= level:
                mask |= 1 << x
            fields >>= 2
            x += 1
        return mask

    def pending(self) -> int:
        return self.latch | (self.line & ~self.edge)

    def read_priority(self, intid: int, ns: bool) -> int:
        """IPRIORITYR's byte for `intid`; to a Non-secure access (DS == 0) a Secure
        interrupt's is RAZ and a Non-secure one's is in the Non-secure view."""
        if not ns:
            return self.priority[intid]
        if not self.group >> intid & 1:
            return 0
        return ns_priority_view(self.priority[intid])

    def write_priority(self, intid: int, value: int, ns: bool) -> bool:
        """A write of IPRIORITYR's byte for `intid` (a Non-secure access's: WI for a
        Secure interrupt, from the Non-secure view otherwise); whether it changed."""
        if ns:
            if not self.group >> intid & 1:
                return False
            value = ns_priority_written(value)
        if self.priority[intid] == value:
            return False
        self.priority[intid] = value
        return True

    # A bitmap is as wide as the bank (288 bits for virt's SPIs): wider than
    # the 64-bit integers a snapshot holds, so it is saved as little-endian bytes.
    _BITMAPS = ("group", "enabled", "latch", "line", "active", "edge", "grpmod")

    def save_state(self) -> dict:
        width = len(self.priority) // 8
        state = {name: getattr(self, name).to_bytes(width, "little") for name in self._BITMAPS}
        state["nsacr"] = self.nsacr.to_bytes(2 * width, "little")
        state["priority"] = bytes(self.priority)
        return state

    def restore_state(self, state: dict) -> None:
        size = len(self.priority)
        if len(state["priority"]) != size:
            raise ValueError(f"the snapshot's interrupt bank has {len(state['priority'])} "
                             f"INTIDs, this one {size}")
        for name in self._BITMAPS:
            # grpmod and nsacr came with the Security Extensions: older snapshots
            # are of a GIC with one Security state, where both are 0.
            setattr(self, name, int.from_bytes(state.get(name, b""), "little"))
        self.nsacr = int.from_bytes(state.get("nsacr", b""), "little")
        self.priority[:] = state["priority"]

    def candidates(self) -> int:
        """INTIDs that are pending, enabled and not active: the ones that may be signalled."""
        return (self.latch | (self.line & ~self.edge)) & self.enabled & ~self.active


def ns_priority_view(priority: int) -> int:
    """What Non-secure software reads for a priority in the Non-secure range
    (bit 7 set): shifted one bit left (IHI0069 4.8.6)."""
    return (priority << 1) & 0xFF


def ns_priority_written(value: int) -> int:
    """The priority a Non-secure write of `value` sets: in the Non-secure range (4.8.6)."""
    return NS_PRIORITY_BIT | (value >> 1)


def word_of(bitmap: int, index: int) -> int:
    """Word `index` of a bit-per-INTID register family (INTIDs 32*index .. +31)."""
    return (bitmap >> (32 * index)) & WORD_MASK


def spread_icfgr(edge: int, index: int) -> int:
    """ICFGR<index> from an edge bitmap: Int_config bit [2x+1] for INTID 16*index + x."""
    bits = (edge >> (16 * index)) & 0xFFFF
    value = 0
    x = 0
    while bits:
        if bits & 1:
            value |= 0b10 << (2 * x)
        bits >>= 1
        x += 1
    return value


def gather_icfgr(value: int) -> int:
    """The 16 edge bits an ICFGR word configures (its odd bits)."""
    bits = 0
    for x in range(16):
        if value & (0b10 << (2 * x)):
            bits |= 1 << x
    return bits


# Offsets of the bit-per-INTID register families, identical in the
# Distributor and in the Redistributor's SGI_base frame (12.8, 12.10).
IGROUPR = 0x0080
ISENABLER = 0x0100
ICENABLER = 0x0180
ISPENDR = 0x0200
ICPENDR = 0x0280
ISACTIVER = 0x0300
ICACTIVER = 0x0380
BITMAP_FAMILIES = (IGROUPR, ISENABLER, ICENABLER, ISPENDR, ICPENDR, ISACTIVER, ICACTIVER)


def read_bitmap(bank: IrqBank, family: int, index: int, allowed: int = -1) -> int:
    """A read of word `index` of `family`; unimplemented INTIDs read as zero, and so
    do those outside `allowed` (a Non-secure access's view of Secure interrupts)."""
    if family == IGROUPR:
        bitmap = bank.group
    elif family in (ISENABLER, ICENABLER):
        bitmap = bank.enabled
    elif family in (ISPENDR, ICPENDR):
        bitmap = bank.pending()
    else:
        bitmap = bank.active
    return word_of(bitmap & bank.valid & allowed, index)


def write_bitmap(bank: IrqBank, family: int, index: int, value: int, allowed: int = -1) -> int:
    """A write of word `index` of `family`, ignored for INTIDs outside `allowed`;
    returns the INTIDs whose state it touched."""
    bits = ((value & WORD_MASK) << (32 * index)) & bank.valid & allowed
    if family == IGROUPR:
        word = WORD_MASK << (32 * index) & bank.valid & allowed
        changed = (bank.group ^ bits) & word
        bank.group = (bank.group & ~word) | bits
        return changed
    if family == ISENABLER:
        bank.enabled |= bits
    elif family == ICENABLER:
        bank.enabled &= ~bits
    elif family == ISPENDR:
        bank.latch |= bits
    elif family == ICPENDR:
        bank.latch &= ~bits
    elif family == ISACTIVER:
        bank.active |= bits
    else:
        bank.active &= ~bits
    return bits


def write_word(bitmap: int, index: int, value: int, valid: int) -> int:
    """`bitmap` with word `index` replaced by `value` where `valid` (IGRPMODR, NSACR)."""
    word = (WORD_MASK << (32 * index)) & valid
    return (bitmap & ~word) | (((value & WORD_MASK) << (32 * index)) & word)
