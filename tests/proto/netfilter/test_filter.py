"""Packet filter machine tests: rules as plain data and as text, states, counters, policies,
rejections, and rules replaced while flows are tracked."""

from __future__ import annotations

import pytest
from nfkit import ACK, SYN, a, echo4, echo6, tcp4, udp4, udp6
from test_nat import LAN, ROUTER_WAN, WAN, forward, make

from netstack.proto.ip.hooks import Hook, Verdict
from netstack.proto.netfilter import Rule, parse_rules


def test_default_policy_per_direction_and_state_rules() -> None:
    nf = make()
    f = nf.filter
    f.set_policy("forward", "drop")
    f.rules = [
        Rule("accept", state="established,related"),
        Rule("accept", iif="lan", proto="tcp", dport=[80, (8000, 8099)], state="new"),
    ]
    out = tcp4("198.18.1.10", 40000, "198.18.2.80", 80, SYN)
    assert forward(nf, out, LAN, WAN) == Verdict.ACCEPT
    # From the outside, a new flow is dropped by policy; the answer to ours is established.
    assert forward(nf, tcp4("198.18.2.80", 1, "198.18.1.10", 22, SYN), WAN, LAN) == Verdict.DROP
    back = tcp4("198.18.2.80", 80, "198.18.1.10", 40000, SYN | ACK)
    assert forward(nf, back, WAN, LAN) == Verdict.ACCEPT
    assert forward(nf, tcp4("198.18.1.10", 40000, "198.18.2.80", 443, SYN), LAN, WAN) == (
        Verdict.DROP
    )
    counters = f.counters()
    assert [c["packets"] for c in counters] == [1, 1]
    assert f.stats()["policy_hits"]["forward"] == 2
    # A dropped new flow leaves no entry behind.
    assert nf.stats()["conntrack"]["flows"] == 1


def test_reject_answers_tcp_with_a_reset_and_others_with_icmp() -> None:
    nf = make()
    nf.filter.rules = [
        Rule("reject", chain="input", proto="tcp", dport=23),
        Rule("reject", chain="input", proto="udp"),
        Rule("reject-icmp", chain="input", proto="tcp", dport=24),
    ]
    for d, want in (
        (tcp4("198.18.2.9", 1000, ROUTER_WAN, 23, SYN), Verdict.REJECT_RESET),
        (udp4("198.18.2.9", 1000, ROUTER_WAN, 53), Verdict.REJECT_ICMP),
        (tcp4("198.18.2.9", 1000, ROUTER_WAN, 24, SYN), Verdict.REJECT_ICMP),
        (tcp4("198.18.2.9", 1000, ROUTER_WAN, 25, SYN), Verdict.ACCEPT),
    ):
        assert nf.run(Hook.PREROUTING, d, WAN, None, 0.0) == Verdict.ACCEPT
        assert nf.run(Hook.INPUT, d, WAN, None, 0.0) == want
    assert nf.stats()["rejected"] == 3


def test_output_chain_icmp_type_and_prefixes() -> None:
    nf = make()
    nf.filter.rules = [
        Rule("drop", chain="output", proto="icmp", icmp_type=8, dst="198.18.2.0/24"),
        Rule("drop", chain="forward", src="fd00:1::/64"),
    ]
    ping = echo4(ROUTER_WAN, "198.18.2.50", 7)
    assert nf.run(Hook.OUTPUT, ping, None, WAN, 0.0) == Verdict.DROP
    other = echo4(ROUTER_WAN, "198.18.3.50", 7)
    assert nf.run(Hook.OUTPUT, other, None, WAN, 0.0) == Verdict.ACCEPT
    assert forward(nf, udp6("fd00:1::5", 1, "fd00:2::5", 2), LAN, WAN) == Verdict.DROP
    assert forward(nf, udp6("fd00:3::5", 1, "fd00:2::5", 2), LAN, WAN) == Verdict.ACCEPT
    # An IPv4 datagram never matches an IPv6 prefix.
    assert forward(nf, udp4("198.18.1.5", 1, "198.18.2.5", 2), LAN, WAN) == Verdict.ACCEPT


