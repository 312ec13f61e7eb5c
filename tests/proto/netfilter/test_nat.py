"""NAT machine tests (RFC 4787, RFC 5382, RFC 5508): the hooks driven with crafted datagrams,
no event loop; time is an argument."""

from __future__ import annotations

import random

import pytest
from nfkit import (
    ACK,
    FIN,
    RST,
    SYN,
    a,
    echo4,
    fields,
    icmp_error4,
    sums_ok,
    tcp4,
    udp4,
)  # fmt: skip

from netstack.proto.ip.hooks import Hook, Verdict
from netstack.proto.netfilter import ConntrackConfig, Netfilter

LAN, WAN = 1, 2
ROUTER_LAN, ROUTER_WAN = "198.18.1.1", "198.18.2.1"
ADDRS = {LAN: [a(ROUTER_LAN)], WAN: [a(ROUTER_WAN)]}
NAMES = {"lan": LAN, "wan": WAN}


def make(config: ConntrackConfig | None = None, seed: int = 1) -> Netfilter:
    def resolve(key: object) -> int:
        if isinstance(key, str):
            return NAMES[key]
        assert isinstance(key, int)
        return key

    return Netfilter(random.Random(seed), lambda i: ADDRS.get(i, []), resolve, config)


def forward(nf: Netfilter, d: bytearray, ingress: int, egress: int, now: float = 0.0) -> Verdict:
    """A datagram's way through a router: PREROUTING, FORWARD, POSTROUTING."""
    for hook, eg in ((Hook.PREROUTING, None), (Hook.FORWARD, egress), (Hook.POSTROUTING, egress)):
        v = nf.run(hook, d, ingress, eg, now)
        if v != Verdict.ACCEPT:
            return v
    return Verdict.ACCEPT


def test_masquerade_udp_translates_both_ways_with_valid_checksums() -> None:
    nf = make()
    nf.nat.masquerade("wan")
    out = udp4("198.18.1.10", 5000, "198.18.2.50", 53)
    assert forward(nf, out, LAN, WAN) == Verdict.ACCEPT
    src, sport, dst, dport = fields(out)
    assert (src, dst, dport) == (ROUTER_WAN, "198.18.2.50", 53)
    assert 1024 <= sport <= 49151 and sport % 2 == 0  # RFC 4787 REQ-4: parity kept
    assert sums_ok(out)
    back = udp4("198.18.2.50", 53, ROUTER_WAN, sport)
    assert forward(nf, back, WAN, LAN) == Verdict.ACCEPT
    assert fields(back) == ("198.18.2.50", 53, "198.18.1.10", 5000)
    assert sums_ok(back)
    assert nf.stats()["conntrack"]["flows"] == 1


def test_endpoint_independent_mapping_rfc4787_req1() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    ports = set()
    for dst in ("198.18.2.50", "198.18.2.51", "198.18.2.52"):
        for dport in (53, 1234):
            d = udp4("198.18.1.10", 5000, dst, dport)
            assert forward(nf, d, LAN, WAN) == Verdict.ACCEPT
            ports.add(fields(d)[1])
    assert len(ports) == 1
    other = udp4("198.18.1.11", 5000, "198.18.2.50", 53)
    forward(nf, other, LAN, WAN)
    assert fields(other)[1] not in ports  # never port overloading (REQ-3)
    assert nf.stats()["nat"]["mappings"] == 2


def test_filtering_behaviours_rfc4787_req8() -> None:
    for filtering, from_new_host in (
        ("address-and-port-dependent", False),
        ("address-dependent", False),
        ("endpoint-independent", True),
    ):
        nf = make()
        nf.nat.masquerade(WAN, filtering=filtering)
        d = udp4("198.18.1.10", 5000, "198.18.2.50", 53)
        forward(nf, d, LAN, WAN)
        eport = fields(d)[1]
        # The same remote host, another port: all but APDF let it in.
        other_port = udp4("198.18.2.50", 9999, ROUTER_WAN, eport)
        forward(nf, other_port, WAN, LAN)
        assert (fields(other_port)[2] == "198.18.1.10") == (filtering != FILTER_APDF)
        stranger = udp4("198.18.2.77", 9999, ROUTER_WAN, eport)
        forward(nf, stranger, WAN, LAN)
        assert (fields(stranger)[2] == "198.18.1.10") == from_new_host


FILTER_APDF = "address-and-port-dependent"


