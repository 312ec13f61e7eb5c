"""IPv4 fragment reassembly (netstack.proto.ipv4.reassembly): RFC 791 3.2, RFC 815 holes,
RFC 1122 3.3.2 overlaps and limits, driven without an event loop; plus hypothesis tests that
random re-fragmentations, duplicates, orders and corruptions never yield wrong data."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netstack.proto.ipv4.reassembly import Expired, Reassembler, ReassemblyConfig
from netstack.proto.ipv4.wire import IPv4Header

SRC = bytes([198, 18, 0, 1])
DST = bytes([198, 18, 0, 2])
UDP = 17


def header(
    offset: int,
    length: int,
    more: bool,
    *,
    ident: int = 0x1234,
    src: bytes = SRC,
    dst: bytes = DST,
    proto: int = UDP,
) -> IPv4Header:
    assert offset % 8 == 0
    return IPv4Header(
        tos=0,
        total_length=20 + length,
        ident=ident,
        flags_fragment=(0x2000 if more else 0) | (offset >> 3),
        ttl=64,
        proto=proto,
        checksum=0,
        src=src,
        dst=dst,
        options=b"",
    )


def feed(
    r: Reassembler,
    data: bytes,
    offset: int,
    more: bool,
    now: float = 0.0,
    **kw: object,
) -> tuple[IPv4Header, bytes] | None:
    """Give ``r`` the fragment carrying ``data`` at ``offset``."""
    h = header(offset, len(data), more, **kw)  # type: ignore[arg-type]
    packet = h.to_bytes() + data
    return r.receive(h, memoryview(packet)[20:], memoryview(packet), now)


def piece(payload: bytes, start: int, end: int) -> tuple[bytes, int, bool]:
    """The fragment of ``payload`` covering [start, end)."""
    return payload[start:end], start, end < len(payload)


def split(payload: bytes, size: int) -> list[tuple[bytes, int, bool]]:
    return [piece(payload, i, min(i + size, len(payload))) for i in range(0, len(payload), size)]


PAYLOAD = bytes(range(256)) * 4 + b"tail"  # 1028 bytes


def assert_empty(r: Reassembler) -> None:
    assert len(r) == 0
    assert r.buffered_bytes == 0


# -- orders -----------------------------------------------------------------------------------


def test_in_order() -> None:
    r = Reassembler()
    frags = split(PAYLOAD, 256)
    for data, off, more in frags[:-1]:
        assert feed(r, data, off, more) is None
        assert len(r) == 1
    result = feed(r, *frags[-1])
    assert result is not None
    first, payload = result
    assert payload == PAYLOAD
    assert first.fragment_offset == 0 and first.more_fragments
    assert r.reassembled == 1
    assert r.drops == {}
    assert_empty(r)
    assert r.poll_at() is None


def test_reverse_order() -> None:
    r = Reassembler()
    frags = split(PAYLOAD, 64)
    results = [feed(r, *f) for f in reversed(frags)]
    assert results[:-1] == [None] * (len(frags) - 1)
    assert results[-1] is not None and results[-1][1] == PAYLOAD
    assert_empty(r)


@pytest.mark.parametrize("seed", range(8))
def test_random_order(seed: int) -> None:
    rng = random.Random(seed)
    frags = split(PAYLOAD, rng.choice([8, 16, 120, 512]))
    rng.shuffle(frags)
    r = Reassembler()
    results = [feed(r, *f) for f in frags]
    assert all(x is None for x in results[:-1])
    assert results[-1] is not None and results[-1][1] == PAYLOAD
    assert_empty(r)


def test_unfragmented_single_piece_and_empty_payload() -> None:
    r = Reassembler()
    result = feed(r, b"", 0, False)
    assert result is not None and result[1] == b""
    result = feed(r, b"abc", 0, False, ident=2)
    assert result is not None and result[1] == b"abc"


def test_datagrams_are_kept_apart_by_their_key() -> None:
    r = Reassembler()
    a, b = b"A" * 16, b"B" * 16
    assert feed(r, a[:8], 0, True, ident=1) is None
    assert feed(r, b[:8], 0, True, ident=1, src=bytes([198, 18, 0, 9])) is None
    assert feed(r, b[:8], 0, True, ident=1, proto=6) is None
    assert feed(r, b[:8], 0, True, ident=2) is None
    assert len(r) == 4
    result = feed(r, a[8:], 8, False, ident=1)
    assert result is not None and result[1] == a
    assert len(r) == 3


# -- duplicates and overlaps ------------------------------------------------------------------


def test_duplicates_are_harmless() -> None:
    r = Reassembler()
    frags = split(PAYLOAD, 128)
    assert feed(r, *frags[0]) is None
    assert feed(r, *frags[0]) is None
    assert feed(r, *frags[-1]) is None
    assert feed(r, *frags[-1]) is None
    for f in frags[1:-2]:
        assert feed(r, *f) is None
        assert feed(r, *f) is None
    result = feed(r, *frags[-2])
    assert result is not None and result[1] == PAYLOAD
    assert r.drops == {}


def test_consistent_overlaps_are_accepted() -> None:
    # RFC 1122 3.3.2: retransmissions may be packetized differently.
    r = Reassembler()
    assert feed(r, *piece(PAYLOAD, 0, 400)) is None
    assert feed(r, *piece(PAYLOAD, 200, 600)) is None  # overlaps the end of the first
    assert feed(r, *piece(PAYLOAD, 800, 1028)) is None
    assert feed(r, *piece(PAYLOAD, 96, 160)) is None  # entirely inside
    result = feed(r, *piece(PAYLOAD, 504, 904))  # bridges the hole, overlaps both sides
    assert result is not None and result[1] == PAYLOAD
    assert r.drops == {}
    assert_empty(r)


def test_overlap_that_closes_the_last_hole() -> None:
    r = Reassembler()
    assert feed(r, *piece(PAYLOAD, 0, 512)) is None
    assert feed(r, *piece(PAYLOAD, 600, 1028)) is None
    result = feed(r, *piece(PAYLOAD, 256, 800))
    assert result is not None and result[1] == PAYLOAD


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((0, 400), (200, 600)),  # the new one overlaps the end of the old
        ((200, 600), (0, 400)),  # the new one overlaps the start of the old
        ((200, 400), (0, 600)),  # the new one covers the old
        ((0, 600), (200, 400)),  # the new one is inside the old
    ],
)
def test_inconsistent_overlap_drops_the_datagram(
    first: tuple[int, int], second: tuple[int, int]
) -> None:
    r = Reassembler()
    forged = bytearray(PAYLOAD)
    forged[300] ^= 0xFF  # a byte both fragments carry
    assert feed(r, *piece(PAYLOAD, *first)) is None
    data, off, more = piece(bytes(forged), *second)
    assert feed(r, data, off, more) is None
    assert r.drops == {"overlap_mismatch": 1}
    assert_empty(r)
    # What arrives next starts over: neither version can be completed from the rest.
    assert feed(r, *piece(PAYLOAD, 600, 1028)) is None
    assert feed(r, *piece(PAYLOAD, 400, 600)) is None
    assert r.reassembled == 0


# -- malformed fragments ----------------------------------------------------------------------


def test_fragment_beyond_65535_is_dropped() -> None:
    r = Reassembler()
    assert feed(r, b"x" * 8, 0, True) is None
    # 20 bytes of header + 65528 + 16 > 65535.
    assert feed(r, b"y" * 16, 65528, False) is None
    assert r.drops == {"too_big": 1}
    assert_empty(r)  # the datagram it claimed to belong to is gone with it


def test_largest_datagram_reassembles() -> None:
    r = Reassembler()
    payload = bytes(random.Random(1).getrandbits(8) for _ in range(65535 - 20))
    frags = split(payload, 8192)
    results = [feed(r, *f) for f in frags]
    assert results[-1] is not None and results[-1][1] == payload
    assert r.drops == {}


@pytest.mark.parametrize("length", [1, 7, 9, 100, 0])
def test_non_last_fragment_must_be_a_multiple_of_8(length: int) -> None:
    r = Reassembler()
    assert feed(r, b"a" * 16, 0, True) is None
    assert feed(r, b"b" * length, 16, True) is None
    assert r.drops == {"bad_fragment_length": 1}
    assert_empty(r)


def test_last_fragment_may_have_any_length() -> None:
    r = Reassembler()
    assert feed(r, b"a" * 8, 0, True) is None
    result = feed(r, b"b" * 3, 8, False)
    assert result is not None and result[1] == b"a" * 8 + b"bbb"


@pytest.mark.parametrize(
    ("last", "other"),
    [
        ((b"L" * 8, 16, False), (b"M" * 16, 16, False)),  # two last fragments, longer
        ((b"L" * 8, 16, False), (b"M" * 8, 8, False)),  # two last fragments, shorter
        ((b"L" * 8, 16, False), (b"M" * 16, 16, True)),  # more data after the end
        ((b"L" * 16, 16, True), (b"M" * 8, 8, False)),  # an end before data we hold
    ],
)
def test_inconsistent_length_drops_the_datagram(
    last: tuple[bytes, int, bool], other: tuple[bytes, int, bool]
) -> None:
    r = Reassembler()
    assert feed(r, b"a" * 8, 0, True) is None
    assert feed(r, *last) is None
    assert feed(r, *other) is None
    assert r.drops == {"inconsistent_length": 1}
    assert_empty(r)


# -- time -------------------------------------------------------------------------------------


def test_timeout_reports_first_fragment_when_it_arrived() -> None:
    r = Reassembler(ReassemblyConfig(timeout=30.0))
    assert feed(r, PAYLOAD[:64], 0, True, now=100.0) is None
    assert feed(r, PAYLOAD[128:192], 128, True, now=110.0) is None
    assert r.poll_at() == 130.0  # the timer starts with the first fragment to arrive
    assert r.handle_timeout(129.9) == []
    expired = r.handle_timeout(130.0)
    h = header(0, 64, True)
    assert expired == [
        Expired((SRC, DST, UDP, 0x1234), h.to_bytes() + PAYLOAD[:8]),
    ]
    assert r.drops == {"timeout": 1}
    assert_empty(r)
    assert r.poll_at() is None
    assert r.handle_timeout(1000.0) == []


def test_expired_first_fragment_includes_its_options() -> None:
    r = Reassembler(ReassemblyConfig(timeout=5.0))
    options = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    h = header(0, 16, True)._replace(total_length=24 + 16, options=options)
    packet = h.to_bytes() + PAYLOAD[:16]
    assert r.receive(h, memoryview(packet)[24:], memoryview(packet), 0.0) is None
    [expired] = r.handle_timeout(5.0)
    # RFC 792: the internet header (options included) plus 64 bits of the data.
    assert expired.first == packet[: 24 + 8]


def test_timeout_without_first_fragment() -> None:
    r = Reassembler(ReassemblyConfig(timeout=60.0))
    feed(r, PAYLOAD[64:128], 64, True, now=0.0, ident=7)
    expired = r.handle_timeout(60.0)
    assert expired == [Expired((SRC, DST, UDP, 7), None)]


def test_timers_of_completed_and_dropped_datagrams_are_dead() -> None:
    r = Reassembler(ReassemblyConfig(timeout=10.0))
    feed(r, b"a" * 8, 0, True, now=0.0, ident=1)
    feed(r, b"b" * 8, 0, True, now=1.0, ident=2)
    feed(r, b"c" * 8, 0, True, now=2.0, ident=3)
    assert feed(r, b"A", 8, False, now=3.0, ident=1) is not None
    feed(r, b"b" * 7, 8, True, now=3.0, ident=2)  # bad length: dropped
    assert r.poll_at() == 12.0
    assert r.handle_timeout(11.0) == []
    assert [e.key[3] for e in r.handle_timeout(12.0)] == [3]


# -- limits -----------------------------------------------------------------------------------


def test_max_datagrams_evicts_the_oldest() -> None:
    r = Reassembler(ReassemblyConfig(max_datagrams=2))
    feed(r, b"1" * 8, 0, True, now=0.0, ident=1)
    feed(r, b"2" * 8, 0, True, now=1.0, ident=2)
    feed(r, b"3" * 8, 0, True, now=2.0, ident=3)
    assert len(r) == 2
    assert r.drops == {"evicted": 1}
    # Datagram 1 is gone: its last fragment starts a new one instead of completing it.
    assert feed(r, b"!", 8, False, now=3.0, ident=1) is None
    assert r.drops == {"evicted": 2}  # and that pushed out datagram 2
    result = feed(r, b"!", 8, False, now=3.0, ident=3)
    assert result is not None and result[1] == b"3" * 8 + b"!"


def test_max_bytes() -> None:
    r = Reassembler(ReassemblyConfig(max_bytes=100))
    assert feed(r, b"a" * 64, 0, True, ident=1) is None
    assert r.buffered_bytes == 64
    assert feed(r, b"b" * 64, 0, True, ident=2) is None
    assert r.drops == {"memory_limit": 1}
    assert r.buffered_bytes == 64 and len(r) == 1
    # A fragment that would grow datagram 1 past the limit drops it as well.
    assert feed(r, b"c" * 40, 64, True, ident=1) is None
    assert r.drops == {"memory_limit": 2}
    assert_empty(r)
    # With room again, a datagram fits.
    assert feed(r, b"d" * 48, 0, True, ident=3) is None
    result = feed(r, b"e" * 52, 48, False, ident=3)
    assert result is not None and result[1] == b"d" * 48 + b"e" * 52


def test_max_fragments() -> None:
    r = Reassembler(ReassemblyConfig(max_fragments=3))
    assert feed(r, b"a" * 8, 0, True) is None
    assert feed(r, b"a" * 8, 0, True) is None  # duplicates count too
    assert feed(r, b"b" * 8, 8, True) is None
    assert r.drops == {}
    assert feed(r, b"c", 16, False) is None
    assert r.drops == {"too_many_fragments": 1}
    assert_empty(r)


def test_max_fragments_allows_exactly_the_limit() -> None:
    r = Reassembler(ReassemblyConfig(max_fragments=3))
    feed(r, b"a" * 8, 0, True)
    feed(r, b"b" * 8, 8, True)
    result = feed(r, b"c", 16, False)
    assert result is not None and result[1] == b"a" * 8 + b"b" * 8 + b"c"


# -- hypothesis: never wrong data --------------------------------------------------------------

BIG = ReassemblyConfig(max_fragments=1_000_000)


class Model:
    """What the reassembler must do, at 8-byte-block granularity: fill blocks, drop the
    datagram on any disagreement, complete when every block up to a known end is filled."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.blocks = (n + 7) // 8
        self.reset()

    def reset(self) -> None:
        self.filled: dict[int, bytes] = {}
        self.ended = False

    def receive(self, data: bytes, start: int, more: bool) -> bytes | None:
        first = start // 8
        chunks = {first + i: data[8 * i : 8 * i + 8] for i in range((len(data) + 7) // 8)}
        if any(self.filled.get(b, c) != c for b, c in chunks.items()):
            self.reset()
            return None
        self.filled.update(chunks)
        if not more:
            self.ended = True
        if self.ended and len(self.filled) == self.blocks:
            out = b"".join(self.filled[b] for b in range(self.blocks))
            self.reset()
            return out
        return None


@st.composite
def fragmentations(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]]]:
    """A payload and pieces [start, end) of it: a partition plus re-fragmentations of the
    same data (overlapping, duplicated), in random order. Pieces end at 8-byte boundaries
    except those ending at the payload's end (the last fragments)."""
    n = draw(st.integers(0, 8000))
    payload = draw(st.binary(min_size=n, max_size=n))
    blocks = (n + 7) // 8
    cuts = sorted(draw(st.sets(st.integers(1, max(1, blocks - 1)), max_size=12)))
    cuts = [c for c in cuts if 0 < c < blocks]
    bounds = [0, *(8 * c for c in cuts), n]
    pieces = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)] if n else [(0, 0)]
    for _ in range(draw(st.integers(0, 6))):
        a = draw(st.integers(0, max(0, blocks - 1)))
        b = draw(st.integers(a + 1, max(a + 1, blocks)))
        pieces.append((8 * a, min(8 * b, n)))
    order = draw(st.permutations(pieces))
    return payload, list(order)