def test_ipv6_is_tracked_and_forwarded_without_translation() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    nf.filter.set_policy("forward", "drop")
    nf.filter.rules = [Rule("accept", state="established"), Rule("accept", iif=LAN)]
    d = echo6("fd00:1::5", "fd00:2::9", 42)
    before = bytes(d)
    assert forward(nf, d, LAN, WAN) == Verdict.ACCEPT
    assert bytes(d) == before
    assert forward(nf, echo6("fd00:2::9", "fd00:1::5", 42, reply=True), WAN, LAN) == (
        Verdict.ACCEPT
    )
    assert forward(nf, echo6("fd00:2::9", "fd00:1::5", 43, reply=True), WAN, LAN) == Verdict.DROP


def test_replacing_rules_keeps_tracked_flows() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    nf.filter.rules = [Rule("accept", iif=LAN)]
    nf.filter.set_policy("forward", "drop")
    out = udp4("198.18.1.10", 5000, "198.18.2.50", 53)
    forward(nf, out, LAN, WAN)
    eport = out[20] << 8 | out[21]
    nf.filter.replace([Rule("accept", state="established")])
    assert nf.filter.counters()[0]["packets"] == 0
    back = udp4("198.18.2.50", 53, ROUTER_WAN, eport)
    assert forward(nf, back, WAN, LAN) == Verdict.ACCEPT  # translated, and established
    assert back[16:20] == bytes([198, 18, 1, 10])
    assert nf.stats()["conntrack"]["flows"] == 1


def test_invalid_state_is_matchable() -> None:
    nf = make()
    nf.filter.rules = [Rule("drop", state="invalid")]
    assert forward(nf, tcp4("198.18.1.10", 1, "198.18.2.1", 2, ACK), LAN, WAN) == Verdict.DROP
    assert nf.filter.counters()[0]["packets"] == 1


def test_text_form() -> None:
    text = """
    # the firewall
    policy forward drop
    policy input reject
    forward accept state established,related
    forward accept in lan proto tcp dport 80,8000-8099 state new  # web
    input accept proto icmp icmp-type 8
    """
    rules, policies = parse_rules(text)
    assert policies == {"forward": "drop", "input": "reject"}
    assert rules[1] == Rule(
        "accept", "forward", iif="lan", proto="tcp", dport=[80, (8000, 8099)], state="new",
        comment="web",
    )  # fmt: skip
    nf = make()
    nf.filter.load(text)
    assert len(nf.filter.rules) == 3 and nf.filter.policy["input"] == "reject"
    with pytest.raises(ValueError, match="line 2"):
        parse_rules("forward accept\nforward maybe")
    with pytest.raises(ValueError, match="line 1"):
        parse_rules("forward accept dport 80")  # ports without a protocol


@pytest.mark.parametrize(
    "rule",
    [
        Rule("allow"),
        Rule("accept", chain="prerouting"),
        Rule("accept", proto="sctp"),
        Rule("accept", dport=80),
        Rule("accept", proto="tcp", dport=(90, 80)),
        Rule("accept", state="half-open"),
        Rule("accept", src="198.18.0.0/15", dst="fd00::/8"),
        Rule("accept", proto="udp", icmp_type=3),
    ],
)
def test_bad_rules_raise_and_change_nothing(rule: Rule) -> None:
    nf = make()
    nf.filter.rules = [Rule("drop")]
    with pytest.raises(ValueError):
        nf.filter.replace([Rule("accept"), rule])
    assert nf.filter.rules == [Rule("drop")]


