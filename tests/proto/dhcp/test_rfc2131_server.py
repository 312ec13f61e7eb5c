"""The DHCP server machine (RFC 2131 4.3) without an event loop: allocation, the three kinds of
REQUEST, DECLINE, RELEASE, INFORM, expiry, reply destinations (RFC 2131 4.1), persistence, and
that no address is ever leased to two clients at once (hypothesis, with restarts)."""

from __future__ import annotations

import ipaddress
import json
import random
from dataclasses import dataclass

import pytest
from dhcp_harness import (
    BROADCAST,
    NETWORK,
    SERVER_IP,
    ZERO,
    ip,
    mac,
    pool,
    request,
    server,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.proto.dhcp.server import DhcpServer, DhcpServerConfig, Pool, Reply
from netstack.proto.dhcp.wire import (
    DhcpFlags,
    DhcpMessage,
    MessageType,
    OptionCode,
    build,
    decode_ip,
    decode_ips,
    decode_u32,
    parse,
)

M = MessageType


def answer(srv: DhcpServer, msg: DhcpMessage, now: float = 0.0) -> list[tuple[DhcpMessage, Reply]]:
    return [(parse(r.payload), r) for r in srv.receive(build(msg), now)]


def one(srv: DhcpServer, msg: DhcpMessage, now: float = 0.0) -> tuple[DhcpMessage, Reply]:
    [got] = answer(srv, msg, now)
    return got


def lease(srv: DhcpServer, n: int, now: float = 0.0, **kw: object) -> bytes:
    """DISCOVER and REQUEST for client ``n``; the address acknowledged."""
    offer, _ = one(srv, request(M.DISCOVER, mac(n), xid=n, **kw), now)  # type: ignore[arg-type]
    assert offer.message_type == M.OFFER
    ack, _ = one(srv, request(M.REQUEST, mac(n), xid=n, requested=offer.yiaddr,
                              server_id=SERVER_IP, **kw), now)  # type: ignore[arg-type]  # fmt: skip
    assert ack.message_type == M.ACK, ack.options.get(56)
    return ack.yiaddr


# -- DISCOVER and OFFER ------------------------------------------------------------------------


def test_offer_carries_the_configuration() -> None:
    srv = server()
    offer, dest = one(srv, request(M.DISCOVER, mac(1), xid=77, options={55: bytes([1, 3, 6])}))
    assert offer.op == 2 and offer.xid == 77 and offer.chaddr == mac(1)
    assert offer.message_type == M.OFFER and offer.yiaddr == ip("198.18.0.100")
    assert offer.ciaddr == ZERO and offer.giaddr == ZERO
    o = offer.options
    assert decode_ip(o[OptionCode.SERVER_ID]) == SERVER_IP
    assert decode_u32(o[OptionCode.LEASE_TIME]) == 3600
    assert decode_u32(o[OptionCode.RENEWAL_TIME]) == 1800
    assert decode_u32(o[OptionCode.REBINDING_TIME]) == 3150
    assert o[OptionCode.SUBNET_MASK] == ip("255.255.255.0")
    assert decode_ips(o[OptionCode.ROUTER]) == [ip("198.18.0.1")]
    assert decode_ips(o[OptionCode.DNS_SERVERS]) == [ip("198.18.0.53")]
    assert o[OptionCode.DOMAIN_NAME] == b"example.test"
    # RFC 2131 4.1: no broadcast bit, no ciaddr: unicast to yiaddr at chaddr.
    assert dest.dst == ip("198.18.0.100") and dest.mac == mac(1) and not dest.broadcast
    assert dest.port == 68


def test_broadcast_bit_gets_a_broadcast_offer() -> None:
    _, dest = one(server(), request(M.DISCOVER, mac(1), flags=DhcpFlags.BROADCAST))
    assert (dest.dst, dest.mac, dest.broadcast) == (BROADCAST, None, True)


def test_extra_pool_options_go_to_clients_that_ask() -> None:
    srv = server(pools=(pool(options={42: ip("198.18.0.123"), 119: b"\x04test\x00"}),))
    asked, _ = one(srv, request(M.DISCOVER, mac(1), options={55: bytes([1, 42])}))
    assert asked.options[42] == ip("198.18.0.123") and 119 not in asked.options
    everything, _ = one(srv, request(M.DISCOVER, mac(2)))
    assert 42 in everything.options and 119 in everything.options


def test_client_identifier_is_echoed_and_identifies_the_client() -> None:
    srv = server()
    cid = b"\xff\x00\x00\x00\x01\x00\x03\x00\x01" + mac(1)
    offer, _ = one(srv, request(M.DISCOVER, mac(1), client_id=cid))
    assert offer.options[OptionCode.CLIENT_ID] == cid  # RFC 6842
    # The same client identifier behind another hardware address is the same client.
    again, _ = one(srv, request(M.DISCOVER, mac(9), client_id=cid))
    assert again.yiaddr == offer.yiaddr


def test_same_client_same_offer_other_clients_other_addresses() -> None:
    srv = server()
    first, _ = one(srv, request(M.DISCOVER, mac(1)))
    again, _ = one(srv, request(M.DISCOVER, mac(1)))
    other, _ = one(srv, request(M.DISCOVER, mac(2)))
    assert first.yiaddr == again.yiaddr == ip("198.18.0.100")
    assert other.yiaddr == ip("198.18.0.101")


def test_requested_address_is_honoured_when_free() -> None:
    srv = server()
    offer, _ = one(srv, request(M.DISCOVER, mac(1), requested=ip("198.18.0.150")))
    assert offer.yiaddr == ip("198.18.0.150")
    outside, _ = one(srv, request(M.DISCOVER, mac(2), requested=ip("198.18.0.20")))
    assert outside.yiaddr == ip("198.18.0.100")
    taken, _ = one(srv, request(M.DISCOVER, mac(3), requested=ip("198.18.0.150")))
    assert taken.yiaddr == ip("198.18.0.101")


def test_requested_lease_time_is_honoured_within_bounds() -> None:
    srv = server()
    short, _ = one(srv, request(M.DISCOVER, mac(1), lease_time=600))
    assert decode_u32(short.options[OptionCode.LEASE_TIME]) == 600
    longer, _ = one(srv, request(M.DISCOVER, mac(2), lease_time=99999))
    assert decode_u32(longer.options[OptionCode.LEASE_TIME]) == 3600
    tiny, _ = one(srv, request(M.DISCOVER, mac(3), lease_time=1))
    assert decode_u32(tiny.options[OptionCode.LEASE_TIME]) == 60


# The tests of a pool of one or two addresses held by offers lift the bound on outstanding
# offers (half the pool by default; test_server_flood.py), which would let the older offer go.


def test_pool_exhaustion_and_offer_hold() -> None:
    srv = server(pools=(pool("198.18.0.100", "198.18.0.101"),), offer_hold=30.0, max_offers=100)
    one(srv, request(M.DISCOVER, mac(1)))
    one(srv, request(M.DISCOVER, mac(2)))
    assert answer(srv, request(M.DISCOVER, mac(3)), 1.0) == []
    assert srv.drops == {"pool_exhausted": 1}
    assert srv.poll_at() == 30.0
    srv.handle_timeout(30.0)
    offer, _ = one(srv, request(M.DISCOVER, mac(3)), 31.0)
    assert offer.yiaddr in (ip("198.18.0.100"), ip("198.18.0.101"))


def test_server_network_and_broadcast_addresses_are_never_offered() -> None:
    net = ipaddress.IPv4Network("198.18.0.0/30")
    p = Pool(net, net.network_address, net.broadcast_address)
    srv = DhcpServer(ip("198.18.0.1"), DhcpServerConfig(pools=(p,)))
    offer, _ = one(srv, request(M.DISCOVER, mac(1)))
    assert offer.yiaddr == ip("198.18.0.2")
    assert answer(srv, request(M.DISCOVER, mac(2))) == []


# -- REQUEST ---------------------------------------------------------------------------------


def test_selecting_request_binds() -> None:
    srv = server()
    address = lease(srv, 1, 10.0)
    [record] = srv.leases
    assert record.address == "198.18.0.100" and address == ip("198.18.0.100")
    assert record.mac == mac(1).hex(":") and record.expires == 3610.0
    assert srv.leases_at(3609.0) == [record] and srv.leases_at(3610.0) == []


def test_ack_goes_where_rfc2131_4_1_says() -> None:
    srv = server()
    offer, _ = one(srv, request(M.DISCOVER, mac(1)))
    ack, dest = one(srv, request(M.REQUEST, mac(1), requested=offer.yiaddr, server_id=SERVER_IP))
    assert dest.dst == offer.yiaddr and dest.mac == mac(1)
    renew, dest = one(srv, request(M.REQUEST, mac(1), ciaddr=offer.yiaddr), 100.0)
    assert renew.message_type == M.ACK and renew.ciaddr == offer.yiaddr
    assert (dest.dst, dest.mac, dest.broadcast) == (offer.yiaddr, None, False)


def test_request_for_another_server_frees_our_offer() -> None:
    srv = server(pools=(pool("198.18.0.100", "198.18.0.100"),), max_offers=100)
    one(srv, request(M.DISCOVER, mac(1)))
    assert answer(srv, request(M.DISCOVER, mac(2))) == []  # held for client 1
    assert answer(srv, request(M.REQUEST, mac(1), requested=ip("10.0.0.5"),
                               server_id=ip("198.18.0.2"))) == []  # fmt: skip
    other, _ = one(srv, request(M.DISCOVER, mac(2)))
    assert other.yiaddr == ip("198.18.0.100")


def test_selecting_request_for_an_address_not_offered_is_naked() -> None:
    srv = server()
    one(srv, request(M.DISCOVER, mac(1)))
    nak, dest = one(srv, request(M.REQUEST, mac(1), requested=ip("198.18.0.120"),
                                 server_id=SERVER_IP))  # fmt: skip
    assert nak.message_type == M.NAK and nak.yiaddr == ZERO
    assert OptionCode.LEASE_TIME not in nak.options and OptionCode.MESSAGE in nak.options
    assert decode_ip(nak.options[OptionCode.SERVER_ID]) == SERVER_IP
    # RFC 2131 4.1: NAKs are broadcast when there is no relay.
    assert (dest.dst, dest.broadcast) == (BROADCAST, True)


def test_init_reboot() -> None:
    srv = server()
    address = lease(srv, 1)
    # Known client, its address: ACK.
    ack, _ = one(srv, request(M.REQUEST, mac(1), requested=address), 10.0)
    assert ack.message_type == M.ACK and ack.yiaddr == address
    # Another client asking for it: NAK.
    nak, _ = one(srv, request(M.REQUEST, mac(2), requested=address), 10.0)
    assert nak.message_type == M.NAK
    # Wrong network: NAK (RFC 2131 4.3.2 MUST).
    nak, _ = one(srv, request(M.REQUEST, mac(3), requested=ip("10.1.1.1")), 10.0)
    assert nak.message_type == M.NAK
    # The known client asking for another address: NAK.
    nak, _ = one(srv, request(M.REQUEST, mac(1), requested=ip("198.18.0.150")), 10.0)
    assert nak.message_type == M.NAK
    # An unknown client asking for a free address of the pool: this server is authoritative.
    ack, _ = one(srv, request(M.REQUEST, mac(4), requested=ip("198.18.0.150")), 10.0)
    assert ack.message_type == M.ACK


def test_non_authoritative_server_stays_silent_for_strangers() -> None:
    srv = server(authoritative=False)
    assert answer(srv, request(M.REQUEST, mac(4), requested=ip("198.18.0.20"))) == []
    assert srv.drops == {"unknown_client": 1}
    ack, _ = one(srv, request(M.REQUEST, mac(4), requested=ip("198.18.0.150")))
    assert ack.message_type == M.ACK  # a free pool address is still granted


def test_renewal_extends_and_rebinding_too() -> None:
    srv = server()
    address = lease(srv, 1)
    one(srv, request(M.REQUEST, mac(1), ciaddr=address), 1800.0)
    assert srv.leases[0].expires == 5400.0
    one(srv, request(M.REQUEST, mac(1), ciaddr=address), 5000.0)
    assert srv.leases[0].expires == 8600.0
    # Someone else renewing that address: NAK.
    nak, _ = one(srv, request(M.REQUEST, mac(2), ciaddr=address), 5000.0)
    assert nak.message_type == M.NAK


def test_expired_lease_is_reusable_but_its_client_gets_it_back() -> None:
    srv = server(pools=(pool("198.18.0.100", "198.18.0.102", lease_time=100),))
    a1 = lease(srv, 1)
    a2 = lease(srv, 2)
    assert srv.poll_at() == 100.0
    srv.handle_timeout(100.0)
    assert srv.leases == [] and srv.leases_expired == 2
    # A new client gets the never-used address first.
    assert lease(srv, 3, 101.0) == ip("198.18.0.102")
    # Clients that come back get their old addresses (RFC 2131 4.3.1 (b)).
    assert lease(srv, 2, 102.0) == a2
    assert lease(srv, 1, 103.0) == a1


def test_expired_addresses_are_reused_oldest_first() -> None:
    srv = server(pools=(pool("198.18.0.100", "198.18.0.101", lease_time=100),))
    lease(srv, 1, 0.0)
    lease(srv, 2, 50.0)
    srv.handle_timeout(200.0)
    assert lease(srv, 3, 200.0) == ip("198.18.0.100")


# -- DECLINE, RELEASE, INFORM ----------------------------------------------------------------


def test_decline_quarantines_the_address() -> None:
    srv = server(pools=(pool("198.18.0.100", "198.18.0.101"),), decline_hold=600.0,
                 max_offers=100)  # fmt: skip
    address = lease(srv, 1)
    assert answer(srv, request(M.DECLINE, mac(1), requested=address, server_id=SERVER_IP)) == []
    assert srv.leases == [] and srv.declines == 1
    offer, _ = one(srv, request(M.DISCOVER, mac(1)), 1.0)
    assert offer.yiaddr == ip("198.18.0.101")
    assert answer(srv, request(M.DISCOVER, mac(2), requested=address), 2.0) == []
    srv.handle_timeout(600.0)
    offer, _ = one(srv, request(M.DISCOVER, mac(2), requested=address), 601.0)
    assert offer.yiaddr == address


def test_decline_of_someone_elses_address_is_ignored() -> None:
    srv = server()
    address = lease(srv, 1)
    answer(srv, request(M.DECLINE, mac(2), requested=address, server_id=SERVER_IP))
    answer(srv, request(M.DECLINE, mac(1), requested=address, server_id=ip("198.18.0.9")))
    assert [lease.address for lease in srv.leases] == ["198.18.0.100"]
    assert srv.drops == {"decline_unknown": 1, "other_server_declined": 1}


def test_release_frees_and_remembers() -> None:
    srv = server()
    address = lease(srv, 1)
    answer(srv, request(M.RELEASE, mac(2), ciaddr=address, server_id=SERVER_IP))
    assert len(srv.leases) == 1
    answer(srv, request(M.RELEASE, mac(1), ciaddr=address, server_id=SERVER_IP), 5.0)
    assert srv.leases == []
    assert lease(srv, 2, 6.0) == ip("198.18.0.101")  # fresh addresses first
    assert lease(srv, 1, 7.0) == address  # and the old client gets its own back


def test_inform_answers_with_configuration_only() -> None:
    srv = server()
    ack, dest = one(srv, request(M.INFORM, mac(1), ciaddr=ip("198.18.0.7")))
    assert ack.message_type == M.ACK and ack.yiaddr == ZERO and ack.ciaddr == ip("198.18.0.7")
    assert OptionCode.LEASE_TIME not in ack.options and OptionCode.ROUTER in ack.options
    assert (dest.dst, dest.mac, dest.broadcast) == (ip("198.18.0.7"), None, False)
    assert srv.leases == []


# -- reservations ----------------------------------------------------------------------------


def test_reservations() -> None:
    srv = server(reservations={mac(1): ip("198.18.0.10"), mac(2): ip("198.18.0.150")})
    assert lease(srv, 1) == ip("198.18.0.10")  # outside the dynamic range: fine
    # Nobody else is offered a reserved address, even when asking for it.
    offer, _ = one(srv, request(M.DISCOVER, mac(3), requested=ip("198.18.0.150")))
    assert offer.yiaddr == ip("198.18.0.100")
    nak, _ = one(srv, request(M.REQUEST, mac(3), requested=ip("198.18.0.10")))
    assert nak.message_type == M.NAK
    assert lease(srv, 2) == ip("198.18.0.150")


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        DhcpServerConfig(pools=())
    with pytest.raises(ValueError):
        pool("198.18.0.200", "198.18.0.100")
    with pytest.raises(ValueError):
        pool("198.18.0.100", "198.18.1.100")
    with pytest.raises(ValueError):
        DhcpServerConfig(pools=(pool(),), reservations={mac(1): ip("10.0.0.1")})
    with pytest.raises(ValueError):
        DhcpServer(ip("10.0.0.1"), DhcpServerConfig(pools=(pool(),)))


# -- relays (RFC 2131 4.1, 4.3.1) --------------------------------------------------------------


def test_relayed_requests_use_the_relays_pool_and_port() -> None:
    remote = Pool(ipaddress.IPv4Network("198.19.5.0/24"), ipaddress.IPv4Address("198.19.5.10"),
                  ipaddress.IPv4Address("198.19.5.20"))  # fmt: skip
    srv = server(pools=(pool(), remote))
    offer, dest = one(srv, request(M.DISCOVER, mac(1), giaddr=ip("198.19.5.1")))
    assert offer.yiaddr == ip("198.19.5.10") and offer.giaddr == ip("198.19.5.1")
    assert (dest.dst, dest.port, dest.mac) == (ip("198.19.5.1"), 67, None)
    nak, dest = one(srv, request(M.REQUEST, mac(2), requested=ip("198.18.0.5"),
                                 giaddr=ip("198.19.5.1")))  # fmt: skip
    assert nak.message_type == M.NAK and nak.broadcast and dest.port == 67
    assert answer(srv, request(M.DISCOVER, mac(3), giaddr=ip("203.0.113.1"))) == []
    assert srv.drops == {"no_pool": 1}


# -- bad input -------------------------------------------------------------------------------


def test_malformed_and_unexpected_messages_are_dropped() -> None:
    srv = server()
    bootreply = request(M.DISCOVER, mac(1))
    bootreply.op = 2
    bootp = request(M.DISCOVER, mac(1))
    del bootp.options[OptionCode.MESSAGE_TYPE]
    token_ring = request(M.DISCOVER, mac(1))
    token_ring.htype = 6
    for bad in (
        b"", b"\x01" * 300, build(bootreply), build(bootp), build(token_ring),
        build(request(M.DISCOVER, mac(1), client_id=b"\x01")),
        build(request(M.OFFER, mac(1))),
        build(request(M.DISCOVER, mac(1), options={50: b"\x01\x02"})),
        build(request(M.REQUEST, mac(1))),
        build(request(M.REQUEST, mac(1), server_id=SERVER_IP)),
        build(request(M.INFORM, mac(1))),
        build(request(MessageType(8), mac(1), options={53: b"\x0a"})),
    ):  # fmt: skip
        assert srv.receive(bad, 0.0) == []
    assert srv.drops == {
        "truncated": 1, "bad_magic_cookie": 1, "not_request": 1, "bootp_unsupported": 1,
        "unsupported_hardware": 1, "bad_client_id": 1, "unexpected_message_type": 2,
        "bad_option_length": 1, "missing_requested_address": 2, "inform_without_ciaddr": 1,
    }  # fmt: skip
    assert srv.leases == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 8))
