"""Pre-rendered answers (netstack/dns/answers.py): a question asked again is answered from
the answer's kept wire form, with the query's ID, RD bit and question bytes (0x20 mixed case,
draft-vixie-dnsext-dns0x20) patched in; the result is byte for byte what the long way
(dnspython) renders, the counters move the same, the kept answers go when the zone data
changes, queries of any other shape are never answered from them, and they are bounded."""

from __future__ import annotations

import random
import struct
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.zone
import pytest
from dnskit import ZONE, udp_wire
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack import Stack
from netstack.dns import load_zones, serve
from netstack.dns.answers import VARIANTS, AnswerCache, question_key
from netstack.dns.server import Authority, Responder

NAMES = [
    "example.test.",
    "web.example.test.",
    "www.example.test.",  # a CNAME to web
    "alias.example.test.",  # a chain of two
    "nope.example.test.",  # NXDOMAIN
    "v4only.example.test.",  # NODATA for AAAA
    "b.example.test.",  # an empty non-terminal
    "x.wild.example.test.",  # a wildcard
    "a.sub.example.test.",  # a referral with glue
    "loop1.example.test.",
    "outside.example.test.",
    "big.example.test.",  # truncated over UDP
    "medium.example.test.",  # fits with EDNS, not without
    "many.example.test.",
    "mx-many.example.test.",  # additional records left out over UDP
    "_http._tcp.example.test.",
    "80.0.18.198.in-addr.arpa.",
    "example.org.",  # REFUSED
    ".",
]
TYPES = ["A", "AAAA", "MX", "TXT", "SRV", "PTR", "NS", "SOA", "ANY", "CNAME", "AXFR", "OPT",
         "MAILB", "TYPE65"]  # fmt: skip


def fresh(cached: int = 10_000) -> Responder:
    return Responder(Authority(load_zones(ZONE)), cached_answers=cached)


def mixed_case(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


def query_wire(
    name: str,
    rdtype: str = "A",
    *,
    ident: int = 0x1234,
    rd: bool = True,
    cd: bool = False,
    edns: int | bool = False,
    do: bool = False,
    payload: int = 1232,
    options: list[dns.edns.Option] | None = None,
) -> bytes:
    msg = dns.message.make_query(
        name, rdtype, use_edns=edns, want_dnssec=do, payload=payload, options=options
    )
    msg.id = ident
    if not rd:
        msg.flags &= ~dns.flags.RD
    if cd:
        msg.flags |= dns.flags.CD
    return msg.to_wire()


# -- the question parser --------------------------------------------------------------------
HEADER = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0)
WWW = b"\x03www\x07example\x04test\x00"
A_IN = b"\x00\x01\x00\x01"


def opt(payload: int = 1232, ttl: int = 0, rdata: bytes = b"") -> bytes:
    return b"\x00" + struct.pack("!HHIH", 41, payload, ttl, len(rdata)) + rdata


def with_ar(header: bytes) -> bytes:
    return header[:10] + b"\x00\x01"


def key(wire: bytes, *, udp: bool = True, encrypted: bool = False) -> Any:
    return question_key(wire, udp=udp, encrypted=encrypted, udp_payload=1232)


def test_key_of_a_plain_query() -> None:
    found = key(HEADER + WWW + A_IN)
    assert found == ((WWW, A_IN, -1, 512), 12 + len(WWW))
    # Over TCP no size limit; the ID and the header's other flags are not in the key.
    assert key(HEADER + WWW + A_IN, udp=False)[0][3] == 65535
    other = struct.pack("!HHHHHH", 9, 0x0030, 1, 0, 0, 0)  # AD, CD, no RD
    assert key(other + WWW + A_IN) == found


def test_key_folds_ascii_case_of_the_name_only() -> None:
    mixed = b"\x03wWw\x07EXAMple\x04TeSt\x00"
    assert key(HEADER + mixed + A_IN) == key(HEADER + WWW + A_IN)
    # QTYPE 0x0041 (HTTPS) and 0x0061 are different questions: the bytes after the name are
    # not case-folded.
    https = key(HEADER + WWW + b"\x00\x41\x00\x01")
    other = key(HEADER + WWW + b"\x00\x61\x00\x01")
    assert https[0] != other[0]
    # Only ASCII folds (RFC 4343 3): 0xC9 and 0xE9 are two labels.
    assert key(HEADER + b"\x01\xc9\x00" + A_IN)[0] != key(HEADER + b"\x01\xe9\x00" + A_IN)[0]


