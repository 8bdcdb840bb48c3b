"""GDB remote serial protocol framing (GDB manual, "Overview" and "Binary Data").

A packet is `$data#cc` (cc: the sum of the data bytes mod 256, two hex
digits); the receiver answers `+` or `-`. `}` escapes `#`, `$`, `}` and `*`
as the byte XOR 0x20. A lone 0x03 byte outside any packet is the
interrupt request (GDB manual, "Interrupts").
"""

from __future__ import annotations

from typing import List, Union

INTERRUPT = object()          # what `feed` yields for a 0x03 byte
RESEND = object()             # the debugger sent `-`: our last packet arrived damaged
CORRUPT = object()            # a packet with a bad checksum: answer `-`
ESCAPE = 0x7D
ESCAPED = b"#$}*"


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def frame(data: Union[str, bytes]) -> bytes:
    """`data` as a packet on the wire, escaped where the protocol requires it."""
    if isinstance(data, str):
        data = data.encode("latin-1")
    body = bytearray()
    for byte in data:
        if byte in ESCAPED:
            body += bytes((ESCAPE, byte ^ 0x20))
        else:
            body.append(byte)
    return b"$" + bytes(body) + b"#%02x" % checksum(body)


def unescape(data: bytes) -> bytes:
    """The binary payload of an `X` packet or similar (GDB manual, "Binary Data")."""
    out = bytearray()
    escaped = False
    for byte in data:
        if escaped:
            out.append(byte ^ 0x20)
            escaped = False
        elif byte == ESCAPE:
            escaped = True
        else:
            out.append(byte)
    return bytes(out)


class PacketReader:
    """Turns bytes from the debugger into packets, interrupts and acks.

    `feed` returns what completed: bytes (a packet's data, still escaped:
    only binary packets unescape it), INTERRUPT, RESEND or CORRUPT. Acks
    (`+`) are dropped.
    """

    def __init__(self):
        self._buffer = bytearray()
        self._in_packet = False

    def feed(self, data: bytes) -> List[object]:
        out: List[object] = []
        for byte in data:
            if not self._in_packet:
                if byte == 0x03:
                    out.append(INTERRUPT)
                elif byte == ord("$"):
                    self._in_packet = True
                    self._buffer.clear()
                elif byte == ord("-"):
                    out.append(RESEND)
                continue              # '+' and noise between packets
            self._buffer.append(byte)
            # '#' and two checksum digits end a packet; an escaped '#' is preceded by '}'.
            buf = self._buffer
            if len(buf) >= 3 and buf[-3] == ord("#") and (len(buf) < 4 or buf[-4] != ESCAPE):
                body, digits = bytes(buf[:-3]), bytes(buf[-2:])
                self._in_packet = False
                buf.clear()
                try:
                    good = int(digits, 16) == checksum(body)
                except ValueError:
                    good = False
                out.append(body if good else CORRUPT)
        return out
