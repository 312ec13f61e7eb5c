"""The DHCP client machine (RFC 2131 4.4, RFC 4361, RFC 3442) driven without an event loop:
scripted server messages, or the server machine over :class:`Wire`, time as a plain number."""

from __future__ import annotations

import math
import random

import pytest
from dhcp_harness import (
    BROADCAST,
    NO_PROBE,
    SERVER_IP,
    ZERO,
    Wire,
    client,
    events,
    ip,
    kind_of,
    reply,
    sent,
    server,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.proto.dhcp.client import (
    TRANSITIONS,
    AddressDeclined,
    DhcpClient,
    DhcpClientConfig,
    DhcpState,
    Lease,
    LeaseAcquired,
    LeaseExpired,
    LeaseLost,
    LeaseRenewed,
    default_client_id,
)
from netstack.proto.dhcp.wire import (
    DhcpMessage,
    MessageType,
    OptionCode,
    build,
    decode_u16,
    encode_classless_routes,
    encode_u16,
    encode_u32,
)

S = DhcpState


def acquire(c: DhcpClient, now: float = 0.0, address: str = "198.18.0.100", **kw: object) -> Lease:
    """DISCOVER, OFFER, REQUEST, ACK with scripted replies; returns the lease."""
    c.start(now)
    sent(c)
    c.receive(reply(MessageType.OFFER, c, yiaddr=address), now)
    sent(c)
    c.receive(reply(MessageType.ACK, c, yiaddr=address, **kw), now)  # type: ignore[arg-type]
    [event] = events(c)
    assert isinstance(event, LeaseAcquired)
    return event.lease


# -- DORA --------------------------------------------------------------------------------------


def test_discover_is_broadcast_from_zero() -> None:
    c = client(DhcpClientConfig(arp_probe=False, hostname="box", requested_options=(42, 3)))
    assert c.state is S.INIT and c.poll_at() is None
    c.start(10.0)
    assert c.state is S.SELECTING
    [(msg, out)] = sent(c)
    assert kind_of(msg) is MessageType.DISCOVER
    assert (out.src, out.dst, out.broadcast) == (ZERO, BROADCAST, True)
    assert msg.op == 1 and msg.chaddr == c.mac and msg.xid == c.xid != 0
    assert msg.ciaddr == ZERO and not msg.broadcast
    # RFC 4361 6.1: type 255, IAID, DUID-LL of the MAC.
    assert msg.options[OptionCode.CLIENT_ID] == default_client_id(c.mac)
    assert msg.options[OptionCode.CLIENT_ID][:1] == b"\xff"
    prl = list(msg.options[OptionCode.PARAMETER_REQUEST_LIST])
    # RFC 3442: ask for both classless routes and the router; then the user's extras.
    assert {1, 3, 6, 15, 26, 121} <= set(prl) and prl[-1] == 42 and prl.count(3) == 1
    assert msg.options[OptionCode.HOSTNAME] == b"box"
    assert decode_u16(msg.options[OptionCode.MAX_MESSAGE_SIZE]) == 1500
    assert OptionCode.SERVER_ID not in msg.options
    assert OptionCode.REQUESTED_ADDRESS not in msg.options


def test_broadcast_flag_when_asked() -> None:
    c = client(DhcpClientConfig(arp_probe=False, broadcast_flag=True))
    c.start(0.0)
    [(msg, _)] = sent(c)
    assert msg.broadcast


def test_extra_options_are_sent() -> None:
    c = client(DhcpClientConfig(arp_probe=False, extra_options={60: b"netstack", 77: b"u"}))
    c.start(0.0)
    [(msg, _)] = sent(c)
    assert msg.options[60] == b"netstack" and msg.options[77] == b"u"


def test_whole_dora_against_the_server() -> None:
    srv = server()
    c = client()
    wire = Wire(srv, [c])
    c.start(0.0)
    wire.run()
    assert c.state is S.BOUND
    [event] = events(c)
    assert isinstance(event, LeaseAcquired)
    lease = event.lease
    assert lease == c.lease
    assert (lease.address, lease.prefix_len, lease.server_id) == ("198.18.0.100", 24, "198.18.0.1")
    assert lease.router == "198.18.0.1" and lease.dns_servers == ("198.18.0.53",)
    assert lease.domain == "example.test" and lease.interface == "198.18.0.100/24"
    assert (lease.lease_time, lease.t1, lease.t2) == (3600, 1800, 3150)
    assert [kind_of(m) for _, _, m in wire.log] == [
        MessageType.DISCOVER, MessageType.OFFER, MessageType.REQUEST, MessageType.ACK,
    ]  # fmt: skip
    request = wire.log[2][2]
    # RFC 2131 4.3.2, SELECTING: the OFFER's xid, Server Identifier and Requested IP Address.
    assert request.xid == wire.log[0][2].xid
    assert request.options[OptionCode.SERVER_ID] == SERVER_IP
    assert request.options[OptionCode.REQUESTED_ADDRESS] == ip("198.18.0.100")
    assert request.ciaddr == ZERO
    assert [lease.address for lease in srv.leases] == ["198.18.0.100"]
    assert c.poll_at() == lease.t1_at == 1800.0


def test_lease_counts_from_the_request() -> None:
    # RFC 2131 4.4.1: the lease starts when the REQUEST was sent, not when the ACK came.
    c = client()
    c.start(0.0)
    sent(c)
    c.receive(reply(MessageType.OFFER, c), 1.0)
    sent(c)
    c.receive(reply(MessageType.ACK, c, lease_time=100), 3.0)
    assert c.lease is not None and c.lease.acquired_at == 1.0 and c.lease.expires_at == 101.0


def test_select_wait_collects_offers_and_prefers_the_old_address() -> None:
    c = client(DhcpClientConfig(arp_probe=False, select_wait=2.0))
    c.start(0.0, remembered=None)
    sent(c)
    c.receive(reply(MessageType.OFFER, c, yiaddr="198.18.0.7", server_id="198.18.0.2"), 0.5)
    assert c.state is S.SELECTING and c.poll_at() == 2.5
    c.receive(reply(MessageType.OFFER, c, yiaddr="198.18.0.8", server_id="198.18.0.3"), 1.0)
    c.handle_timeout(2.5)
    [(msg, _)] = sent(c)
    assert c.state is S.REQUESTING
    assert msg.options[OptionCode.REQUESTED_ADDRESS] == ip("198.18.0.7")
    assert msg.options[OptionCode.SERVER_ID] == ip("198.18.0.2")


def test_offer_without_server_id_is_dropped() -> None:
    c = client()
    c.start(0.0)
    sent(c)
    c.receive(reply(MessageType.OFFER, c, server_id=None), 0.1)
    c.receive(reply(MessageType.OFFER, c, yiaddr="0.0.0.0"), 0.1)
    c.receive(reply(MessageType.OFFER, c, yiaddr="224.0.0.1"), 0.1)
    assert c.state is S.SELECTING
    assert c.drops == {"missing_server_id": 1, "bad_yiaddr": 2}


# -- what is not ours --------------------------------------------------------------------------


def test_wrong_xid_chaddr_and_junk_are_dropped() -> None:
    c = client()
    c.start(0.0)
    sent(c)
    c.receive(reply(MessageType.OFFER, c, xid=c.xid ^ 1), 0.1)
    c.receive(reply(MessageType.OFFER, c, chaddr=bytes.fromhex("02aabbccddee")), 0.1)
    c.receive(b"\x00" * 20, 0.1)
    as_request = bytearray(reply(MessageType.OFFER, c))
    as_request[0] = 1
    c.receive(bytes(as_request), 0.1)
    bootp = DhcpMessage(op=2, xid=c.xid, chaddr=c.mac, yiaddr=ip("198.18.0.9"))
    c.receive(build(bootp), 0.1)
    c.receive(reply(MessageType.ACK, c), 0.1)  # an ACK while selecting
    c.receive(reply(MessageType.INFORM, c), 0.1)
    assert c.state is S.SELECTING and c.lease is None and events(c) == []
    assert c.drops == {
        "wrong_xid": 1, "wrong_chaddr": 1, "truncated": 1, "not_reply": 1, "not_dhcp": 1,
        "unexpected_ack": 1, "unexpected_message_type": 1,
    }  # fmt: skip


def test_late_offer_and_other_servers_ack_are_dropped() -> None:
    c = client()
    c.start(0.0)
    sent(c)
    c.receive(reply(MessageType.OFFER, c), 0.1)
    assert c.state is S.REQUESTING
    c.receive(reply(MessageType.OFFER, c, yiaddr="198.18.0.50", server_id="198.18.0.9"), 0.2)
    c.receive(reply(MessageType.ACK, c, server_id="198.18.0.9"), 0.2)
    c.receive(reply(MessageType.NAK, c, server_id="198.18.0.9"), 0.2)
    assert c.state is S.REQUESTING
    assert c.drops == {"late_offer": 1, "wrong_server": 2}


# -- retransmission (RFC 2131 4.1) ------------------------------------------------------------


def test_discover_backoff_schedule() -> None:
    c = client(seed=7)
    c.start(0.0)
    times = [0.0]
    xids = {m.xid for m, _ in sent(c)}
    for _ in range(8):
        at = c.poll_at()
        assert at is not None
        c.handle_timeout(at)
        [(msg, _)] = sent(c)
        assert kind_of(msg) is MessageType.DISCOVER
        xids.add(msg.xid)
        times.append(at)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    bases = [4, 8, 16, 32, 64, 64, 64, 64]
    # 4, 8, 16, 32, 64, 64, ... seconds, each randomised by up to a second either way.
    for gap, base in zip(gaps, bases, strict=True):
        assert base - 1 <= gap <= base + 1
    assert len({round(g - b, 6) for g, b in zip(gaps, bases, strict=True)}) > 1
    assert c.state is S.SELECTING and c.discovers_sent == 9
    # One exchange: one xid for all its retransmissions.
    assert xids == {c.xid}


def test_requesting_gives_up_after_its_attempts() -> None:
    c = client(DhcpClientConfig(arp_probe=False, request_attempts=3))
    c.start(0.0)
    sent(c)
    c.receive(reply(MessageType.OFFER, c), 0.0)
    requests = [m for m, _ in sent(c)]
    while c.state is S.REQUESTING:
        at = c.poll_at()
        assert at is not None
        c.handle_timeout(at)
        requests += [m for m, _ in sent(c) if kind_of(m) is MessageType.REQUEST]
    assert len(requests) == 3
    assert c.state is S.SELECTING and c.discovers_sent == 2


def test_retransmission_timings_can_be_shortened() -> None:
    c = client(DhcpClientConfig(arp_probe=False, retransmit_base=0.5, retransmit_max=2,
                                retransmit_jitter=0.0))  # fmt: skip
    c.start(0.0)
    times = []
    for _ in range(5):
        at = c.poll_at()
        assert at is not None
        times.append(at)
        c.handle_timeout(at)
    assert times == [0.5, 1.5, 3.5, 5.5, 7.5]


# -- renewal (RFC 2131 4.4.5) -----------------------------------------------------------------


def test_renew_at_t1_is_unicast_to_the_server() -> None:
    c = client()
    lease = acquire(c)
    c.handle_timeout(1799.0)
    assert c.state is S.BOUND and sent(c) == []
    c.handle_timeout(1800.0)
    assert c.state is S.RENEWING
    [(msg, out)] = sent(c)
    assert kind_of(msg) is MessageType.REQUEST
    assert (out.src, out.dst, out.broadcast) == (ip(lease.address), SERVER_IP, False)
    assert msg.ciaddr == ip(lease.address)
    assert OptionCode.SERVER_ID not in msg.options
    assert OptionCode.REQUESTED_ADDRESS not in msg.options
    assert msg.secs == 0
    c.receive(reply(MessageType.ACK, c, lease_time=3600), 1805.0)
    assert c.state is S.BOUND
    [event] = events(c)
    assert isinstance(event, LeaseRenewed)
    assert event.lease.acquired_at == 1800.0 and event.lease.expires_at == 5400.0
    assert c.poll_at() == 3600.0


def test_renew_on_request() -> None:
    c = client()
    acquire(c)
    c.renew(100.0)
    assert c.state is S.RENEWING
    [(msg, out)] = sent(c)
    assert kind_of(msg) is MessageType.REQUEST and out.dst == SERVER_IP
    c.receive(reply(MessageType.ACK, c), 100.5)
    assert c.state is S.BOUND and c.lease is not None and c.lease.acquired_at == 100.0
    c.renew(200.0)
    c.renew(201.0)  # already renewing: nothing more
    assert len(sent(c)) == 1


def test_renewing_retransmits_after_half_the_time_to_t2() -> None:
    c = client()
    acquire(c)  # T1 1800, T2 3150, end 3600
    c.handle_timeout(1800.0)
    sent(c)
    # Half of 1350 s.
    assert c.poll_at() == 1800.0 + 675.0
    c.handle_timeout(2475.0)
    [(msg, _)] = sent(c)
    assert msg.secs == 675
    assert c.poll_at() == 2475.0 + 337.5
    c.handle_timeout(2812.5)
    sent(c)
    # 168.75 s, then the 60 s floor, never past T2.
    assert c.poll_at() == 2812.5 + 168.75
    c.handle_timeout(2981.25)
    sent(c)
    assert c.poll_at() == 2981.25 + 84.375
    c.handle_timeout(3065.625)
    sent(c)
    assert c.poll_at() == 3125.625
    c.handle_timeout(3125.625)
    sent(c)
    assert c.poll_at() == 3150.0


def test_rebind_at_t2_is_broadcast_and_expiry_ends_the_lease() -> None:
    c = client()
    lease = acquire(c)
    c.handle_timeout(1800.0)
    sent(c)
    c.handle_timeout(3150.0)
    assert c.state is S.REBINDING
    [(msg, out)] = sent(c)
    assert (out.src, out.dst, out.broadcast) == (ip(lease.address), BROADCAST, True)
    assert msg.ciaddr == ip(lease.address) and OptionCode.SERVER_ID not in msg.options
    # Half the 450 s left, then the 60 s floor, then the end of the lease.
    assert c.poll_at() == 3150.0 + 225.0
    c.handle_timeout(3375.0)
    sent(c)
    assert c.poll_at() == 3375.0 + 112.5
    c.handle_timeout(3487.5)
    sent(c)
    assert c.poll_at() == 3547.5
    c.handle_timeout(3547.5)
    sent(c)
    assert c.poll_at() == 3600.0
    c.handle_timeout(3600.0)
    [event] = events(c)
    assert event == LeaseExpired(lease)
    assert c.lease is None and c.state is S.SELECTING
    # Back to discovery, suggesting the old address (RFC 2131 4.4.1 allows it).
    [(msg, _)] = sent(c)
    assert kind_of(msg) is MessageType.DISCOVER
    assert msg.options[OptionCode.REQUESTED_ADDRESS] == ip(lease.address)


def test_rebinding_ack_from_any_server_binds() -> None:
    c = client()
    acquire(c)
    c.handle_timeout(1800.0)
    c.handle_timeout(3150.0)
    sent(c)
    c.receive(reply(MessageType.ACK, c, server_id="198.18.0.2"), 3160.0)
    assert c.state is S.BOUND and c.lease is not None and c.lease.server_id == "198.18.0.2"
    c.handle_timeout(3160.0 + 1800.0)
    [(_, out)] = sent(c)
    assert out.dst == ip("198.18.0.2")  # renewals now go to the new server


def test_renew_against_the_server_machine() -> None:
    srv = server(pools=None)
    c = client()
    wire = Wire(srv, [c])
    c.start(0.0)
    wire.advance(10_000.0)
    assert c.state is S.BOUND
    kinds = [type(e).__name__ for e in events(c)]
    assert kinds[0] == "LeaseAcquired" and set(kinds[1:]) == {"LeaseRenewed"}
    assert len(kinds) == 1 + 5  # renewed at 1800, 3600, ... 9000
    assert [lease.address for lease in srv.leases] == ["198.18.0.100"]


def test_expiry_when_the_server_goes_away() -> None:
    srv = server()
    c = client()
    wire = Wire(srv, [c])
    c.start(0.0)
    wire.run()
    wire.server_up = False
    wire.advance(3599.0)
    assert c.state is S.REBINDING and c.lease is not None
    wire.advance(3600.0)
    assert c.lease is None and c.state is S.SELECTING
    assert [type(e) for e in events(c)] == [LeaseAcquired, LeaseExpired]
    wire.server_up = True
    wire.advance(3700.0)
    assert c.state is S.BOUND and c.lease is not None and c.lease.address == "198.18.0.100"


def test_infinite_lease_has_no_timers() -> None:
    c = client()
    lease = acquire(c, lease_time=0xFFFFFFFF)
    assert lease.infinite and lease.expires_at == math.inf
    assert c.poll_at() is None


def test_t1_and_t2_options_are_honoured_when_sane() -> None:
    opts = {OptionCode.RENEWAL_TIME: encode_u32(100), OptionCode.REBINDING_TIME: encode_u32(200)}
    lease = acquire(client(), lease_time=1000, options=opts)
    assert (lease.t1, lease.t2) == (100.0, 200.0)
    bad = {OptionCode.RENEWAL_TIME: encode_u32(900), OptionCode.REBINDING_TIME: encode_u32(5000)}
    lease = acquire(client(), lease_time=1000, options=bad)
    assert (lease.t1, lease.t2) == (500.0, 875.0)


# -- NAK ---------------------------------------------------------------------------------------


def test_nak_while_requesting_restarts() -> None:
    c = client()
    c.start(0.0)
    first = sent(c)[0][0].xid
    c.receive(reply(MessageType.OFFER, c), 0.1)
    sent(c)
    c.receive(reply(MessageType.NAK, c, options={56: b"address taken"}), 0.2)
    [event] = events(c)
    assert event == LeaseLost("DHCPNAK: address taken", None)
    assert c.state is S.SELECTING
    [(msg, _)] = sent(c)
    assert kind_of(msg) is MessageType.DISCOVER and msg.xid != first
    assert OptionCode.REQUESTED_ADDRESS not in msg.options


def test_repeated_naks_slow_down() -> None:
    c = client()
    c.start(0.0)
    sent(c)
    now = 0.0
    starts = []
    for _ in range(4):
        c.receive(reply(MessageType.OFFER, c), now)
        sent(c)
        c.receive(reply(MessageType.NAK, c), now)
        at = c.poll_at()
        assert at is not None
        starts.append(at - now)
        now = at
        c.handle_timeout(now)
        assert c.state is S.SELECTING
        sent(c)
    assert starts[1:] == [4.0, 8.0, 16.0]


def test_nak_while_renewing_loses_the_lease() -> None:
    c = client()
    lease = acquire(c)
    c.handle_timeout(1800.0)
    sent(c)
    c.receive(reply(MessageType.NAK, c), 1801.0)
    [event] = events(c)
    assert event == LeaseLost("DHCPNAK", lease)
    assert c.lease is None and c.state is S.SELECTING


def test_ack_without_lease_time_is_dropped() -> None:
    c = client()
    c.start(0.0)
    sent(c)
    c.receive(reply(MessageType.OFFER, c), 0.0)
    c.receive(reply(MessageType.ACK, c, lease_time=None), 0.0)
    assert c.state is S.REQUESTING and c.drops == {"missing_lease_time": 1}


# -- INIT-REBOOT (RFC 2131 3.2, 4.3.2) --------------------------------------------------------

REMEMBERED = Lease(
    address="198.18.0.142", prefix_len=24, server_id="198.18.0.1", lease_time=3600, t1=1800,
    t2=3150, acquired_at=-100.0,
)  # fmt: skip


def test_init_reboot_ack() -> None:
    c = client()
    c.start(5.0, remembered=REMEMBERED)
    assert c.state is S.REBOOTING
    [(msg, out)] = sent(c)
    assert kind_of(msg) is MessageType.REQUEST and out.dst == BROADCAST and out.src == ZERO
    assert msg.options[OptionCode.REQUESTED_ADDRESS] == ip("198.18.0.142")
    assert OptionCode.SERVER_ID not in msg.options and msg.ciaddr == ZERO
    c.receive(reply(MessageType.ACK, c, yiaddr="198.18.0.142"), 5.1)
    assert c.state is S.BOUND
    [event] = events(c)
    assert isinstance(event, LeaseAcquired) and event.lease.address == "198.18.0.142"
    assert event.lease.acquired_at == 5.0


def test_init_reboot_nak_goes_to_discovery() -> None:
    c = client()
    c.start(0.0, remembered=REMEMBERED)
    sent(c)
    c.receive(reply(MessageType.NAK, c), 0.1)
    assert [type(e) for e in events(c)] == [LeaseLost]
    assert c.state is S.SELECTING
    [(msg, _)] = sent(c)
    assert kind_of(msg) is MessageType.DISCOVER
    assert OptionCode.REQUESTED_ADDRESS not in msg.options


def test_init_reboot_without_answer_falls_back_to_discovery() -> None:
    c = client(DhcpClientConfig(arp_probe=False, reboot_attempts=2))
    c.start(0.0, remembered=REMEMBERED)
    kinds = [kind_of(m) for m, _ in sent(c)]
    while c.state is S.REBOOTING:
        at = c.poll_at()
        assert at is not None
        c.handle_timeout(at)
        kinds += [kind_of(m) for m, _ in sent(c)]
    assert kinds == [MessageType.REQUEST, MessageType.REQUEST, MessageType.DISCOVER]
    assert c.state is S.SELECTING


def test_init_reboot_against_the_server_machine() -> None:
    srv = server()
    wire = Wire(srv, [client()])
    wire.clients[0].start(0.0, remembered=REMEMBERED)
    wire.run()
    c = wire.clients[0]
    assert c.state is S.BOUND and c.lease is not None and c.lease.address == "198.18.0.142"
    # Someone else asking for that address is refused.
    other = client(n=2)
    wire.clients.append(other)
    other.start(1.0, remembered=REMEMBERED)
    wire.run()
    assert other.lease is not None and other.lease.address == "198.18.0.100"
    assert [type(e) for e in events(other)] == [LeaseLost, LeaseAcquired]


def test_start_twice_is_refused_until_released() -> None:
    c = client()
    c.start(0.0)
    with pytest.raises(RuntimeError):
        c.start(0.0)
    c.release(1.0)
    c.start(2.0)
    assert c.state is S.SELECTING


# -- release (RFC 2131 4.4.6) ------------------------------------------------------------------


def test_release_is_unicast_from_the_address() -> None:
    c = client()
    lease = acquire(c)
    c.release(100.0)
    [(msg, out)] = sent(c)
    assert kind_of(msg) is MessageType.RELEASE
    assert (out.src, out.dst, out.broadcast) == (ip(lease.address), SERVER_IP, False)
    assert msg.ciaddr == ip(lease.address) and msg.options[OptionCode.SERVER_ID] == SERVER_IP
    assert OptionCode.REQUESTED_ADDRESS not in msg.options
    assert c.state is S.INIT and c.lease is None and c.poll_at() is None
    c.handle_timeout(10_000.0)
    assert sent(c) == []


def test_release_without_a_lease_sends_nothing() -> None:
    c = client()
    c.start(0.0)
    sent(c)
    c.release(1.0)
    assert sent(c) == [] and c.state is S.INIT


def test_release_frees_the_address_on_the_server() -> None:
    srv = server()
    c = client()
    wire = Wire(srv, [c])
    c.start(0.0)
    wire.run()
    c.release(1.0)
    wire.run()
    assert srv.leases == [] and srv.releases == 1


# -- options -----------------------------------------------------------------------------------


def test_classless_routes_mtu_and_options() -> None:
    routes = encode_classless_routes([
        (ip("0.0.0.0"), 0, ip("198.18.0.254")), (ip("10.0.0.0"), 8, ip("198.18.0.253")),
    ])  # fmt: skip
    opts = {
        OptionCode.ROUTER: ip("198.18.0.1"),
        OptionCode.CLASSLESS_STATIC_ROUTES: routes,
        OptionCode.INTERFACE_MTU: encode_u16(1400),
        OptionCode.DNS_SERVERS: ip("198.18.0.53") + ip("198.18.0.54"),
        OptionCode.DOMAIN_NAME: b"corp.test",
        42: ip("198.18.0.123"),
    }
    lease = acquire(client(), options=opts)
    assert lease.routes == (("0.0.0.0/0", "198.18.0.254"), ("10.0.0.0/8", "198.18.0.253"))
    assert lease.router == "198.18.0.1"  # informative: RFC 3442 says the routes win
    assert lease.effective_routes == lease.routes
    assert lease.mtu == 1400 and lease.domain == "corp.test"
    assert lease.dns_servers == ("198.18.0.53", "198.18.0.54")
    assert lease.options[42] == ip("198.18.0.123")


def test_effective_routes() -> None:
    on_link = encode_classless_routes([(ip("10.9.0.0"), 16, ip("0.0.0.0"))])
    lease = acquire(client(), options={OptionCode.CLASSLESS_STATIC_ROUTES: on_link})
    assert lease.effective_routes == (("10.9.0.0/16", None),)
    lease = acquire(client(), options={OptionCode.ROUTER: ip("198.18.0.1") + ip("198.18.0.2")})
    assert lease.effective_routes == (("0.0.0.0/0", "198.18.0.1"),)
    assert acquire(client()).effective_routes == ()


def test_malformed_optional_options_are_left_out() -> None:
    opts = {OptionCode.DNS_SERVERS: b"\x01\x02\x03", OptionCode.INTERFACE_MTU: encode_u16(60),
            OptionCode.CLASSLESS_STATIC_ROUTES: b"\x21"}  # fmt: skip
    c = client()
    lease = acquire(c, options=opts)
    assert lease.dns_servers == () and lease.mtu is None and lease.routes == ()
    assert c.drops == {"bad_option_6": 1, "bad_option_26": 1, "bad_option_121": 1}


def test_no_subnet_mask_means_the_natural_one() -> None:
    c = client()
    c.start(0.0)
    sent(c)
    c.receive(reply(MessageType.OFFER, c, yiaddr="10.1.2.3"), 0.0)
    ack = bytearray(reply(MessageType.ACK, c, yiaddr="10.1.2.3"))
    at = ack.index(bytes([1, 4, 255, 255, 255, 0]), 240)
    ack[at : at + 6] = bytes(6)  # six Pad options
    c.receive(bytes(ack), 0.0)
    assert c.lease is not None and c.lease.prefix_len == 8


def test_lease_round_trips_through_a_dict() -> None:
    lease = acquire(client(), options={OptionCode.DOMAIN_NAME: b"x.test"})
    again = Lease.from_dict(lease.to_dict())
    assert again == lease and again.options == lease.options
    with pytest.raises(ValueError):
        Lease.from_dict({"address": "nonsense"})


def test_config_is_checked() -> None:
    for bad in (dict(probe_num=0), dict(probe_min=3.0, probe_max=2.0), dict(hostname=""),
                dict(client_id=b"x"), dict(max_message_size=500), dict(retransmit_base=0),
                dict(requested_options=(255,))):  # fmt: skip
        with pytest.raises(ValueError):
            DhcpClientConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DhcpClient(b"\x01", NO_PROBE, random.Random())


# -- the transition table, under random server behaviour ----------------------------------


def test_transition_table_is_rfc2131_figure_5() -> None:
    assert TRANSITIONS[S.BOUND] == {S.RENEWING, S.INIT}
    assert TRANSITIONS[S.RENEWING] == {S.BOUND, S.REBINDING, S.INIT}
    assert S.BOUND not in TRANSITIONS[S.SELECTING]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["offer", "ack", "nak", "other_ack", "junk", "time", "conflict"]),
            st.floats(0.0, 5000.0),
        ),
        max_size=40,
    ),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_random_server_behaviour_keeps_the_client_consistent(
    steps: list[tuple[str, float]], remembered: bool, seed: int
) -> None:
    c = DhcpClient(bytes.fromhex("020000000001"), DhcpClientConfig(probe_wait=0.5),
                   random.Random(seed))  # fmt: skip
    now = 0.0
    c.start(now, remembered=REMEMBERED if remembered else None)
    for what, value in steps:
        if what == "time":
            now += value
            at = c.poll_at()
            if at is not None and at <= now:
                c.handle_timeout(now)
        elif what == "offer":
            c.receive(reply(MessageType.OFFER, c, lease_time=int(value) + 1), now)
        elif what == "ack":
            c.receive(reply(MessageType.ACK, c, lease_time=int(value) + 1), now)
        elif what == "nak":
            c.receive(reply(MessageType.NAK, c), now)
        elif what == "other_ack":
            c.receive(reply(MessageType.ACK, c, xid=c.xid ^ 0xFF), now)
        elif what == "junk":
            c.receive(bytes(int(value) % 400), now)
        elif what == "conflict" and c.probing is not None:
            c.probe_result(c.probing, True, now)
        sent(c)
        c.actions_to_send()
        evs = events(c)
        for e in evs:
            assert isinstance(e, (LeaseAcquired, LeaseRenewed, LeaseExpired, LeaseLost,
                                  AddressDeclined))  # fmt: skip
        # A lease exactly in the states that hold one; always something to wait for.
        assert (c.lease is not None) == (c.state in (S.BOUND, S.RENEWING, S.REBINDING))
        assert c.poll_at() is not None or (c.lease is not None and c.lease.infinite)
        if c.probing is not None:
            assert c.state in (S.REQUESTING, S.REBOOTING)