def test_key_of_edns_queries() -> None:
    base = with_ar(HEADER) + WWW + A_IN
    assert key(base + opt(4096))[0][2:] == (0, 1232)  # capped at the server's size
    assert key(base + opt(100))[0][2:] == (0, 512)  # RFC 6891 6.2.3: read as 512
    assert key(base + opt(700, ttl=0x8000))[0][2:] == (1, 700)  # DO
    assert key(base + opt(700, ttl=0x8000), udp=False)[0][2:] == (1, 65535)
    # Options dnspython takes as they come: unknown ones, NSID, a well-formed cookie.
    for rdata in (b"\xfd\xe9\x00\x02ab", b"\x00\x03\x00\x00", b"\x00\x0a\x00\x08" + b"c" * 8,
                  b"\x00\x0a\x00\x10" + b"c" * 16):  # fmt: skip
        assert key(base + opt(rdata=rdata)) is not None, rdata


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (HEADER[:11], "shorter than a question"),
        (HEADER + WWW, "no QTYPE/QCLASS"),
        (HEADER + WWW + A_IN + b"\x00", "trailing byte"),
        (struct.pack("!HHHHHH", 7, 0x8100, 1, 0, 0, 0) + WWW + A_IN, "QR set"),
        (struct.pack("!HHHHHH", 7, 0x2000, 1, 0, 0, 0) + WWW + A_IN, "opcode NOTIFY"),
        (struct.pack("!HHHHHH", 7, 0x0100, 2, 0, 0, 0) + WWW + A_IN + WWW + A_IN, "2 questions"),
        (struct.pack("!HHHHHH", 7, 0x0100, 0, 0, 0, 0), "no question"),
        (struct.pack("!HHHHHH", 7, 0x0100, 1, 1, 0, 0) + WWW + A_IN, "an answer record"),
        (struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 2) + WWW + A_IN + opt() + opt(), "2 ARs"),
        (HEADER + b"\x03www\xc0\x0c" + A_IN, "a compression pointer"),
        (HEADER + b"\x41" + b"a" * 65 + b"\x00" + A_IN, "an extended label type"),
        (HEADER + (b"\x3f" + b"a" * 63) * 4 + b"\x00" + A_IN, "256-byte name"),
        (HEADER + b"\x05ab", "a label past the end"),
        (with_ar(HEADER) + WWW + A_IN, "no OPT after all"),
        (with_ar(HEADER) + WWW + A_IN + opt()[:-1], "a short OPT"),
        (with_ar(HEADER) + WWW + A_IN + b"\x01a" + opt()[1:], "OPT not at the root"),
        (with_ar(HEADER) + WWW + A_IN + WWW + A_IN + b"\x00" * 6, "an A record as AR"),
        (with_ar(HEADER) + WWW + A_IN + opt(ttl=0x00010000), "EDNS version 1"),
        (with_ar(HEADER) + WWW + A_IN + opt(ttl=0x01000000), "extended RCODE bits"),
        (with_ar(HEADER) + WWW + A_IN + opt() + b"\x00", "trailing byte after OPT"),
        (with_ar(HEADER) + WWW + A_IN + opt(rdata=b"\x00\x0a\x00"), "a cut option"),
        (with_ar(HEADER) + WWW + A_IN + opt(rdata=b"\x00\x0a\x00\x05abcde"), "a bad cookie"),
        (with_ar(HEADER) + WWW + A_IN + opt(rdata=b"\x00\x08\x00\x00"), "ECS (validated)"),
    ],
)
def test_key_refuses_other_shapes(wire: bytes, why: str) -> None:
    if len(wire) >= 12:
        assert key(wire) is None, why


def test_padding_is_only_answered_from_the_cache_in_cleartext() -> None:
    wire = with_ar(HEADER) + WWW + A_IN + opt(rdata=b"\x00\x0c\x00\x04\x00\x00\x00\x00")
    assert key(wire, udp=False) is not None
    assert key(wire, udp=False, encrypted=True) is None  # RFC 8467 4.1 pads that answer


@given(st.binary(min_size=12, max_size=300))
@settings(max_examples=500, deadline=None)
def test_key_never_raises(data: bytes) -> None:
    for udp in (True, False):
        found = key(data, udp=udp)
        if found is not None:
            # What the parser takes, dnspython takes too.
            dns.message.from_wire(data)


