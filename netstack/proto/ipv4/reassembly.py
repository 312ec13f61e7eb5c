"""Reassembly of IPv4 fragments (RFC 791 3.2, RFC 815 hole descriptors, RFC 1122 3.3.2).

Each datagram in reassembly is keyed by (source, destination, protocol, identification) and
keeps a contiguous buffer plus a sorted list of holes, as RFC 815 describes. RFC 1122 3.3.2
allows overlapping fragments ("successive retransmissions use different packetizing"), so an
overlap is accepted when its bytes agree with what is already there; an overlap that disagrees
discards the whole datagram (the rule RFC 5722 makes for IPv6, and the defence against
overlap-based evasion), so what comes out is the datagram that was sent or nothing.

Memory is bounded three ways: datagrams in reassembly, buffered bytes over all of them, and
fragments per datagram; a datagram is also dropped when its timer runs out. RFC 1122 3.3.2
recommends a fixed timeout between 60 and 120 seconds; the default is 60.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import NamedTuple

from .wire import IPv4Header

__all__ = ["Reassembler", "ReassemblyConfig", "Expired"]

#: An IPv4 datagram is at most 65 535 bytes, header included (RFC 791 3.1, Total Length).
MAX_DATAGRAM = 65535

Key = tuple[bytes, bytes, int, int]


@dataclass(frozen=True, slots=True)
class ReassemblyConfig:
    timeout: float = 60.0
    max_datagrams: int = 64
    max_bytes: int = 4 * 1024 * 1024
    max_fragments: int = 256


class Expired(NamedTuple):
    """A datagram whose timer ran out; ``first`` is the first fragment's header and first
    8 payload bytes when it had arrived (what an ICMP Time Exceeded needs, RFC 792)."""

    key: Key
    first: bytes | None


@dataclass(slots=True)
class _Datagram:
    key: Key
    deadline: float
    buf: bytearray = field(default_factory=bytearray)
    # RFC 815 holes as [first, last] inclusive, sorted; "infinity" until the last fragment.
    holes: list[list[int]] = field(default_factory=lambda: [[0, MAX_DATAGRAM]])
    total: int | None = None  # payload length, known once the last fragment is in
    fragments: int = 0
    header: IPv4Header | None = None  # of the first fragment (offset 0)
    first: bytes | None = None


class Reassembler:
    """The reassembly machine. ``receive`` returns the whole payload once the last hole
    closes; counters of what was dropped and why are in :attr:`drops`."""

    def __init__(self, config: ReassemblyConfig | None = None) -> None:
        self.config = config or ReassemblyConfig()
        self._datagrams: dict[Key, _Datagram] = {}
        self._timers: list[tuple[float, Key]] = []
        self._bytes = 0
        self.drops: dict[str, int] = {}
        self.reassembled = 0

    def __len__(self) -> int:
        return len(self._datagrams)

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def _drop(self, reason: str, key: Key | None = None) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        if key is not None:
            self._discard(key)

    def _discard(self, key: Key) -> None:
        d = self._datagrams.pop(key, None)
        if d is not None:
            self._bytes -= len(d.buf)

    def receive(
        self,
        header: IPv4Header,
        payload: memoryview | bytes,
        packet: memoryview | bytes,
        now: float,
    ) -> tuple[IPv4Header, bytes] | None:
        """Add one fragment; ``packet`` is the whole fragment, header included.

        Returns:
            (header of the first fragment, whole payload) when the datagram is complete.
        """
        key = (header.src, header.dst, header.proto, header.ident)
        offset = header.fragment_offset
        length = len(payload)
        more = header.more_fragments
        end = offset + length  # one past the last byte
        if header.header_length + end > MAX_DATAGRAM:
            self._drop("too_big", key)
            return None
        if more and (length == 0 or length % 8):
            # RFC 791: every fragment but the last carries a multiple of 8 octets.
            self._drop("bad_fragment_length", key)
            return None
        d = self._datagrams.get(key)
        if d is None:
            d = self._new(key, now)
            if d is None:
                return None
        d.fragments += 1
        if d.fragments > self.config.max_fragments:
            self._drop("too_many_fragments", key)
            return None
        if d.total is not None and (end > d.total or (not more and end != d.total)):
            self._drop("inconsistent_length", key)
            return None
        if not more and d.total is None and len(d.buf) > end and self._filled_beyond(d, end):
            self._drop("inconsistent_length", key)
            return None
        grow = max(0, end - len(d.buf))
        if grow:
            if self._bytes + grow > self.config.max_bytes:
                self._drop("memory_limit", key)
                return None
            d.buf.extend(bytes(grow))
            self._bytes += grow
        if not self._agrees(d, offset, end, payload):
            self._drop("overlap_mismatch", key)
            return None
        d.buf[offset:end] = payload
        self._fill(d, offset, end - 1, more)
        if not more:
            d.total = end
        if offset == 0:
            d.header = header
            d.first = bytes(packet[: header.header_length + 8])
        if d.holes:
            return None
        del self._datagrams[key]
        self._bytes -= len(d.buf)
        self.reassembled += 1
        assert d.header is not None  # offset 0 is the only way the first hole closes
        return d.header, bytes(d.buf)

    def _new(self, key: Key, now: float) -> _Datagram | None:
        if len(self._datagrams) >= self.config.max_datagrams:
            # Evict the oldest, so a flood of partial datagrams cannot lock reassembly out.
            oldest = min(self._datagrams.values(), key=lambda x: x.deadline)
            self._drop("evicted", oldest.key)
        d = _Datagram(key, now + self.config.timeout)
        self._datagrams[key] = d
        heapq.heappush(self._timers, (d.deadline, key))
        return d

    @staticmethod
    def _filled_beyond(d: _Datagram, end: int) -> bool:
        """Whether any byte at or after ``end`` has been received."""
        pos = end
        for first, last in d.holes:
            if last < pos:
                continue
            if first > pos:
                return pos < len(d.buf)
            pos = last + 1
            if pos >= len(d.buf):
                return False
        return pos < len(d.buf)

    @staticmethod
    def _agrees(d: _Datagram, offset: int, end: int, payload: memoryview | bytes) -> bool:
        """Whether the parts of [offset, end) that are already filled hold the same bytes."""
        pos = offset
        buf = d.buf
        for first, last in d.holes:
            if last < offset:
                continue
            if first >= end:
                break
            if first > pos and buf[pos:first] != bytes(payload[pos - offset : first - offset]):
                return False
            pos = max(pos, last + 1)
        if pos < end:
            return buf[pos:end] == bytes(payload[pos - offset : end - offset])
        return True

    @staticmethod
    def _fill(d: _Datagram, first: int, last: int, more: bool) -> None:
        """RFC 815 steps 1-6 (and step 7 for the last fragment's open-ended hole)."""
        holes: list[list[int]] = []
        for h in d.holes:
            if first > h[1] or last < h[0]:
                holes.append(h)
                continue
            if first > h[0]:
                holes.append([h[0], first - 1])
            if last < h[1] and more:
                holes.append([last + 1, h[1]])
        if not more:
            # The datagram ends here: nothing beyond ``last`` is a hole any more.
            holes = [h if h[1] <= last else [h[0], last] for h in holes if h[0] <= last]
        d.holes = holes

    # -- time ------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        timers = self._timers
        while timers:
            deadline, key = timers[0]
            d = self._datagrams.get(key)
            if d is not None and d.deadline == deadline:
                return deadline
            heapq.heappop(timers)
        return None

    def handle_timeout(self, now: float) -> list[Expired]:
        """Drop datagrams whose time is up (RFC 791: "If the timer runs out, all reassembly
        resources for this buffer identifier are released")."""
        expired = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, key = heapq.heappop(timers)
            d = self._datagrams.get(key)
            if d is None or d.deadline != deadline:
                continue
            expired.append(Expired(key, d.first))
            self._drop("timeout", key)
        return expired
