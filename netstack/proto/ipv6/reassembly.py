"""Reassembly of IPv6 fragments (RFC 8200 4.5, RFC 5722, RFC 6946).

Fragments belong together when they share source, destination and Identification (RFC 8200
4.5). Each datagram in reassembly keeps its fragments' data as sorted, disjoint pieces and
joins them once the last gap closes, so it costs the bytes that arrived and no more.

- RFC 5722 4 / RFC 8200 4.5: overlapping fragments are forbidden; an overlap discards the
  whole datagram silently, and the fragments of it still to come are dropped too (a bounded
  set of "tombstones" remembers the datagram for one timeout). An exact duplicate (same
  offset, length and bytes) is only dropped itself, as RFC 8200 4.5 allows.
- RFC 8200 4.5: a fragment with M set whose length is not a multiple of 8, and a fragment that
  would make the reassembled Payload Length exceed 65 535, raise
  :class:`~.wire.ParameterProblem` (code 0) for the caller to answer.
- RFC 6946 4: an atomic fragment (offset 0, M 0) is a whole packet, handled on its own and
  apart from any datagram with the same Identification (:func:`~.wire.walk` skips those
  already; one handed in here comes straight back).
- RFC 8200 4.5: a datagram not complete 60 seconds after its first-arriving fragment is
  dropped and returned by :meth:`Reassembler.handle_timeout` with its offset-0 fragment, if
  that came, for an ICMPv6 Time Exceeded (code 1).

Memory is bounded by datagrams in reassembly, bytes held over all of them and fragments per
datagram; what was dropped and why is counted in :attr:`Reassembler.drops`. Checking that the
first fragment holds the whole header chain (RFC 7112 5) is the caller's, which walks it.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import NamedTuple

from ...errors import ParseError
from .wire import IPV6_HEADER_LEN, MAX_PAYLOAD, Chain, IPv6Header, ParameterProblem, ProblemCode

__all__ = ["Expired", "Reassembler", "ReassemblyConfig"]

#: (source, destination, Identification): RFC 8200 4.5's reassembly key.
Key = tuple[bytes, bytes, int]

#: The Payload Length field, from the start of the IPv6 header (RFC 8200 3).
_PAYLOAD_LENGTH_POINTER = 4
#: The Fragment Offset field, from the start of the Fragment header (RFC 8200 4.5).
_FRAGMENT_OFFSET_FIELD = 2


@dataclass(frozen=True, slots=True)
class ReassemblyConfig:
    #: RFC 8200 4.5: abandon a datagram 60 seconds after its first-arriving fragment.
    timeout: float = 60.0
    max_datagrams: int = 64
    max_bytes: int = 4 * 1024 * 1024
    max_fragments: int = 256
    #: Discarded datagrams remembered (for ``timeout``) so their later fragments are dropped.
    max_tombstones: int = 256


class Expired(NamedTuple):
    """A datagram whose time ran out. ``first`` is its offset-0 fragment as received (from
    the IPv6 header to the end of its payload) when that arrived: what an ICMPv6 Time
    Exceeded, code 1, quotes (RFC 8200 4.5); None otherwise, and then no ICMPv6 is sent."""

    key: Key
    first: bytes | None


@dataclass(slots=True)
class _Datagram:
    deadline: float
    # Disjoint pieces of fragment data sorted by offset: [starts[i], ends[i]) holds pieces[i].
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    pieces: list[bytes | memoryview] = field(default_factory=list)
    received: int = 0  # bytes of fragment data held
    cost: int = 0  # bytes counted against ReassemblyConfig.max_bytes
    total: int | None = None  # length of the Fragmentable Part, once the last fragment came
    fragments: int = 0
    header: IPv6Header | None = None  # of the offset-0 fragment
    next_header: int = 0  # its Fragment header's Next Header
    first: bytes | None = None  # the offset-0 fragment packet


class Reassembler:
    """The reassembly machine: :meth:`receive` per fragment, :meth:`poll_at` and
    :meth:`handle_timeout` for time, which is passed in (``now`` never decreases)."""

    def __init__(self, config: ReassemblyConfig | None = None) -> None:
        self.config = config or ReassemblyConfig()
        # Insertion order is creation order, hence deadline order: the first entry is both
        # the next to time out and the oldest to evict.
        self._datagrams: dict[Key, _Datagram] = {}
        self._tombstones: dict[Key, tuple[float, str]] = {}  # key -> (until, drop reason)
        self._bytes = 0
        self.drops: dict[str, int] = {}
        self.reassembled = 0

    def __len__(self) -> int:
        return len(self._datagrams)

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for datagrams in reassembly (fragment data and first packets)."""
        return self._bytes

    def _count(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def _discard(self, key: Key) -> None:
        d = self._datagrams.pop(key, None)
        if d is not None:
            self._bytes -= d.cost

    def _poison(self, key: Key, reason: str, now: float) -> None:
        """Discard the datagram and drop its later fragments for one timeout."""
        self._count(reason)
        self._discard(key)
        tombstones = self._tombstones
        tombstones.pop(key, None)
        limit = self.config.max_tombstones
        if limit <= 0:
            return
        while len(tombstones) >= limit:
            del tombstones[next(iter(tombstones))]
        after = "after_overlap" if reason == "overlap" else "after_discard"
        tombstones[key] = (now + self.config.timeout, after)

    def receive(
        self, header: IPv6Header, packet: memoryview | bytes, chain: Chain, now: float
    ) -> tuple[IPv6Header, int, bytearray] | None:
        """Add one fragment.

        Args:
            header: the fragment's fixed header.
            packet: the fragment packet from its IPv6 header on (``packet[40:]`` is the
                payload :func:`~.wire.walk` read); only read during the call.
            chain: the walk's result, with ``fragment`` set.
            now: the current time.

        Returns:
            None while the datagram is incomplete (or the fragment was dropped, see
            :attr:`drops`); once complete, ``(header, next_header, payload)``: ``payload``
            is the reassembled Fragmentable Part, ``next_header`` the offset-0 fragment's
            Fragment header's Next Header, and ``header`` the offset-0 fragment's fixed
            header with Payload Length ``len(payload)`` and Next Header ``next_header``, so
            that ``header`` followed by ``payload`` is a consistent packet. The Per-Fragment
            extension headers are not in it: the caller processed them on arrival (RFC 8200
            4.5). Walk ``payload`` with ``hop_by_hop_allowed=False``.

        Raises:
            ParameterProblem: code 0, the fragment discarded (RFC 8200 4.5): M set and a
                length that is not a multiple of 8 (pointer 4, Payload Length), or a
                reassembled Payload Length above 65 535 (pointer at Fragment Offset).
            ParseError: ``truncated``: ``packet`` is shorter than its Payload Length says.
            ValueError: ``chain.fragment`` is None.
        """
        frag = chain.fragment
        if frag is None:
            raise ValueError("not a fragment: chain.fragment is None")
        start = IPV6_HEADER_LEN + chain.offset
        stop = IPV6_HEADER_LEN + header.payload_length
        if stop > len(packet) or start > stop:
            raise ParseError("truncated", f"fragment data [{start}, {stop}) of {len(packet)}")
        length = stop - start
        offset = frag.offset
        more = frag.more
        if more and length & 7:
            # RFC 8200 4.5: every fragment but the last is a multiple of 8 octets long.
            self._count("bad_length")
            raise ParameterProblem(
                "fragment_length", ProblemCode.ERRONEOUS_HEADER_FIELD, _PAYLOAD_LENGTH_POINTER
            )
        if chain.fragment_at + offset + length > MAX_PAYLOAD:
            # RFC 8200 4.5: PL.orig = Per-Fragment headers + offset + length, at most 65 535.
            self._count("too_long")
            raise ParameterProblem(
                "fragment_too_long", ProblemCode.ERRONEOUS_HEADER_FIELD,
                IPV6_HEADER_LEN + chain.fragment_at + _FRAGMENT_OFFSET_FIELD,
            )  # fmt: skip
        if not offset and not more:
            # RFC 6946 4: an atomic fragment is processed in isolation.
            nh = frag.next_header
            whole = bytearray(packet[start:stop])
            return header._replace(payload_length=length, next_header=nh), nh, whole
        if more and not length:
            self._count("empty_fragment")  # carries nothing, and would sit at any offset
            return None
        key = (header.src, header.dst, frag.ident)
        tomb = self._tombstones.get(key)
        if tomb is not None:
            if now < tomb[0]:
                # RFC 5722 4: the discarded datagram's fragments "not yet received" go too.
                self._count(tomb[1])
                return None
            del self._tombstones[key]
        d = self._datagrams.get(key)
        if d is None:
            if len(self._datagrams) >= self.config.max_datagrams:
                # Evict the oldest, so a flood of partial datagrams cannot lock reassembly out.
                self._count("too_many_datagrams")
                self._discard(next(iter(self._datagrams)))
            d = self._datagrams[key] = _Datagram(now + self.config.timeout)
        d.fragments += 1
        if d.fragments > self.config.max_fragments:
            self._poison(key, "too_many_fragments", now)
            return None
        end = offset + length
        ends = d.ends
        if more:
            if d.total is not None and end > d.total:
                self._poison(key, "inconsistent_length", now)
                return None
        elif (d.total is not None and end != d.total) or (ends and ends[-1] > end):
            # A second, different last fragment, or data already held beyond this end.
            self._poison(key, "inconsistent_length", now)
            return None
        if not length:  # an empty last fragment: it only fixes the length
            if d.total is not None:
                self._count("duplicate")
                return None
            d.total = end
            return self._complete(key, d)
        starts = d.starts
        i = bisect_right(starts, offset)
        if i and ends[i - 1] > offset:
            data = packet[start:stop]
            if starts[i - 1] == offset and ends[i - 1] == end and d.pieces[i - 1] == data:
                # RFC 8200 4.5: an exact duplicate may be dropped on its own.
                self._count("duplicate")
                return None
            self._poison(key, "overlap", now)  # RFC 5722 4, RFC 8200 4.5
            return None
        if i < len(starts) and starts[i] < end:
            self._poison(key, "overlap", now)
            return None
        piece: bytes | memoryview
        first: bytes | None = None
        if offset == 0:
            # Kept whole for a Time Exceeded; the data piece is a view into it.
            first = bytes(packet[:stop])
            cost = len(first)
            piece = memoryview(first)[start:]
        else:
            piece = bytes(packet[start:stop])
            cost = length
        if self._bytes + cost > self.config.max_bytes:
            self._count("too_much_memory")
            self._discard(key)
            return None
        starts.insert(i, offset)
        ends.insert(i, end)
        d.pieces.insert(i, piece)
        d.received += length
        d.cost += cost
        self._bytes += cost
        if first is not None:
            d.header = header
            d.next_header = frag.next_header
            d.first = first
        if not more:
            d.total = end
        return self._complete(key, d)

    def _complete(self, key: Key, d: _Datagram) -> tuple[IPv6Header, int, bytearray] | None:
        # The pieces are disjoint and lie inside [0, total): all bytes held means no gap.
        if d.total is None or d.received != d.total:
            return None
        del self._datagrams[key]
        self._bytes -= d.cost
        self.reassembled += 1
        assert d.header is not None  # a complete datagram has its offset-0 fragment
        payload = bytearray().join(d.pieces)
        nh = d.next_header
        return d.header._replace(payload_length=len(payload), next_header=nh), nh, payload

    # -- time ------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        """The deadline of the datagram that times out first, if any."""
        for d in self._datagrams.values():
            return d.deadline
        return None

    def handle_timeout(self, now: float) -> list[Expired]:
        """Abandon the datagrams whose 60 seconds are up (RFC 8200 4.5) and forget expired
        tombstones.

        Returns:
            The abandoned datagrams, oldest first.
        """
        expired: list[Expired] = []
        datagrams = self._datagrams
        while datagrams:
            key = next(iter(datagrams))
            d = datagrams[key]
            if d.deadline > now:
                break
            del datagrams[key]
            self._bytes -= d.cost
            self._count("timeout")
            expired.append(Expired(key, d.first))
        tombstones = self._tombstones
        while tombstones:
            key = next(iter(tombstones))
            if tombstones[key][0] > now:
                break
            del tombstones[key]
        return expired