def test_arbitrary_options_never_raise(options: bytes, kind: int) -> None:
    srv = server()
    head = build(request(MessageType(kind), mac(1)))
    srv.receive(head[:240] + bytes([53, 1, kind]) + options, 0.0)
    srv.receive(head[:240] + options, 0.0)


# -- persistence -----------------------------------------------------------------------------


def test_snapshot_and_restore() -> None:
    srv = server(pools=(pool(lease_time=1000),))
    a1 = lease(srv, 1, 0.0)
    a2 = lease(srv, 2, 0.0)
    answer(srv, request(M.DECLINE, mac(2), requested=a2, server_id=SERVER_IP), 1.0)
    a3 = lease(srv, 3, 2.0)
    answer(srv, request(M.RELEASE, mac(3), ciaddr=a3, server_id=SERVER_IP), 3.0)
    one(srv, request(M.DISCOVER, mac(4)), 4.0)  # an open offer: not saved
    data = json.loads(json.dumps(srv.snapshot(10.0)))
    assert {e["state"] for e in data["leases"]} == {"bound", "declined", "released"}
    again = server(pools=(pool(lease_time=1000),))
    assert again.restore(data, 500.0, elapsed=100.0) == 3
    # Time passed: the lease that had 990 s left has 890.
    [record] = again.leases
    assert record.address == "198.18.0.100" and record.expires == 500.0 + 890.0
    # The bound address is still the client's; the declined one is still quarantined.
    nak, _ = one(again, request(M.REQUEST, mac(9), requested=a1), 501.0)
    assert nak.message_type == M.NAK
    assert lease(again, 1, 502.0) == a1
    assert answer(again, request(M.DISCOVER, mac(9), requested=a2), 503.0)[0][0].yiaddr != a2
    # The released address goes back to its client.
    assert lease(again, 3, 504.0) == a3