# -- hits are the long way's bytes ---------------------------------------------------------
@given(
    name=st.sampled_from(NAMES),
    rdtype=st.sampled_from(TYPES),
    edns=st.sampled_from([False, 0]),
    do=st.booleans(),
    payload=st.sampled_from([0, 512, 600, 1000, 1232, 4096]),
    udp=st.booleans(),
    seed=st.integers(0, 2**32),
)
@settings(max_examples=60, deadline=None)
def test_a_hit_is_byte_identical_to_the_long_way(
    name: str, rdtype: str, edns: Any, do: bool, payload: int, udp: bool, seed: int
) -> None:
    rng = random.Random(seed)
    cached, uncached = fresh(), fresh(cached=0)
    turns = VARIANTS + 2
    varies = False
    for turn in range(turns):
        wire = query_wire(
            mixed_case(name, rng), rdtype, ident=rng.randrange(65536), rd=rng.random() < 0.5,
            cd=rng.random() < 0.5, edns=edns, do=do and edns is not False, payload=payload,
        )  # fmt: skip
        got = cached.respond(wire, udp=udp)
        want = uncached.respond(wire, udp=udp)
        assert got is not None and want is not None
        assert got == want or same_but_order(got, want), (turn, wire)
        varies = varies or got != want
        end = 12 + len(dns.name.from_text(name).to_wire())
        assert got is not None and got[12:end] == wire[12:end]  # the question's case as sent
    stats, plain = cached.stats(), uncached.stats()
    hits = stats.pop("answer_cache")["hits"]
    assert hits == turns - 1 or (varies and hits == turns - VARIANTS)
    plain.pop("answer_cache")
    assert stats == plain  # every counter moved as on the long way


def same_but_order(got: bytes, want: bytes) -> bool:
    """The same answer with the records of an RRset in another order (dnspython shuffles
    them on each rendering)."""
    a, b = dns.message.from_wire(got), dns.message.from_wire(want)
    sections = (b.answer, b.authority, b.additional)
    varies = any(len(rrset) > 1 for section in sections for rrset in section)
    return varies and got[:12] == want[:12] and len(got) == len(want) and a == b


def test_record_order_still_varies_from_hit_to_hit() -> None:
    responder = fresh()
    orders = set()
    for i in range(40):
        out = responder.respond(query_wire("many.example.test.", ident=i), udp=False)
        assert out is not None
        (rrset,) = dns.message.from_wire(out).answer
        assert len(rrset) == 40
        orders.add(tuple(rd.to_text() for rd in rrset))
    assert len(orders) > 1
    answers = responder.answers
    assert answers is not None and answers.hits == 40 - 8 and answers.misses == 8
    assert len(answers) == 1


def test_every_header_flag_and_opt_field_outside_the_key_gives_the_same_bytes() -> None:
    # The header bits after the opcode (AA, TC, RD, RA, Z, AD, CD, RCODE), the OPT's Z
    # flags, a payload size above the server's and the options the cache lets through:
    # hits and the long way agree on every combination.
    cached, uncached = fresh(), fresh(cached=0)
    base = query_wire("web.example.test.", edns=0)
    for byte2 in range(8):
        for byte3 in (0x00, 0x0F, 0x10, 0x20, 0x40, 0x80, 0xF0, 0xFF):  # each bit, RCODE
            wire = base[:2] + bytes((byte2, byte3)) + base[4:]
            assert cached.respond(wire, udp=True) == uncached.respond(wire, udp=True)
    options: list[list[dns.edns.Option]] = [
        [],
        [dns.edns.GenericOption(65001, b"xyz")],
        [dns.edns.CookieOption(b"12345678", b"")],
        [dns.edns.NSIDOption(b"")],
    ]
    for payload in (1232, 1500, 65535):
        for ednsflags in (0, 0x8000, 0x0001, 0x7FFF, 0xFFFF):
            for opts in options:
                query = dns.message.make_query(
                    "mail.example.test.", "MX", use_edns=0, payload=payload,
                    ednsflags=ednsflags, options=opts,
                )  # fmt: skip
                wire = query.to_wire()
                assert cached.respond(wire, udp=True) == uncached.respond(wire, udp=True)
    assert cached.answers is not None and cached.answers.misses == 3  # web; MX with DO, without


def test_a_hit_does_not_parse_with_dnspython(monkeypatch: pytest.MonkeyPatch) -> None:
    responder = fresh()
    first = responder.respond(query_wire("web.example.test."), udp=True)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("dnspython on a hit")

    monkeypatch.setattr(dns.message, "from_wire", refuse)
    again = responder.respond(query_wire("WEB.example.TEST.", ident=0x4321), udp=True)
    assert again is not None and first is not None
    assert again[:2] == b"\x43\x21" and again[2:12] == first[2:12]
    assert again[12:30] == b"\x03WEB\x07example\x04TEST\x00"
    assert again[30:] == first[30:]
    assert responder.answers is not None and responder.answers.hits == 1