def test_tcp_states_closing_and_timeouts_rfc5382() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    syn = tcp4("198.18.1.10", 40000, "198.18.2.80", 80, SYN)
    assert forward(nf, syn, LAN, WAN) == Verdict.ACCEPT
    eport = fields(syn)[1]
    flow = nf.flows()[0]
    assert flow["state"] == "SYN_SENT"
    synack = tcp4("198.18.2.80", 80, ROUTER_WAN, eport, SYN | ACK)
    assert forward(nf, synack, WAN, LAN, 1.0) == Verdict.ACCEPT
    assert fields(synack)[2:] == ("198.18.1.10", 40000)
    forward(nf, tcp4("198.18.1.10", 40000, "198.18.2.80", 80, ACK), LAN, WAN, 2.0)
    assert nf.flows()[0]["state"] == "ESTABLISHED"
    # RFC 5382 REQ-5: an idle established flow lives at least 2 h 4 min.
    nf.handle_timeout(2.0 + 7439)
    assert nf.stats()["conntrack"]["flows"] == 1
    now = 2.0 + 7000
    forward(nf, tcp4("198.18.1.10", 40000, "198.18.2.80", 80, FIN | ACK), LAN, WAN, now)
    forward(nf, tcp4("198.18.2.80", 80, ROUTER_WAN, eport, FIN | ACK), WAN, LAN, now)
    assert nf.flows()[0]["state"] == "LAST_ACK"
    forward(nf, tcp4("198.18.1.10", 40000, "198.18.2.80", 80, ACK), LAN, WAN, now)
    assert nf.flows()[0]["state"] == "TIME_WAIT"
    nf.handle_timeout(now + 239)
    assert nf.stats()["conntrack"]["flows"] == 1  # transitory: at least 4 minutes
    nf.handle_timeout(now + 241)
    assert nf.stats()["conntrack"]["flows"] == 0
    assert nf.stats()["nat"]["mappings"] == 0  # the mapping went with its last flow


def test_tcp_reset_closes_quickly_and_midstream_segments_are_invalid() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    stray = tcp4("198.18.1.10", 40001, "198.18.2.80", 80, ACK)
    assert forward(nf, stray, LAN, WAN) == Verdict.DROP  # untranslatable, never leaks
    assert nf.stats()["drops"]["untranslated_leak"] == 1
    assert nf.stats()["conntrack"]["flows"] == 0
    syn = tcp4("198.18.1.10", 40000, "198.18.2.80", 80, SYN)
    forward(nf, syn, LAN, WAN)
    eport = fields(syn)[1]
    # (The reset acknowledges the SYN, as RFC 9293 3.10.7.3 asks for it to count.)
    reset = tcp4("198.18.2.80", 80, ROUTER_WAN, eport, RST | ACK, ack=1001)
    forward(nf, reset, WAN, LAN, 1.0)
    assert nf.flows()[0]["state"] == "CLOSED"
    nf.handle_timeout(12.0)
    assert nf.stats()["conntrack"]["flows"] == 0


def test_simultaneous_open_rfc5382_req2() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    syn = tcp4("198.18.1.10", 40000, "198.18.2.80", 80, SYN)
    forward(nf, syn, LAN, WAN)
    eport = fields(syn)[1]
    peer_syn = tcp4("198.18.2.80", 80, ROUTER_WAN, eport, SYN)
    assert forward(nf, peer_syn, WAN, LAN) == Verdict.ACCEPT
    assert fields(peer_syn)[2:] == ("198.18.1.10", 40000)
    assert nf.flows()[0]["state"] == "SYN_RECEIVED"


def test_icmp_echo_identifier_is_mapped() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    req = echo4("198.18.1.10", "198.18.2.50", ident=0x1234)
    forward(nf, req, LAN, WAN)
    assert sums_ok(req)
    ident = int.from_bytes(req[24:26], "big")
    assert req[12:16] == a(ROUTER_WAN)
    rep = echo4("198.18.2.50", ROUTER_WAN, ident=ident, reply=True)
    forward(nf, rep, WAN, LAN)
    assert rep[16:20] == a("198.18.1.10") and rep[24:26] == b"\x12\x34"
    assert sums_ok(rep)