def test_restore_skips_bad_entries_and_expires_old_leases() -> None:
    srv = server(pools=(pool(lease_time=100),))
    lease(srv, 1)
    data = srv.snapshot(0.0)
    data["leases"] += [
        {"address": "nonsense"},
        {
            "address": "10.0.0.1",
            "client": "",
            "mac": "02:00:00:00:00:01",
            "state": "bound",
            "remaining": 5,
        },
        7,
    ]
    again = server()
    assert again.restore(data, 0.0, elapsed=200.0) == 1
    assert again.leases == [] and again.drops == {"restore_bad_entry": 3}
    with pytest.raises(ValueError):
        again.restore({"version": 99}, 0.0)


# -- never the same address to two clients (hypothesis, with restarts) -------------------------


@dataclass
class Held:
    address: bytes
    until: float


class Model:
    """The clients' side: what each was told it holds, and until when."""

    def __init__(self) -> None:
        self.held: dict[int, Held] = {}

    def check_ack(self, n: int, ack: DhcpMessage, now: float) -> None:
        assert ack.message_type == M.ACK
        until = now + decode_u32(ack.options[OptionCode.LEASE_TIME])
        for other, h in self.held.items():
            if other != n and h.address == ack.yiaddr and h.until > now:
                raise AssertionError(
                    f"{ipaddress.IPv4Address(ack.yiaddr)} acknowledged to client {n} while "
                    f"client {other} holds it until {h.until} (now {now})"
                )
        self.held[n] = Held(ack.yiaddr, until)