def test_rd_is_copied_and_cd_is_not() -> None:
    responder = fresh()
    for rd, cd in ((True, False), (False, True), (True, True), (False, False)):
        out = responder.respond(query_wire("web.example.test.", rd=rd, cd=cd), udp=True)
        assert out is not None
        response = dns.message.from_wire(out)
        assert bool(response.flags & dns.flags.RD) == rd
        assert not response.flags & dns.flags.CD
        assert response.flags & dns.flags.AA and response.flags & dns.flags.QR
    assert responder.answers is not None and responder.answers.hits == 3


def test_truncation_and_omitted_additionals_are_counted_on_hits() -> None:
    responder = fresh()
    for _ in range(3):
        out = responder.respond(query_wire("big.example.test.", "TXT"), udp=True)
        assert out is not None and dns.message.from_wire(out).flags & dns.flags.TC
        out = responder.respond(query_wire("mx-many.example.test.", "MX"), udp=True)
        assert out is not None and not dns.message.from_wire(out).additional
    assert responder.truncated == 3 and responder.additional_omitted == 3
    # The same questions over TCP are other answers: whole.
    out = responder.respond(query_wire("big.example.test.", "TXT"), udp=False)
    assert out is not None and len(dns.message.from_wire(out).answer[0]) == 10
    assert responder.answers is not None and responder.answers.hits == 4


# -- never from the cache ------------------------------------------------------------------
def _not_cached(wire: bytes, *, udp: bool = True, encrypted: bool = False) -> None:
    cached, uncached = fresh(), fresh(cached=0)
    for _ in range(3):
        got = cached.respond(wire, udp=udp, encrypted=encrypted)
        assert got == uncached.respond(wire, udp=udp, encrypted=encrypted)
    assert cached.answers is not None and len(cached.answers) == 0
    assert cached.answers.hits == 0


@pytest.mark.parametrize(
    "wire",
    [
        HEADER + WWW,  # FORMERR
        HEADER + WWW + A_IN + b"\x00",  # trailing junk: FORMERR
        struct.pack("!HHHHHH", 7, 0x2000, 1, 0, 0, 0) + WWW + A_IN,  # NOTIFY: NOTIMP
        struct.pack("!HHHHHH", 7, 0x2800, 1, 0, 0, 0) + WWW + A_IN,  # UPDATE: NOTIMP
        struct.pack("!HHHHHH", 7, 0x0100, 2, 0, 0, 0) + WWW + A_IN + WWW + A_IN,  # RFC 9619
        with_ar(HEADER) + WWW + A_IN + opt(ttl=0x00010000),  # BADVERS
        struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 2) + WWW + A_IN + opt() + opt(),  # 2 OPTs
        with_ar(HEADER) + WWW + A_IN + opt(rdata=b"\x00\x0a\x00\x05abcde"),  # bad cookie
        with_ar(HEADER) + WWW + A_IN + opt(rdata=b"\x00\x08\x00\x00"),  # empty ECS
    ],
)
def test_unusual_queries_are_never_answered_from_the_cache(wire: bytes) -> None:
    _not_cached(wire)
    _not_cached(wire, udp=False)


def test_padded_queries_over_tls_are_never_answered_from_the_cache() -> None:
    padded = dns.message.make_query("web.example.test.", "A", use_edns=0, pad=128).to_wire()
    _not_cached(padded, udp=False, encrypted=True)


def test_a_query_over_the_rate_limit_slips_without_the_cache() -> None:
    responder = fresh()
    wire = query_wire("web.example.test.")
    responder.respond(wire, udp=True)
    slipped = responder.slip(wire)
    assert slipped is not None and dns.message.from_wire(slipped).flags & dns.flags.TC
    assert not dns.message.from_wire(slipped).answer


# -- invalidation ---------------------------------------------------------------------------
def test_a_new_authority_empties_the_cache() -> None:
    responder = fresh()
    responder.respond(query_wire("web.example.test."), udp=True)
    assert responder.answers is not None and len(responder.answers) == 1
    zones = load_zones(ZONE)
    node = zones[0].find_rdataset("web.example.test.", "A")
    node.clear()
    node.add(dns.rdata.from_text("IN", "A", "198.18.0.99"), 300)
    responder.authority = Authority(zones)
    assert len(responder.answers) == 0
    out = responder.respond(query_wire("web.example.test."), udp=True)
    assert out is not None
    assert dns.message.from_wire(out).answer[0][0].to_text() == "198.18.0.99"