def test_icmp_error_from_the_path_is_translated_inside_and_out() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    out = udp4("198.18.1.10", 5000, "198.18.2.50", 53)
    forward(nf, out, LAN, WAN)
    # A router further on reports the translated datagram unreachable.
    err = icmp_error4("198.18.2.254", ROUTER_WAN, bytes(out[:28]), type_=11, code=0)
    assert forward(nf, err, WAN, LAN) == Verdict.ACCEPT
    assert err[16:20] == a("198.18.1.10")  # outer destination: the internal host
    assert err[12:16] == a("198.18.2.254")  # the reporting router is left as it is
    inner = bytes(err[28:])
    assert fields(inner) == ("198.18.1.10", 5000, "198.18.2.50", 53)
    assert sums_ok(err)
    assert nf.stats()["related"] == 1


def test_icmp_error_quoting_another_flow_is_invalid_and_counted() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    out = udp4("198.18.1.10", 5000, "198.18.2.50", 53)
    forward(nf, out, LAN, WAN)
    forged = udp4(ROUTER_WAN, 1, "198.18.2.50", 53)  # no such flow
    err = icmp_error4("198.18.2.254", ROUTER_WAN, bytes(forged[:28]))
    assert forward(nf, err, WAN, LAN) == Verdict.ACCEPT  # the stack's own to judge
    assert err[16:20] == a(ROUTER_WAN)  # untouched
    assert nf.stats()["drops"]["icmp_error_no_flow"] == 1
    # Quoting a real flow but addressed elsewhere: not believed.
    err2 = icmp_error4("198.18.2.254", "198.18.2.9", bytes(out[:28]))
    forward(nf, err2, WAN, LAN)
    assert nf.stats()["drops"]["icmp_error_misaddressed"] == 1


def test_port_forward_and_the_servers_icmp_error() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    nf.nat.forward_port("udp", 8080, to=("198.18.1.10", 80), on="wan")
    inbound = udp4("198.18.2.50", 3333, ROUTER_WAN, 8080)
    assert forward(nf, inbound, WAN, LAN) == Verdict.ACCEPT
    assert fields(inbound) == ("198.18.2.50", 3333, "198.18.1.10", 80)
    assert sums_ok(inbound)
    reply = udp4("198.18.1.10", 80, "198.18.2.50", 3333)
    forward(nf, reply, LAN, WAN)
    assert fields(reply) == (ROUTER_WAN, 8080, "198.18.2.50", 3333)
    # The server's port-unreachable for the forwarded datagram leaves as the router's.
    err = icmp_error4("198.18.1.10", "198.18.2.50", bytes(inbound[:28]))
    forward(nf, err, LAN, WAN)
    assert err[12:16] == a(ROUTER_WAN)
    assert fields(bytes(err[28:])) == ("198.18.2.50", 3333, ROUTER_WAN, 8080)
    assert sums_ok(err)


def test_hairpinning_rfc4787_req9() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    nf.nat.forward_port("tcp", 8080, to=("198.18.1.10", 80), on=WAN)
    # The client's external mapping, made by an earlier flow to the outside.
    first = tcp4("198.18.1.20", 41000, "198.18.2.80", 80, SYN)
    forward(nf, first, LAN, WAN)
    mapped = fields(first)[1]
    syn = tcp4("198.18.1.20", 41000, ROUTER_WAN, 8080, SYN)
    assert forward(nf, syn, LAN, LAN) == Verdict.ACCEPT
    # REQ-9a: the server sees the client's external address and port.
    assert fields(syn) == (ROUTER_WAN, mapped, "198.18.1.10", 80)
    assert sums_ok(syn)
    synack = tcp4("198.18.1.10", 80, ROUTER_WAN, mapped, SYN | ACK)
    assert forward(nf, synack, LAN, LAN) == Verdict.ACCEPT
    assert fields(synack) == (ROUTER_WAN, 8080, "198.18.1.20", 41000)
    assert nf.stats()["nat"]["hairpinned"] == 1


