"""The stub resolver on one in-memory stack (198.18.0.1) against the netstack server on the
other (198.18.0.2), and against scripted servers that answer wrongly on purpose: forged IDs,
questions, ports and compression loops are dropped and counted (RFC 5452 9.1), and the real
answer is still taken."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from dnskit import SERVER, ZONE

from netstack import ClosedError, Stack, StackConfig
from netstack.dns import (
    DnsServer,
    NameNotFound,
    Resolver,
    ResolverError,
    match_response,
    parse_hosts,
    serve,
)
from netstack.link import MemoryLink
from netstack.proto.ipv6.addrconf import AddrconfConfig
from netstack.proto.ipv6.layer import IPv6Config

Pair = tuple[Stack, Stack]


@dataclass
class Env:
    client: Stack
    server_stack: Stack
    server: DnsServer
    resolver: Resolver


@pytest.fixture
async def env(stack_pair: Pair) -> AsyncIterator[Env]:
    a, b = stack_pair
    async with await serve(b, ZONE) as server:
        yield Env(a, b, server, Resolver(a, [SERVER], timeout=1.0))


def texts(rrset: dns.rrset.RRset) -> set[str]:
    return {rd.to_text() for rd in rrset}


# -- records ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "rdtype", "owner", "expected"),
    [
        ("web.example.test", "A", "web.example.test.", {"198.18.0.80"}),
        ("web.example.test.", "AAAA", "web.example.test.", {"fd00::80"}),
        ("www.example.test", "A", "web.example.test.", {"198.18.0.80"}),
        ("alias.example.test", "AAAA", "web.example.test.", {"fd00::80"}),
        ("example.test", "MX", "example.test.", {"10 mail.example.test."}),
        ("example.test", "TXT", "example.test.", {'"v=spf1 -all"'}),
        (
            "_http._tcp.example.test",
            "SRV",
            "_http._tcp.example.test.",
            {"0 5 80 web.example.test."},
        ),
        ("80.0.18.198.in-addr.arpa", "PTR", "80.0.18.198.in-addr.arpa.", {"web.example.test."}),
        ("198.18.0.80", "PTR", "80.0.18.198.in-addr.arpa.", {"web.example.test."}),
        ("www.example.test", "CNAME", "www.example.test.", {"web.example.test."}),
        ("x.wild.example.test", dns.rdatatype.A, "x.wild.example.test.", {"198.18.0.42"}),
    ],
)
async def test_resolve_rrset(
    env: Env, name: str, rdtype: str | int, owner: str, expected: set[str]
) -> None:
    rrset = await env.resolver.resolve_rrset(name, rdtype)
    assert rrset.name == dns.name.from_text(owner)
    assert texts(rrset) == expected
    assert 0 < rrset.ttl <= 300


async def test_cname_chain_from_the_cache(env: Env) -> None:
    r = env.resolver
    await r.resolve_rrset("alias.example.test", "A")
    sent = r.stats()["udp_sent"]
    # The chain's CNAMEs were cached one by one: a question about its middle sends nothing.
    rrset = await r.resolve_rrset("www.example.test", "A")
    assert texts(rrset) == {"198.18.0.80"} and r.stats()["udp_sent"] == sent


async def test_cname_loop_is_an_error(env: Env) -> None:
    with pytest.raises(ResolverError, match="CNAME loop"):
        await env.resolver.resolve_rrset("loop1.example.test", "A")


async def test_cname_out_of_the_servers_zones_is_asked_about(env: Env) -> None:
    # The server stops at the CNAME; the resolver asks about its target, which the server
    # refuses: an error, not "no such name".
    with pytest.raises(ResolverError, match="REFUSED") as info:
        await env.resolver.resolve_rrset("outside.example.test", "A")
    assert info.value.rcode == dns.rcode.REFUSED
    assert isinstance(info.value, socket.gaierror) and info.value.errno == socket.EAI_AGAIN


async def test_nxdomain_and_nodata(env: Env) -> None:
    with pytest.raises(NameNotFound) as info:
        await env.resolver.resolve_rrset("nope.example.test", "A")
    assert info.value.nxdomain and info.value.errno == socket.EAI_NONAME
    assert isinstance(info.value, socket.gaierror)
    with pytest.raises(NameNotFound) as info:
        await env.resolver.resolve_rrset("v4only.example.test", "AAAA")
    assert not info.value.nxdomain and info.value.rdtype == "AAAA"


async def test_query_returns_the_raw_answer(env: Env) -> None:
    response = await env.resolver.query("nope.example.test.", "MX")
    assert response.rcode() == dns.rcode.NXDOMAIN and response.authority
    response = await env.resolver.query("www.example.com", "A")
    assert response.rcode() == dns.rcode.REFUSED  # every server said so: the last answer
    response = await env.resolver.query(dns.name.from_text("web.example.test."), 28)
    assert response.answer[0][0].address == "fd00::80"
    assert response.flags & dns.flags.AA


# -- addresses --------------------------------------------------------------------------------
async def test_resolve_gives_both_families(env: Env) -> None:
    # This stack has no IPv6 address: RFC 6724 6 rule 1 puts the unreachable IPv6 last.
    assert await env.resolver.resolve("www.example.test") == ["198.18.0.80", "fd00::80"]
    assert await env.resolver.resolve("www.example.test", socket.AF_INET) == ["198.18.0.80"]
    assert await env.resolver.resolve("www.example.test", socket.AF_INET6) == ["fd00::80"]
    assert await env.resolver.resolve("v4only.example.test") == ["198.18.0.4"]
    with pytest.raises(NameNotFound) as info:
        await env.resolver.resolve("v4only.example.test", socket.AF_INET6)
    assert not info.value.nxdomain
    with pytest.raises(NameNotFound):
        await env.resolver.resolve("nope.example.test")
    with pytest.raises(ValueError):
        await env.resolver.resolve("www.example.test", 99)
    for bad in ("a..b", "x" * 64 + ".test", ".".join(["abcdefgh"] * 40)):
        with pytest.raises(NameNotFound):
            await env.resolver.resolve(bad)
    assert env.resolver.stats()["queries"] == 6  # bad names sent nothing


async def test_resolve_many_addresses(env: Env) -> None:
    addresses = await env.resolver.resolve("many.example.test")
    assert sorted(addresses) == sorted(f"198.18.1.{i}" for i in range(1, 41))


async def test_ip_literals_come_back_as_they_are(env: Env) -> None:
    r = env.resolver
    assert await r.resolve("198.18.0.9") == ["198.18.0.9"]
    assert await r.resolve("fd00::9", socket.AF_INET6) == ["fd00::9"]
    with pytest.raises(NameNotFound):
        await r.resolve("fd00::9", socket.AF_INET)
    assert r.stats()["queries"] == 0


async def test_hosts_come_first(env: Env) -> None:
    r = Resolver(
        env.client,
        [SERVER],
        hosts={"Web.Example.Test.": ["198.18.0.7"], "db.test": ["fd00::7", "198.18.0.7"]},
    )
    assert await r.resolve("web.example.test") == ["198.18.0.7"]
    assert await r.resolve("DB.test.") == ["198.18.0.7", "fd00::7"]
    assert await r.resolve("db.test", socket.AF_INET6) == ["fd00::7"]
    assert await r.resolve("localhost") == ["127.0.0.1", "::1"]  # RFC 6761 6.3
    rrset = await r.resolve_rrset("web.example.test", "A")
    assert texts(rrset) == {"198.18.0.7"} and rrset.ttl == 0
    # A family the table lacks goes to DNS.
    assert await r.resolve("web.example.test", socket.AF_INET6) == ["fd00::80"]
    assert r.stats()["queries"] == 1 and r.stats()["hosts_answers"] == 5


async def test_search_domains(env: Env) -> None:
    r = Resolver(env.client, [SERVER], search=["nowhere.test", "example.test"])
    assert await r.resolve("web", socket.AF_INET) == ["198.18.0.80"]
    rrset = await r.resolve_rrset("www", "A")
    assert rrset.name == dns.name.from_text("web.example.test.")
    # A dotted name is tried as given first; an absolute one only as given (and this
    # server, authoritative for example.test only, refuses "web.").
    assert texts(await r.resolve_rrset("web.example.test", "A")) == {"198.18.0.80"}
    sent = r.stats()["udp_sent"]
    with pytest.raises(ResolverError):
        await r.resolve_rrset("web.", "A")
    assert r.stats()["udp_sent"] == sent + 1
    # "nothing.example.test" does not exist, and "nothing." is refused: an error the
    # caller should see, not "no such name".
    r.search = ["example.test"]
    with pytest.raises(ResolverError):
        await r.resolve("nothing")
    r.search = []
    with pytest.raises(NameNotFound):
        await r.resolve("nothing.example.test")


async def test_resolve_on_a_dual_stack() -> None:
    # RFC 6724 6 with both families reachable: rule 6 (precedence, 2.1's default table)
    # ranks IPv4 (35) above unique local IPv6 addresses (fc00::/7, 3).
    config = StackConfig(ipv6=IPv6Config(addrconf=AddrconfConfig(dad_transmits=0)))
    a_link, b_link = MemoryLink.pair()
    a = await Stack.open(a_link, ipv4="198.18.0.1/24", ipv6="fd00::1/64", config=config)
    b = await Stack.open(b_link, ipv4="198.18.0.2/24", ipv6="fd00::2/64", config=config)
    try:
        async with await serve(b, ZONE):
            r = Resolver(a, ["fd00::2"])  # over IPv6 too
            assert await r.resolve("www.example.test") == ["198.18.0.80", "fd00::80"]
            assert r.stats()["udp_sent"] == 2
            r.servers[:] = ["[fd00::2]:53"]
            assert texts(await r.resolve_rrset("example.test", "MX")) == {"10 mail.example.test."}
    finally:
        await a.close()
        await b.close()


class FakeLayer:
    """Stands in for a stack's IPv4 or IPv6 layer: the source each destination gets."""

    def __init__(self, sources: dict[str, str], deprecated: tuple[str, ...] = ()) -> None:
        self.sources = {ipaddress.ip_address(d).packed: ipaddress.ip_address(s).packed
                        for d, s in sources.items()}  # fmt: skip
        self.enabled = True
        self.addrconf = self
        self.deprecated = [ipaddress.ip_address(d).packed for d in deprecated]

    def route(self, dst: bytes) -> Any:
        if dst not in self.sources:
            raise OSError("no route")
        return SimpleNamespace(src=self.sources[dst])

    def candidates(self) -> list[Any]:
        return [SimpleNamespace(address=a, preferred=False) for a in self.deprecated]


