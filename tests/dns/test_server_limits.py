"""What the server does against floods: the per-client UDP rate limit answers part of the
excess with TC=1 ("slip", as response rate limiting does) so that a real client behind a busy
address goes on over TCP; DNS over TCP has caps on connections per client and in all
(RFC 7766 6.2.2, 10) and a deadline per message, so a client that sends a byte now and then
cannot hold a connection open (RFC 7766 6.2.3 idle timeouts count from the last message, not
the last byte)."""

from __future__ import annotations

import asyncio
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import pytest
from dnskit import SERVER, ZONE, tcp_query, udp_wire

from netstack import Stack
from netstack.dns import Resolver, serve
from netstack.dns.server import RateLimiter, Verdict

Pair = tuple[Stack, Stack]
A, S, D = Verdict.ANSWER, Verdict.SLIP, Verdict.DROP


def q(name: str = "web.example.test.", rdtype: str = "A", **kwargs: Any) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kwargs)


# -- the rate limiter's verdicts (no clock, no loop) ---------------------------------------------
def test_every_second_query_beyond_the_rate_slips_by_default() -> None:
    limiter = RateLimiter(rate=1.0, burst=3.0)
    assert limiter.slip == 2
    verdicts = [limiter.check("c", 0.0) for _ in range(9)]
    # The first over the limit slips (a client that just crossed it is told at once).
    assert verdicts == [A, A, A, S, D, S, D, S, D]
    assert limiter.check("other", 0.0) is A  # one bucket per client
    assert limiter.check("c", 1.0) is A  # a token back after a second


@pytest.mark.parametrize(
    ("slip", "expected"),
    [(0, [A, D, D, D, D]), (1, [A, S, S, S, S]), (3, [A, S, D, D, S])],
)
def test_slip_ratio(slip: int, expected: list[Verdict]) -> None:
    limiter = RateLimiter(rate=1.0, burst=1.0, slip=slip)
    assert [limiter.check("c", 5.0) for _ in range(5)] == expected


def test_slip_must_not_be_negative() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=1.0, burst=1.0, slip=-1)


# -- over UDP -----------------------------------------------------------------------------------
async def answers(stack: Stack, query: dns.message.Message, n: int) -> list[dns.message.Message]:
    """Send ``query`` ``n`` times (one endpoint each) and return what came back."""
    out = []
    for _ in range(n):
        try:
            out.append(dns.message.from_wire(await udp_wire(stack, query.to_wire(), timeout=0.1)))
        except TimeoutError:
            pass
    return out


async def test_queries_beyond_the_limit_are_answered_with_tc_or_dropped(stack_pair: Pair) -> None:
    a, b = stack_pair
    async with await serve(b, ZONE, rate=0.001, burst=3.0) as srv:
        query = q(use_edns=0, want_dnssec=True)
        got = await answers(a, query, 10)
        full = [r for r in got if not r.flags & dns.flags.TC]
        slipped = [r for r in got if r.flags & dns.flags.TC]
        assert len(full) == 3 and all(r.answer for r in full)
        # Seven over the limit: the 1st, 3rd, 5th and 7th slip, the others are dropped.
        assert len(slipped) == 4
        for r in slipped:
            # Nothing but the header, the question and the OPT (with DO copied): no larger
            # than the query, so no amplification.
            assert r.rcode() == dns.rcode.NOERROR and r.id == query.id
            assert not r.answer and not r.authority and r.question == query.question
            assert r.edns == 0 and r.ednsflags & dns.flags.DO
            assert len(r.to_wire()) <= len(query.to_wire())
        stats = srv.stats()
        assert stats["slipped"] == 4 and stats["drops"]["rate_limited"] == 3


async def test_malformed_queries_beyond_the_limit_are_dropped(stack_pair: Pair) -> None:
    a, b = stack_pair
    async with await serve(b, ZONE, rate=0.001, burst=1.0, slip=1) as srv:
        assert await answers(a, q(), 1)
        garbage = bytes.fromhex("beef01000001000000000000") + b"\xc0\x0c\x00\x01\x00\x01"
        for _ in range(3):
            with pytest.raises(TimeoutError):
                await udp_wire(a, garbage, timeout=0.1)
        assert srv.stats()["drops"]["rate_limited"] == 3


