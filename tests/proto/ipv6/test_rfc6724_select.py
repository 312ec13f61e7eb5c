"""RFC 6724 default address selection (netstack.proto.ipv6.addressing): the policy table of 2.1,
source selection (5) and destination ordering (6), checked against the RFC's own examples in
10.1 and 10.2 wherever they apply to a single-interface host without Mobile IPv6 or temporary
addresses, and rule by rule."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netstack.proto.ipv6.addressing import (
    Candidate,
    label,
    precedence,
    select_source,
    sort_destinations,
)


def a(text: str) -> bytes:
    """An IPv6 address, or an IPv4 one in IPv4-mapped form."""
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv4Address):
        return ipaddress.IPv6Address(f"::ffff:{ip}").packed
    return ip.packed


def cand(text: str, *, deprecated: bool = False, prefix_len: int = 64) -> Candidate:
    return Candidate(a(text), prefix_len, not deprecated)


def pick(dst: str, *candidates: Candidate) -> str:
    """The chosen source for ``dst``, checked to be the same whatever the candidates' order."""
    results = set()
    for order in itertools.permutations(candidates):
        chosen = select_source(a(dst), list(order))
        assert chosen is not None
        results.add(str(ipaddress.IPv6Address(chosen)))
    assert len(results) == 1, f"order-dependent choice: {results}"
    return results.pop()


# -- the policy table (RFC 6724 2.1) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "prec", "lab"),
    [
        ("::1", 50, 0),
        ("2001:db8::1", 40, 1),  # ::/0
        ("fe80::1", 40, 1),
        ("::ffff:192.0.2.1", 35, 4),
        ("2002:c633:6401::1", 30, 2),
        ("2001::1", 5, 5),  # Teredo, 2001::/32
        ("2001:0:ffff::1", 5, 5),
        ("2001:1::1", 40, 1),  # just outside 2001::/32
        ("fc00::1", 3, 13),
        ("fd12:3456::1", 3, 13),
        ("::192.0.2.1", 1, 3),  # IPv4-compatible, ::/96
        ("fec0::1", 1, 11),
        ("3ffe::1", 1, 12),
        ("::", 1, 3),  # :: is inside ::/96
    ],
)
def test_default_policy_table(text: str, prec: int, lab: int) -> None:
    assert precedence(a(text)) == prec
    assert label(a(text)) == lab


# -- source selection: RFC 6724 10.1 ---------------------------------------------------------


def test_10_1_prefer_appropriate_scope_for_a_global_destination() -> None:
    # The RFC prints "2001:db8::1" as the result, a typo for the candidate 2001:db8:3::1.
    assert pick("2001:db8:1::1", cand("2001:db8:3::1"), cand("fe80::1")) == "2001:db8:3::1"


def test_10_1_prefer_appropriate_scope_for_a_site_multicast() -> None:
    assert pick("ff05::1", cand("2001:db8:3::1"), cand("fe80::1")) == "2001:db8:3::1"


def test_10_1_prefer_same_address_even_deprecated() -> None:
    chosen = pick("2001:db8:1::1", cand("2001:db8:1::1", deprecated=True), cand("2001:db8:2::1"))
    assert chosen == "2001:db8:1::1"


def test_10_1_prefer_appropriate_scope_over_avoiding_deprecated() -> None:
    chosen = pick("fe80::1", cand("fe80::2", deprecated=True), cand("2001:db8:1::1"))
    assert chosen == "fe80::2"


def test_10_1_longest_matching_prefix() -> None:
    assert pick("2001:db8:1::1", cand("2001:db8:1::2"), cand("2001:db8:3::2")) == "2001:db8:1::2"


def test_10_1_prefer_matching_label() -> None:
    # The 6to4 candidate is temporary in the RFC's example; rule 6 decides before rule 7.
    chosen = pick(
        "2002:c633:6401::1",
        cand("2002:c633:6401::d5e3:7953:13eb:22e8"),
        cand("2001:db8:1::2"),
    )
    assert a(chosen) == a("2002:c633:6401::d5e3:7953:13eb:22e8")


# -- source selection: each rule -------------------------------------------------------------


def test_no_candidates() -> None:
    assert select_source(a("2001:db8::1"), []) is None


