"""Tests of netstack.proto.tcp.reassembly: the receiver's out-of-order queue and its SACK
blocks (RFC 9293 3.10.7.4 seventh check, RFC 2018 4), alone.

Fixed cases for each rule; hypothesis delivers a stream cut into overlapping segments in any
order, duplicated, near the sequence-number wrap, through a receiver that does what the
connection does (trim below RCV.NXT, deliver in order, queue the rest), and checks that the
stream comes out whole, in order and once, that the queue stays bounded, and that the blocks
stay disjoint, few, newest first and backed by held data. The connection-level behaviour is
in test_tcp_sack.py and test_tcp_flow.py.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.proto.tcp.reassembly import ADDED, DUPLICATE, FULL, MAX_BLOCKS, Reassembly
from netstack.proto.tcp.seq import MOD, add, diff

SETTINGS = settings(max_examples=300, deadline=None)


def test_add_and_pop_in_order() -> None:
    q = Reassembly(limit=8)
    assert q.add(200, b"c" * 100) == ADDED
    assert q.add(100, b"b" * 100) == ADDED
    assert q.blocks == [[100, 300]]  # touching ranges merge
    assert len(q) == 2
    assert q.pop_ready(50) == []  # a hole at 50..100
    assert q.pop_ready(100) == [b"b" * 100, b"c" * 100]
    assert len(q) == 0 and q.blocks == []


def test_overlap_delivered_once() -> None:
    q = Reassembly(limit=8)
    q.add(100, b"a" * 100)
    q.add(150, b"b" * 100)
    assert q.pop_ready(120) == [b"a" * 80, b"b" * 50]


def test_duplicate_and_longer_segment() -> None:
    """A segment no longer than one held from the same place is a duplicate (RFC 2883: the
    caller reports it in a D-SACK); a longer one replaces it."""
    q = Reassembly(limit=8)
    assert q.add(100, b"x" * 100) == ADDED
    assert q.add(100, b"y" * 50) == DUPLICATE
    assert q.add(100, b"z" * 150) == ADDED
    assert q.pop_ready(100) == [b"z" * 150]


def test_bounded() -> None:
    q = Reassembly(limit=2)
    assert q.add(100, b"a") == ADDED
    assert q.add(200, b"b") == ADDED
    assert q.add(300, b"c") == FULL
    assert len(q) == 2 and q.blocks == [[200, 201], [100, 101]]


def test_blocks_newest_first_and_at_most_eight() -> None:
    """RFC 2018 4: the block holding the newest segment first, then the others in the order
    they were last reported."""
    q = Reassembly(limit=64)
    for i in range(10):
        q.add(1000 * (i + 1), b"x" * 10)
    assert len(q.blocks) == MAX_BLOCKS
    assert q.blocks[0] == [10000, 10010] and q.blocks[-1] == [3000, 3010]
    q.add(5010, b"y" * 10)  # joins the block at 5000: it moves to the front
    assert q.blocks[0] == [5000, 5020] and len(q.blocks) == MAX_BLOCKS


def test_across_the_wrap() -> None:
    q = Reassembly(limit=8)
    q.add(5, b"b" * 10)
    q.add(MOD - 5, b"a" * 10)
    assert q.blocks == [[MOD - 5, 15]]
    assert q.pop_ready(MOD - 10) == []
    assert q.pop_ready(MOD - 5) == [b"a" * 10, b"b" * 10]


def test_segment_wholly_below_is_dropped() -> None:
    q = Reassembly(limit=8)
    q.add(100, b"a" * 10)
    q.add(300, b"b" * 10)
    assert q.pop_ready(200) == []  # 100..110 was covered in order meanwhile
    assert list(q.segments) == [300] and q.blocks == [[300, 310]]


def test_fin_waits_here() -> None:
    q = Reassembly(limit=8)
    assert q.fin is None
    q.fin = 500
    assert q.pop_ready(100) == [] and q.fin == 500  # the connection takes it, not the queue


# -- properties -----------------------------------------------------------------------------------


class Receiver:
    """What TcpConnection._receive_data does with a segment inside the window."""

    def __init__(self, base: int, limit: int) -> None:
        self.nxt = base
        self.q = Reassembly(limit)
        self.out = bytearray()
        self.verdicts: list[int] = []

    def arrive(self, seq: int, data: bytes) -> None:
        off = diff(self.nxt, seq)
        if off > 0:
            data, seq = data[off:], self.nxt
        if not data:
            return
        if seq == self.nxt:
            self.take(data)
            if self.q.segments:
                for chunk in self.q.pop_ready(self.nxt):
                    self.take(chunk)
        else:
            verdict = self.q.add(seq, data)
            self.verdicts.append(verdict)
            if verdict == ADDED:
                # RFC 2018 4: the first block holds the segment just added.
                left, right = self.q.blocks[0]
                assert diff(seq, left) >= 0 and diff(add(seq, len(data)), right) <= 0

    def take(self, data: bytes) -> None:
        self.out += data
        self.nxt = add(self.nxt, len(data))

    def check(self, stream: bytes, base: int, limit: int) -> None:
        # Delivered: a prefix of the stream, in order, each byte once.
        assert bytes(self.out) == stream[: len(self.out)]
        assert self.nxt == add(base, len(self.out))
        q = self.q
        assert len(q.segments) <= limit
        held: set[int] = set()
        for seq, data in q.segments.items():
            assert diff(seq, self.nxt) > 0  # beyond the hole at RCV.NXT
            start = diff(seq, base)
            assert data == stream[start : start + len(data)]  # held as it was sent
            held.update(range(start, start + len(data)))
        # The blocks: few, non-empty, disjoint and not touching, above RCV.NXT, and all of
        # their part beyond RCV.NXT held.
        assert len(q.blocks) <= MAX_BLOCKS
        if not q.segments:
            assert q.blocks == []
        ranges = []
        for left, right in q.blocks:
            assert diff(right, left) > 0
            assert diff(right, self.nxt) > 0
            lo, hi = diff(left, base), diff(right, base)
            ranges.append((lo, hi))
            assert set(range(max(lo, len(self.out)), hi)) <= held
        ranges.sort()
        for (_, hi), (lo, _) in zip(ranges, ranges[1:], strict=False):
            assert hi < lo


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]]]:
    size = draw(st.integers(1, 3000))
    stream = draw(st.binary(min_size=size, max_size=size))
    cuts = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 600)), max_size=40))
    segments = [(start, min(size, start + n)) for start, n in cuts]
    return stream, segments


@SETTINGS
@given(
    case=arrivals(),
    base=st.one_of(st.integers(0, MOD - 1), st.integers(MOD - 2000, MOD - 1)),
    limit=st.integers(1, 12),
)
def test_any_arrival_order_delivers_the_stream_once_in_order(
    case: tuple[bytes, list[tuple[int, int]]], base: int, limit: int
) -> None:
    stream, segments = case
    r = Receiver(base, limit)
    for start, end in segments:
        r.arrive(add(base, start), stream[start:end])
        r.check(stream, base, limit)
    # The sender's retransmissions, in order, complete the stream whatever was dropped.
    for start in range(0, len(stream), 500):
        r.arrive(add(base, start), stream[start : start + 500])
        r.check(stream, base, limit)
    assert bytes(r.out) == stream
    assert not r.q.segments and not r.q.blocks


@SETTINGS
@given(case=arrivals(), base=st.integers(0, MOD - 1))
def test_full_only_at_the_limit(case: tuple[bytes, list[tuple[int, int]]], base: int) -> None:
    """A segment is refused as FULL only when the limit is reached, and never otherwise."""
    stream, segments = case
    limit = 4
    q = Reassembly(limit)
    nxt = add(base, -1)  # everything is out of order: nothing is ever delivered
    for start, end in segments:
        before = len(q)
        verdict = q.add(add(base, start), stream[start:end])
        if verdict == FULL:
            assert before == limit
        elif verdict == ADDED:
            assert len(q) in (before, before + 1)
        assert len(q) <= limit
    assert q.pop_ready(nxt) == []