async def test_a_resolver_over_the_limit_goes_on_over_tcp(stack_pair: Pair) -> None:
    # A busy resolver behind one address: past the limit, every other answer is a TC that
    # sends it to TCP, which is not limited (its source address cannot be forged).
    a, b = stack_pair
    async with await serve(b, ZONE, rate=0.001, burst=2.0) as srv:
        resolver = Resolver(a, [SERVER], timeout=0.3, attempts=3)
        names = ["web", "mail", "ns", "v4only", "a.b"]
        for name in names:
            resolver.cache = type(resolver.cache)(16)
            assert await resolver.resolve(f"{name}.example.test", 2)
        assert resolver.stats()["tcp_sent"] >= 3
        assert srv.stats()["slipped"] >= 3 and srv.stats()["tcp_queries"] >= 3


# -- DNS over TCP ---------------------------------------------------------------------------------
async def closed_by_server(reader: asyncio.StreamReader, wait: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), wait) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def test_a_message_trickled_a_byte_at_a_time_meets_its_deadline(stack_pair: Pair) -> None:
    # The slow-loris: the length prefix says 500 bytes, one byte comes every 50 ms. The idle
    # timer used to restart on every byte and the connection stayed open for ever.
    a, b = stack_pair
    async with await serve(b, ZONE) as srv:
        srv.tcp_message_timeout = 0.3
        reader, writer = await a.open_connection(SERVER, 53)
        writer.write((500).to_bytes(2, "big"))
        closed = False
        for _ in range(80):  # 4 s at most
            writer.write(b"\x00")
            if await closed_by_server(reader, 0.05):
                closed = True
                break
        assert closed
        stats = srv.stats()
        assert stats["tcp_message_timeouts"] == 1 and stats["tcp_idle_closed"] == 0
        writer.close()
        (answer,) = await tcp_query(a, q())  # and the server is fine
        assert answer.answer


async def test_the_idle_timer_runs_between_messages(stack_pair: Pair) -> None:
    # A connection that sends whole queries is never cut by the message deadline, and the
    # idle timer closes it once it falls silent.
    a, b = stack_pair
    async with await serve(b, ZONE) as srv:
        srv.tcp_message_timeout = 0.2
        srv.tcp_idle_timeout = 0.5
        reader, writer = await a.open_connection(SERVER, 53)
        for _ in range(4):
            writer.write(q().to_wire(prepend_length=True))
            size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 5.0), "big")
            assert dns.message.from_wire(await reader.readexactly(size)).answer
            await asyncio.sleep(0.1)
        assert await closed_by_server(reader, 5.0)
        stats = srv.stats()
        assert stats["tcp_idle_closed"] == 1 and stats["tcp_message_timeouts"] == 0
        writer.close()


async def test_connections_per_client_are_capped(stack_pair: Pair) -> None:
    a, b = stack_pair
    async with await serve(b, ZONE) as srv:
        srv.tcp_max_per_client = 4
        conns = [await a.open_connection(SERVER, 53) for _ in range(10)]
        closed = [await closed_by_server(r, 0.2) for r, _ in conns]
        assert closed == [False] * 4 + [True] * 6
        stats = srv.stats()
        assert stats["tcp_refused"] == 6 and stats["tcp_open"] == 4
        for _, w in conns:
            w.close()
        await asyncio.sleep(0.1)
        (answer,) = await tcp_query(a, q())  # room again once they are gone
        assert answer.answer


async def test_total_connections_are_capped_idle_ones_give_way(network: Any) -> None:
    clients = [await network.host(f"198.18.0.{10 + i}/24") for i in range(3)]
    host = await network.host("198.18.0.2/24")
    async with await serve(host, ZONE) as srv:
        srv.tcp_max_connections = 4
        # The first client holds every slot with idle connections...
        idle = [await clients[0].open_connection(SERVER, 53) for _ in range(4)]
        assert not await closed_by_server(idle[0][0], 0.1)
        # ...the second still gets in: the connection idle longest gives way (RFC 7766 6.2.3).
        (answer,) = await tcp_query(clients[1], q())
        assert answer.answer
        assert await closed_by_server(idle[0][0], 1.0)
        assert srv.stats()["tcp_evicted"] >= 1
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.1)
        # Slots held by connections in the middle of a message do not give way: a new one is
        # refused (and those meet their deadline).
        busy = []
        for _ in range(4):
            r, w = await clients[0].open_connection(SERVER, 53)
            w.write(b"\x01")
            busy.append((r, w))
        await asyncio.sleep(0.1)
        r, w = await clients[2].open_connection(SERVER, 53)
        assert await closed_by_server(r, 1.0)
        assert srv.stats()["tcp_refused"] >= 1
        w.close()
        for _, w in busy:
            w.close()