def run(
    r: Reassembler,
    payload: bytes,
    pieces: list[tuple[int, int]],
    corrupt: tuple[int, int] | None = None,
) -> list[bytes | None]:
    """Feed the pieces in order (piece ``corrupt[0]`` with its byte ``corrupt[1]`` flipped);
    the payload each one returned."""
    n = len(payload)
    outcomes: list[bytes | None] = []
    for i, (a, b) in enumerate(pieces):
        data = payload[a:b]
        if corrupt is not None and corrupt[0] == i:
            tampered = bytearray(data)
            tampered[corrupt[1] - a] ^= 0x5A
            data = bytes(tampered)
        result = feed(r, data, a, b < n)
        if result is not None:
            assert result[0].fragment_offset == 0
        outcomes.append(None if result is None else result[1])
    return outcomes


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragmentations())
def test_random_fragmentation_yields_the_payload(
    case: tuple[bytes, list[tuple[int, int]]],
) -> None:
    payload, pieces = case
    r = Reassembler(BIG)
    model = Model(len(payload))
    outcomes = run(r, payload, pieces)
    for (a, b), got in zip(pieces, outcomes, strict=True):
        # Never wrong data, and complete exactly when the pieces so far cover everything.
        assert got is None or got == payload
        assert got == model.receive(payload[a:b], a, b < len(payload))
    assert any(x is not None for x in outcomes), "all pieces are in, yet nothing came out"
    assert r.drops == {}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragmentations(), st.data())
