"""RFC 5382 REQ-4: an unsolicited inbound SYN to a masqueraded address is not answered for
6 seconds; dropped silently if the connection's outbound SYN goes out meanwhile (a
simultaneous open), answered with ICMP Port Unreachable after. Machine tests: the hooks
driven with crafted datagrams, time an argument."""

from __future__ import annotations

from nfkit import ACK, SYN, fields, tcp4
from test_nat import LAN, ROUTER_WAN, WAN, forward, make

from netstack.proto.ip.hooks import Hook, Verdict
from netstack.proto.netfilter import ConntrackConfig, Netfilter

PEER = "198.18.2.80"


def arrive(nf: Netfilter, d: bytearray, now: float) -> Verdict:
    """A datagram for the router's own address: PREROUTING, then INPUT (a fresh buffer, as
    the IPv4 layer hands it after reassembly)."""
    v = nf.run(Hook.PREROUTING, d, WAN, None, now)
    if v != Verdict.ACCEPT:
        return v
    return nf.run(Hook.INPUT, bytearray(d), WAN, None, now)


def nat_with_answers(config: ConntrackConfig | None = None) -> tuple[Netfilter, list[bytes]]:
    nf = make(config)
    nf.nat.masquerade(WAN)
    answered: list[bytes] = []
    nf.port_unreachable = lambda d, ingress, now: answered.append(bytes(d))
    return nf, answered


def test_unsolicited_syn_is_held_six_seconds_then_answered() -> None:
    nf, answered = nat_with_answers()
    syn = tcp4(PEER, 5555, ROUTER_WAN, 20000, SYN)
    assert arrive(nf, syn, 100.0) == Verdict.DROP  # not handed to the router's TCP
    assert nf.stats()["syns_held"] == 1 and nf.stats()["syns_holding"] == 1
    assert nf.stats()["conntrack"]["flows"] == 0
    assert nf.poll_at() == 106.0
    nf.handle_timeout(105.9)
    assert answered == []  # REQ-4: not within 6 seconds
    nf.handle_timeout(106.0)
    assert answered == [bytes(syn)]
    assert nf.stats()["syns_answered"] == 1 and nf.stats()["syns_holding"] == 0
    # A retransmission of a held SYN does not start the clock again.
    nf2, answered2 = nat_with_answers()
    arrive(nf2, tcp4(PEER, 5555, ROUTER_WAN, 20000, SYN), 0.0)
    arrive(nf2, tcp4(PEER, 5555, ROUTER_WAN, 20000, SYN), 3.0)
    nf2.handle_timeout(6.0)
    assert len(answered2) == 1 and nf2.stats()["syns_held"] == 1


def test_simultaneous_open_drops_the_held_syn_silently() -> None:
    nf, answered = nat_with_answers(ConntrackConfig())
    # The inside host's first SYN made the mapping; learn its port with a flow elsewhere.
    probe = tcp4("198.18.1.10", 40000, "198.18.2.99", 7, SYN)
    assert forward(nf, probe, LAN, WAN) == Verdict.ACCEPT
    eport = fields(probe)[1]
    # The peer's SYN arrives before the inside host's SYN to it has gone out: address-
    # and-port-dependent filtering lets nothing in, so it is unsolicited, and held.
    peer_syn = tcp4(PEER, 5555, ROUTER_WAN, eport, SYN, seq=777)
    assert arrive(nf, peer_syn, 1.0) == Verdict.DROP
    assert nf.stats()["syns_held"] == 1
    # The inside host's SYN to the peer goes out through the same mapping.
    out = tcp4("198.18.1.10", 40000, PEER, 5555, SYN, seq=5000)
    assert forward(nf, out, LAN, WAN, 2.0) == Verdict.ACCEPT
    assert fields(out)[:2] == (ROUTER_WAN, eport)
    assert nf.stats()["syns_superseded"] == 1 and nf.stats()["syns_holding"] == 0
    nf.handle_timeout(100.0)
    assert answered == []
    # The peer's retransmitted SYN now meets the flow: a simultaneous open.
    again = tcp4(PEER, 5555, ROUTER_WAN, eport, SYN, seq=777)
    assert forward(nf, again, WAN, LAN, 3.0) == Verdict.ACCEPT
    assert fields(again)[2:] == ("198.18.1.10", 40000)
    synack = tcp4("198.18.1.10", 40000, PEER, 5555, SYN | ACK, seq=5000, ack=778)
    assert forward(nf, synack, LAN, WAN, 3.1) == Verdict.ACCEPT


def test_what_is_not_held() -> None:
    nf, answered = nat_with_answers()
    # The router's own listener takes it at once.
    nf.tcp_takes = lambda ip, port, rip, rport: port == 22000
    assert arrive(nf, tcp4(PEER, 1, ROUTER_WAN, 22000, SYN), 0.0) == Verdict.ACCEPT
    # Outside the masquerade's port range (the stack's own ephemeral ports): its TCP answers.
    assert arrive(nf, tcp4(PEER, 1, ROUTER_WAN, 50000, SYN), 0.0) == Verdict.ACCEPT
    # Not a SYN: not a connection attempt to hold.
    assert arrive(nf, tcp4(PEER, 1, ROUTER_WAN, 20000, ACK), 0.0) == Verdict.ACCEPT
    # On an interface that is not masqueraded.
    d = tcp4("198.18.1.10", 1, "198.18.1.1", 20000, SYN)
    assert nf.run(Hook.PREROUTING, d, LAN, None, 0.0) == Verdict.ACCEPT
    assert nf.run(Hook.INPUT, bytearray(d), LAN, None, 0.0) == Verdict.ACCEPT
    assert nf.stats()["syns_held"] == 0


def test_held_syns_are_bounded_and_counted() -> None:
    nf, answered = nat_with_answers(ConntrackConfig(max_held_syns=8))
    for i in range(50):
        assert arrive(nf, tcp4(PEER, 1000 + i, ROUTER_WAN, 20000, SYN), 0.0) == Verdict.DROP
    s = nf.stats()
    assert s["syns_held"] == 8 and s["syns_holding"] == 8
    assert s["drops"]["syn_hold_full"] == 42
    assert s["conntrack"]["flows"] == 0
    nf.handle_timeout(6.0)
    assert len(answered) == 8
    assert arrive(nf, tcp4(PEER, 9, ROUTER_WAN, 20000, SYN), 7.0) == Verdict.DROP
    assert nf.stats()["syns_holding"] == 1  # room again