def test_order_follows_rfc6724_with_the_stacks_sources() -> None:
    stack = SimpleNamespace(
        ipv4=FakeLayer({"192.0.2.1": "192.0.2.100"}),
        ipv6=FakeLayer(
            {
                "2a00:1::1": "2a00:1::100",
                "fd00::1": "fd00::100",
                "2a00:2::1": "2a00:9::100",
            },
            deprecated=("2a00:9::100",),
        ),
    )
    r = Resolver(stack)  # type: ignore[arg-type]
    addresses = ["192.0.2.1", "fd00::1", "2a00:2::1", "2a00:1::1", "2a00:3::1"]
    assert r._order(addresses) == [
        "2a00:1::1",  # global IPv6 first (rule 6: precedence 40)
        "192.0.2.1",  # IPv4 (35) above unique local (3)
        "fd00::1",
        "2a00:2::1",  # its source is deprecated (rule 3)
        "2a00:3::1",  # no source for it: last (rule 1)
    ]
    # No source for any of them (no route): still ordered by precedence (rule 6), not left
    # as the answers came.
    lost = Resolver(SimpleNamespace(ipv4=FakeLayer({}), ipv6=FakeLayer({})))  # type: ignore[arg-type]
    assert lost._order(["2002::1", "192.0.2.7", "fd00::7", "2a00:7::1"]) == [
        "2a00:7::1", "192.0.2.7", "2002::1", "fd00::7"
    ]  # fmt: skip
    # A stack that shows no routing: IPv6, then IPv4.
    plain = Resolver(SimpleNamespace())  # type: ignore[arg-type]
    assert plain._order(["192.0.2.1", "fd00::1", "192.0.2.2"]) == [
        "fd00::1", "192.0.2.1", "192.0.2.2"
    ]  # fmt: skip