def test_random_fragmentation_with_a_corrupted_piece_matches_the_model(
    case: tuple[bytes, list[tuple[int, int]]], data: st.DataObject
) -> None:
    payload, pieces = case
    nonempty = [i for i, (a, b) in enumerate(pieces) if b > a]
    if not nonempty:
        return
    i = data.draw(st.sampled_from(nonempty))
    a, b = pieces[i]
    pos = data.draw(st.integers(a, b - 1))
    r = Reassembler(BIG)
    model = Model(len(payload))
    outcomes = run(r, payload, pieces, corrupt=(i, pos))
    for k, ((pa, pb), got) in enumerate(zip(pieces, outcomes, strict=True)):
        chunk = bytearray(payload[pa:pb])
        if k == i:
            chunk[pos - pa] ^= 0x5A
        assert got == model.receive(bytes(chunk), pa, pb < len(payload))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_corrupted_overlap_never_delivers_corrupted_data(data: st.DataObject) -> None:
    """One piece re-sends bytes another piece carries, with one byte changed. The piece that
    completes the datagram comes last and overlaps nothing, so both versions of the byte meet
    in one datagram: the result is the original or nothing, and the mismatch is counted."""
    n = data.draw(st.integers(24, 8000))
    payload = data.draw(st.binary(min_size=n, max_size=n))
    blocks = (n + 7) // 8
    final_block = data.draw(st.integers(0, blocks - 1))
    final = (8 * final_block, min(8 * final_block + 8, n))
    # The other blocks, cut into a partition; the overlapping pieces avoid the final block.
    regions = [(0, final[0]), (final[1], n)]
    pieces: list[tuple[int, int]] = []
    extras: list[tuple[int, int]] = []
    for lo, hi in regions:
        if lo >= hi:
            continue
        cuts = sorted(data.draw(st.sets(st.integers(lo // 8 + 1, (hi + 7) // 8), max_size=8)))
        bounds = [lo, *(8 * c for c in cuts if lo < 8 * c < hi), hi]
        pieces += [(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]
        for _ in range(data.draw(st.integers(1, 3))):
            x = data.draw(st.integers(lo // 8, (hi - 1) // 8))
            y = data.draw(st.integers(x + 1, (hi + 7) // 8))
            extras.append((8 * x, min(8 * y, hi)))
    if not extras:
        return
    bad = data.draw(st.sampled_from(extras))
    pos = data.draw(st.integers(bad[0], bad[1] - 1))
    everything = data.draw(st.permutations(pieces + extras))
    order = [*everything, final]
    bad_index = order.index(bad)
    r = Reassembler(BIG)
    outcomes = run(r, payload, order, corrupt=(bad_index, pos))
    delivered = [x for x in outcomes if x is not None]
    assert all(x == payload for x in delivered)
    assert r.drops == {"overlap_mismatch": 1}
