"""The DHCP server machine under a flood of DISCOVERs from random hardware addresses (the
classic starvation attack): outstanding offers are bounded per hardware address and per pool,
so the flood cannot hold the whole pool for the offer hold and real clients still get leases;
and the "pool exhausted" warning is logged once in a while, not once per DISCOVER."""

from __future__ import annotations

import logging
import random

import pytest
from dhcp_harness import SERVER_IP, ip, mac, pool, request, server

from netstack.proto.dhcp.server import DhcpServer
from netstack.proto.dhcp.wire import DhcpMessage, MessageType, build, parse

M = MessageType


def offers(srv: DhcpServer, msg: DhcpMessage, now: float) -> list[DhcpMessage]:
    return [parse(r.payload) for r in srv.receive(build(msg), now)]


def flood(srv: DhcpServer, count: int, start: float, end: float, seed: int = 1) -> None:
    rng = random.Random(seed)
    for i in range(count):
        chaddr = bytes([0x02]) + rng.randbytes(5)
        srv.receive(build(request(M.DISCOVER, chaddr, xid=i)), start + (end - start) * i / count)


def dora(srv: DhcpServer, n: int, now: float) -> bytes | None:
    """DISCOVER and REQUEST for client ``n``: the address acknowledged, or None."""
    got = offers(srv, request(M.DISCOVER, mac(n), xid=n), now)
    if not got:
        return None
    acks = offers(srv, request(M.REQUEST, mac(n), xid=n, requested=got[0].yiaddr,
                               server_id=SERVER_IP), now)  # fmt: skip
    return acks[0].yiaddr if acks and acks[0].message_type == M.ACK else None


# -- bounded offers ------------------------------------------------------------------------------
def test_a_flood_of_discovers_cannot_hold_the_pool() -> None:
    srv = server()  # 100 addresses, offers held 60 s
    flood(srv, 5000, 0.0, 2.0)
    stats = srv.stats()
    assert stats["discovers"] == 5000 and stats["offers_sent"] == 5000
    assert stats["offers_outstanding"] <= 50  # half the pool
    assert stats["offers_evicted"] >= 4950
    assert "pool_exhausted" not in srv.drops
    # A real client right after (or during) the flood gets a lease at once.
    assert dora(srv, 1, 2.1) is not None
    flood(srv, 500, 2.2, 2.5, seed=2)
    assert dora(srv, 2, 2.6) is not None
    assert len(srv.leases) == 2


def test_an_offer_outlives_some_flood_before_its_request() -> None:
    srv = server()
    got = offers(srv, request(M.DISCOVER, mac(1), xid=1), 0.0)
    flood(srv, 30, 0.0, 0.01)  # fewer than the bound: the offer is still held
    acks = offers(srv, request(M.REQUEST, mac(1), xid=1, requested=got[0].yiaddr,
                               server_id=SERVER_IP), 0.02)  # fmt: skip
    assert acks[0].message_type == M.ACK and acks[0].yiaddr == got[0].yiaddr
    # More than the bound: the offer is let go, but an address let go is given out again
    # only after every fresh one and every one let go before it.
    got = offers(srv, request(M.DISCOVER, mac(2), xid=2), 1.0)
    flood(srv, 80, 1.0, 1.01, seed=3)
    acks = offers(srv, request(M.REQUEST, mac(2), xid=2, requested=got[0].yiaddr,
                               server_id=SERVER_IP), 1.02)  # fmt: skip
    assert acks[0].message_type == M.ACK and acks[0].yiaddr == got[0].yiaddr


def test_offers_per_hardware_address_are_bounded() -> None:
    # One MAC with a new client identifier on every DISCOVER holds at most two offers.
    srv = server()
    for i in range(50):
        got = offers(srv, request(M.DISCOVER, mac(7), client_id=b"\x00" + i.to_bytes(4)), i / 10)
        assert got and got[0].message_type == M.OFFER
    assert srv.stats()["offers_outstanding"] == 2
    # Another MAC is not affected; a client asking again keeps its one offer.
    first = offers(srv, request(M.DISCOVER, mac(8)), 6.0)[0].yiaddr
    again = offers(srv, request(M.DISCOVER, mac(8)), 6.1)[0].yiaddr
    assert first == again and srv.stats()["offers_outstanding"] == 3


def test_the_bound_is_configurable() -> None:
    srv = server(max_offers=10, max_offers_per_mac=1)
    flood(srv, 100, 0.0, 1.0)
    assert srv.stats()["offers_outstanding"] == 10
    offers(srv, request(M.DISCOVER, mac(7), client_id=b"\x00a"), 2.0)
    offers(srv, request(M.DISCOVER, mac(7), client_id=b"\x00b"), 2.0)
    assert srv.stats()["offers_outstanding"] == 10  # mac(7)'s first offer gave way
    with pytest.raises(ValueError):
        server(max_offers=0)
    with pytest.raises(ValueError):
        server(max_offers_per_mac=0)


def test_offers_still_expire_after_the_hold() -> None:
    srv = server()
    flood(srv, 200, 0.0, 1.0)
    assert srv.stats()["offers_outstanding"] == 50
    at = srv.poll_at()
    assert at is not None and at <= 61.0
    srv.handle_timeout(61.0)
    assert srv.stats()["offers_outstanding"] == 0


# -- the warning -----------------------------------------------------------------------------------
def test_pool_exhausted_warning_is_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    srv = server(pools=(pool("198.18.0.100", "198.18.0.101"),))
    assert dora(srv, 1, 0.0) == ip("198.18.0.100")
    assert dora(srv, 2, 0.0) == ip("198.18.0.101")
    caplog.set_level(logging.WARNING, logger="netstack.dhcp.server")
    flood(srv, 2969, 0.0, 2.0)
    assert srv.drops["pool_exhausted"] == 2969  # every one counted
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "exhausted" in warnings[0].getMessage()
    # Once the interval has passed, one line again, with how many went unlogged.
    flood(srv, 10, 100.0, 101.0, seed=9)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2 and "2968" in warnings[1].getMessage()