async def test_concurrent_identical_questions_are_sent_once(env: Env) -> None:
    # RFC 5452 5.
    r = env.resolver
    results = await asyncio.gather(*(r.resolve_rrset("web.example.test", "A") for _ in range(5)))
    assert all(texts(x) == {"198.18.0.80"} for x in results)
    assert r.stats()["udp_sent"] == 1 and r.stats()["coalesced"] == 4


# -- the cache --------------------------------------------------------------------------------
async def test_second_question_is_answered_from_the_cache(env: Env) -> None:
    r = env.resolver
    first = await r.resolve_rrset("web.example.test", "A")
    stats, served = r.stats(), env.server.stats()["udp_queries"]
    second = await r.resolve_rrset("web.example.test", "A")
    assert texts(second) == texts(first) and second.ttl <= first.ttl
    assert r.stats()["udp_sent"] == stats["udp_sent"]
    assert r.stats()["cache_hits"] == stats["cache_hits"] + 1
    assert env.server.stats()["udp_queries"] == served


async def test_negative_answers_are_cached(env: Env) -> None:
    r = env.resolver
    for _ in range(3):
        with pytest.raises(NameNotFound):
            await r.resolve_rrset("nope.example.test", "A")
    # RFC 2308 5: the NXDOMAIN denies every type, without asking again.
    with pytest.raises(NameNotFound):
        await r.resolve_rrset("nope.example.test", "TXT")
    for _ in range(2):
        with pytest.raises(NameNotFound):
            await r.resolve_rrset("v4only.example.test", "AAAA")
    assert r.stats()["udp_sent"] == 2
    assert env.server.stats()["udp_queries"] == 2
    entry = r.cache.get(dns.name.from_text("nope.example.test."), 1, 0.0)
    assert entry is not None and entry.negative