def test_rule_2_a_smaller_scope_than_the_destination_loses() -> None:
    # Global destination: the global candidate, whatever else the link-local one has for it.
    assert pick("2001:db8::1", cand("fe80::2001:db8:0:1"), cand("fd00::1")) == "fd00::1"
    # Link-local destination: the smallest scope that still covers it.
    assert pick("ff02::1", cand("2001:db8::1"), cand("fe80::1")) == "fe80::1"


def test_rule_3_avoid_deprecated() -> None:
    chosen = pick("2001:db8:9::1", cand("2001:db8:9::2", deprecated=True), cand("2001:db8:1::2"))
    assert chosen == "2001:db8:1::2"


def test_rule_5_prefers_the_outgoing_interface() -> None:
    """Over several interfaces: after rules 1 to 3, an address of the outgoing interface;
    rule 2 still puts a global address of another interface before a link-local one of the
    outgoing interface for a global destination."""
    mine, other = cand("2001:db8:1::1"), cand("2001:db8:2::1")
    for order in ([mine, other], [other, mine]):
        chosen = select_source(a("2001:db8:2::9"), order, {mine.address})
        assert chosen == mine.address  # rule 5 before rule 8's longer match
    assert select_source(a("2001:db8:2::9"), [other, mine]) == other.address  # rule 8 alone
    ll = cand("fe80::1")
    assert select_source(a("2001:db8::9"), [ll, other], {ll.address}) == other.address
    deprecated = cand("2001:db8:1::2", deprecated=True)
    assert select_source(a("2001:db8::9"), [deprecated, other], {deprecated.address}) == (
        other.address
    )  # rule 3 first


def test_rule_6_beats_rule_8() -> None:
    # 2002:cb00::1 (6to4, label 2) shares 15 bits with 2003::1 (label 1), 2400::1 (label 1) only
    # 5: the matching label wins although its prefix match is shorter.
    assert pick("2003::1", cand("2002:cb00::1"), cand("2400::1")) == "2400::1"


def test_rule_8_counts_only_up_to_the_candidates_prefix() -> None:
    """CommonPrefixLen(S, D) stops at the length of S's prefix (RFC 6724 2.2): a /48 candidate
    sharing 120 bits with the destination counts 48, a /64 one sharing 64 counts 64."""
    dst = "2001:db8:1:2::1"
    wide = cand("2001:db8:1:2::2", prefix_len=48)  # 126 bits in common, counts 48
    narrow = cand("2001:db8:1:2:ffff::1", prefix_len=64)  # 64 bits in common
    assert pick(dst, wide, narrow) == "2001:db8:1:2:ffff::1"


def test_ties_keep_the_first_candidate() -> None:
    x, y = cand("2001:db8:1::5"), cand("2001:db8:1::6")
    assert select_source(a("2001:db8:1::1"), [x, y]) == x.address
    assert select_source(a("2001:db8:1::1"), [y, x]) == y.address


global_or_link = st.sampled_from(
    ["2001:db8:1::2", "2001:db8:2::2", "fe80::2", "fd00::2", "2002:c633:6401::2", "fec0::2"]
)


@given(
    st.lists(
        st.tuples(global_or_link, st.booleans()), min_size=1, max_size=6, unique_by=lambda t: t[0]
    ),
    st.sampled_from(["2001:db8:1::1", "fe80::1", "ff02::1", "ff05::1", "fd00::9", "2002::1"]),
)
def test_the_chosen_source_is_a_candidate_and_same_address_wins(
    cands: list[tuple[str, bool]], dst: str
) -> None:
    candidates = [cand(t, deprecated=d) for t, d in cands]
    chosen = select_source(a(dst), candidates)
    assert chosen in {c.address for c in candidates}
    same = select_source(a(cands[0][0]), candidates)
    assert same == a(cands[0][0])  # rule 1


# -- destination ordering: RFC 6724 10.2 -----------------------------------------------------


def order(
    dsts: list[str],
    sources: dict[str, str | None],
    deprecated: frozenset[str] = frozenset(),
) -> list[str]:
    """Sort ``dsts`` with the given Source(D), in both input orders, and check they agree."""
    src = {a(d): (a(s) if s is not None else None) for d, s in sources.items()}
    dep = {a(x) for x in deprecated}
    results = []
    for given_order in (dsts, list(reversed(dsts))):
        out = sort_destinations(
            [a(d) for d in given_order], src.__getitem__, is_deprecated=dep.__contains__
        )
        results.append([_text(x) for x in out])
    assert results[0] == results[1]
    return results[0]


