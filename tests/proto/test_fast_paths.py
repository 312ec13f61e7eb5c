"""The per-packet fast paths equal the wire modules they inline.

The receive paths of IPv4 (netstack/proto/ipv4/layer.py), IPv6 (ipv6/layer.py) and TCP
(tcp/layer.py) check headers and checksums inline instead of calling ``wire.parse`` and
``checksum_ok``; the transmit paths of TCP (``TcpLayer._transmit``), IPv4 (``output`` with DF)
and IPv6 (``output``) write headers and checksums inline instead of calling ``build_into`` /
``build_header_into``. For arbitrary bytes, and for well-formed packets with damage done to
them (bits flipped, bytes overwritten, cut short, lengthened), each receive path must come to
the verdict the wire module comes to -- accepted, or dropped for the same reason -- and hand
up the same header fields and payload; each transmit path must write the very bytes the wire
module writes for the same fields.

The layers are composed as the stack composes them, over a transmit that records frames,
without an event loop.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.arp.layer import ArpLayer
from netstack.proto.checksum import checksum, ones_sum, pseudo_header_sum6, verify
from netstack.proto.ethernet.layer import EthernetLayer
from netstack.proto.ethernet.wire import ETHERNET_HEADER_LEN
from netstack.proto.icmp.layer import IcmpLayer
from netstack.proto.icmpv6.layer import Icmp6Layer
from netstack.proto.ip.dual import DualIP
from netstack.proto.ipv4 import wire as ipv4
from netstack.proto.ipv4.layer import IPv4Layer, OutRoute
from netstack.proto.ipv6 import wire as ipv6
from netstack.proto.ipv6.layer import IPv6Layer
from netstack.proto.tcp import wire as tcp
from netstack.proto.tcp.connection import Segment, State
from netstack.proto.tcp.layer import TcpLayer

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OUR_MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")
OUR4 = ipaddress.IPv4Address("198.18.0.1").packed
PEER4 = ipaddress.IPv4Address("198.18.0.2").packed
OUR6 = ipaddress.IPv6Address("fd00::1").packed
PEER6 = ipaddress.IPv6Address("fd00::2").packed
#: Unassigned protocol numbers (RFC 3692 experimentation) whose datagrams a recorder takes.
RECORDED = (253, 254)

#: The drop reasons of the checks the IPv4 and IPv6 layers inline; any other outcome is a
#: packet that passed them.
IPV4_CHECKS = {"truncated", "bad_version", "bad_header_length", "bad_total_length", "bad_checksum"}
IPV6_CHECKS = {"truncated", "bad_version", "jumbogram"}


class Host:
    """Ethernet, ARP, IPv4, ICMP, IPv6, ICMPv6 and TCP, as the stack composes them, over a
    transmit that records frames; 198.18.0.1/24 and fd00::1/64."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.eth = EthernetLayer(OUR_MAC, lambda frame: self.frames.append(bytes(frame)))
        self.arp = ArpLayer(self.eth)
        self.ipv4 = IPv4Layer(self.eth, self.arp, mtu=1500, rng=random.Random(4))
        self.icmp = IcmpLayer(self.ipv4)
        self.ipv6 = IPv6Layer(self.eth, mtu=1500, rng=random.Random(6), secret=bytes(32))
        self.icmp6 = Icmp6Layer(self.ipv6)
        self.ip = DualIP(self.ipv4, self.icmp, self.ipv6, self.icmp6)
        self.tcp = TcpLayer(self.ip, random.Random(7))
        self.ipv4.add_address(OUR4, 24, 0.0)
        self.ipv6.add_address(OUR6, 64, 0.0, dad=False)
        self.delivered: list[tuple[Any, bytes]] = []
        for proto in RECORDED:
            self.ipv4.protocols[proto] = self._deliver
            self.ipv6.protocols[proto] = self._deliver
        self.frames.clear()

    def _deliver(
        self, header: Any, payload: memoryview, now: float, to_group: bool, ifindex: int = 0
    ) -> None:
        self.delivered.append((header, bytes(payload)))


HOST = Host()


def drops_during(layer: Any, call: Callable[[], None]) -> list[str]:
    """The reasons of the drops ``layer`` counted during ``call``."""
    before = dict(layer.drops)
    call()
    return [reason for reason, n in layer.drops.items() if n > before.get(reason, 0)]