OPS = st.sampled_from(
    ["dora", "dora", "discover", "renew", "reboot_own", "reboot_other", "release", "decline",
     "other_server", "time", "restart"]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(OPS, st.integers(0, 11), st.integers(0, 400)), min_size=1, max_size=80),
    st.integers(0, 2**32 - 1),
)
def test_no_address_is_ever_leased_twice(ops: list[tuple[str, int, int]], seed: int) -> None:
    # A small pool (8 addresses) for 12 clients, short leases, restarts through JSON.
    def make() -> DhcpServer:
        p = pool("198.18.0.100", "198.18.0.107", lease_time=300)
        config = DhcpServerConfig(pools=(p,), offer_hold=30.0, decline_hold=120.0,
                                  min_lease_time=60)  # fmt: skip
        return DhcpServer(SERVER_IP, config, random.Random(seed))

    srv = make()
    model = Model()
    now = 0.0
    addresses = [ip(f"198.18.0.{100 + i}") for i in range(8)]
    for op, n, value in ops:
        held = model.held.get(n)
        if op == "dora":
            replies = answer(srv, request(M.DISCOVER, mac(n), xid=n), now)
            if replies:
                offer = replies[0][0]
                replies = answer(srv, request(M.REQUEST, mac(n), xid=n, requested=offer.yiaddr,
                                              server_id=SERVER_IP), now)  # fmt: skip
                for msg, _ in replies:
                    if msg.message_type == M.ACK:
                        model.check_ack(n, msg, now)
                    else:
                        model.held.pop(n, None)
        elif op == "discover":
            answer(srv, request(M.DISCOVER, mac(n), xid=n), now)
        elif op in ("renew", "reboot_own", "reboot_other"):
            if op == "renew" and held is not None:
                msg = request(M.REQUEST, mac(n), ciaddr=held.address)
            elif op == "reboot_own" and held is not None:
                msg = request(M.REQUEST, mac(n), requested=held.address)
            else:
                msg = request(M.REQUEST, mac(n), requested=addresses[value % 8])
            for got, _ in answer(srv, msg, now):
                if got.message_type == M.ACK:
                    model.check_ack(n, got, now)
                else:
                    model.held.pop(n, None)
        elif op == "release" and held is not None:
            answer(srv, request(M.RELEASE, mac(n), ciaddr=held.address, server_id=SERVER_IP),
                   now)  # fmt: skip
            del model.held[n]
        elif op == "decline" and held is not None:
            answer(srv, request(M.DECLINE, mac(n), requested=held.address, server_id=SERVER_IP),
                   now)  # fmt: skip
            del model.held[n]
        elif op == "other_server":
            answer(srv, request(M.REQUEST, mac(n), requested=addresses[value % 8],
                                server_id=ip("198.18.0.2")), now)  # fmt: skip
        elif op == "time":
            now += value
            at = srv.poll_at()
            if at is not None and at <= now:
                srv.handle_timeout(now)
        elif op == "restart":
            data = json.loads(json.dumps(srv.snapshot(now)))
            srv = make()
            srv.restore(data, now)
        # The server's own view agrees: one binding per address, inside the pool.
        bound = srv.leases_at(now)
        assert len({lease.address for lease in bound}) == len(bound)
        assert all(ipaddress.IPv4Address(lease.address) in NETWORK for lease in bound)