def _text(x: bytes) -> str:
    ip = ipaddress.IPv6Address(x)
    return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)


def by_selection(*candidates: str) -> dict[str, str | None]:
    """Source(D) for every destination used below, chosen by select_source among the given
    (IPv6) candidates."""
    cs = [cand(c) for c in candidates]
    dsts = ["2001:db8:1::1", "fe80::1", "2002:c633:6401::1", "2001:db8:3ffe::1"]
    out: dict[str, str | None] = {}
    for d in dsts:
        s = select_source(a(d), cs)
        out[d] = None if s is None else str(ipaddress.IPv6Address(s))
    return out


def test_10_2_prefer_matching_scope_ipv4_link_local_source() -> None:
    # Candidates 2001:db8:1::2, fe80::1, 169.254.13.78.
    sources = {"2001:db8:1::1": "2001:db8:1::2", "198.51.100.121": "169.254.13.78"}
    assert order(["2001:db8:1::1", "198.51.100.121"], sources) == [
        "2001:db8:1::1",
        "198.51.100.121",
    ]


def test_10_2_prefer_matching_scope_ipv6_link_local_source() -> None:
    # Candidates fe80::1, 198.51.100.117.
    sources = {"2001:db8:1::1": "fe80::1", "198.51.100.121": "198.51.100.117"}
    assert order(["2001:db8:1::1", "198.51.100.121"], sources) == [
        "198.51.100.121",
        "2001:db8:1::1",
    ]


def test_10_2_prefer_higher_precedence_over_ipv4() -> None:
    # Candidates 2001:db8:1::2, fe80::1, 10.1.2.4.
    sources = {"2001:db8:1::1": "2001:db8:1::2", "10.1.2.3": "10.1.2.4"}
    assert order(["2001:db8:1::1", "10.1.2.3"], sources) == ["2001:db8:1::1", "10.1.2.3"]


def test_10_2_prefer_smaller_scope() -> None:
    sources = by_selection("2001:db8:1::2", "fe80::2")
    assert sources["fe80::1"] == "fe80::2" and sources["2001:db8:1::1"] == "2001:db8:1::2"
    assert order(["2001:db8:1::1", "fe80::1"], sources) == ["fe80::1", "2001:db8:1::1"]


def test_10_2_avoid_deprecated_addresses() -> None:
    sources = {"2001:db8:1::1": "2001:db8:1::2", "fe80::1": "fe80::2"}
    result = order(["2001:db8:1::1", "fe80::1"], sources, deprecated=frozenset({"fe80::2"}))
    assert result == ["2001:db8:1::1", "fe80::1"]


def test_10_2_longest_matching_prefix() -> None:
    sources = by_selection("2001:db8:1::2", "2001:db8:3f44::2", "fe80::2")
    assert sources["2001:db8:3ffe::1"] == "2001:db8:3f44::2"
    assert order(["2001:db8:1::1", "2001:db8:3ffe::1"], sources) == [
        "2001:db8:1::1",
        "2001:db8:3ffe::1",
    ]


def test_10_2_prefer_matching_label() -> None:
    sources = by_selection("2002:c633:6401::2", "fe80::2")
    assert sources["2001:db8:1::1"] == "2002:c633:6401::2"
    assert order(["2002:c633:6401::1", "2001:db8:1::1"], sources) == [
        "2002:c633:6401::1",
        "2001:db8:1::1",
    ]


def test_10_2_prefer_higher_precedence() -> None:
    sources = by_selection("2002:c633:6401::2", "2001:db8:1::2", "fe80::2")
    assert sources["2002:c633:6401::1"] == "2002:c633:6401::2"
    assert order(["2002:c633:6401::1", "2001:db8:1::1"], sources) == [
        "2001:db8:1::1",
        "2002:c633:6401::1",
    ]


# -- destination ordering: each rule ---------------------------------------------------------


