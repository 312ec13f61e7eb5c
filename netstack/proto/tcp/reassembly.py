"""The receiver's out-of-order queue (RFC 9293 3.10.7.4, seventh check: segments beyond
RCV.NXT are held for later processing) and the SACK blocks that describe it (RFC 2018), as a
sans-IO type the connection drives.

Segments that arrive beyond a hole are kept, each a copy, keyed by its sequence number. What
may be kept is bounded: at most ``limit`` segments, each already trimmed to the window the
connection offered. When the hole fills, :meth:`Reassembly.pop_ready` hands back, in order,
the data that now follows RCV.NXT, each byte once, whatever overlaps the segments had.

RFC 2018 4: the receiver reports what it holds in SACK blocks, the block holding the most
recently received segment first, then the most recently reported others. :attr:`blocks`
keeps at most :data:`MAX_BLOCKS` disjoint, non-adjacent ranges in that order (an ACK carries
at most four; a few more are remembered so a block that was pushed out can come back when a
later segment joins it to a newer one). Blocks below RCV.NXT are dropped when the hole fills.

A FIN beyond a hole waits here too (:attr:`Reassembly.fin`) until the data before it arrives.
"""

from __future__ import annotations

from .seq import add, diff

__all__ = ["ADDED", "DUPLICATE", "FULL", "MAX_BLOCKS", "Reassembly"]

#: RFC 2018 4: blocks remembered, newest first (more than the four an ACK has room for).
MAX_BLOCKS = 8
#: What :meth:`Reassembly.add` did with a segment.
ADDED, DUPLICATE, FULL = 0, 1, 2


class Reassembly:
    """Out-of-order segments of one connection, and their SACK blocks.

    Args:
        limit: the most segments kept at once (TcpConfig.max_ooo_segments).
    """

    __slots__ = ("segments", "blocks", "fin", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Out-of-order segments by sequence number (each copied, each within the window).
        self.segments: dict[int, bytes] = {}
        #: Received out-of-order ranges [left, right), newest first (RFC 2018 4).
        self.blocks: list[list[int]] = []
        #: The sequence number of a FIN that arrived beyond a hole, or None.
        self.fin: int | None = None

    def __len__(self) -> int:
        return len(self.segments)

    def add(self, seq: int, data: bytes | bytearray | memoryview) -> int:
        """Keep ``data``, which starts at ``seq``, beyond RCV.NXT.

        Returns:
            ADDED; DUPLICATE when a segment at least as long is held from ``seq`` (RFC 2883:
            the caller reports it); FULL when ``limit`` segments are held (it is dropped).
        """
        segments = self.segments
        held = segments.get(seq)
        if held is not None and len(held) >= len(data):
            return DUPLICATE
        if len(segments) >= self.limit:
            return FULL
        segments[seq] = bytes(data)
        # RFC 2018 4: the block with the newest segment comes first; blocks it touches or
        # overlaps merge into it.
        left, right = seq, add(seq, len(data))
        kept = []
        for b in self.blocks:
            if diff(b[1], left) >= 0 and diff(right, b[0]) >= 0:
                if diff(b[0], left) < 0:
                    left = b[0]
                if diff(b[1], right) > 0:
                    right = b[1]
            else:
                kept.append(b)
        self.blocks = [[left, right], *kept][:MAX_BLOCKS]
        return ADDED

    def pop_ready(self, rcv_nxt: int) -> list[bytes]:
        """The data that now continues the stream at ``rcv_nxt``, in order, each byte once;
        it leaves the queue, and so do segments wholly below what it reaches. Blocks that end
        at or below the new RCV.NXT are dropped."""
        segments = self.segments
        ready: list[bytes] = []
        nxt = rcv_nxt
        for seq in sorted(segments, key=lambda q: diff(q, rcv_nxt)):
            off = diff(nxt, seq)
            if off < 0:
                break  # the next hole
            data = segments.pop(seq)
            if off < len(data):
                data = data[off:]
                ready.append(data)
                nxt = add(nxt, len(data))
        self.blocks = [b for b in self.blocks if diff(b[1], nxt) > 0]
        return ready
