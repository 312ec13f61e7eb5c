"""Fragments that reach the NAT before their first fragment (RFC 4787 11, REQ-14: a NAT
takes fragments out of order): held, bounded in number and bytes and for a short time, until
the first fragment gives their flow; then received again and translated with it. Machine
tests: the hooks driven with crafted datagrams, time an argument."""

from __future__ import annotations

from nfkit import a, sums_ok, udp4
from test_nat import LAN, ROUTER_WAN, WAN, forward, make

from netstack.proto.ip.hooks import Verdict
from netstack.proto.ipv4.wire import fill_checksum
from netstack.proto.netfilter import ConntrackConfig, Netfilter


def split(whole: bytearray, at: int = 24) -> tuple[bytearray, bytearray]:
    """An IPv4 datagram cut in two fragments after ``at`` bytes of payload (a multiple of 8)."""
    first = bytearray(whole[: 20 + at])
    first[2:4] = (20 + at).to_bytes(2, "big")
    first[6:8] = (0x2000).to_bytes(2, "big")  # MF
    fill_checksum(first)
    later = bytearray(whole[:20]) + whole[20 + at :]
    later[2:4] = len(later).to_bytes(2, "big")
    later[6:8] = (at // 8).to_bytes(2, "big")
    fill_checksum(later)
    return first, later


def joined(first: bytes, later: bytes) -> bytearray:
    whole = bytearray(first[:20]) + first[20:] + later[20:]
    whole[2:4] = len(whole).to_bytes(2, "big")
    whole[6:8] = b"\0\0"
    fill_checksum(whole)
    return whole


def holding(config: ConntrackConfig | None = None) -> tuple[Netfilter, list[tuple[bytearray, int]]]:
    nf = make(config)
    nf.nat.masquerade(WAN)
    again: list[tuple[bytearray, int]] = []
    nf.reinject = lambda d, ingress, now: again.append((d, ingress))
    return nf, again


def test_a_fragment_before_its_first_is_held_then_translated() -> None:
    nf, again = holding()
    first, later = split(udp4("198.18.1.10", 5000, "198.18.2.50", 53, payload=b"x" * 40))
    assert forward(nf, later, LAN, WAN, 1.0) == Verdict.DROP  # held, not sent untranslated
    assert nf.stats()["fragments_held"] == 1 and nf.stats()["fragments_holding"] == 1
    assert forward(nf, first, LAN, WAN, 1.1) == Verdict.ACCEPT
    assert first[12:16] == a(ROUTER_WAN)
    # Taken back at the next tick, once the first fragment's hooks are done.
    assert again == [] and nf.poll_at() == 0.0
    nf.handle_timeout(1.1)
    assert len(again) == 1 and again[0][1] == LAN
    held, ingress = again[0]
    assert forward(nf, held, ingress, WAN, 1.1) == Verdict.ACCEPT
    assert held[12:16] == a(ROUTER_WAN)
    assert sums_ok(joined(first, held))  # reassembled, the UDP checksum holds
    s = nf.stats()
    assert s["fragments_released"] == 1 and s["fragments_holding"] == 0
    assert "fragment_without_flow" not in s["drops"]


def test_answers_fragments_before_their_first_come_back_inside() -> None:
    nf, again = holding()
    out = udp4("198.18.1.10", 5000, "198.18.2.50", 53)
    forward(nf, out, LAN, WAN)
    eport = int.from_bytes(out[20:22], "big")
    first, later = split(udp4("198.18.2.50", 53, ROUTER_WAN, eport, payload=b"y" * 64), 32)
    assert forward(nf, later, WAN, LAN, 2.0) == Verdict.DROP
    assert forward(nf, first, WAN, LAN, 2.0) == Verdict.ACCEPT
    nf.handle_timeout(2.0)
    held, ingress = again[0]
    assert forward(nf, held, ingress, LAN, 2.0) == Verdict.ACCEPT
    assert held[16:20] == a("198.18.1.10")
    assert sums_ok(joined(first, held))


def test_fragments_whose_first_never_comes_are_dropped_after_a_while() -> None:
    nf, again = holding(ConntrackConfig(fragment_hold=2.0))
    _, later = split(udp4("198.18.1.10", 5000, "198.18.2.50", 53, payload=b"x" * 40))
    assert forward(nf, later, LAN, WAN, 10.0) == Verdict.DROP
    assert nf.poll_at() == 12.0
    nf.handle_timeout(11.9)
    assert nf.stats()["fragments_holding"] == 1
    nf.handle_timeout(12.0)
    s = nf.stats()
    assert s["fragments_holding"] == 0 and s["drops"]["fragment_without_flow"] == 1
    assert again == []  # never sent, never leaked


def test_held_fragments_are_bounded_in_number_and_bytes() -> None:
    nf, _ = holding(ConntrackConfig(max_held_fragments=4, max_held_fragment_bytes=10_000))
    for i in range(10):
        d = udp4("198.18.1.10", 5000 + i, "198.18.2.50", 53, payload=b"x" * 40)
        d[4:6] = (100 + i).to_bytes(2, "big")
        _, later = split(d)
        assert forward(nf, later, LAN, WAN) == Verdict.DROP
    s = nf.stats()
    assert s["fragments_holding"] == 4 and s["drops"]["fragment_hold_full"] == 6
    nf2, _ = holding(ConntrackConfig(max_held_fragments=100, max_held_fragment_bytes=3000))
    for i in range(5):
        d = udp4("198.18.1.10", 5000 + i, "198.18.2.50", 53, payload=b"x" * 1000)
        d[4:6] = (100 + i).to_bytes(2, "big")
        _, later = split(d)
        forward(nf2, later, LAN, WAN)
    s = nf2.stats()
    assert s["fragments_holding"] == 2 and s["drops"]["fragment_hold_full"] == 3
