"""The UDP layer's receive path without a stack: headers read inline (no header object),
checked as :func:`netstack.proto.udp.wire.parse` checks them, drops counted by parse's reasons,
checksums verified with the pseudo-header (RFC 768) of either family."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.ip.route import OutRoute
from netstack.proto.ipv4.wire import IPv4Header
from netstack.proto.ipv6.wire import IPv6Header
from netstack.proto.udp.layer import ANY, ANY6, UdpLayer
from netstack.proto.udp.wire import build_into, checksum_ok, parse

SRC4, DST4 = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
SRC6, DST6 = bytes.fromhex("fd00" + "00" * 13 + "01"), bytes.fromhex("fd00" + "00" * 13 + "02")


class _IP:
    csum_trusted = False

    def __init__(self) -> None:
        self.unreachable: list[Any] = []

    def port_unreachable(self, *args: Any) -> None:
        self.unreachable.append(args)


class _Endpoint:
    def __init__(self, local_ip: bytes) -> None:
        self.local_ip = local_ip
        self.local_port = 0
        self.remote: tuple[bytes, int] | None = None
        self.got: list[tuple[bytes, bytes, int, int]] = []

    def deliver(self, data: memoryview, src: bytes, port: int, ifindex: int) -> None:
        self.got.append((bytes(data), src, port, ifindex))

    def error(self, exc: OSError) -> None:
        raise AssertionError(exc)


def layer_with_endpoint(local_ip: bytes = ANY) -> tuple[UdpLayer, _Endpoint]:
    udp = UdpLayer(_IP(), random.Random(1))  # type: ignore[arg-type]
    endpoint = _Endpoint(local_ip)
    endpoint.local_port = udp.bind(endpoint, local_ip, 53)
    return udp, endpoint


def header4(n: int) -> IPv4Header:
    return IPv4Header(0, 20 + n, 1, 0, 64, 17, 0, SRC4, DST4)


def datagram(payload: bytes, src: bytes = SRC4, dst: bytes = DST4) -> bytearray:
    buf = bytearray(8 + len(payload))
    buf[8:] = payload
    build_into(buf, 0, 4000, 53, src, dst)
    return buf


def test_a_datagram_is_delivered_with_its_source() -> None:
    udp, endpoint = layer_with_endpoint()
    data = datagram(b"query")
    udp.receive(header4(len(data)), memoryview(data), 0.0, False, 3)
    assert endpoint.got == [(b"query", SRC4, 4000, 3)]
    assert udp.rx_packets == 1 and udp.rx_bytes == 5 and not udp.drops


def test_link_padding_after_the_length_is_not_payload() -> None:
    udp, endpoint = layer_with_endpoint()
    data = datagram(b"odd") + b"\x00\x00\x00"
    udp.receive(header4(len(data)), memoryview(data), 0.0, False)
    assert endpoint.got[0][0] == b"odd" and udp.rx_bytes == 3


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"", "truncated"),
        (b"\x0f\xa0\x00\x35\x00", "truncated"),  # shorter than a header
        (struct.pack("!HHHH", 4000, 53, 7, 0), "bad_length"),  # Length below 8
        (struct.pack("!HHHH", 4000, 53, 20, 0) + b"x", "truncated"),  # Length beyond data
    ],
)
def test_bad_headers_are_dropped_with_parses_reason(wire: bytes, reason: str) -> None:
    udp, endpoint = layer_with_endpoint()
    udp.receive(header4(len(wire)), memoryview(wire), 0.0, False)
    assert udp.drops == {reason: 1} and not endpoint.got and udp.rx_packets == 0


def test_a_bad_checksum_is_dropped_and_a_zero_one_accepted_over_ipv4() -> None:
    udp, endpoint = layer_with_endpoint()
    data = datagram(b"abc")
    data[-1] ^= 1
    udp.receive(header4(len(data)), memoryview(data), 0.0, False)
    assert udp.drops == {"bad_checksum": 1}
    data[6:8] = b"\x00\x00"  # RFC 768: no checksum computed
    udp.receive(header4(len(data)), memoryview(data), 0.0, False)
    assert len(endpoint.got) == 1 and udp.no_checksum == 1


def test_ipv6_checksums_use_the_ipv6_pseudo_header() -> None:
    udp, endpoint = layer_with_endpoint(ANY6)
    data = datagram(b"v6 query", SRC6, DST6)
    header = IPv6Header(0, 0, len(data), 17, 64, SRC6, DST6)
    udp.receive(header, memoryview(data), 0.0, False)
    assert endpoint.got == [(b"v6 query", SRC6, 4000, 0)]
    data[6:8] = b"\x00\x00"  # RFC 8200 8.1: a zero checksum is invalid over IPv6
    udp.receive(header, memoryview(data), 0.0, False)
    assert udp.drops == {"zero_checksum_ipv6": 1} and len(endpoint.got) == 1


# -- the inline receive and send reach the wire module's verdict and bytes --------------------
def _reference(data: bytes) -> tuple[str, bytes | None]:
    """What parse() and checksum_ok() make of ``data`` from SRC4 to DST4."""
    try:
        header, payload = parse(data)
    except ParseError as exc:
        return exc.reason, None
    if header.checksum == 0:
        return "accepted", bytes(payload)
    if not checksum_ok(bytes(data[: header.length]), SRC4, DST4):
        return "bad_checksum", None
    return "accepted", bytes(payload)


@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(max_size=40),
    cut=st.integers(0, 60),
    length=st.one_of(st.none(), st.integers(0, 70)),
    flip=st.one_of(st.none(), st.integers(0, 47)),
    tail=st.binary(max_size=3),
)
def test_receive_reaches_the_wire_modules_verdict(
    payload: bytes, cut: int, length: int | None, flip: int | None, tail: bytes
) -> None:
    data = datagram(payload) + tail
    if length is not None:
        data[4:6] = length.to_bytes(2, "big")
    if flip is not None and flip < len(data):
        data[flip] ^= 0x10
    data = data[: max(0, len(data) - cut)] if cut > 50 else data
    udp, endpoint = layer_with_endpoint()
    udp.receive(header4(len(data)), memoryview(bytes(data)), 0.0, False)
    reason, delivered = _reference(bytes(data))
    if reason == "accepted":
        assert not udp.drops and endpoint.got == [(delivered, SRC4, 4000, 0)]
    else:
        assert udp.drops == {reason: 1} and not endpoint.got


@settings(max_examples=200, deadline=None)
@given(
    payload=st.binary(max_size=64), ports=st.tuples(st.integers(1, 65535), st.integers(1, 65535))
)
def test_send_writes_build_intos_bytes(payload: bytes, ports: tuple[int, int]) -> None:
    sent: list[bytearray] = []

    class Iface:
        headroom = 34

        def output(self, frame: bytearray, route: Any, proto: int, now: float) -> None:
            assert proto == 17
            sent.append(frame)

    udp = UdpLayer(_IP(), random.Random(1))  # type: ignore[arg-type]
    route = OutRoute(SRC4, DST4, DST4, iface=Iface())
    udp.send(route, ports[0], ports[1], payload, 0.0)
    expected = bytearray(34 + 8 + len(payload))
    expected[42:] = payload
    build_into(expected, 34, ports[0], ports[1], SRC4, DST4)
    assert sent == [expected]