async def test_entries_expire(env: Env) -> None:
    r = env.resolver
    await r.resolve_rrset("short-ttl.example.test", "A")
    await asyncio.sleep(1.05)
    await r.resolve_rrset("short-ttl.example.test", "A")
    assert r.stats()["udp_sent"] == 2


# -- servers: failover, TCP, errors --------------------------------------------------------------
class Silent(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received += 1


async def test_failover_when_the_first_server_never_answers(env: Env) -> None:
    _, silent = await env.server_stack.create_datagram_endpoint(
        Silent, local_addr=("198.18.0.2", 5300)
    )
    r = Resolver(env.client, ["198.18.0.2:5300", SERVER], timeout=0.3, attempts=1)
    assert texts(await r.resolve_rrset("web.example.test", "A")) == {"198.18.0.80"}
    assert silent.received == 1
    stats = r.stats()
    assert stats["timeouts"] == 1 and stats["responses"] == 1


async def test_timeout_when_no_server_answers(env: Env) -> None:
    _, silent = await env.server_stack.create_datagram_endpoint(
        Silent, local_addr=("198.18.0.2", 5300)
    )
    r = Resolver(env.client, ["198.18.0.2:5300"], timeout=0.2, attempts=3)
    with pytest.raises(TimeoutError):
        await r.resolve("web.example.test")
    assert silent.received == 3 * 2  # three rounds, AAAA and A
    with pytest.raises(ResolverError, match="no name servers"):
        await Resolver(env.client).resolve_rrset("web.example.test")


async def test_unreachable_port_fails_fast_to_the_next_server(env: Env) -> None:
    # ICMP port unreachable reaches the connected endpoint: no waiting for the timeout.
    r = Resolver(env.client, ["198.18.0.2:5399", SERVER], timeout=30.0)
    rrset = await asyncio.wait_for(r.resolve_rrset("web.example.test", "A"), 5.0)
    assert texts(rrset) == {"198.18.0.80"} and r.stats()["network_errors"] == 1


async def test_closed_stack_is_an_error_at_once(stack_pair: Pair) -> None:
    a, _ = stack_pair
    r = Resolver(a, [SERVER], timeout=30.0)
    await a.close()
    with pytest.raises(ClosedError):
        await asyncio.wait_for(r.resolve_rrset("web.example.test", "A"), 5.0)


async def test_servers_can_change_at_any_time(env: Env) -> None:
    r = Resolver(env.client, timeout=0.5)
    r.servers.append(SERVER)
    assert await r.resolve("web.example.test", socket.AF_INET) == ["198.18.0.80"]
    with pytest.raises(ValueError):
        Resolver(env.client, ["not-an-address"])
    r.servers[:] = ["garbage", SERVER]
    assert await r.resolve("mail.example.test", socket.AF_INET) == ["198.18.0.25"]
    assert r.stats()["drops"]["bad_server"] == 1


async def test_truncated_answer_is_asked_again_over_tcp(env: Env) -> None:
    # RFC 7766 5: 2 kB of TXT do not fit the 1232 bytes offered.
    r = env.resolver
    rrset = await r.resolve_rrset("big.example.test", "TXT")
    assert len(rrset) == 10
    stats = r.stats()
    assert stats["truncated"] == 1 and stats["tcp_sent"] == 1
    assert env.server.stats()["tcp_queries"] == 1


async def test_without_edns_the_limit_is_512(env: Env) -> None:
    r = Resolver(env.client, [SERVER], edns=False)
    rrset = await r.resolve_rrset("medium.example.test", "TXT")
    assert len(rrset) == 4 and r.stats()["truncated"] == 1


async def test_servfail_from_every_server(env: Env) -> None:
    sf = await ScriptedServer.start(env.server_stack, 5301, lambda q: [rcode_answer(q, 2)])
    sf2 = await ScriptedServer.start(env.server_stack, 5302, lambda q: [rcode_answer(q, 5)])
    r = Resolver(env.client, ["198.18.0.2:5301", "198.18.0.2:5302"], timeout=0.5, attempts=2)
    with pytest.raises(ResolverError) as info:
        await r.resolve_rrset("web.example.test", "A")
    assert info.value.rcode == dns.rcode.REFUSED
    # A server that answered with an error is not asked again in the second round.
    assert sf.queries == 1 and sf2.queries == 1
    assert r.stats()["server_errors"] == 2


# -- scripted servers: forgeries are dropped, the real answer taken --------------------------------
def good_answer(query: dns.message.Message, address: str = "198.18.0.80") -> dns.message.Message:
    response = dns.message.make_response(query)
    q = query.question[0]
    if q.rdtype == dns.rdatatype.A:
        response.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", address))
    else:
        response.authority.append(
            dns.rrset.from_text("example.test.", 60, "IN", "SOA", "ns. admin. 1 2 3 4 60")
        )
    return response


def rcode_answer(query: dns.message.Message, rcode: int) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.Rcode(rcode))
    if rcode == dns.rcode.FORMERR:
        response.use_edns(False)  # as a server that knows nothing of EDNS
    return response