def test_rule_1_unusable_destinations_go_last() -> None:
    sources: dict[str, str | None] = {
        "2001:db8:9::1": None,
        "2001:db8:1::1": "2001:db8:1::2",
        "10.0.0.1": None,
    }

    def source_for(d: bytes) -> bytes | None:
        s = sources[_text(d)]
        return None if s is None else a(s)

    out = sort_destinations([a("2001:db8:9::1"), a("10.0.0.1"), a("2001:db8:1::1")], source_for)
    # The usable one first; the two unusable ones by precedence (rule 6: 40 above 35).
    assert [_text(x) for x in out] == ["2001:db8:1::1", "2001:db8:9::1", "10.0.0.1"]


@pytest.mark.parametrize(
    ("dsts", "expected"),
    [
        # Rule 6, precedence from 2.1's table: ::1 50, ::/0 40, IPv4 35, 6to4 30, Teredo 5,
        # ULA 3. Not simply "IPv6 first": IPv4 goes above 6to4, Teredo and ULA.
        (["10.0.0.1", "2001:db8:9::1"], ["2001:db8:9::1", "10.0.0.1"]),
        (["2002:c633:6401::1", "10.0.0.1"], ["10.0.0.1", "2002:c633:6401::1"]),
        (
            ["fd00::1", "2001::1", "2002::1", "10.0.0.1", "2001:db8::1", "::1"],
            ["::1", "2001:db8::1", "10.0.0.1", "2002::1", "2001::1", "fd00::1"],
        ),
        # Rule 8 when the precedence is equal: the smaller scope first.
        (["2001:db8::1", "fe80::1"], ["fe80::1", "2001:db8::1"]),
        # Rules 2, 3, 5 and 9 need Source(D): equal otherwise, the given order stays.
        (["2001:db8:1::1", "2001:db8:2::1"], ["2001:db8:1::1", "2001:db8:2::1"]),
    ],
)
def test_rule_1_does_not_decide_between_two_unusable_destinations(
    dsts: list[str], expected: list[str]
) -> None:
    # RFC 6724 6: rules apply in order until one decides. Rule 1 prefers a destination with a
    # source to one without; between two without, it decides nothing, and the rules that
    # need no source (6, precedence; 8, scope) still order them.
    out = sort_destinations([a(d) for d in dsts], lambda d: None)
    assert [_text(x) for x in out] == expected
    if dsts != expected:
        again = sort_destinations([a(d) for d in reversed(dsts)], lambda d: None)
        assert [_text(x) for x in again] == expected


def test_rule_9_only_between_ipv6_destinations() -> None:
    # Two IPv4 destinations keep their order whatever their sources share (rule 10).
    sources = {"10.55.0.1": "10.99.0.2", "10.0.0.1": "10.0.0.2"}
    out = sort_destinations(
        [a("10.55.0.1"), a("10.0.0.1")],
        lambda d: a(sources[_text(d)]),
    )
    assert [_text(x) for x in out] == ["10.55.0.1", "10.0.0.1"]


def test_rule_10_keeps_the_given_order() -> None:
    sources = {"2001:db8:1::1": "2001:db8:1::9", "2001:db8:1::2": "2001:db8:1::9"}
    for dsts in (["2001:db8:1::1", "2001:db8:1::2"], ["2001:db8:1::2", "2001:db8:1::1"]):
        out = sort_destinations([a(d) for d in dsts], lambda d: a(sources[_text(d)]))
        assert [_text(x) for x in out] == dsts


def test_empty_destination_list() -> None:
    assert sort_destinations([], lambda d: None) == []


@given(
    st.lists(
        st.sampled_from(
            ["2001:db8:1::1", "fe80::1", "2002:c633:6401::1", "10.1.2.3", "169.254.1.1",
             "fd00::1", "2001:db8:9::1", "::1"]
        ),
        max_size=8,
    )
)  # fmt: skip
def test_sorting_is_a_permutation(dsts: list[str]) -> None:
    cs = [cand("2001:db8:1::2"), cand("fe80::2"), cand("fd00::2")]

    def source_for(d: bytes) -> bytes | None:
        if _text(d) == "10.1.2.3":
            return a("10.1.2.4")
        if _text(d) == "169.254.1.1":
            return None
        return select_source(d, cs)

    out = sort_destinations([a(d) for d in dsts], source_for)
    assert sorted(out) == sorted(a(d) for d in dsts)
    # Rule 1: everything without a source comes after everything with one.
    usable = [source_for(x) is not None for x in out]
    assert usable == sorted(usable, reverse=True)