def test_full_table_evicts_unanswered_then_refuses_then_recovers() -> None:
    nf = make(ConntrackConfig(max_flows=4))
    nf.nat.masquerade(WAN)
    for i in range(4):
        d = udp4("198.18.1.10", 6000 + i, "198.18.2.50", 53)
        assert forward(nf, d, LAN, WAN, 0.0) == Verdict.ACCEPT
        forward(nf, udp4("198.18.2.50", 53, ROUTER_WAN, fields(d)[1]), WAN, LAN, 0.0)
    # All four answered: a fifth is refused, cleanly.
    assert forward(nf, udp4("198.18.1.10", 7000, "198.18.2.50", 53), LAN, WAN, 1.0) == Verdict.DROP
    s = nf.stats()
    assert s["conntrack"]["flows"] == 4 and s["conntrack"]["refused"] == 1
    assert s["drops"]["table_full"] == 1
    # After the time-out the table takes flows again.
    nf.handle_timeout(1000.0)
    assert nf.stats()["conntrack"]["flows"] == 0 and nf.stats()["nat"]["mappings"] == 0
    for i in range(4):
        forward(nf, udp4("198.18.1.10", 8000 + i, "198.18.2.50", 53), LAN, WAN, 1000.0)
    # Unanswered flows make room for new ones (early drop, oldest first).
    new = udp4("198.18.1.10", 9000, "198.18.2.50", 53)
    assert forward(nf, new, LAN, WAN, 1001.0) == Verdict.ACCEPT
    assert nf.stats()["conntrack"]["early_drops"] == 1
    assert nf.stats()["conntrack"]["flows"] == 4


def test_port_exhaustion_is_refused_cleanly_and_recovers() -> None:
    nf = make()
    nf.nat.masquerade(WAN, ports=(2000, 2003))
    for i in range(4):
        assert forward(nf, udp4(f"198.18.1.{10 + i}", 5000, "198.18.2.50", 53), LAN, WAN) == (
            Verdict.ACCEPT
        )
    assert forward(nf, udp4("198.18.1.99", 5000, "198.18.2.50", 53), LAN, WAN) == Verdict.DROP
    s = nf.stats()
    assert s["nat"]["port_exhausted"] == 1 and s["nat"]["mappings"] == 4
    assert s["conntrack"]["flows"] == 4  # the refused flow left nothing behind
    nf.handle_timeout(500.0)
    assert forward(nf, udp4("198.18.1.99", 5000, "198.18.2.50", 53), LAN, WAN, 500.0) == (
        Verdict.ACCEPT
    )


def test_flows_that_never_close_are_bounded() -> None:
    nf = make(ConntrackConfig(max_flows=64))
    nf.nat.masquerade(WAN)
    for i in range(1000):
        syn = tcp4("198.18.1.10", 10000 + i, "198.18.2.80", 80, SYN)
        forward(nf, syn, LAN, WAN, float(i))
    s = nf.stats()
    assert s["conntrack"]["flows"] <= 64 and s["nat"]["mappings"] <= 64
    assert s["conntrack"]["early_drops"] >= 900
    nf.handle_timeout(10_000.0)
    nf.handle_timeout(10_000.0)
    assert nf.stats()["conntrack"]["flows"] == 0 and nf.stats()["nat"]["mappings"] == 0


def test_fragments_follow_their_first_fragment() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    whole = udp4("198.18.1.10", 5000, "198.18.2.50", 53, payload=b"x" * 40)
    first = bytearray(whole[: 20 + 24])
    first[2:4] = (44).to_bytes(2, "big")
    first[6:8] = (0x2000).to_bytes(2, "big")  # MF
    from netstack.proto.ipv4.wire import fill_checksum

    fill_checksum(first)
    later = bytearray(whole[:20]) + whole[44:]
    later[2:4] = (len(later)).to_bytes(2, "big")
    later[6:8] = (3).to_bytes(2, "big")  # offset 24 bytes
    fill_checksum(later)
    assert forward(nf, first, LAN, WAN) == Verdict.ACCEPT
    assert forward(nf, later, LAN, WAN) == Verdict.ACCEPT
    assert later[12:16] == a(ROUTER_WAN)
    # Reassembled, the translated fragments carry a valid UDP checksum.
    joined = bytearray(first[:20]) + first[20:] + later[20:]
    joined[2:4] = len(joined).to_bytes(2, "big")
    joined[6:8] = b"\0\0"
    fill_checksum(joined)
    assert sums_ok(joined)
    orphan = bytearray(later)
    orphan[4:6] = b"\x99\x99"
    orphan[12:16] = a("198.18.1.10")
    fill_checksum(orphan)
    assert forward(nf, orphan, LAN, WAN) == Verdict.DROP  # cannot be placed, never leaks
    assert nf.stats()["drops"]["fragment_without_flow"] == 1