def verdict(reasons: list[str], checks: set[str]) -> str:
    """The drop reason of a check among ``checks``, or ``"pass"`` for a packet that passed
    them all (whatever became of it later)."""
    failed = [reason for reason in reasons if reason in checks]
    if not failed:
        return "pass"
    assert reasons == failed and len(failed) == 1, reasons
    return failed[0]


# -- strategies ---------------------------------------------------------------------------------


class Lengths(NamedTuple):
    """Where a protocol's header says how long something is: the most telling place to damage
    (one byte off either way is where a hand-written bounds check goes wrong); and how to make
    its checksum right again, so that damage also reaches the checks behind the checksum."""

    header_len: int  # the bytes at the front that are header, to aim damage at
    minimum: int  # the shortest length the field may claim
    read: Callable[[bytes], int | None]  # the length the header claims, None if it cannot
    write: Callable[[bytearray, int], None]  # make the header claim another length
    refresh: Callable[[bytearray], None] = lambda data: None  # the checksum made right


def _read16(at: int, plus: int = 0) -> Callable[[bytes], int | None]:
    return lambda data: (
        int.from_bytes(data[at : at + 2], "big") + plus if len(data) >= at + 2 else None
    )


def _write16(at: int, minus: int = 0) -> Callable[[bytearray, int], None]:
    def write(data: bytearray, length: int) -> None:
        if len(data) >= at + 2:
            data[at : at + 2] = ((length - minus) & 0xFFFF).to_bytes(2, "big")

    return write


def _read_offset(data: bytes) -> int | None:
    return (data[12] >> 4) * 4 if len(data) > 12 else None


def _write_offset(data: bytearray, length: int) -> None:
    if len(data) > 12:
        data[12] = (data[12] & 0x0F) | (((length >> 2) & 0x0F) << 4)


def _refresh_ipv4(data: bytearray) -> None:
    if len(data) >= 20 and len(data) >= (data[0] & 0x0F) * 4:
        ipv4.fill_checksum(data)


def tcp_lengths(src: bytes, dst: bytes) -> Lengths:
    def refresh(data: bytearray) -> None:
        if len(data) >= 20:
            data[16:18] = reference_checksum(data, src, dst).to_bytes(2, "big")

    return Lengths(60, 20, _read_offset, _write_offset, refresh)  # Data Offset


IPV4_LENGTHS = Lengths(24, 20, _read16(2), _write16(2), _refresh_ipv4)  # Total Length
IPV6_LENGTHS = Lengths(40, 40, _read16(4, 40), _write16(4, 40))  # Payload Length


@st.composite
def damaged(draw: st.DrawFn, packet: bytes, lengths: Lengths) -> bytes:
    """``packet`` as it is, or with up to three kinds of damage, most of it in the header:
    bits flipped, bytes overwritten, cut short or lengthened, the data cut (or the length field
    set) to within a few bytes of what the length field says, or of the shortest length it may
    say, and the checksum made right again after it."""
    data = bytearray(packet)
    kinds = ["flip", "byte", "header_byte", "cut", "extend", "cut_near", "claim", "refresh"]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(kinds))
        if kind == "flip" and data:
            bit = draw(st.integers(0, len(data) * 8 - 1))
            data[bit // 8] ^= 1 << (bit % 8)
        elif kind == "byte" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif kind == "header_byte" and data:
            at = draw(st.integers(0, min(len(data), lengths.header_len) - 1))
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=8))
        elif kind == "cut_near":
            claimed = lengths.read(bytes(data))
            if claimed is not None:
                data = data[: max(0, claimed + draw(st.integers(-4, 1)))]
        elif kind == "claim":
            near = len(data) + draw(st.integers(-4, 4))
            least = lengths.minimum + draw(st.integers(-4, 4))
            lengths.write(data, draw(st.sampled_from([near, least])))
        elif kind == "refresh":
            lengths.refresh(data)
    return bytes(data)


