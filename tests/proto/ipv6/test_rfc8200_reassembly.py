"""IPv6 fragment reassembly (netstack.proto.ipv6.reassembly): RFC 8200 4.5, RFC 5722
(overlaps), RFC 6946 (atomic fragments), driven without an event loop; plus hypothesis tests
that any order, fragment size, duplication or corruption yields the datagram that was sent or
nothing."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.ipv6.reassembly import Expired, Reassembler, ReassemblyConfig
from netstack.proto.ipv6.wire import (
    Chain,
    FragmentHeader,
    IPv6Header,
    NextHeader,
    ParameterProblem,
    parse,
    walk,
)

SRC = bytes.fromhex("20010db8000000000000000000000001")
DST = bytes.fromhex("20010db8000000000000000000000002")
OTHER = bytes.fromhex("20010db8000000000000000000000003")
UDP, ICMPV6, FRAGMENT, DEST, ROUTING = 17, 58, 44, 60, 43
KNOWN = frozenset({NextHeader.TCP, NextHeader.UDP, NextHeader.ICMPV6})
IDENT = 0x1234ABCD
SETTINGS = settings(max_examples=200, deadline=None)

#: Per-Fragment extension headers: a Destination Options header (8 bytes) naming Fragment.
DEST_OPTS = bytes([FRAGMENT, 0, 1, 4, 0, 0, 0, 0])


def fragment(
    data: bytes,
    offset: int,
    more: bool,
    *,
    ident: int = IDENT,
    nh: int = UDP,
    src: bytes = SRC,
    dst: bytes = DST,
    per_fragment: bytes = b"",
    hop_limit: int = 64,
) -> tuple[IPv6Header, bytes, Chain]:
    """A fragment packet, parsed and walked as the IPv6 layer would."""
    payload = per_fragment + FragmentHeader(nh, offset, more, ident).to_bytes() + data
    first_nh = DEST if per_fragment else FRAGMENT
    packet = IPv6Header(0, 0, len(payload), first_nh, hop_limit, src, dst).to_bytes() + payload
    header, view = parse(packet)
    chain = walk(header.next_header, view, False, known_upper=KNOWN)
    assert chain.fragment is not None or (offset, more) == (0, False)
    return header, packet, chain


def feed(
    r: Reassembler, data: bytes, offset: int, more: bool, now: float = 0.0, **kw: Any
) -> tuple[IPv6Header, int, bytearray] | None:
    header, packet, chain = fragment(data, offset, more, **kw)
    if chain.fragment is None:  # atomic: walk skipped it; hand it in as a fragment anyway
        at = len(kw.get("per_fragment", b""))
        chain = chain._replace(
            upper=kw.get("nh", UDP), offset=at + 8, fragment=FragmentHeader(UDP, 0, False, 0),
            fragment_at=at,
        )  # fmt: skip
    return r.receive(header, memoryview(packet), chain, now)


def split(payload: bytes, size: int) -> list[tuple[bytes, int, bool]]:
    """``payload`` cut into fragments of ``size`` bytes (a multiple of 8): (data, offset, M)."""
    return [
        (payload[i : i + size], i, i + size < len(payload)) for i in range(0, len(payload), size)
    ]


PAYLOAD = bytes(range(256)) * 4 + b"tail"  # 1028 bytes


def assert_empty(r: Reassembler) -> None:
    assert len(r) == 0
    assert r.buffered_bytes == 0
    assert r.poll_at() is None


def check_done(
    done: tuple[IPv6Header, int, bytearray] | None, payload: bytes = PAYLOAD, nh: int = UDP
) -> None:
    assert done is not None
    header, next_header, data = done
    assert isinstance(data, bytearray)
    assert bytes(data) == payload
    assert next_header == nh
    # the header of a packet that carries the Fragmentable Part directly
    assert header == IPv6Header(0, 0, len(payload), nh, 64, SRC, DST)


# -- orders ----------------------------------------------------------------------------------


def test_in_order() -> None:
    r = Reassembler()
    pieces = split(PAYLOAD, 256)
    for data, offset, more in pieces[:-1]:
        assert feed(r, data, offset, more) is None
        assert len(r) == 1
    check_done(feed(r, *pieces[-1]))
    assert_empty(r)
    assert r.reassembled == 1 and r.drops == {}


def test_reversed() -> None:
    r = Reassembler()
    pieces = split(PAYLOAD, 104)
    for data, offset, more in reversed(pieces[1:]):
        assert feed(r, data, offset, more) is None
    check_done(feed(r, *pieces[0]))
    assert_empty(r)


def test_hand_built_echo_request_fragments() -> None:
    # The two fragments of tests/proto/ipv6/test_ipv6_wire.py (tshark: "2 IPv6 Fragments (32
    # bytes)", "Reassembled IPv6 data: 80009f97...17", "Checksum: 0x9f97 [correct]").
    first = bytes.fromhex(
        "6000000000182c40" "20010db8000000000000000000000001" "20010db8000000000000000000000002"
        "3a0000011234abcd" "80009f9700070001" "0001020304050607"
    )  # fmt: skip
    last = bytes.fromhex(
        "6000000000182c40" "20010db8000000000000000000000001" "20010db8000000000000000000000002"
        "3a0000101234abcd" "08090a0b0c0d0e0f1011121314151617"
    )  # fmt: skip
    r = Reassembler()
    for packet in (last, first):
        header, payload = parse(packet)
        chain = walk(header.next_header, payload, False, known_upper=KNOWN)
        done = r.receive(header, memoryview(packet), chain, 1.0)
    assert done is not None
    header, nh, data = done
    assert nh == ICMPV6
    assert data.hex() == "80009f9700070001000102030405060708090a0b0c0d0e0f1011121314151617"
    assert header == IPv6Header(0, 0, 32, ICMPV6, 64, SRC, DST)


@SETTINGS
@given(
    length=st.integers(1, 2048),  # at most 256 fragments of 8 bytes: the default limit
    units=st.integers(1, 64),
    order=st.randoms(use_true_random=False),
)
def test_any_order_and_size(length: int, units: int, order: random.Random) -> None:
    payload = bytes((i * 7 + 3) & 0xFF for i in range(length))
    pieces = split(payload, units * 8)
    order.shuffle(pieces)
    r = Reassembler()
    results = [feed(r, *p, now=float(i)) for i, p in enumerate(pieces)]
    assert all(x is None for x in results[:-1])
    check_done(results[-1], payload)
    assert_empty(r)
    assert r.drops == {}


@SETTINGS
@given(
    length=st.integers(9, 2000),
    cuts=st.lists(st.integers(1, 249), min_size=1, max_size=12, unique=True),
    permutation=st.data(),
)
def test_random_fragment_sizes_and_permutations(
    length: int, cuts: list[int], permutation: st.DataObject
) -> None:
    payload = bytes((i * 13) & 0xFF for i in range(length))
    bounds = sorted({c * 8 for c in cuts if c * 8 < length} | {0, length})
    pieces = [(payload[a:b], a, b < length) for a, b in zip(bounds, bounds[1:], strict=False)]
    pieces = permutation.draw(st.permutations(pieces))
    r = Reassembler()
    done = None
    for i, piece in enumerate(pieces):
        assert done is None
        done = feed(r, *piece, now=i * 0.5)
    check_done(done, payload)
    assert_empty(r)


def test_next_header_and_header_come_from_the_offset_zero_fragment() -> None:
    # RFC 8200 4.5: "Only the value from the Offset zero fragment packet is used", and only
    # its headers are retained; the others' may differ.
    r = Reassembler()
    assert feed(r, PAYLOAD[512:], 512, False, nh=6, hop_limit=3) is None
    done = feed(r, PAYLOAD[:512], 0, True, nh=UDP, per_fragment=DEST_OPTS)
    check_done(done)
    assert done is not None and done[0].hop_limit == 64


def test_per_fragment_headers_are_not_in_the_payload() -> None:
    r = Reassembler()
    assert feed(r, PAYLOAD[:512], 0, True, per_fragment=DEST_OPTS) is None
    done = feed(r, PAYLOAD[512:], 512, False, per_fragment=DEST_OPTS)
    check_done(done)


def test_keys_are_source_destination_and_identification() -> None:
    r = Reassembler()
    half = len(PAYLOAD) // 2 & ~7
    assert feed(r, PAYLOAD[:half], 0, True) is None
    assert feed(r, PAYLOAD[half:], half, False, src=OTHER) is None
    assert feed(r, PAYLOAD[half:], half, False, dst=OTHER) is None
    assert feed(r, PAYLOAD[half:], half, False, ident=IDENT + 1) is None
    assert len(r) == 4
    check_done(feed(r, PAYLOAD[half:], half, False))
    assert len(r) == 3


def test_what_is_kept_is_copied() -> None:
    r = Reassembler()
    header, packet, chain = fragment(PAYLOAD[:512], 0, True)
    buf = bytearray(packet)
    assert r.receive(header, memoryview(buf), chain, 0.0) is None
    buf[:] = bytes(len(buf))  # the receive buffer is reused
    check_done(feed(r, PAYLOAD[512:], 512, False))


def test_link_padding_after_the_payload_is_not_data() -> None:
    r = Reassembler()
    header, packet, chain = fragment(PAYLOAD[:512], 0, True)
    assert r.receive(header, memoryview(packet + b"\xee" * 6), chain, 0.0) is None
    header, packet, chain = fragment(PAYLOAD[512:], 512, False)
    check_done(r.receive(header, packet + b"\xee" * 10, chain, 0.0))


# -- RFC 6946: atomic fragments --------------------------------------------------------------


def test_atomic_fragment_is_whole_and_leaves_other_fragments_alone() -> None:
    r = Reassembler()
    assert feed(r, PAYLOAD[:512], 0, True) is None
    done = feed(r, b"atomic", 0, False)
    check_done(done, b"atomic")
    assert len(r) == 1
    check_done(feed(r, PAYLOAD[512:], 512, False))


# -- RFC 8200 4.5: errors answered with a Parameter Problem ----------------------------------


@pytest.mark.parametrize("length", [1, 7, 9, 15, 1001])
def test_more_fragments_with_a_length_not_a_multiple_of_8(length: int) -> None:
    r = Reassembler()
    for per_fragment in (b"", DEST_OPTS):
        with pytest.raises(ParameterProblem) as info:
            feed(r, bytes(length), 8, True, per_fragment=per_fragment)
        exc = info.value
        # code 0, "pointing to the Payload Length field of the fragment packet"
        assert (exc.code, exc.pointer, exc.send_icmp) == (0, 4, True)
        assert exc.reason == "fragment_length"
    assert_empty(r)
    assert r.drops == {"bad_length": 2}


def test_last_fragment_may_have_any_length() -> None:
    r = Reassembler()
    assert feed(r, PAYLOAD[:8], 0, True) is None
    check_done(feed(r, PAYLOAD[8:13], 8, False), PAYLOAD[:13])


@pytest.mark.parametrize(
    ("offset", "length", "more", "per_fragment", "pointer"),
    [
        (65528, 8, False, b"", 42),  # 65 536 > 65 535
        (65528, 16, True, b"", 42),
        (65520, 16, False, b"", 42),
        (65528, 1, False, DEST_OPTS, 50),  # 8 bytes of Per-Fragment headers + 65 529
        (65520, 8, True, DEST_OPTS, 50),
    ],
)
def test_reassembled_payload_length_over_65535(
    offset: int, length: int, more: bool, per_fragment: bytes, pointer: int
) -> None:
    r = Reassembler()
    with pytest.raises(ParameterProblem) as info:
        feed(r, bytes(length), offset, more, per_fragment=per_fragment)
    exc = info.value
    # code 0, "pointing to the Fragment Offset field of the fragment packet"
    assert (exc.code, exc.pointer, exc.send_icmp) == (0, pointer, True)
    assert exc.reason == "fragment_too_long"
    assert_empty(r)
    assert r.drops == {"too_long": 1}


def test_reassembled_payload_length_of_exactly_65535() -> None:
    r = Reassembler()
    assert feed(r, bytes(7), 65528, False) is None
    assert feed(r, bytes(8), 65520, True) is None
    assert feed(r, bytes(7), 65520, False, per_fragment=DEST_OPTS, ident=2) is None
    assert r.drops == {}


# -- RFC 5722, RFC 8200 4.5: overlaps and duplicates -----------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((0, 64, True), (56, 64, True)),  # the second starts inside the first
        ((56, 64, True), (0, 64, True)),  # ... ends inside
        ((0, 128, True), (32, 32, True)),  # inside
        ((32, 32, True), (0, 128, True)),  # around
        ((0, 64, True), (0, 32, True)),  # same start, shorter
        ((0, 64, True), (0, 72, True)),  # same start, longer
        ((64, 64, False), (64, 32, False)),  # two different last fragments
        ((64, 16, True), (72, 8, False)),
    ],
)
def test_overlap_discards_the_datagram_and_its_later_fragments(
    first: tuple[int, int, bool], second: tuple[int, int, bool]
) -> None:
    r = Reassembler()
    for offset, length, more in (first, second):
        # the same bytes where they overlap: an overlap is dropped even when it agrees
        assert feed(r, PAYLOAD[offset : offset + length], offset, more, now=1.0) is None
    assert len(r) == 0 and r.buffered_bytes == 0
    reason = "overlap" if first[2] or second[2] else "inconsistent_length"
    assert r.drops == {reason: 1}
    # RFC 5722 4: the datagram's fragments "not yet received" are discarded too, so a
    # complete set arriving afterwards (within the timeout) yields nothing.
    for data, offset, more in split(PAYLOAD, 256):
        assert feed(r, data, offset, more, now=2.0) is None
    assert len(r) == 0
    after = "after_overlap" if reason == "overlap" else "after_discard"
    assert r.drops[after] == 5
    # other datagrams are unaffected
    pieces = split(PAYLOAD, 512)
    assert feed(r, *pieces[0], ident=7) is None
    assert feed(r, *pieces[1], ident=7) is None
    check_done(feed(r, *pieces[2], ident=7))


def test_the_tombstone_ends_with_the_timeout() -> None:
    r = Reassembler(ReassemblyConfig(timeout=60.0))
    assert feed(r, PAYLOAD[:64], 0, True, now=10.0) is None
    assert feed(r, PAYLOAD[32:96], 32, True, now=11.0) is None
    assert feed(r, PAYLOAD[96:104], 96, True, now=70.9) is None
    assert r.drops == {"overlap": 1, "after_overlap": 1}
    assert r.poll_at() is None
    pieces = split(PAYLOAD, 512)
    for i, piece in enumerate(pieces):
        done = feed(r, *piece, now=71.0 + i)
    check_done(done)


def test_handle_timeout_forgets_tombstones() -> None:
    r = Reassembler(ReassemblyConfig(timeout=5.0))
    assert feed(r, PAYLOAD[:64], 0, True, now=0.0) is None
    assert feed(r, PAYLOAD[8:72], 8, True, now=1.0) is None  # overlap: a tombstone until 6.0
    assert len(r._tombstones) == 1
    assert r.handle_timeout(5.9) == [] and len(r._tombstones) == 1
    assert r.handle_timeout(6.0) == [] and r._tombstones == {}


def test_exact_duplicates_are_harmless() -> None:
    # RFC 8200 4.5: exact duplicates may be dropped on their own.
    r = Reassembler()
    pieces = split(PAYLOAD, 256)
    for piece in (pieces[0], pieces[0], pieces[2], pieces[4], pieces[2], pieces[4]):
        assert feed(r, *piece) is None
    assert feed(r, *pieces[1]) is None
    assert feed(r, *pieces[1]) is None
    check_done(feed(r, *pieces[3]))
    assert r.drops == {"duplicate": 4}
    assert_empty(r)


def test_same_place_different_bytes_is_an_overlap() -> None:
    r = Reassembler()
    assert feed(r, PAYLOAD[:64], 0, True) is None
    assert feed(r, bytes(64), 0, True) is None
    assert r.drops == {"overlap": 1}
    assert_empty(r)


def test_duplicate_first_fragment_with_other_per_fragment_headers() -> None:
    # The data is what counts: the Per-Fragment headers may differ (RFC 8200 4.5).
    r = Reassembler()
    assert feed(r, PAYLOAD[:512], 0, True) is None
    assert feed(r, PAYLOAD[:512], 0, True, per_fragment=DEST_OPTS) is None
    check_done(feed(r, PAYLOAD[512:], 512, False))
    assert r.drops == {"duplicate": 1}


# -- inconsistent lengths --------------------------------------------------------------------


def test_data_beyond_the_last_fragment() -> None:
    r = Reassembler()
    assert feed(r, PAYLOAD[:64], 64, False) is None
    assert feed(r, PAYLOAD[:64], 128, True) is None
    assert r.drops == {"inconsistent_length": 1}
    assert_empty(r)


def test_last_fragment_before_data_already_held() -> None:
    r = Reassembler()
    assert feed(r, PAYLOAD[:64], 128, True) is None
    assert feed(r, PAYLOAD[:64], 64, False) is None  # ends at 128, but [128, 192) is held
    assert r.drops == {"inconsistent_length": 1}
    assert_empty(r)


def test_empty_last_fragment() -> None:
    r = Reassembler()
    assert feed(r, PAYLOAD[64:128], 64, True) is None
    assert feed(r, b"", 128, False) is None  # the Fragmentable Part is 128 bytes long
    assert feed(r, b"", 128, False) is None  # a duplicate
    assert r.drops == {"duplicate": 1}
    assert len(r) == 1
    assert feed(r, PAYLOAD[128:136], 128, True) is None  # beyond that end
    assert r.drops == {"duplicate": 1, "inconsistent_length": 1}
    assert_empty(r)


def test_empty_last_fragment_completes() -> None:
    r = Reassembler()
    assert feed(r, b"", 64, False) is None
    check_done(feed(r, PAYLOAD[:64], 0, True), PAYLOAD[:64])
    assert_empty(r)


def test_empty_middle_fragment_is_dropped() -> None:
    r = Reassembler()
    assert feed(r, b"", 64, True) is None
    assert r.drops == {"empty_fragment": 1}
    assert_empty(r)


# -- time (RFC 8200 4.5: 60 seconds from the first-arriving fragment) ------------------------


def test_timeout_with_the_first_fragment() -> None:
    r = Reassembler()
    header, packet, chain = fragment(PAYLOAD[:256], 0, True, per_fragment=DEST_OPTS)
    assert r.receive(header, memoryview(packet + b"pad"), chain, 100.0) is None
    assert feed(r, PAYLOAD[512:768], 512, True, now=130.0) is None
    assert r.poll_at() == 160.0  # not moved by later fragments
    assert r.handle_timeout(159.9) == []
    expired = r.handle_timeout(160.0)
    # what an ICMPv6 Time Exceeded quotes: the offset-0 fragment packet as received
    assert expired == [Expired((SRC, DST, IDENT), packet)]
    assert isinstance(expired[0].first, bytes)
    assert r.drops == {"timeout": 1}
    assert_empty(r)


def test_timeout_without_the_first_fragment() -> None:
    r = Reassembler(ReassemblyConfig(timeout=30.0))
    assert feed(r, PAYLOAD[256:512], 256, True, now=1.0) is None
    assert feed(r, PAYLOAD[:256], 0, True, now=2.0, ident=5) is None
    assert r.poll_at() == 31.0
    assert r.handle_timeout(31.5) == [Expired((SRC, DST, IDENT), None)]
    assert r.poll_at() == 32.0
    [expired] = r.handle_timeout(1000.0)
    assert expired.key == (SRC, DST, 5) and expired.first is not None
    assert_empty(r)


def test_timeouts_in_order() -> None:
    r = Reassembler(ReassemblyConfig(timeout=10.0))
    for i in range(5):
        assert feed(r, PAYLOAD[:64], 0, True, now=float(i), ident=i) is None
    assert [e.key[2] for e in r.handle_timeout(12.0)] == [0, 1, 2]
    assert r.poll_at() == 13.0 and len(r) == 2


# -- limits ----------------------------------------------------------------------------------


def test_max_datagrams_evicts_the_oldest() -> None:
    r = Reassembler(ReassemblyConfig(max_datagrams=3))
    for ident in range(3):
        assert feed(r, PAYLOAD[:64], 0, True, now=float(ident), ident=ident) is None
    assert feed(r, PAYLOAD[:64], 0, True, now=5.0, ident=3) is None
    assert len(r) == 3
    assert r.drops == {"too_many_datagrams": 1}
    assert r.poll_at() == 61.0  # ident 0 is gone
    # ident 0's data went with it: its last fragment starts a new, incomplete datagram
    assert feed(r, PAYLOAD[64:128], 64, False, now=6.0, ident=0) is None
    assert r.drops == {"too_many_datagrams": 2}
    check_done(feed(r, PAYLOAD[64:128], 64, False, now=6.0, ident=3), PAYLOAD[:128])
    # left: ident 2's first fragment packet (40 + 8 + 64 bytes) and ident 0's 64 bytes
    assert len(r) == 2 and r.buffered_bytes == 112 + 64


def test_max_bytes() -> None:
    r = Reassembler(ReassemblyConfig(max_bytes=1000))
    assert feed(r, PAYLOAD[256:512], 256, True) is None
    assert r.buffered_bytes == 256
    assert feed(r, PAYLOAD[512:768], 512, True, ident=2) is None
    assert feed(r, PAYLOAD[768:1024], 768, True, ident=3) is None
    assert r.buffered_bytes == 768
    # the first fragment is kept whole (header and all): 40 + 8 + 256 bytes is too much
    assert feed(r, PAYLOAD[:256], 0, True) is None
    assert r.drops == {"too_much_memory": 1}
    assert len(r) == 2 and r.buffered_bytes == 512
    assert feed(r, PAYLOAD[:200], 0, True, ident=4) is None
    assert r.buffered_bytes == 512 + 40 + 8 + 200


def test_max_fragments() -> None:
    r = Reassembler(ReassemblyConfig(max_fragments=4))
    pieces = split(PAYLOAD, 128)  # 9 fragments
    for piece in pieces[:4]:
        assert feed(r, *piece) is None
    assert feed(r, *pieces[4]) is None
    assert r.drops == {"too_many_fragments": 1}
    assert_empty(r)
    for piece in pieces:
        assert feed(r, *piece) is None
    assert r.drops == {"too_many_fragments": 1, "after_discard": 9}


def test_duplicates_count_as_fragments() -> None:
    r = Reassembler(ReassemblyConfig(max_fragments=3))
    for _ in range(3):
        assert feed(r, PAYLOAD[:64], 0, True) is None
    assert feed(r, PAYLOAD[:64], 0, True) is None
    assert r.drops == {"duplicate": 2, "too_many_fragments": 1}
    assert_empty(r)


def test_tombstones_are_bounded() -> None:
    r = Reassembler(ReassemblyConfig(max_tombstones=2))
    for ident in range(3):
        assert feed(r, PAYLOAD[:64], 0, True, ident=ident) is None
        assert feed(r, PAYLOAD[:64], 8, True, ident=ident) is None
    assert r.drops == {"overlap": 3}
    assert len(r._tombstones) == 2
    # ident 0's tombstone went first: its fragments start a datagram again
    assert feed(r, PAYLOAD[:64], 0, True, ident=0) is None
    assert feed(r, PAYLOAD[:64], 0, True, ident=1) is None
    assert len(r) == 1 and r.drops["after_overlap"] == 1


def test_no_tombstones() -> None:
    r = Reassembler(ReassemblyConfig(max_tombstones=0))
    assert feed(r, PAYLOAD[:64], 0, True) is None
    assert feed(r, PAYLOAD[:64], 8, True) is None
    assert feed(r, PAYLOAD[:64], 0, True) is None
    assert len(r) == 1 and r._tombstones == {}


def test_a_flood_stays_bounded() -> None:
    config = ReassemblyConfig(max_datagrams=8, max_bytes=20_000, max_fragments=16)
    r = Reassembler(config)
    rng = random.Random(5)
    for i in range(3000):
        offset = rng.randrange(0, 8000) * 8
        length = rng.randrange(1, 160) * 8
        more = rng.random() < 0.9
        kind = rng.randrange(4)
        ident = rng.randrange(40)
        try:
            feed(r, bytes([i & 0xFF]) * length, offset, more, now=i * 0.01, ident=ident,
                 src=SRC if kind else OTHER)  # fmt: skip
        except ParameterProblem:
            pass
        assert len(r) <= config.max_datagrams
        assert 0 <= r.buffered_bytes <= config.max_bytes
        assert all(d.fragments <= config.max_fragments for d in r._datagrams.values())
        assert len(r._tombstones) <= config.max_tombstones
    r.handle_timeout(1e9)
    assert_empty(r)


# -- misuse and malformed input --------------------------------------------------------------


def test_not_a_fragment() -> None:
    packet = IPv6Header(0, 0, 8, UDP, 64, SRC, DST).to_bytes() + bytes(8)
    header, payload = parse(packet)
    chain = walk(UDP, payload, False, known_upper=KNOWN)
    with pytest.raises(ValueError):
        Reassembler().receive(header, packet, chain, 0.0)


def test_packet_shorter_than_its_payload_length() -> None:
    header, packet, chain = fragment(PAYLOAD[:64], 0, True)
    with pytest.raises(ParseError) as info:
        Reassembler().receive(header, packet[:-1], chain, 0.0)
    assert info.value.reason == "truncated"


# -- hypothesis: never wrong data ------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_duplicates_reordering_and_corruption_never_invent_data(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 16)) * 8
    # at least two fragments: an atomic fragment stands alone, corrupted or not
    length = data.draw(st.integers(size + 1, 600))
    payload = bytes((i * 31 + 1) & 0xFF for i in range(length))
    pieces = split(payload, size)
    sent = list(pieces)
    tampered = False
    for _ in range(data.draw(st.integers(0, 4))):
        action = data.draw(st.sampled_from(["duplicate", "corrupt", "shift", "drop"]))
        i = data.draw(st.integers(0, len(pieces) - 1))
        chunk, offset, more = pieces[i]
        if action == "duplicate":
            sent.append(pieces[i])
        elif action == "corrupt":
            sent.append((bytes([chunk[0] ^ 0xFF]) + chunk[1:], offset, more))
            tampered = True
        elif action == "shift":
            sent.append((chunk, max(0, offset + data.draw(st.sampled_from([-8, 8]))), more))
            tampered = True
        elif pieces[i] in sent:
            sent.remove(pieces[i])
    sent = data.draw(st.permutations(sent))
    # Every byte that comes out must have been sent at that position by some fragment.
    offered: dict[int, set[int]] = {}
    for chunk, offset, _ in sent:
        for k, byte in enumerate(chunk):
            offered.setdefault(offset + k, set()).add(byte)
    r = Reassembler()
    for i, piece in enumerate(sent):
        try:
            done = feed(r, *piece, now=float(i))
        except ParameterProblem:
            continue
        if done is None:
            continue
        if not tampered:
            check_done(done, payload)
        else:
            out = done[2]
            assert all(byte in offered[k] for k, byte in enumerate(out))
            assert done[0].payload_length == len(out)
    r.handle_timeout(1e9)
    assert_empty(r)