Script = Callable[[dns.message.Message], list[Any]]


class ScriptedServer(asyncio.DatagramProtocol):
    """Answers each query with what ``script`` returns: messages or raw bytes, sent from
    its port, or ``("from", port, payload)`` to send from another port."""

    def __init__(self, stack: Stack, script: Script) -> None:
        self.stack = stack
        self.script = script
        self.queries = 0
        self.seen: list[tuple[int, Any]] = []
        self.transport: Any = None
        self.other: Any = None

    @classmethod
    async def start(cls, stack: Stack, port: int, script: Script) -> ScriptedServer:
        _, proto = await stack.create_datagram_endpoint(
            lambda: cls(stack, script), local_addr=(SERVER, port)
        )
        proto.other, _ = await stack.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(SERVER, port + 1000)
        )
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        self.queries += 1
        self.seen.append((query.id, addr))
        for item in self.script(query):
            if isinstance(item, tuple):
                self.other.sendto(item[2], addr)
            elif isinstance(item, dns.message.Message):
                self.transport.sendto(item.to_wire(max_size=65535), addr)
            else:
                self.transport.sendto(item, addr)


def forgeries(query: dns.message.Message) -> list[Any]:
    real = good_answer(query)
    wrong_id = good_answer(query, "203.0.113.1")
    wrong_id.id = (query.id + 1) & 0xFFFF
    wrong_question = good_answer(
        dns.message.make_query("evil.example.test.", "A", id=query.id), "203.0.113.2"
    )
    from_other_port = ("from", None, good_answer(query, "203.0.113.3").to_wire())
    loop = bytearray(real.to_wire())
    loop[12:] = b"\xc0\x0c\x00\x01\x00\x01"  # a question name that points at itself
    loop[4:12] = bytes.fromhex("0001000000000000")
    oversize = good_answer(query, "203.0.113.4")
    for i in range(8):
        oversize.additional.append(
            dns.rrset.from_text(f"pad{i}.example.test.", 60, "IN", "TXT", '"' + "p" * 200 + '"')
        )
    not_response = good_answer(query, "203.0.113.5")
    not_response.flags &= ~dns.flags.QR
    trailing = real.to_wire() + b"junk"
    return [
        wrong_id,
        wrong_question,
        from_other_port,
        bytes(loop),
        oversize,
        not_response,
        trailing,
        b"\x00\x01",
        real,
    ]