async def test_set_records_and_reload_replace_kept_answers(stack_pair: tuple[Stack, Stack]) -> None:
    client, server_stack = stack_pair
    async with await serve(server_stack, ZONE) as server:
        wire = query_wire("web.example.test.")

        async def addresses() -> set[str]:
            response = dns.message.from_wire(await udp_wire(client, wire))
            return {rd.to_text() for rrset in response.answer for rd in rrset}

        assert await addresses() == {"198.18.0.80"}
        assert await addresses() == {"198.18.0.80"}
        assert server.stats()["answer_cache"]["hits"] == 1
        server.set_records("web.example.test.", "A", ["198.18.0.81"])
        assert await addresses() == {"198.18.0.81"}
        # A zone changed in place is answered from after reload().
        zone = server.zones[0]
        zone.replace_rdataset(
            "web.example.test.",
            dns.rdataset.from_text("IN", "A", 300, "198.18.0.82"),
        )
        server.reload()
        assert await addresses() == {"198.18.0.82"}
        server.set_records("web.example.test.", "A", [])
        response = dns.message.from_wire(await udp_wire(client, wire))
        assert not response.answer and response.rcode() == dns.rcode.NOERROR  # NODATA now


# -- bounds ---------------------------------------------------------------------------------
def test_the_cache_is_bounded_in_entries() -> None:
    responder = Responder(Authority(load_zones(ZONE)), cached_answers=5)
    for i in range(50):
        responder.respond(query_wire(f"n{i}.example.test."), udp=True)
    assert responder.answers is not None
    assert len(responder.answers) == 5 and responder.answers.evicted == 45
    # The newest stay.
    responder.respond(query_wire("n49.example.test."), udp=True)
    assert responder.answers.hits == 1


def test_the_cache_is_bounded_in_bytes() -> None:
    cache = AnswerCache(max_entries=100, max_bytes=3000)
    responder = fresh()
    responder.answers = cache
    for rdtype in ("TXT", "A", "AAAA", "MX", "SOA", "NS"):
        for name in ("big.example.test.", "medium.example.test."):  # 2 kB and 850 B of TXT
            responder.respond(query_wire(name, rdtype), udp=False)
            kept = sum(len(tail) for answer in cache._answers.values() for tail in answer.tails)
            assert cache.bytes == kept <= 3000
    assert cache.evicted > 0
    # An answer larger than the bound is not kept at all.
    small = AnswerCache(max_bytes=1000)
    responder.answers = small
    for _ in range(2):
        responder.respond(query_wire("big.example.test.", "TXT"), udp=False)
    assert len(small) == 0 and small.hits == 0 and small.bytes == 0
    with pytest.raises(ValueError):
        AnswerCache(max_entries=0)


def test_put_refuses_an_answer_that_does_not_echo_the_question() -> None:
    cache = AnswerCache()
    wire = HEADER + WWW + A_IN
    found = key(wire)
    assert found is not None
    other = HEADER + b"\x03wwx\x07example\x04test\x00" + A_IN
    assert not cache.put(found[0], found[1], other, rcode="NOERROR", truncated=False,
                         additional_omitted=False)  # fmt: skip
    assert not cache.put(found[0], found[1], HEADER[:11], rcode="NOERROR", truncated=False,
                         additional_omitted=False)  # fmt: skip
    assert len(cache) == 0


# -- answers by a UDP query's exact bytes ------------------------------------------------------
def _counters(responder: Responder) -> dict[str, Any]:
    out = responder.stats()
    out["answer_cache"] = {k: v for k, v in out["answer_cache"].items() if k != "exact"}
    return out


