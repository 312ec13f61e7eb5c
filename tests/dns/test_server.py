"""The authoritative server on in-memory stacks (198.18.0.1 asks, 198.18.0.2 serves): answers
of every common type over UDP and TCP, negative answers (RFC 2308), truncation (RFC 1035
4.2.1, RFC 2181 9), EDNS(0) (RFC 6891), TCP framing (RFC 7766), the rate limit, and bad input
(the parse errors of dnspython caught and counted)."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from dnskit import SERVER, ZONE, tcp_query, udp_query, udp_silence, udp_wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netstack import Stack
from netstack.dns import DnsServer, NameNotFound, Resolver, load_zones, serve
from netstack.dns.server import Authority, RateLimiter, Responder
from netstack.link import Impairment

Pair = tuple[Stack, Stack]


@pytest.fixture
async def server(stack_pair: Pair) -> AsyncIterator[DnsServer]:
    _, b = stack_pair
    async with await serve(b, ZONE) as srv:
        yield srv


def q(name: str, rdtype: str = "A", **kwargs: Any) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kwargs)


def rrset(msg: dns.message.Message, section: list[dns.rrset.RRset], name: str, rdtype: str) -> Any:
    return msg.get_rrset(section, dns.name.from_text(name), 1, dns.rdatatype.from_text(rdtype))


# -- answers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "rdtype", "expected"),
    [
        ("web.example.test.", "A", {"198.18.0.80"}),
        ("web.example.test.", "AAAA", {"fd00::80"}),
        ("example.test.", "MX", {"10 mail.example.test."}),
        ("example.test.", "TXT", {'"v=spf1 -all"'}),
        ("_http._tcp.example.test.", "SRV", {"0 5 80 web.example.test."}),
        ("80.0.18.198.in-addr.arpa.", "PTR", {"web.example.test."}),
        ("example.test.", "NS", {"ns.example.test."}),
    ],
)
async def test_answers_over_udp(
    stack_pair: Pair, server: DnsServer, name: str, rdtype: str, expected: set[str]
) -> None:
    a, _ = stack_pair
    query = q(name, rdtype)
    response = await udp_query(a, query)
    assert response.id == query.id and response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.QR and response.flags & dns.flags.AA
    assert response.flags & dns.flags.RD  # copied from the query (RFC 1035 4.1.1)
    assert not response.flags & dns.flags.RA  # no recursion here
    answer = rrset(response, response.answer, name, rdtype)
    assert answer is not None and {rd.to_text() for rd in answer} == expected
    assert response.opt is None  # no OPT in the query, none in the answer (RFC 6891 7)


async def test_additional_section_has_addresses_of_mx_and_srv_targets(
    stack_pair: Pair, server: DnsServer
) -> None:
    a, _ = stack_pair
    response = await udp_query(a, q("example.test.", "MX"))
    assert {r.rdtype for r in response.additional} == {dns.rdatatype.A, dns.rdatatype.AAAA}
    assert {r.name.to_text() for r in response.additional} == {"mail.example.test."}
    response = await udp_query(a, q("_http._tcp.example.test.", "SRV"))
    assert rrset(response, response.additional, "web.example.test.", "A") is not None


async def test_cname_chain_is_followed_in_the_zone(stack_pair: Pair, server: DnsServer) -> None:
    a, _ = stack_pair
    response = await udp_query(a, q("alias.example.test.", "A"))
    assert [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in response.answer] == [
        ("alias.example.test.", "CNAME"),
        ("www.example.test.", "CNAME"),
        ("web.example.test.", "A"),
    ]
    # Asking for the CNAME itself gives just the CNAME.
    response = await udp_query(a, q("www.example.test.", "CNAME"))
    assert len(response.answer) == 1 and response.answer[0].rdtype == dns.rdatatype.CNAME


async def test_cname_loop_stops(stack_pair: Pair, server: DnsServer) -> None:
    a, _ = stack_pair
    response = await udp_query(a, q("loop1.example.test.", "A"))
    assert response.rcode() == dns.rcode.NOERROR
    assert [r.name.to_text() for r in response.answer] == [
        "loop1.example.test.",
        "loop2.example.test.",
    ]


async def test_names_match_without_regard_to_case(stack_pair: Pair, server: DnsServer) -> None:
    a, _ = stack_pair
    response = await udp_query(a, q("WEB.Example.TEST.", "A"))
    assert response.rcode() == dns.rcode.NOERROR and len(response.answer) == 1


async def test_any_gives_every_rrset(stack_pair: Pair, server: DnsServer) -> None:
    a, _ = stack_pair
    response = await udp_query(a, q("mail.example.test.", "ANY"))
    assert {r.rdtype for r in response.answer} == {dns.rdatatype.A, dns.rdatatype.AAAA}


async def test_wildcard_synthesizes_the_name_asked(stack_pair: Pair, server: DnsServer) -> None:
    # RFC 4592 3.3.1.
    a, _ = stack_pair
    response = await udp_query(a, q("anything.wild.example.test.", "A"))
    answer = rrset(response, response.answer, "anything.wild.example.test.", "A")
    assert answer is not None and answer[0].address == "198.18.0.42"
    response = await udp_query(a, q("anything.wild.example.test.", "MX"))
    assert response.rcode() == dns.rcode.NOERROR and not response.answer  # NODATA


async def test_referral_at_a_zone_cut(stack_pair: Pair, server: DnsServer) -> None:
    # RFC 1034 4.3.2 step 3b: NS of the cut in the authority section, glue in additional.
    a, _ = stack_pair
    response = await udp_query(a, q("host.sub.example.test.", "A"))
    assert response.rcode() == dns.rcode.NOERROR and not response.answer
    assert not response.flags & dns.flags.AA
    assert rrset(response, response.authority, "sub.example.test.", "NS") is not None
    glue = rrset(response, response.additional, "ns.sub.example.test.", "A")
    assert glue is not None and glue[0].address == "198.18.0.53"


# -- negative answers (RFC 2308) --------------------------------------------------------------
async def test_nxdomain_has_the_soa_with_the_negative_ttl(
    stack_pair: Pair, server: DnsServer
) -> None:
    a, _ = stack_pair
    response = await udp_query(a, q("nope.example.test.", "A"))
    assert response.rcode() == dns.rcode.NXDOMAIN and response.flags & dns.flags.AA
    assert not response.answer
    soa = rrset(response, response.authority, "example.test.", "SOA")
    assert soa is not None
    assert soa.ttl == 60  # RFC 2308 3: min(SOA TTL 300, MINIMUM 60)


async def test_nodata_is_noerror_with_the_soa(stack_pair: Pair, server: DnsServer) -> None:
    a, _ = stack_pair
    response = await udp_query(a, q("v4only.example.test.", "AAAA"))
    assert response.rcode() == dns.rcode.NOERROR and not response.answer
    assert rrset(response, response.authority, "example.test.", "SOA") is not None


async def test_empty_non_terminal_is_nodata_not_nxdomain(
    stack_pair: Pair, server: DnsServer
) -> None:
    # RFC 8020 2: b.example.test exists because a.b.example.test does.
    a, _ = stack_pair
    response = await udp_query(a, q("b.example.test.", "A"))
    assert response.rcode() == dns.rcode.NOERROR and not response.answer
    response = await udp_query(a, q("x.b.example.test.", "A"))
    assert response.rcode() == dns.rcode.NXDOMAIN


async def test_nxdomain_at_the_end_of_a_chain(stack_pair: Pair, server: DnsServer) -> None:
    # A CNAME out of the zones served: the answer stops there, the client asks on.
    a, _ = stack_pair
    response = await udp_query(a, q("outside.example.test.", "A"))
    assert response.rcode() == dns.rcode.NOERROR
    assert [r.rdtype for r in response.answer] == [dns.rdatatype.CNAME]


async def test_reverse_zone_soa_minimum(stack_pair: Pair, server: DnsServer) -> None:
    a, _ = stack_pair
    response = await udp_query(a, q("81.0.18.198.in-addr.arpa.", "PTR"))
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].ttl == 30


async def test_refused_outside_the_zones(stack_pair: Pair, server: DnsServer) -> None:
    a, _ = stack_pair
    for name in ("www.example.com.", "test.", "."):
        response = await udp_query(a, q(name, "A"))
        assert response.rcode() == dns.rcode.REFUSED
        assert not response.flags & dns.flags.AA and not response.flags & dns.flags.RA
    assert server.stats()["rcodes"]["REFUSED"] == 3


async def test_zone_transfers_and_other_classes_are_refused(
    stack_pair: Pair, server: DnsServer
) -> None:
    a, _ = stack_pair
    assert (await udp_query(a, q("example.test.", "AXFR"))).rcode() == dns.rcode.REFUSED
    chaos = q("version.bind.", "TXT", rdclass="CH")
    assert (await udp_query(a, chaos)).rcode() == dns.rcode.REFUSED


# -- TCP (RFC 1035 4.2.2, RFC 7766) -----------------------------------------------------------
async def test_several_queries_on_one_tcp_connection(stack_pair: Pair, server: DnsServer) -> None:
    a, _ = stack_pair
    queries = [
        q("web.example.test.", "A"),
        q("web.example.test.", "AAAA"),
        q("nope.example.test.", "A"),
        q("example.test.", "MX"),
    ]
    answers = await tcp_query(a, *queries)
    assert [r.id for r in answers] == [x.id for x in queries]
    assert [r.rcode() for r in answers] == [0, 0, dns.rcode.NXDOMAIN, 0]
    assert answers[1].answer[0][0].address == "fd00::80"
    stats = server.stats()
    assert stats["tcp_queries"] == 4 and stats["tcp_connections"] == 1


async def test_tcp_query_split_across_segments(stack_pair: Pair, server: DnsServer) -> None:
    a, _ = stack_pair
    reader, writer = await a.open_connection(SERVER, 53)
    wire = q("web.example.test.", "A").to_wire(prepend_length=True)
    for i in range(len(wire)):
        writer.write(wire[i : i + 1])
        await writer.drain()
        await asyncio.sleep(0)
    size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 5.0), "big")
    response = dns.message.from_wire(await reader.readexactly(size))
    assert response.answer[0][0].address == "198.18.0.80"
    writer.close()


async def test_idle_tcp_connection_is_closed(stack_pair: Pair, server: DnsServer) -> None:
    # RFC 7766 6.2.3.
    a, _ = stack_pair
    server.tcp_idle_timeout = 0.2
    reader, writer = await a.open_connection(SERVER, 53)
    assert await asyncio.wait_for(reader.read(), 5.0) == b""
    assert server.stats()["tcp_idle_closed"] == 1
    writer.close()


# -- truncation and EDNS ----------------------------------------------------------------------
async def test_large_answer_is_truncated_over_udp_and_whole_over_tcp(
    stack_pair: Pair, server: DnsServer
) -> None:
    a, _ = stack_pair
    query = q("big.example.test.", "TXT")
    data = await udp_wire(a, query.to_wire())
    assert len(data) <= 512
    truncated = dns.message.from_wire(data)
    assert truncated.flags & dns.flags.TC and truncated.flags & dns.flags.AA
    assert not truncated.answer and truncated.question == query.question
    (whole,) = await tcp_query(a, query)
    assert not whole.flags & dns.flags.TC
    assert len(whole.answer[0]) == 10 and len(whole.to_wire()) > 1232
    assert server.stats()["truncated"] == 1


@pytest.mark.parametrize(
    ("payload", "truncated"),
    [(None, True), (400, True), (512, True), (1232, False), (4096, False)],
)
async def test_edns_payload_size_sets_the_udp_limit(
    stack_pair: Pair, server: DnsServer, payload: int | None, truncated: bool
) -> None:
    # About 900 bytes: over 512 (RFC 1035 4.2.1), within what EDNS offers; a payload below
    # 512 is read as 512 (RFC 6891 6.2.3).
    a, _ = stack_pair
    query = q("medium.example.test.", "TXT", use_edns=payload is not None, payload=payload or 512)
    data = await udp_wire(a, query.to_wire())
    response = dns.message.from_wire(data)
    assert bool(response.flags & dns.flags.TC) is truncated
    assert len(data) <= max(512, payload or 512)
    if payload is not None:
        # RFC 6891 7: an OPT in every answer to a query with one, truncated ones too.
        assert response.edns == 0 and response.payload == 1232
    else:
        assert response.opt is None


async def test_truncated_edns_answer_keeps_the_opt(stack_pair: Pair, server: DnsServer) -> None:
    a, _ = stack_pair
    query = q("big.example.test.", "TXT", use_edns=0, payload=4096)
    response = dns.message.from_wire(await udp_wire(a, query.to_wire()))
    assert response.flags & dns.flags.TC and response.edns == 0  # 2 kB > 1232, our limit


async def test_additional_records_go_before_tc_is_set(stack_pair: Pair, server: DnsServer) -> None:
    # RFC 2181 9: the answer fits in 512 bytes, its 40 addresses do not.
    a, _ = stack_pair
    response = await udp_query(a, q("mx-many.example.test.", "MX"))
    assert not response.flags & dns.flags.TC
    assert response.answer and not response.additional
    response = await udp_query(a, q("mx-many.example.test.", "MX", use_edns=0, payload=1232))
    assert len(response.additional[0]) == 40
    assert server.stats()["additional_omitted"] == 1


async def test_edns_version_above_zero_gets_badvers(stack_pair: Pair, server: DnsServer) -> None:
    # RFC 6891 6.1.3.
    a, _ = stack_pair
    response = await udp_query(a, q("web.example.test.", "A", use_edns=1))
    assert response.rcode() == dns.rcode.BADVERS
    assert response.edns == 0 and not response.answer


async def test_two_opt_records_get_formerr_with_an_opt(stack_pair: Pair, server: DnsServer) -> None:
    # RFC 6891 6.1.1 and 7.
    a, _ = stack_pair
    wire = bytearray(q("web.example.test.", "A", use_edns=0).to_wire())
    wire += wire[-11:]  # the OPT record once more
    wire[11] = 2  # ARCOUNT
    response = dns.message.from_wire(await udp_wire(a, bytes(wire)))
    assert response.rcode() == dns.rcode.FORMERR and response.edns == 0
    assert response.question[0].name.to_text() == "web.example.test."
    assert server.stats()["malformed"] == 1


async def test_unknown_edns_options_are_ignored(stack_pair: Pair, server: DnsServer) -> None:
    # RFC 6891 6.1.2 (dig sends a COOKIE, for one).
    a, _ = stack_pair
    cookie = dns.edns.GenericOption(10, b"\x01" * 8)
    query = q("web.example.test.", "A", use_edns=0, options=[cookie])
    response = await udp_query(a, query)
    assert response.rcode() == dns.rcode.NOERROR and response.answer


# -- other opcodes and bad input ----------------------------------------------------------------
async def test_other_opcodes_get_notimp(stack_pair: Pair, server: DnsServer) -> None:
    a, _ = stack_pair
    notify = q("example.test.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    response = dns.message.from_wire(await udp_wire(a, notify.to_wire()))
    assert response.rcode() == dns.rcode.NOTIMP and response.id == notify.id
    assert response.opcode() == dns.opcode.NOTIFY


async def test_no_or_two_questions_get_formerr(stack_pair: Pair, server: DnsServer) -> None:
    # RFC 9619: a query has one question.
    a, _ = stack_pair
    query = q("web.example.test.", "A")
    query.question.append(q("mail.example.test.", "A").question[0])
    response = dns.message.from_wire(await udp_wire(a, query.to_wire()))
    assert response.rcode() == dns.rcode.FORMERR
    empty = dns.message.Message()
    response = dns.message.from_wire(await udp_wire(a, empty.to_wire()))
    assert response.rcode() == dns.rcode.FORMERR


async def test_compression_loop_in_a_query_gets_formerr(
    stack_pair: Pair, server: DnsServer
) -> None:
    a, _ = stack_pair
    wire = bytes.fromhex("beef01000001000000000000") + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    response = dns.message.from_wire(await udp_wire(a, wire))
    assert response.id == 0xBEEF and response.rcode() == dns.rcode.FORMERR
    assert server.stats()["malformed"] == 1


async def test_answers_and_short_messages_are_dropped(stack_pair: Pair, server: DnsServer) -> None:
    a, _ = stack_pair
    answer = dns.message.make_response(q("web.example.test.", "A"))
    assert await udp_silence(a, answer.to_wire())
    assert await udp_silence(a, b"\x12\x34\x01")
    drops = server.stats()["drops"]
    assert drops["not_a_query"] == 1 and drops["short"] == 1


async def test_random_datagrams_never_break_the_server(stack_pair: Pair) -> None:
    a, b = stack_pair
    server = await serve(b, ZONE, rate=math.inf)
    loop = asyncio.get_running_loop()
    problems: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: problems.append(context))
    rng = random.Random(5452)
    transport, _ = await a.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=(SERVER, 53)
    )
    for _ in range(300):
        size = rng.choice([0, 1, 11, 12, 13, 20, 40, 100, 600])
        transport.sendto(rng.randbytes(size))
        await asyncio.sleep(0)
    transport.close()
    response = await udp_query(a, q("web.example.test.", "A"))  # still answering
    assert response.answer
    stats = server.stats()
    assert stats["internal_errors"] == 0 and "internal_error" not in stats["drops"]
    assert stats["malformed"] + sum(stats["drops"].values()) + stats["responses"] >= 300
    assert not problems
    server.close()


@given(st.binary(max_size=600))
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_responder_never_raises_on_random_bytes(data: bytes) -> None:
    responder = Responder(Authority(load_zones(ZONE)))
    for udp in (True, False):
        out = responder.respond(data, udp=udp)
        if out is not None:
            response = dns.message.from_wire(out)
            assert response.flags & dns.flags.QR and response.id == int.from_bytes(data[:2], "big")
            assert not udp or len(out) <= 512 or response.edns >= 0
    assert "internal_error" not in responder.drops


@given(
    st.builds(
        lambda name, rdtype, edns, payload: q(name, rdtype, use_edns=edns, payload=payload),
        st.sampled_from(
            [
                "example.test.",
                "web.example.test.",
                "nope.example.test.",
                "big.example.test.",
                "x.wild.example.test.",
                "a.sub.example.test.",
                "example.com.",
                "loop1.example.test.",
            ]
        ),  # fmt: skip
        st.sampled_from(["A", "AAAA", "MX", "TXT", "SRV", "PTR", "NS", "SOA", "ANY", "CNAME"]),
        st.sampled_from([False, 0]),
        st.integers(0, 65535),
    )
)
@settings(max_examples=300, deadline=None)
def test_every_udp_answer_fits_the_limit(query: dns.message.Message) -> None:
    responder = Responder(Authority(load_zones(ZONE)))
    out = responder.respond(query.to_wire(), udp=True)
    assert out is not None
    limit = 512 if query.edns < 0 else min(max(512, query.payload), 1232)
    assert len(out) <= limit
    response = dns.message.from_wire(out)
    assert (response.edns >= 0) == (query.edns >= 0)


# -- rate limit ---------------------------------------------------------------------------------
async def test_rate_limit_drops_beyond_the_burst(stack_pair: Pair) -> None:
    a, b = stack_pair
    # With slip 0 everything over the limit is dropped (the default slips every second
    # query: tests/dns/test_server_limits.py).
    async with await serve(b, ZONE, rate=0.001, burst=3.0, slip=0) as srv:
        got = 0
        for _ in range(10):
            if not await udp_silence(a, q("web.example.test.", "A").to_wire(), wait=0.05):
                got += 1
        assert got == 3
        assert srv.stats()["drops"]["rate_limited"] == 7
        # TCP is not limited (its source cannot be forged).
        (answer,) = await tcp_query(a, q("web.example.test.", "A"))
        assert answer.answer


def test_token_bucket_refills_with_time() -> None:
    limiter = RateLimiter(rate=2.0, burst=2.0)
    assert [limiter.allow("c", 0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("c", 0.5) and not limiter.allow("c", 0.5)
    assert limiter.allow("other", 0.5)  # one bucket per client
    assert limiter.allow("c", 100.0) and limiter.allow("c", 100.0)
    assert not limiter.allow("c", 100.0)  # never more than the burst
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)
    with pytest.raises(ValueError):
        RateLimiter(rate=1, burst=0.5)


def test_token_bucket_table_is_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=1.0, max_clients=10)
    for i in range(100):
        limiter.allow(f"198.18.1.{i}", 0.0)
    assert len(limiter) == 10


# -- zones --------------------------------------------------------------------------------------
ZONE_TEXT = """$ORIGIN text.test.
$TTL 120
@   IN SOA ns admin 1 3600 600 86400 30
@   IN NS  ns
ns  IN A   198.18.0.2
www IN A   198.18.0.8
"""


async def test_zone_forms(stack_pair: Pair, tmp_path: Path) -> None:
    a, b = stack_pair
    path = tmp_path / "file.test.zone"
    path.write_text(ZONE_TEXT.replace("text.test.", "file.test."))
    relativized = dns.zone.from_text(ZONE_TEXT.replace("text.test.", "obj.test."))
    assert relativized.relativize
    spec = [ZONE_TEXT, path, str(path), relativized]  # the file twice
    with pytest.raises(ValueError, match="two zones"):
        load_zones(spec)
    async with await serve(b, [ZONE_TEXT, path, relativized, ZONE]) as srv:
        assert {str(z.origin) for z in srv.zones} == {
            "text.test.", "file.test.", "obj.test.", "example.test.", "0.18.198.in-addr.arpa."
        }  # fmt: skip
        for origin in ("text.test.", "file.test.", "obj.test."):
            response = await udp_query(a, q(f"www.{origin}", "A"))
            assert response.answer[0][0].address == "198.18.0.8"
            assert response.answer[0].ttl == 120
            ns = await udp_query(a, q(origin, "NS"))
            assert ns.answer[0][0].target.to_text() == f"ns.{origin}"  # absolute names
            assert ns.additional  # and the glue found through them


def test_zone_needs_an_soa_and_a_good_shape() -> None:
    with pytest.raises(ValueError, match="SOA"):
        load_zones({"nosoa.test.": {"www": [("A", "198.18.0.1")]}})
    with pytest.raises(ValueError):
        load_zones({"bad.test.": {"@": [("SOA",)]}})
    with pytest.raises(ValueError, match="outside"):
        load_zones({"a.test.": {"@": [("SOA", "ns admin 1 2 3 4 5")], "x.b.test.": []}})
    with pytest.raises(ValueError):
        load_zones(42)  # type: ignore[arg-type]
    zone = load_zones({"ttl.test.": {"@": [("SOA", "ns admin 1 2 3 4 5", 77)]}})[0]
    assert zone.find_rdataset("ttl.test.", "SOA").ttl == 77


async def test_close_stops_answering(stack_pair: Pair) -> None:
    a, b = stack_pair
    srv = await serve(b, ZONE, port=0)
    assert srv.port != 0
    response = await udp_query(a, q("web.example.test.", "A"), port=srv.port)
    assert response.answer
    srv.close()
    await srv.wait_closed()
    assert srv.closed
    assert await udp_silence(a, q("web.example.test.", "A").to_wire(), port=srv.port)
    with pytest.raises(ConnectionRefusedError):
        await a.open_connection(SERVER, srv.port)
    srv.close()  # twice is fine


async def test_server_on_one_address(stack_pair: Pair) -> None:
    a, b = stack_pair
    async with await serve(b, ZONE, host=SERVER, port=5353) as srv:
        response = await udp_query(a, q("web.example.test.", "A"), port=5353)
        assert response.answer and "DnsServer port 5353" in repr(srv)


async def test_wait_closed_returns_with_a_silent_client(network: Any) -> None:
    client = await network.host("198.18.0.1/24")
    host = await network.host("198.18.0.2/24")
    srv = await serve(host, ZONE)
    _, writer = await client.open_connection(SERVER, 53)
    await asyncio.sleep(0.05)
    assert srv.stats()["tcp_open"] == 1
    network.impair(client, Impairment(loss=1.0, seed=1))  # the client goes silent
    srv.close()
    await asyncio.wait_for(srv.wait_closed(), 5.0)
    assert srv.stats()["tcp_open"] == 0
    writer.close()


async def test_set_records_answers_new_data_at_once(stack_pair: tuple[Stack, Stack]) -> None:
    client, server_stack = stack_pair
    server = await serve(
        server_stack,
        {
            "dyn.test.": {
                "@": [("SOA", "ns admin 1 3600 600 86400 60"), ("NS", "ns")],
                "ns": [("A", "198.18.0.2")],
            }
        },  # fmt: skip
    )
    resolver = Resolver(client, ["198.18.0.2"])
    with pytest.raises(NameNotFound):
        await resolver.resolve("host7.dyn.test")
    server.set_records("host7", "A", ["198.18.0.7"])
    resolver.cache = type(resolver.cache)(16)  # forget the negative answer
    assert await resolver.resolve("host7.dyn.test") == ["198.18.0.7"]
    server.set_records("host7.dyn.test.", "A", [])
    resolver.cache = type(resolver.cache)(16)
    with pytest.raises(NameNotFound):
        await resolver.resolve("host7.dyn.test")
    with pytest.raises(ValueError):
        server.set_records("elsewhere.example.", "A", ["198.18.0.9"])
    server.close()