async def test_forged_answers_are_dropped_and_counted(env: Env) -> None:
    bad = await ScriptedServer.start(env.server_stack, 5353, forgeries)
    r = Resolver(env.client, ["198.18.0.2:5353"], timeout=2.0)
    no_port = env.client.stats()["udp"]["drops"].get("no_port", 0)
    rrset = await r.resolve_rrset("forged.example.test", "A")
    assert texts(rrset) == {"198.18.0.80"}
    drops = r.stats()["drops"]
    assert drops == {
        "wrong_id": 1,
        "wrong_question": 1,
        "bad_compression": 1,
        "oversize": 1,
        "not_a_response": 1,
        "malformed": 1,
        "short": 1,
    }
    # The answer from another port never reached the resolver: the connected endpoint's
    # stack dropped it (RFC 5452 9.1: source port must match).
    await asyncio.sleep(0.05)
    assert env.client.stats()["udp"]["drops"]["no_port"] == no_port + 1
    assert bad.queries == 1
    # Only the real answer went into the cache.
    cached = r.cache.get(dns.name.from_text("forged.example.test."), 1, 0.0)
    assert (
        cached is not None and cached.rrset is not None and texts(cached.rrset) == {"198.18.0.80"}
    )
    assert r.cache.get(dns.name.from_text("evil.example.test."), 1, 0.0) is None


