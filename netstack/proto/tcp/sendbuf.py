"""The sender's buffer (RFC 9293 3.10.2 SEND, 3.3.1): the bytes the application queued and
the peer has not acknowledged yet, addressed by sequence number, as a sans-IO type the
connection drives.

The buffer covers [:attr:`SendBuffer.seq`, :attr:`SendBuffer.end`): SND.UNA's data (unless
SND.UNA is still on the SYN) up to the last byte queued. Sending copies a range out
(:meth:`SendBuffer.take`), as often as it is retransmitted; an acknowledgement discards what
it covers (:meth:`SendBuffer.acknowledge`). Acknowledged bytes are dropped lazily: the front
of the bytearray is cut only once it is more than 64 KiB and more than half of it, and then
into a fresh bytearray, since views of the old one may still be on their way down.

The SYN and the FIN take sequence space but no bytes; the connection accounts for them.
"""

from __future__ import annotations

from .seq import add, diff

__all__ = ["SendBuffer"]

#: Acknowledged bytes kept at the front of the buffer before it is compacted.
COMPACT_AFTER = 65536


class SendBuffer:
    """Queued, unacknowledged bytes of one connection.

    Args:
        seq: the sequence number of the first byte that will be queued (ISS + 1).
    """

    __slots__ = ("buf", "off", "seq", "end")

    def __init__(self, seq: int) -> None:
        #: The bytes; those before ``off`` are acknowledged and wait to be cut.
        self.buf = bytearray()
        self.off = 0
        #: The sequence number of ``buf[off]``.
        self.seq = seq
        #: The sequence number after the last byte queued.
        self.end = seq

    def __len__(self) -> int:
        """Bytes held: unsent, and sent but unacknowledged."""
        return len(self.buf) - self.off

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` after what is held."""
        self.buf += data
        self.end = add(self.end, len(data))

    def take(self, seq: int, n: int) -> bytearray:
        """A copy of the ``n`` bytes from ``seq`` (which lie in [seq, end)). A copy, not a
        view: the application may append while it is on its way down, and a bytearray with
        views cannot grow."""
        start = self.off + diff(seq, self.seq)
        return self.buf[start : start + n]

    def acknowledge(self, ack: int) -> None:
        """The peer has everything before ``ack``: forget it. An ``ack`` beyond the bytes
        held (the FIN's sequence number) or before them (the SYN's) is clamped."""
        consumed = diff(ack, self.seq)
        available = len(self.buf) - self.off
        if consumed > available:
            consumed = available
        if consumed > 0:
            off = self.off + consumed
            self.seq = add(self.seq, consumed)
            if off > COMPACT_AFTER and off * 2 > len(self.buf):
                # A fresh buffer, not an in-place delete: views of the old one handed out
                # in segments may still be alive.
                self.buf = self.buf[off:]
                off = 0
            self.off = off

    def clear(self) -> None:
        """Forget everything held (the connection is gone)."""
        self.buf = bytearray()
        self.off = 0
        self.end = self.seq