unicast4 = st.builds(
    lambda a, rest: bytes([a]) + rest, st.integers(1, 223), st.binary(min_size=3, max_size=3)
)
unicast6 = st.builds(lambda rest: b"\xfd\x00" + rest, st.binary(min_size=14, max_size=14))
ipv4_options = st.sampled_from(
    [b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00", b"\x07\x07\x04\x00\x00\x00\x00\x00"]
)


@st.composite
def ipv4_packets(draw: st.DrawFn) -> bytes:
    """A well-formed datagram to us (usually) for a recorded protocol (usually), with link
    padding after it now and then."""
    options = draw(ipv4_options)
    payload = draw(st.binary(max_size=48))
    header = ipv4.IPv4Header(
        tos=draw(st.integers(0, 255)),
        total_length=20 + len(options) + len(payload),
        ident=draw(st.integers(0, 0xFFFF)),
        flags_fragment=draw(st.sampled_from([0, ipv4.FLAG_DF])),
        ttl=draw(st.integers(1, 255)),
        proto=draw(st.sampled_from([*RECORDED, RECORDED[0], 6])),
        checksum=0,
        src=draw(unicast4),
        dst=draw(st.sampled_from([OUR4, OUR4, PEER4])),
        options=options,
    )
    raw = bytearray(header.to_bytes())
    ipv4.fill_checksum(raw)
    return bytes(raw) + payload + draw(st.binary(max_size=6))


@st.composite
def ipv6_packets(draw: st.DrawFn) -> bytes:
    payload = draw(st.binary(max_size=48))
    header = ipv6.IPv6Header(
        traffic_class=draw(st.integers(0, 255)),
        flow_label=draw(st.integers(0, 0xFFFFF)),
        payload_length=len(payload),
        next_header=draw(st.sampled_from([*RECORDED, RECORDED[0], 0, 59])),
        hop_limit=draw(st.integers(0, 255)),
        src=draw(unicast6),
        dst=draw(st.sampled_from([OUR6, OUR6, PEER6])),
    )
    return header.to_bytes() + payload + draw(st.binary(max_size=6))


tcp_option_areas = st.one_of(
    st.just(b""),
    st.builds(
        lambda mss, ws, sack, ts: tcp.emit_options(
            mss=mss, wscale=ws, sack_permitted=sack, timestamp=ts
        ),
        st.none() | st.integers(0, 0xFFFF),
        st.none() | st.integers(0, 14),
        st.booleans(),
        st.none() | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    ),
    st.builds(
        lambda ts: tcp.emit_options(timestamp=ts),
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    ),
    st.integers(1, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
)


def reference_checksum(segment: bytes | bytearray, src: bytes, dst: bytes) -> int:
    """RFC 9293 3.1 / RFC 8200 8.1: the checksum over the pseudo-header of ``src``'s family,
    as ``build_into`` writes it for IPv4."""
    if len(src) == 4:
        buf = bytearray(segment)
        buf[16:18] = b"\x00\x00"
        return checksum(buf, tcp.pseudo_header_sum(src, dst, 6, len(buf)))
    buf = bytearray(segment)
    buf[16:18] = b"\x00\x00"
    return checksum(buf, pseudo_header_sum6(src, dst, 6, len(buf)))


def tcp_checksum_ok(segment: bytes, src: bytes, dst: bytes) -> bool:
    if len(src) == 4:
        return tcp.checksum_ok(segment, src, dst)
    return verify(segment, pseudo_header_sum6(src, dst, 6, len(segment)))


@st.composite
def tcp_segments(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    """``(segment, src, dst)``: a well-formed segment to us over IPv4 or IPv6."""
    v6 = draw(st.booleans())
    src, dst = (PEER6, OUR6) if v6 else (PEER4, OUR4)
    options = draw(tcp_option_areas)
    payload = draw(st.binary(max_size=40))
    buf = bytearray(20 + len(options) + len(payload))
    buf[20 + len(options) :] = payload
    tcp.build_into(
        buf, 0, draw(st.integers(0, 0xFFFF)), draw(st.sampled_from([80, 81])),
        draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 0xFFF)), draw(st.integers(0, 0xFFFF)), options, src, dst,
        urgent=draw(st.integers(0, 0xFFFF)),
    )  # fmt: skip
    if v6:
        buf[16:18] = reference_checksum(buf, src, dst).to_bytes(2, "big")
    return bytes(buf), src, dst


# -- IPv4 receive -------------------------------------------------------------------------------


def ipv4_reference(data: bytes) -> str:
    try:
        ipv4.parse(data)
    except ParseError as exc:
        return exc.reason
    return "pass" if ipv4.checksum_ok(data) else "bad_checksum"


def check_ip(layer: IPv4Layer | IPv6Layer, data: bytes) -> None:
    """The layer's verdict is the wire module's, and a datagram it hands up is what
    ``parse`` reads: the same header object and payload."""
    v4 = isinstance(layer, IPv4Layer)
    HOST.delivered.clear()
    reasons = drops_during(layer, lambda: layer.receive(memoryview(data), PEER_MAC, False, 0.0))
    expected = ipv4_reference(data) if v4 else ipv6_reference(data)
    assert verdict(reasons, IPV4_CHECKS if v4 else IPV6_CHECKS) == expected
    if HOST.delivered:
        header, payload = ipv4.parse(data) if v4 else ipv6.parse(data)
        assert HOST.delivered == [(header, bytes(payload))]


def check_ipv4(data: bytes) -> None:
    check_ip(HOST.ipv4, data)


@SETTINGS
@given(st.binary(max_size=80))
def test_ipv4_receive_checks_arbitrary_bytes(data: bytes) -> None:
    check_ipv4(data)


@SETTINGS
@given(ipv4_packets().flatmap(lambda packet: damaged(packet, IPV4_LENGTHS)))
def test_ipv4_receive_checks_damaged_datagrams(data: bytes) -> None:
    check_ipv4(data)


@pytest.mark.parametrize("fixed", [True, False], ids=["checksum_right", "checksum_wrong"])
@pytest.mark.parametrize("claim", range(14, 30))
def test_ipv4_receive_checks_every_length_near_the_edges(claim: int, fixed: bool) -> None:
    """Every Total Length around the header's 20 bytes, with the data a few bytes shorter or
    longer than it claims: where a bounds check written by hand is off by one."""
    for length in range(max(20, claim - 3), claim + 4):
        header = ipv4.IPv4Header(0, claim, 1, 0, 64, RECORDED[0], 0, PEER4, OUR4)
        raw = bytearray(header.to_bytes()) + bytes(range(length - 20))
        if fixed:
            ipv4.fill_checksum(raw)
        check_ipv4(bytes(raw))


def test_ipv4_receive_delivers_what_parse_reads() -> None:
    """The fast path's header, built with ``*`` from its struct unpack (which
    tests/test_fast_constructors.py cannot count), is parse()'s header."""
    header = ipv4.IPv4Header(0x2E, 25, 0x1234, ipv4.FLAG_DF, 9, RECORDED[0], 0, PEER4, OUR4)
    raw = bytearray(header.to_bytes())
    ipv4.fill_checksum(raw)
    data = bytes(raw) + b"hello" + b"\x00\x00"  # and link padding
    check_ipv4(data)
    assert len(HOST.delivered) == 1
    got, payload = HOST.delivered[0]
    assert got == ipv4.parse(data)[0] and type(got) is ipv4.IPv4Header and payload == b"hello"


# -- IPv6 receive -------------------------------------------------------------------------------


def ipv6_reference(data: bytes) -> str:
    try:
        ipv6.parse(data)
    except ParseError as exc:
        return exc.reason
    return "pass"


def check_ipv6(data: bytes) -> None:
    check_ip(HOST.ipv6, data)


@pytest.mark.parametrize("next_header", [0, RECORDED[0]])
def test_ipv6_receive_checks_every_length_near_the_edges(next_header: int) -> None:
    for claim in range(6):
        for length in range(36, 40 + claim + 4):
            header = ipv6.IPv6Header(0, 0, claim, next_header, 64, PEER6, OUR6)
            check_ipv6((header.to_bytes() + bytes(range(8)))[:length])


@SETTINGS
@given(st.binary(max_size=80))
def test_ipv6_receive_checks_arbitrary_bytes(data: bytes) -> None:
    check_ipv6(data)


@SETTINGS
@given(ipv6_packets().flatmap(lambda packet: damaged(packet, IPV6_LENGTHS)))
def test_ipv6_receive_checks_damaged_packets(data: bytes) -> None:
    check_ipv6(data)


# -- TCP receive --------------------------------------------------------------------------------


class Recorder:
    """Stands in for a connection (the machine's interface, doing nothing) and records what
    the layer hands it."""

    state = State.ESTABLISHED
    user = None
    ack_deferred = False
    timer_at = None

    def __init__(self) -> None:
        self.received: list[tuple[Any, ...]] = []

    def receive(self, *args: Any) -> None:
        seq, ack, flags, window, opts, payload, _now, *urgent = args
        self.received.append((seq, ack, flags, window, opts, bytes(payload), *urgent))

    def segments_to_send(self) -> list[Segment]:
        return []

    def next_event(self) -> None:
        return None

    def poll_at(self) -> None:
        return None


def tcp_reference(data: bytes, src: bytes, dst: bytes) -> str:
    try:
        header, _ = tcp.parse(data)
    except ParseError as exc:
        return exc.reason
    if not tcp_checksum_ok(data, src, dst):
        return "bad_checksum"
    try:
        tcp.parse_options(header.options)
    except ParseError as exc:
        return exc.reason
    return "pass"


def check_tcp(data: bytes, src: bytes, dst: bytes) -> None:
    layer = HOST.tcp
    ip: Any = ipv6.IPv6Header(0, 0, len(data), 6, 64, src, dst) if len(src) == 16 else None
    if ip is None:
        ip = ipv4.IPv4Header(0, 20 + len(data), 0, 0, 64, 6, 0, src, dst)
    conn = Recorder()
    if len(data) >= 4:
        sport, dport = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")
        layer.connections[(dst, dport, src, sport)] = conn  # type: ignore[assignment]
    accepted = layer.rx_segments
    try:
        reasons = drops_during(layer, lambda: layer.receive(ip, memoryview(data), 0.0, False))
    finally:
        layer.connections.clear()
    if layer.rx_segments > accepted:
        seen = "pass"
    else:
        assert len(reasons) == 1, reasons
        seen = reasons[0]
    assert seen == tcp_reference(data, src, dst)
    if seen == "pass":
        header, payload = tcp.parse(data)
        opts = tcp.parse_options(header.options)
        expected = (header.seq, header.ack, header.flags, header.window, opts, bytes(payload))
        assert len(conn.received) == 1
        got = conn.received[0]
        assert got[:6] == expected
        assert got[6:] in ((), (header.urgent,))


@pytest.mark.parametrize("fixed", [True, False], ids=["checksum_right", "checksum_wrong"])
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("offset", range(16))
def test_tcp_receive_checks_every_data_offset_near_the_edges(
    offset: int, v6: bool, fixed: bool
) -> None:
    """Every Data Offset, with the segment a few bytes shorter or longer than it says the
    header is (options of NOPs)."""
    src, dst = (PEER6, OUR6) if v6 else (PEER4, OUR4)
    for length in range(max(20, offset * 4 - 3), offset * 4 + 4):
        segment = bytearray(length)
        segment[20:] = b"\x01" * (length - 20)
        tcp.build_into(segment, 0, 43210, 80, 1, 2, 0x010, 1024, b"", src, dst)
        segment[12] = offset << 4
        if fixed:
            segment[16:18] = reference_checksum(segment, src, dst).to_bytes(2, "big")
        check_tcp(bytes(segment), src, dst)


@SETTINGS
@given(st.binary(max_size=80), st.booleans())
def test_tcp_receive_checks_arbitrary_bytes(data: bytes, v6: bool) -> None:
    check_tcp(data, *((PEER6, OUR6) if v6 else (PEER4, OUR4)))


@SETTINGS
@given(
    tcp_segments().flatmap(lambda s: st.tuples(damaged(s[0], tcp_lengths(*s[1:])), st.just(s[1:])))
)
def test_tcp_receive_checks_damaged_segments(case: tuple[bytes, tuple[bytes, bytes]]) -> None:
    data, (src, dst) = case
    check_tcp(data, src, dst)


# -- transmit -----------------------------------------------------------------------------------


def sent() -> bytes:
    (frame,) = HOST.frames
    HOST.frames.clear()
    return frame


def summing_to_zero(data: bytes, initial: int) -> bytes:
    """``data`` (of even length) and two bytes more that make the ones'-complement sum of it
    all, with ``initial``, zero: the one sum whose checksum may be written two ways (0x0000 or
    0xFFFF), which random data meets once in 65 535 times."""
    return data + ((0xFFFF - ones_sum(data + b"\x00\x00", initial)) % 0xFFFF).to_bytes(2, "big")


@SETTINGS
@given(tcp_segments(), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.booleans())
def test_tcp_transmit_writes_what_build_into_writes(
    case: tuple[bytes, bytes, bytes], sport: int, dport: int, zero_sum: bool
) -> None:
    """``TcpLayer._transmit`` (checksum from a cached pseudo-header sum, one sum for both
    families) writes the bytes ``build_into`` writes, with the checksum of RFC 9293 3.1 for
    IPv4 and of RFC 8200 8.1 for IPv6."""
    model, peer, us = case
    header, payload = tcp.parse(model)
    if zero_sum:
        # The payload's last two bytes chosen so that the segment sums to zero.
        fields = bytearray(tcp.TcpHeader(sport, dport, header.seq, header.ack, header.flags,
                                         header.window, 0, header.urgent,
                                         header.options).to_bytes())  # fmt: skip
        even = bytes(payload[: len(payload) & ~1])
        pseudo = tcp.pseudo_header_sum(us, peer, 6, len(fields) + len(even) + 2)
        payload = memoryview(summing_to_zero(bytes(fields) + even, pseudo)[len(fields) :])
    seg = Segment(header.seq, header.ack, header.flags, header.window, header.options,
                  bytes(payload), header.urgent)  # fmt: skip
    HOST.frames.clear()
    # A route with the next hop's MAC given: straight to the link, no resolution.
    HOST.tcp._transmit(OutRoute(us, peer, peer, PEER_MAC), sport, dport, seg, 0.0)
    frame = sent()
    ip_len = 20 if len(us) == 4 else 40
    got = frame[ETHERNET_HEADER_LEN + ip_len :]
    expected = bytearray(len(got))
    expected[20 + len(seg.options) :] = seg.payload
    tcp.build_into(expected, 0, sport, dport, seg.seq, seg.ack, seg.flags, seg.window,
                   seg.options, us, peer, urgent=seg.urgent)  # fmt: skip
    assert got == bytes(expected)
    assert int.from_bytes(got[16:18], "big") == reference_checksum(got, us, peer)
    if zero_sum:
        assert got[16:18] == b"\x00\x00"


payloads = st.integers(0, 1400).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@SETTINGS
@given(payloads, st.integers(0, 255), st.integers(1, 255), unicast4, unicast4, st.booleans())
def test_ipv4_output_writes_what_build_header_into_writes(
    payload: bytes, proto: int, ttl: int, src: bytes, dst: bytes, zero_sum: bool
) -> None:
    """The DF fast path (Identification 0, checksum folded from a per-route sum that the
    layer caches) writes ``build_header_into``'s bytes; the cache is exercised across
    examples."""
    if zero_sum:
        # The destination's last two bytes chosen so that the header sums to zero.
        words = bytearray(20)
        ipv4.build_header_into(words, 0, 20 + len(payload), 0, ipv4.FLAG_DF, ttl, proto, src,
                               dst[:2] + b"\x00\x00")  # fmt: skip
        words[10:12] = b"\x00\x00"
        dst = dst[:2] + summing_to_zero(bytes(words[:18]), ones_sum(words[20:]))[18:]
    frame = bytearray(ETHERNET_HEADER_LEN + 20 + len(payload))
    frame[ETHERNET_HEADER_LEN + 20 :] = payload
    HOST.ipv4.output(frame, OutRoute(src, dst, dst, PEER_MAC), proto, 0.0, ttl=ttl, df=True)
    got = sent()[ETHERNET_HEADER_LEN:]
    expected = bytearray(20)
    ipv4.build_header_into(expected, 0, 20 + len(payload), 0, ipv4.FLAG_DF, ttl, proto, src, dst)
    assert got[:20] == bytes(expected) and got[20:] == payload
    assert ipv4.checksum_ok(got)
    if zero_sum:
        assert got[10:12] == b"\x00\x00"


@SETTINGS
@given(
    payloads,
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    unicast6,
    unicast6,
)
def test_ipv6_output_writes_what_build_header_into_writes(
    payload: bytes, proto: int, hop_limit: int, tclass: int, src: bytes, dst: bytes
) -> None:
    frame = bytearray(ETHERNET_HEADER_LEN + 40 + len(payload))
    frame[ETHERNET_HEADER_LEN + 40 :] = payload
    route = OutRoute(src, dst, dst, PEER_MAC)
    HOST.ipv6.output(frame, route, proto, 0.0, hop_limit=hop_limit, tclass=tclass)
    got = sent()[ETHERNET_HEADER_LEN:]
    expected = bytearray(40)
    ipv6.build_header_into(expected, 0, len(payload), proto, hop_limit, src, dst, tclass)
    assert got[:40] == bytes(expected) and got[40:] == payload
