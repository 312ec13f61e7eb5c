"""Tests of netstack.proto.tcp.isn: initial sequence numbers (RFC 6528) and SYN cookies
(RFC 4987 3.6).

RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a 4 microsecond
timer. A cookie carries a 64-second tick in its top 5 bits, an index into ``COOKIE_MSS`` in the
next 3 and a 24-bit keyed hash below. Some properties hold only with high probability (a 32-bit
or 24-bit hash can collide); those tests draw their examples deterministically, so a run either
always passes or always fails.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.proto.tcp import seq
from netstack.proto.tcp.isn import COOKIE_MSS, Cookie, IsnGenerator, cookie_options, cookie_ts

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)
TICK = 64.0
TICKS_PER_SECOND = 250_000  # RFC 6528 3: M ticks every 4 microseconds

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))


def ip(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


LOCAL = (ip("198.18.0.1"), 80)
REMOTE = (ip("198.18.0.2"), 40000)
PEER_ISN = 0x12345678
NOW = 1_000 * TICK + 5.0  # 5 s into a cookie tick

addresses = st.binary(min_size=4, max_size=4)
ports = st.integers(0, 0xFFFF)
endpoints = st.tuples(addresses, ports)
u32 = st.integers(0, 0xFFFFFFFF)
times = st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False)


@pytest.fixture
def gen() -> IsnGenerator:
    return IsnGenerator(SECRET)


def test_the_secret_must_be_long_enough() -> None:
    with pytest.raises(ValueError):
        IsnGenerator(bytes(15))
    IsnGenerator(bytes(16))
    IsnGenerator(bytes(64))


# -- ISNs ------------------------------------------------------------------------------------


def test_isn_is_a_function_of_its_inputs(gen: IsnGenerator) -> None:
    first = gen.isn(LOCAL, REMOTE, NOW)
    assert 0 <= first < 2**32
    assert gen.isn(LOCAL, REMOTE, NOW) == first
    assert IsnGenerator(SECRET).isn(LOCAL, REMOTE, NOW) == first


@SETTINGS
@given(local=endpoints, remote=endpoints, now=times, which=st.integers(0, 3), data=st.data())
def test_isn_differs_per_four_tuple(
    local: tuple[bytes, int],
    remote: tuple[bytes, int],
    now: float,
    which: int,
    data: st.DataObject,
) -> None:
    gen = IsnGenerator(SECRET)
    (l_addr, l_port), (r_addr, r_port) = local, remote
    if which == 0:
        l_addr = data.draw(addresses.filter(lambda v: v != local[0]))
    elif which == 1:
        l_port = data.draw(ports.filter(lambda v: v != local[1]))
    elif which == 2:
        r_addr = data.draw(addresses.filter(lambda v: v != remote[0]))
    else:
        r_port = data.draw(ports.filter(lambda v: v != remote[1]))
    a = gen.isn(local, remote, now)
    b = gen.isn((l_addr, l_port), (r_addr, r_port), now)
    assert a != b


def test_isns_of_neighbouring_ports_look_unrelated(gen: IsnGenerator) -> None:
    isns = [gen.isn(LOCAL, (REMOTE[0], port), NOW) for port in range(40000, 40256)]
    assert len(set(isns)) == len(isns)
    steps = {seq.diff(b, a) for a, b in zip(isns, isns[1:], strict=False)}
    assert len(steps) > 200  # no arithmetic progression an observer could extrapolate
    # and the spread covers the space, not a narrow band around the clock
    assert max(isns) - min(isns) > 2**31


@pytest.mark.parametrize(
    ("seconds", "ticks"),
    [(1.0, 250_000), (0.5, 125_000), (10.0, 2_500_000), (0.000_1, 25), (3600.0, 900_000_000)],
)
def test_isn_advances_every_4_microseconds(gen: IsnGenerator, seconds: float, ticks: int) -> None:
    for start in (0.0, 1.0, 17_179.0, NOW):  # 17 179 s: M wraps past 2**32 soon after
        before = gen.isn(LOCAL, REMOTE, start)
        after = gen.isn(LOCAL, REMOTE, start + seconds)
        assert seq.add(before, ticks) == after


def test_isn_stays_within_one_tick(gen: IsnGenerator) -> None:
    base = gen.isn(LOCAL, REMOTE, 2.0)
    assert gen.isn(LOCAL, REMOTE, 2.000_001) == base
    assert gen.isn(LOCAL, REMOTE, 2.000_003) == base
    assert gen.isn(LOCAL, REMOTE, 2.000_005) == seq.add(base, 1)
    assert gen.isn(LOCAL, REMOTE, 2.000_009) == seq.add(base, 2)


@SETTINGS
@given(start_us=st.integers(0, 10**12), elapsed_us=st.integers(0, 2**31 * 4 - 8))
def test_later_incarnations_start_later(start_us: int, elapsed_us: int) -> None:
    # RFC 6528 3: for one 4-tuple the ISN grows with the clock, so a new connection's
    # numbers are ahead of an old one's (as long as less than 2**31 ticks, ~2.4 h, passed).
    gen = IsnGenerator(SECRET)
    before = gen.isn(LOCAL, REMOTE, start_us / 1e6)
    after = gen.isn(LOCAL, REMOTE, (start_us + elapsed_us) / 1e6)
    assert seq.le(before, after)
    assert abs(seq.diff(after, before) - elapsed_us / 4) <= 1


@SETTINGS
@given(local=endpoints, remote=endpoints, now=times)
def test_isn_depends_on_the_secret(
    local: tuple[bytes, int], remote: tuple[bytes, int], now: float
) -> None:
    a = IsnGenerator(SECRET).isn(local, remote, now)
    b = IsnGenerator(OTHER_SECRET).isn(local, remote, now)
    assert a != b


@pytest.mark.parametrize("position", [0, 1, 15, 16, 31])
def test_every_byte_of_the_secret_counts(position: int) -> None:
    other = bytearray(SECRET)
    other[position] ^= 0x80
    a, b = IsnGenerator(SECRET), IsnGenerator(bytes(other))
    assert a.isn(LOCAL, REMOTE, NOW) != b.isn(LOCAL, REMOTE, NOW)
    cookie = a.cookie(LOCAL, REMOTE, PEER_ISN, 1460, NOW)
    assert b.check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, NOW) is None


def test_isns_under_one_secret_do_not_predict_those_under_another() -> None:
    # If F ignored the key, or the key shifted every ISN alike, the offset between two stacks
    # would be the same for every 4-tuple.
    a, b = IsnGenerator(SECRET), IsnGenerator(OTHER_SECRET)
    offsets = {
        seq.diff(b.isn(LOCAL, (REMOTE[0], port), NOW), a.isn(LOCAL, (REMOTE[0], port), NOW))
        for port in range(1024, 1088)
    }
    assert len(offsets) == 64


# -- SYN cookies -----------------------------------------------------------------------------


def test_cookie_verifies_and_carries_the_mss(gen: IsnGenerator) -> None:
    cookie = gen.cookie(LOCAL, REMOTE, PEER_ISN, 1460, NOW)
    assert 0 <= cookie < 2**32
    assert cookie >> 27 == int(NOW / TICK) & 0x1F
    assert (cookie >> 24) & 0x7 == COOKIE_MSS.index(1460)
    assert gen.check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, NOW) == Cookie(1460)
    assert IsnGenerator(SECRET).check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, NOW) == Cookie(1460)


@SETTINGS
@given(local=endpoints, remote=endpoints, peer_isn=u32, now=times, which=st.integers(0, 4))
def test_cookie_fails_for_another_connection(
    local: tuple[bytes, int],
    remote: tuple[bytes, int],
    peer_isn: int,
    now: float,
    which: int,
) -> None:
    gen = IsnGenerator(SECRET)
    cookie = gen.cookie(local, remote, peer_isn, 1460, now)
    assert gen.check_cookie(local, remote, peer_isn, cookie, now) == Cookie(1460)
    l_addr, l_port = local
    r_addr, r_port = remote
    isn = peer_isn
    if which == 0:
        l_addr = bytes([l_addr[0] ^ 0x01]) + l_addr[1:]
    elif which == 1:
        l_port = (l_port + 1) & 0xFFFF
    elif which == 2:
        r_addr = bytes([r_addr[0] ^ 0x01]) + r_addr[1:]
    elif which == 3:
        r_port = (r_port + 1) & 0xFFFF
    else:
        isn = (isn + 1) & 0xFFFFFFFF
    other = gen.check_cookie((l_addr, l_port), (r_addr, r_port), isn, cookie, now)
    assert other is None


@pytest.mark.parametrize("bit", range(32))
def test_cookie_with_a_flipped_bit_fails(gen: IsnGenerator, bit: int) -> None:
    # Every bit of the cookie should be covered: the hash bits by themselves, the tick
    # because it is hashed, and the MSS index, so that a cookie comes back with exactly the
    # MSS it was issued for (a client that flips the index bits would otherwise be served
    # segments of up to 65495 bytes after announcing 536).
    cookie = gen.cookie(LOCAL, REMOTE, PEER_ISN, 1460, NOW)
    forged = cookie ^ (1 << bit)
    assert gen.check_cookie(LOCAL, REMOTE, PEER_ISN, forged, NOW) is None, (
        f"bit {bit} flipped: {gen.check_cookie(LOCAL, REMOTE, PEER_ISN, forged, NOW)}"
    )


def test_cookie_of_another_secret_fails() -> None:
    cookie = IsnGenerator(OTHER_SECRET).cookie(LOCAL, REMOTE, PEER_ISN, 1460, NOW)
    assert IsnGenerator(SECRET).check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, NOW) is None
    assert cookie != IsnGenerator(SECRET).cookie(LOCAL, REMOTE, PEER_ISN, 1460, NOW)


TICK_START = 1_000 * TICK


@pytest.mark.parametrize("made", [0.0, 0.001, 32.0, 63.999])
@pytest.mark.parametrize("later", [0.0, 0.5, 63.0, 64.0, 100.0])
def test_cookie_verifies_within_its_lifetime(gen: IsnGenerator, made: float, later: float) -> None:
    # made in tick T, checked up to a tick later (but no earlier than it was made)
    now = TICK_START + made
    cookie = gen.cookie(LOCAL, REMOTE, PEER_ISN, 1460, now)
    when = max(now, TICK_START + later)
    assert gen.check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, when) == Cookie(1460)


@pytest.mark.parametrize("ticks_later", [3, 4, 10, 20, 31])
@pytest.mark.parametrize("made", [0.0, 63.999])
def test_cookie_fails_after_its_lifetime(gen: IsnGenerator, ticks_later: int, made: float) -> None:
    cookie = gen.cookie(LOCAL, REMOTE, PEER_ISN, 1460, TICK_START + made)
    for into in (0.0, 63.999):
        when = TICK_START + ticks_later * TICK + into
        assert gen.check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, when) is None


def test_cookie_is_valid_for_two_ticks(gen: IsnGenerator) -> None:
    # isn.py: "Cookie time ticks last 64 seconds; a cookie is valid for two ticks" (as Linux's
    # MAX_SYNCOOKIE_AGE 2 with ``diff >= MAX_SYNCOOKIE_AGE`` rejected): the tick it was made in
    # and the next, so at most 128 s.
    cookie = gen.cookie(LOCAL, REMOTE, PEER_ISN, 1460, TICK_START)
    assert gen.check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, TICK_START + 127.9) == Cookie(1460)
    third_tick = gen.check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, TICK_START + 2 * TICK)
    assert third_tick is None, f"accepted {2 * TICK:.0f} s after it was made: {third_tick}"


@pytest.mark.parametrize("earlier", [0.001, 1.0, TICK, 5 * TICK])
def test_cookie_from_the_future_fails(gen: IsnGenerator, earlier: float) -> None:
    cookie = gen.cookie(LOCAL, REMOTE, PEER_ISN, 1460, TICK_START)
    assert gen.check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, TICK_START - earlier) is None


@pytest.mark.parametrize("mss", COOKIE_MSS)
def test_cookie_carries_each_table_entry(gen: IsnGenerator, mss: int) -> None:
    cookie = gen.cookie(LOCAL, REMOTE, PEER_ISN, mss, NOW)
    assert gen.check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, NOW) == Cookie(mss)


def largest_entry_not_above(mss: int) -> int:
    return max(m for m in COOKIE_MSS if m <= mss)


@SETTINGS
@given(mss=st.integers(COOKIE_MSS[0], 0xFFFF), peer_isn=u32, now=times)
def test_cookie_mss_is_the_largest_table_entry_not_above_the_peers(
    mss: int, peer_isn: int, now: float
) -> None:
    gen = IsnGenerator(SECRET)
    cookie = gen.cookie(LOCAL, REMOTE, peer_isn, mss, now)
    got = gen.check_cookie(LOCAL, REMOTE, peer_isn, cookie, now)
    assert got == Cookie(largest_entry_not_above(mss))
    assert got is not None and got.mss <= mss


@pytest.mark.parametrize("mss", [0, 1, 88, 535])
def test_cookie_mss_below_the_table_is_the_smallest_entry(gen: IsnGenerator, mss: int) -> None:
    # Nothing in the table is small enough; like Linux's msstab, index 0 (536) is used.
    cookie = gen.cookie(LOCAL, REMOTE, PEER_ISN, mss, NOW)
    assert gen.check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, NOW) == Cookie(COOKIE_MSS[0])


def test_cookie_table() -> None:
    assert len(COOKIE_MSS) == 8  # three bits
    assert list(COOKIE_MSS) == sorted(set(COOKIE_MSS))
    assert COOKIE_MSS[0] == 536 and 1460 in COOKIE_MSS


@given(
    st.integers(0, 0xFFFFFFFF),
    st.one_of(st.none(), st.integers(0, 14)),
    st.booleans(),
)
def test_cookie_timestamp_carries_options_and_never_runs_ahead(
    ts_now: int, wscale: int | None, sack: bool
) -> None:
    """isn.py: the SYN-ACK's timestamp keeps the options in its low 6 bits, and is never
    later than the clock (at most 64 ms earlier)."""
    bits = cookie_options(wscale, sack)
    ts = cookie_ts(ts_now, bits)
    assert ts & 0x3F == bits
    assert 0 <= (ts_now - ts) & 0xFFFFFFFF < 64
    gen = IsnGenerator(SECRET)
    cookie = gen.cookie(LOCAL, REMOTE, PEER_ISN, 1460, NOW, bits)
    assert gen.check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, NOW, ts) == Cookie(
        1460, wscale, sack, timestamps=True
    )
    # Without the echo (no timestamps on the ACK) the cookie does not check out.
    assert gen.check_cookie(LOCAL, REMOTE, PEER_ISN, cookie, NOW) is None


def test_timestamp_offset_is_a_function_of_the_pair_of_hosts() -> None:
    """RFC 7323 5.4 / RFC 6191: one timestamp clock per pair of hosts. The generator
    remembers the offsets it computed; what it answers is the keyed hash of the pair, the
    same after its memory is cleared, from another generator with the same secret, and
    different for another pair or another secret."""
    a, b, c = ip("198.18.0.1"), ip("198.18.0.2"), ip("198.18.0.3")
    gen = IsnGenerator(SECRET)
    first = gen.ts_offset(a, b)
    assert gen.ts_offset(a, b) == first
    for i in range(5000):  # more pairs than it remembers: its memory starts over
        gen.ts_offset(a, i.to_bytes(4, "big"))
    assert gen.ts_offset(a, b) == first
    assert IsnGenerator(SECRET).ts_offset(a, b) == first
    assert gen.ts_offset(a, c) != first
    assert gen.ts_offset(b, a) != first
    assert IsnGenerator(OTHER_SECRET).ts_offset(a, b) != first


def test_port_offset_is_a_function_of_the_destination() -> None:
    """RFC 6056 3.3.3: F(local address, remote address, remote port, secret), remembered
    like the timestamp offsets, so the same after the generator's memory starts over."""
    a, b = ip("198.18.0.1"), ip("198.18.0.2")
    gen = IsnGenerator(SECRET)
    first = gen.port_offset(a, (b, 80))
    wild = gen.port_offset(a, None)
    for i in range(5000):
        gen.port_offset(a, (b, 1024 + i))
    assert gen.port_offset(a, (b, 80)) == first
    assert gen.port_offset(a, None) == wild
    assert IsnGenerator(SECRET).port_offset(a, (b, 80)) == first
    assert gen.port_offset(a, (b, 81)) != first
    assert IsnGenerator(OTHER_SECRET).port_offset(a, (b, 80)) != first