def test_stacks_own_traffic_keeps_its_port() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    d = udp4(ROUTER_WAN, 50000, "198.18.2.50", 53)
    assert nf.run(Hook.OUTPUT, d, None, None, 0.0) == Verdict.ACCEPT
    assert nf.run(Hook.POSTROUTING, d, None, WAN, 0.0) == Verdict.ACCEPT
    assert fields(d) == (ROUTER_WAN, 50000, "198.18.2.50", 53)
    back = udp4("198.18.2.50", 53, ROUTER_WAN, 50000)
    assert nf.run(Hook.PREROUTING, back, WAN, None, 0.0) == Verdict.ACCEPT
    assert nf.run(Hook.INPUT, back, WAN, None, 0.0) == Verdict.ACCEPT
    assert nf.flows()[0]["replied"]


def test_bad_configuration_raises_at_the_call() -> None:
    nf = make()
    with pytest.raises(ValueError):
        nf.nat.masquerade(WAN, ports=(0, 10))
    with pytest.raises(ValueError):
        nf.nat.masquerade(WAN, filtering="full-cone")
    with pytest.raises(ValueError):
        nf.nat.forward_port("sctp", 1, to=("198.18.1.1", 1), on=WAN)
    with pytest.raises(ValueError):
        nf.nat.forward_port("tcp", 1, to=("fd00::1", 1), on=WAN)


def test_inbound_flows_hold_the_mapping_that_let_them_in() -> None:
    nf = make()
    nf.nat.masquerade(WAN, filtering="endpoint-independent")
    out = udp4("198.18.1.10", 5000, "198.18.2.50", 53)
    forward(nf, out, LAN, WAN, 0.0)
    eport = fields(out)[1]
    inbound = udp4("198.18.2.77", 9, ROUTER_WAN, eport)
    forward(nf, inbound, WAN, LAN, 100.0)
    assert fields(inbound)[2:] == ("198.18.1.10", 5000)
    # The outbound flow times out; the inbound one keeps the port from other endpoints.
    nf.handle_timeout(125.0)
    assert nf.stats()["conntrack"]["flows"] == 1 and nf.stats()["nat"]["mappings"] == 1
    answer = udp4("198.18.1.10", 5000, "198.18.2.77", 9)
    forward(nf, answer, LAN, WAN, 126.0)
    assert fields(answer)[:2] == (ROUTER_WAN, eport)
    nf.handle_timeout(10_000.0)
    assert nf.stats()["nat"]["mappings"] == 0


def test_a_datagrams_later_hooks_after_another_datagrams_first() -> None:
    nf = make()
    nf.nat.forward_port("udp", 8080, to=("198.18.1.10", 80), on=WAN)
    a_dgram = udp4("198.18.2.50", 3333, ROUTER_WAN, 8080)
    assert nf.run(Hook.PREROUTING, a_dgram, WAN, None, 0.0) == Verdict.ACCEPT
    # The IP layer sends something of its own before forwarding the first datagram.
    own = echo4(ROUTER_WAN, "198.18.2.50", 5)
    assert nf.run(Hook.OUTPUT, own, None, WAN, 0.0) == Verdict.ACCEPT
    assert nf.run(Hook.POSTROUTING, own, None, WAN, 0.0) == Verdict.ACCEPT
    assert nf.run(Hook.FORWARD, a_dgram, WAN, LAN, 0.0) == Verdict.ACCEPT
    assert nf.run(Hook.POSTROUTING, a_dgram, WAN, LAN, 0.0) == Verdict.ACCEPT
    assert fields(a_dgram) == ("198.18.2.50", 3333, "198.18.1.10", 80)
    assert nf.stats()["conntrack"]["flows"] == 2 and nf.stats()["context_misses"] == 0


def test_a_flow_evicted_between_its_first_datagrams_hooks_is_not_revived() -> None:
    nf = make(ConntrackConfig(max_flows=1))
    nf.nat.masquerade(WAN)
    first = udp4("198.18.1.10", 5000, "198.18.2.50", 53)
    assert nf.run(Hook.PREROUTING, first, LAN, None, 0.0) == Verdict.ACCEPT
    # Another new flow takes the only place (early drop) before the first one leaves.
    other = udp4("198.18.1.11", 5000, "198.18.2.50", 53)
    assert forward(nf, other, LAN, WAN, 0.0) == Verdict.ACCEPT
    assert nf.run(Hook.POSTROUTING, first, LAN, WAN, 0.0) == Verdict.DROP
    assert nf.stats()["drops"]["flow_gone"] == 1
    assert nf.stats()["conntrack"]["flows"] == 1 and nf.stats()["nat"]["mappings"] == 1
    assert len(nf.table.flows) == 2  # the one flow under its two tuples, nothing dead
