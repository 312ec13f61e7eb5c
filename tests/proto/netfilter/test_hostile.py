"""Hostile and random input, and the properties of translation: every translated datagram
translates back, and every checksum stays valid (checked by a plain RFC 1071 loop)."""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st
from nfkit import SYN, echo4, fields, icmp_error4, sums_ok, tcp4, udp4
from test_nat import LAN, ROUTER_WAN, WAN, forward, make

from netstack.proto.ip.hooks import Hook, Verdict
from netstack.proto.netfilter import ConntrackConfig

HOOKS = list(Hook)
hosts = st.integers(2, 250).map(lambda i: f"198.18.1.{i}")
remotes = st.integers(2, 250).map(lambda i: f"198.18.2.{i}")
ports = st.integers(1, 65535)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(HOOKS))
def test_garbage_never_raises(data: bytes, hook: Hook) -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    v = nf.run(hook, bytearray(data), LAN, WAN, 0.0)
    assert isinstance(v, Verdict)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.sampled_from(["udp", "tcp", "echo", "error"]), st.binary(max_size=8))
def test_truncated_and_corrupted_datagrams_are_counted_not_raised(
    cut: int, kind: str, noise: bytes
) -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    inner = udp4("198.18.2.1", 4000, "198.18.2.50", 53)
    d = {
        "udp": udp4("198.18.1.10", 5000, "198.18.2.50", 53),
        "tcp": tcp4("198.18.1.10", 5000, "198.18.2.50", 80, SYN),
        "echo": echo4("198.18.1.10", "198.18.2.50", 9),
        "error": icmp_error4("198.18.2.254", ROUTER_WAN, bytes(inner[:28])),
    }[kind]
    d = bytearray(d[: max(0, len(d) - cut)])
    for i, b in enumerate(noise):
        if d:
            d[(i * 7) % len(d)] ^= b
    for hook in HOOKS:
        assert isinstance(nf.run(hook, bytearray(d), WAN, LAN, 0.0), Verdict)
    s = nf.stats()
    assert s["packets"] >= 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(hosts, ports, remotes, ports, st.booleans()), min_size=1, max_size=12),
    st.sampled_from(["endpoint-independent", "address-dependent", "address-and-port-dependent"]),
)
def test_every_translated_datagram_translates_back(
    flows: list[tuple[str, int, str, int, bool]], filtering: str
) -> None:
    nf = make()
    nf.nat.masquerade(WAN, filtering=filtering)
    nf.nat.forward_port("tcp", 8080, to=("198.18.1.200", 80), on=WAN)
    seen: dict[tuple[str, int, bool], int] = {}
    for host, sport, remote, dport, is_tcp in flows:
        make_dgram = (lambda s, sp, d, dp: tcp4(s, sp, d, dp, SYN)) if is_tcp else udp4
        out = make_dgram(host, sport, remote, dport)
        assert forward(nf, out, LAN, WAN) == Verdict.ACCEPT
        assert sums_ok(out)
        src, eport, dst, dp = fields(out)
        assert (src, dst, dp) == (ROUTER_WAN, remote, dport)
        # Endpoint-independent mapping: one external port per internal endpoint and protocol.
        assert seen.setdefault((host, sport, is_tcp), eport) == eport
        back = (
            tcp4(remote, dport, ROUTER_WAN, eport, SYN | 0x10)
            if is_tcp
            else udp4(remote, dport, ROUTER_WAN, eport)
        )
        assert forward(nf, back, WAN, LAN) == Verdict.ACCEPT
        assert fields(back) == (remote, dport, host, sport)
        assert sums_ok(back)
    # Their ICMP errors go back to the right host, inner and outer, with valid checksums.
    host, sport, remote, dport, is_tcp = flows[-1]
    out = tcp4(host, sport, remote, dport, 0x10) if is_tcp else udp4(host, sport, remote, dport)
    forward(nf, out, LAN, WAN)
    err = icmp_error4("198.18.2.254", ROUTER_WAN, bytes(out[:28]))
    assert forward(nf, err, WAN, LAN) == Verdict.ACCEPT
    assert sums_ok(err)
    assert fields(bytes(err[28:])) == (host, sport, remote, dport)
    # Inbound flows let in by endpoint-independent filtering, and hairpinned ones, included:
    # when every flow has timed out, no mapping is left.
    for host, sport, _, _, is_tcp in flows:
        d = udp4("198.18.2.251", 7, ROUTER_WAN, seen.get((host, sport, is_tcp), 1))
        forward(nf, d, WAN, LAN, 1.0)
        h = udp4("198.18.1.251", 7, ROUTER_WAN, seen.get((host, sport, is_tcp), 1))
        forward(nf, h, LAN, LAN, 1.0)
    nf.handle_timeout(100_000.0)
    nf.handle_timeout(100_000.0)
    assert nf.stats()["conntrack"]["flows"] == 0
    assert nf.stats()["nat"]["mappings"] == 0


def test_memory_per_flow_is_bounded() -> None:
    nf = make(ConntrackConfig(max_flows=100_000))
    nf.nat.masquerade(WAN)
    datagrams = [
        udp4(f"198.18.1.{2 + i % 200}", 1024 + i // 200, "198.18.2.50", 53) for i in range(2000)
    ]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for d in datagrams:
        forward(nf, d, LAN, WAN)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_flow = (after - before) / 2000
    assert nf.stats()["conntrack"]["flows"] == 2000
    # Entry, its two tuples and addresses, the mapping, the dict and heap slots: well under
    # a kilobyte and a half (the figure is reported by benchmarks/nat.py).
    assert per_flow < 1500, per_flow


def test_icmp_error_storm_quoting_random_flows_is_counted() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    for i in range(500):
        quoted = udp4(ROUTER_WAN, 1000 + i, "198.18.2.50", 53)
        err = icmp_error4("198.18.2.254", ROUTER_WAN, bytes(quoted[:28]))
        assert nf.run(Hook.PREROUTING, err, WAN, None, 0.0) == Verdict.ACCEPT
    assert nf.stats()["drops"]["icmp_error_no_flow"] == 500
    assert nf.stats()["conntrack"]["flows"] == 0


def test_error_about_an_error_and_land_are_refused() -> None:
    nf = make()
    inner_err = icmp_error4(
        "198.18.2.1", "198.18.2.2", bytes(udp4("198.18.2.2", 1, "198.18.2.9", 2)[:28])
    )
    outer = icmp_error4("198.18.2.9", "198.18.2.1", bytes(inner_err[:36]))
    assert nf.run(Hook.PREROUTING, outer, WAN, None, 0.0) == Verdict.DROP
    assert nf.stats()["drops"]["error_in_error"] == 1
    land = udp4("198.18.1.5", 7, "198.18.1.5", 7)
    assert nf.run(Hook.PREROUTING, land, LAN, None, 0.0) == Verdict.DROP
    assert nf.stats()["drops"]["land"] == 1