async def test_ids_and_ports_are_random(env: Env) -> None:
    # RFC 5452 9.2: a fresh random ID and source port per query.
    bad = await ScriptedServer.start(env.server_stack, 5353, lambda q: [good_answer(q)])
    r = Resolver(env.client, ["198.18.0.2:5353"])
    for i in range(32):
        await r.resolve_rrset(f"h{i}.example.test", "A")
    ids = [i for i, _ in bad.seen]
    ports = [addr[1] for _, addr in bad.seen]
    assert len(set(ids)) >= 30 and len(set(ports)) >= 30
    assert all(49152 <= p <= 65535 for p in ports)
    assert sorted(ids) != ids or sorted(ids, reverse=True) != ids


async def test_edns_fallback_on_formerr_without_opt(env: Env) -> None:
    # RFC 6891 7: a server that does not know EDNS says FORMERR without an OPT.
    def old_server(query: dns.message.Message) -> list[Any]:
        if query.edns >= 0:
            return [rcode_answer(query, dns.rcode.FORMERR)]
        return [good_answer(query)]

    await ScriptedServer.start(env.server_stack, 5353, old_server)
    r = Resolver(env.client, ["198.18.0.2:5353"])
    assert texts(await r.resolve_rrset("old.example.test", "A")) == {"198.18.0.80"}
    assert r.stats()["edns_fallbacks"] == 1


async def test_tcp_answer_with_wrong_id_is_dropped(env: Env) -> None:
    # RFC 7766 7: over TCP too, answers are matched by ID (and question).
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = int.from_bytes(await reader.readexactly(2), "big")
        query = dns.message.from_wire(await reader.readexactly(size))
        wrong = good_answer(query, "203.0.113.9")
        wrong.id ^= 0x5555
        writer.write(wrong.to_wire(prepend_length=True))
        writer.write(good_answer(query).to_wire(prepend_length=True))
        await writer.drain()

    def truncate(query: dns.message.Message) -> list[Any]:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.TC
        return [response]

    await ScriptedServer.start(env.server_stack, 5354, truncate)
    tcp = await env.server_stack.start_server(handle, SERVER, 5354)
    r = Resolver(env.client, ["198.18.0.2:5354"])
    assert texts(await r.resolve_rrset("tcp.example.test", "A")) == {"198.18.0.80"}
    assert r.stats()["drops"] == {"wrong_id": 1} and r.stats()["tcp_sent"] == 1
    tcp.close()


def test_match_response_rules() -> None:
    query = dns.message.make_query("www.example.test.", "A", id=1234)
    good = good_answer(query)
    assert match_response(query, good.to_wire())[1] == ""
    assert match_response(query, good.to_wire(), max_size=20) == (None, "oversize")
    upper = dns.message.make_query("WWW.EXAMPLE.TEST.", "A", id=1234)
    assert match_response(query, good_answer(upper).to_wire())[1] == ""  # case-insensitive
    other_type = dns.message.make_query("www.example.test.", "AAAA", id=1234)
    assert match_response(query, good_answer(other_type).to_wire()) == (None, "wrong_question")
    formerr = dns.message.Message(id=1234)
    formerr.flags = dns.flags.QR
    formerr.set_rcode(dns.rcode.FORMERR)
    message, reason = match_response(query, formerr.to_wire())
    assert reason == "" and message is not None and message.rcode() == dns.rcode.FORMERR
    notify = good_answer(query)
    notify.set_opcode(4)
    assert match_response(query, notify.to_wire()) == (None, "wrong_opcode")
    truncated = dns.message.make_response(query)
    truncated.flags |= dns.flags.TC
    cut = truncated.to_wire() + b"\x03www"  # a TC answer cut mid-record still matches
    assert match_response(query, cut)[1] == ""


def test_parse_hosts() -> None:
    table = parse_hosts(
        "# a comment\n"
        "198.18.0.7   db.test db  # the database\n"
        "fd00::7      db.test\n"
        "fe80::1%eth0 router.test\n"
        "not-an-ip    junk.test\n"
        "198.18.0.8\n"
    )
    assert table == {
        "db.test": ["198.18.0.7", "fd00::7"],
        "db": ["198.18.0.7"],
        "router.test": ["fe80::1"],
    }