def test_ipv6_extension_headers_and_fragments_are_walked() -> None:
    from nfkit import a

    from netstack.proto.ipv6 import wire as ip6

    nf = make()
    nf.filter.rules = [Rule("drop", proto="udp", dport=53)]
    plain = udp6("fd00:1::5", 1000, "fd00:2::5", 53)
    body = bytes(plain[40:])
    # Hop-by-Hop (8 bytes of PadN) then a first fragment (M set) then UDP.
    hbh = bytes([44, 0, 1, 4, 0, 0, 0, 0])
    frag = bytes([17, 0, 0, 1]) + (77).to_bytes(4, "big")
    d = bytearray(40) + hbh + frag + body
    ip6.build_header_into(d, 0, len(d) - 40, 0, 64, a("fd00:1::5"), a("fd00:2::5"))
    assert forward(nf, d, LAN, WAN) == Verdict.DROP
    # A later fragment of an accepted datagram follows its flow.
    ok = udp6("fd00:1::5", 1000, "fd00:2::5", 54)
    first = bytearray(40) + bytes([17, 0, 0, 1]) + (78).to_bytes(4, "big") + bytes(ok[40:])
    ip6.build_header_into(first, 0, len(first) - 40, 44, 64, a("fd00:1::5"), a("fd00:2::5"))
    assert forward(nf, first, LAN, WAN) == Verdict.ACCEPT
    later = bytearray(40) + bytes([17, 0, 0, 8 | 0]) + (78).to_bytes(4, "big") + b"x" * 16
    ip6.build_header_into(later, 0, len(later) - 40, 44, 64, a("fd00:1::5"), a("fd00:2::5"))
    assert forward(nf, later, LAN, WAN) == Verdict.ACCEPT
    assert nf.stats()["drops"].get("fragment_without_flow", 0) == 0


def test_a_rule_unchanged_by_a_reload_keeps_its_counters() -> None:
    nf = make()
    text = (
        "policy forward drop\nforward accept in lan proto udp dport 53\n"
        "forward accept state established\n"
    )
    nf.filter.load(text)
    forward(nf, udp4("198.18.1.10", 5000, "198.18.2.50", 53), LAN, WAN)
    forward(nf, udp4("198.18.1.10", 5001, "198.18.2.50", 53), LAN, WAN)
    assert [c["packets"] for c in nf.filter.counters()] == [2, 0]
    nf.filter.load(text.replace("dport 53", "dport 53,123"))
    assert [c["packets"] for c in nf.filter.counters()] == [0, 0]
    forward(nf, udp4("198.18.1.10", 5002, "198.18.2.50", 53), LAN, WAN)
    nf.filter.load(text.replace("dport 53", "dport 53,123"))
    assert [c["packets"] for c in nf.filter.counters()] == [1, 0]


def test_neighbour_discovery_and_mld_pass_a_dropping_input_chain() -> None:
    from netstack.proto.icmpv6 import wire as icmp6
    from netstack.proto.ipv6 import wire as ip6

    def icmpv6(type_: int, src: str, dst: str) -> bytearray:
        body = bytearray(8) + bytes(16)
        icmp6.build_into(body, 0, type_, 0, 0, a(src), a(dst))
        d = bytearray(40) + body
        ip6.build_header_into(d, 0, len(body), 58, 255, a(src), a(dst))
        return d

    nf = make()
    nf.filter.set_policy("input", "drop")
    for type_ in (133, 134, 135, 136, 137, 130, 143):
        d = icmpv6(type_, "fe80::2", "fe80::1")
        assert nf.run(Hook.PREROUTING, d, WAN, None, 0.0) == Verdict.ACCEPT
        assert nf.run(Hook.INPUT, d, WAN, None, 0.0) == Verdict.ACCEPT, type_
    echo = icmpv6(128, "fd00:2::9", "fd00:2::1")
    assert nf.run(Hook.PREROUTING, echo, WAN, None, 0.0) == Verdict.ACCEPT
    assert nf.run(Hook.INPUT, echo, WAN, None, 0.0) == Verdict.DROP