def test_a_query_seen_again_is_answered_by_its_bytes_and_counted_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same queries answered with the exact table and without it (a fresh table before
    # each query): the same bytes out and the same counters.
    fast, slow = fresh(), fresh()
    queries = [
        query_wire("web.example.test.", ident=i, rd=bool(i & 1), edns=0 if i & 2 else False)
        for i in range(8)
    ] + [query_wire("big.example.test.", "TXT", ident=9), query_wire("mx-many.example.test.", "MX")]
    for _ in range(3):
        for wire in queries:
            assert slow.answers is not None
            slow.answers.exact.clear()
            assert fast.respond(wire, udp=True) == slow.respond(wire, udp=True)
    assert fast.answers is not None and len(fast.answers.exact) == 6
    assert _counters(fast) == _counters(slow)

    expected = slow.respond(queries[0], udp=True)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed again")

    monkeypatch.setattr("netstack.dns.server.question_key", refuse)
    again = fast.respond(b"\xab\xcd" + queries[0][2:], udp=True)
    assert again is not None and expected is not None
    assert again[:2] == b"\xab\xcd" and again[2:] == expected[2:]


def test_the_exact_table_keeps_the_question_case_and_the_rd_bit() -> None:
    responder = fresh()
    rng = random.Random(7)
    for i in range(20):
        name = mixed_case("web.example.test.", rng)
        wire = query_wire(name, ident=i, rd=bool(i % 3))
        for _ in range(2):
            out = responder.respond(wire, udp=True)
            assert out is not None
            response = dns.message.from_wire(out)
            assert response.id == i and str(response.question[0].name) == name
            assert bool(response.flags & dns.flags.RD) == bool(i % 3)


def test_record_order_still_varies_by_the_exact_table() -> None:
    responder = fresh()
    orders = set()
    for i in range(40):
        out = responder.respond(query_wire("many.example.test.", ident=i, edns=0), udp=True)
        assert out is not None
        (rrset,) = dns.message.from_wire(out).answer
        orders.add(tuple(rd.to_text() for rd in rrset))
    assert len(orders) > 1


def test_a_new_authority_empties_the_exact_table() -> None:
    responder = fresh()
    wire = query_wire("web.example.test.")
    for _ in range(2):
        responder.respond(wire, udp=True)
    assert responder.answers is not None and len(responder.answers.exact) == 1
    zones = load_zones(ZONE)
    zones[0].replace_rdataset(
        "web.example.test.", dns.rdataset.from_text("IN", "A", 300, "198.18.0.99")
    )
    responder.authority = Authority(zones)
    assert len(responder.answers.exact) == 0
    out = responder.respond(wire, udp=True)
    assert out is not None
    assert dns.message.from_wire(out).answer[0][0].to_text() == "198.18.0.99"


def test_an_evicted_answer_leaves_the_exact_table() -> None:
    responder = Responder(Authority(load_zones(ZONE)), cached_answers=2)
    first = query_wire("web.example.test.")
    for _ in range(2):
        responder.respond(first, udp=True)
    assert responder.answers is not None and len(responder.answers.exact) == 1
    responder.respond(query_wire("n1.example.test."), udp=True)
    responder.respond(query_wire("n2.example.test."), udp=True)  # evicts web
    assert len(responder.answers.exact) == 0
    assert responder.respond(first, udp=True) == fresh().respond(first, udp=True)


@pytest.mark.parametrize(
    "wire",
    [
        query_wire("web.example.test.") + b"\x00",  # trailing byte: FORMERR
        query_wire("web.example.test.")[:-1],  # cut short
        bytes([0x12, 0x34, 0x81]) + query_wire("web.example.test.")[3:],  # QR set: dropped
        bytes([0x12, 0x34, 0x29]) + query_wire("web.example.test.")[3:],  # UPDATE: NOTIMP
        query_wire("web.example.test.")[:11],  # shorter than a header
    ],
)
def test_malformed_queries_like_a_kept_one_are_not_answered_from_the_exact_table(
    wire: bytes,
) -> None:
    responder = fresh()
    good = query_wire("web.example.test.")
    for _ in range(2):
        responder.respond(good, udp=True)
    for _ in range(2):
        assert responder.respond(wire, udp=True) == fresh(cached=0).respond(wire, udp=True)
    assert responder.answers is not None and len(responder.answers.exact) == 1


def test_the_exact_table_is_bounded() -> None:
    from netstack.dns import answers as answers_module

    responder = fresh()
    long_query = query_wire(
        "web.example.test.", edns=0, options=[dns.edns.GenericOption(65001, b"x" * 600)]
    )
    for _ in range(2):
        responder.respond(long_query, udp=True)
    assert responder.answers is not None and len(responder.answers.exact) == 0  # too long
    rng = random.Random(3)
    for i in range(answers_module.EXACT_ENTRIES + 10):
        wire = query_wire(mixed_case("web.example.test.", rng), ident=i)
        responder.respond(wire, udp=True)
        assert len(responder.answers.exact) <= answers_module.EXACT_ENTRIES
