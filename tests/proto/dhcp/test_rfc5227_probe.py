"""The check of an offered address before use (RFC 2131 3.1 step 5, RFC 5227 2.1): the client
machine's probe schedule and DECLINE, and the ARP layer's probe facility that a driver uses."""

from __future__ import annotations

import random
import struct

from dhcp_harness import (
    BROADCAST,
    QUICK_PROBE,
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

from netstack.proto.arp.layer import ArpLayer
from netstack.proto.dhcp.client import (
    AddressDeclined,
    DhcpClient,
    DhcpClientConfig,
    DhcpState,
    LeaseAcquired,
    ProbeAddress,
)
from netstack.proto.dhcp.wire import MessageType, OptionCode
from netstack.proto.ethernet.layer import EthernetLayer
from netstack.proto.ethernet.wire import EtherType

S = DhcpState
RFC5227 = DhcpClientConfig()  # PROBE_WAIT 1, PROBE_NUM 3, PROBE_MIN 1, PROBE_MAX 2, ANNOUNCE_WAIT 2


def ack_to_probe(c: DhcpClient, now: float = 0.0) -> None:
    c.start(now)
    sent(c)
    c.receive(reply(MessageType.OFFER, c), now)
    sent(c)
    c.receive(reply(MessageType.ACK, c), now)


def test_probe_schedule_follows_rfc5227() -> None:
    for seed in range(20):
        c = DhcpClient(bytes.fromhex("020000000001"), RFC5227, random.Random(seed))
        ack_to_probe(c)
        assert c.state is S.REQUESTING and c.probing == ip("198.18.0.100") and c.lease is None
        probe_times = []
        while c.state is S.REQUESTING:
            at = c.poll_at()
            assert at is not None
            c.handle_timeout(at)
            actions = c.actions_to_send()
            if actions:
                assert actions == [ProbeAddress(ip("198.18.0.100"))]
                probe_times.append(at)
        bound_at = at
        # A random 0..PROBE_WAIT, then PROBE_NUM probes PROBE_MIN..PROBE_MAX apart, then
        # ANNOUNCE_WAIT without a conflict.
        assert len(probe_times) == 3
        assert 0.0 <= probe_times[0] <= 1.0
        for a, b in zip(probe_times, probe_times[1:], strict=False):
            assert 1.0 <= b - a <= 2.0
        assert bound_at == probe_times[-1] + 2.0
        assert c.state is S.BOUND and c.probing is None
        assert [type(e) for e in events(c)] == [LeaseAcquired]
        assert sent(c) == []  # nothing on the wire but the probes (the driver's)


def test_conflict_declines_and_restarts_ten_seconds_later() -> None:
    c = client(QUICK_PROBE)
    ack_to_probe(c, 5.0)
    at = c.poll_at()
    assert at is not None
    c.handle_timeout(at)
    assert c.actions_to_send() == [ProbeAddress(ip("198.18.0.100"))]
    c.probe_result(ip("198.18.0.100"), True, at + 0.05)
    [(msg, out)] = sent(c)
    # RFC 2131 table 5: DECLINE: Requested IP Address and Server Identifier, ciaddr 0,
    # broadcast from 0.0.0.0.
    assert kind_of(msg) is MessageType.DECLINE
    assert (out.src, out.dst, out.broadcast) == (ZERO, BROADCAST, True)
    assert msg.options[OptionCode.REQUESTED_ADDRESS] == ip("198.18.0.100")
    assert msg.options[OptionCode.SERVER_ID] == SERVER_IP
    assert msg.ciaddr == ZERO and OptionCode.PARAMETER_REQUEST_LIST not in msg.options
    assert events(c) == [AddressDeclined("198.18.0.100")]
    assert c.state is S.INIT and c.lease is None and c.probing is None
    assert c.poll_at() == at + 0.05 + 10.0
    c.handle_timeout(at + 0.05 + 10.0)
    [(msg, _)] = sent(c)
    assert kind_of(msg) is MessageType.DISCOVER and c.state is S.SELECTING
    # The declined address is not suggested again.
    assert OptionCode.REQUESTED_ADDRESS not in msg.options
    assert c.declines_sent == 1 and c.conflicts == 1


def test_no_conflict_reported_binds_at_once() -> None:
    c = client(QUICK_PROBE)
    ack_to_probe(c)
    c.probe_result(ip("198.18.0.100"), False, 0.05)
    assert c.state is S.BOUND


def test_stale_probe_results_are_dropped() -> None:
    c = client(QUICK_PROBE)
    c.probe_result(ip("198.18.0.100"), True, 0.0)
    ack_to_probe(c)
    c.probe_result(ip("198.18.0.7"), True, 0.0)
    assert c.state is S.REQUESTING
    assert c.drops == {"probe_result_unexpected": 2}


def test_acks_while_probing_are_ignored() -> None:
    c = client(QUICK_PROBE)
    ack_to_probe(c)
    c.receive(reply(MessageType.ACK, c), 0.01)
    c.receive(reply(MessageType.NAK, c), 0.01)
    assert c.probing is not None and c.drops == {"unexpected_ack": 1, "unexpected_nak": 1}


def test_server_never_offers_a_declined_address_again() -> None:
    srv = server()
    c = client(QUICK_PROBE)
    wire = Wire(srv, [c], in_use={ip("198.18.0.100")})
    c.start(0.0)
    wire.advance(60.0)
    assert c.state is S.BOUND and c.lease is not None and c.lease.address == "198.18.0.101"
    assert [type(e) for e in events(c)] == [AddressDeclined, LeaseAcquired]
    assert srv.declines == 1
    # Another client is not offered the declined address either.
    other = client(QUICK_PROBE, n=2)
    wire.clients.append(other)
    other.start(wire.now)
    wire.advance(wire.now + 60.0)
    assert other.lease is not None and other.lease.address == "198.18.0.102"


def test_max_conflicts_slows_attempts_to_one_a_minute() -> None:
    # RFC 5227 2.1.1: after MAX_CONFLICTS (10) conflicts, at most one attempt a minute.
    srv = server()
    c = client(QUICK_PROBE)
    taken = {ip(f"198.18.0.{n}") for n in range(100, 200)}
    wire = Wire(srv, [c], in_use=taken)
    c.start(0.0)
    wire.advance(10 * 11.0)
    assert c.declines_sent == 10
    declines = [t for t, m in wire.sent_by_clients(MessageType.DECLINE)]
    wire.advance(declines[-1] + 59.0)
    assert c.declines_sent == 10
    wire.advance(declines[-1] + 65.0)
    assert c.declines_sent == 11


# -- the ARP layer's probe facility ----------------------------------------------------------

OUR_MAC = bytes.fromhex("020000000001")
OTHER_MAC = bytes.fromhex("020000000002")
PROBED = ip("198.18.0.100")


class ArpHost:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.eth = EthernetLayer(OUR_MAC, transmit=lambda f: self.sent.append(bytes(f)))
        self.arp = ArpLayer(self.eth)
        self.eth.handlers[EtherType.ARP] = self.arp.receive
        self.conflicts: list[tuple[bytes, bytes, float]] = []

    def probe(self, ip_: bytes, now: float) -> None:
        self.arp.probe(ip_, now, lambda ip_, mac_, now: self.conflicts.append((ip_, mac_, now)))

    def feed(self, op: int, sha: bytes, spa: bytes, tpa: bytes, now: float = 1.0) -> None:
        body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + spa + bytes(6) + tpa
        self.eth.receive(memoryview(b"\xff" * 6 + sha + b"\x08\x06" + body), now)


def test_probe_frame_is_rfc5227() -> None:
    host = ArpHost()
    host.probe(PROBED, 0.0)
    [frame] = host.sent
    assert frame == (
        b"\xff" * 6 + OUR_MAC + b"\x08\x06"
        + bytes.fromhex("0001 0800 06 04 0001") + OUR_MAC + ZERO + bytes(6) + PROBED
    )  # fmt: skip
    stats = host.arp.stats()
    assert stats["probes_sent"] == 1 and stats["requests_sent"] == 0
    assert host.arp.probing == {PROBED}


def test_reply_from_the_probed_address_is_a_conflict() -> None:
    host = ArpHost()
    host.probe(PROBED, 0.0)
    host.feed(2, OTHER_MAC, PROBED, ZERO)
    assert host.conflicts == [(PROBED, OTHER_MAC, 1.0)]


def test_another_hosts_probe_is_a_conflict() -> None:
    host = ArpHost()
    host.probe(PROBED, 0.0)
    host.feed(1, OTHER_MAC, ZERO, PROBED)
    assert host.conflicts == [(PROBED, OTHER_MAC, 1.0)]
    assert host.arp.stats()["probe_conflicts"] == 1


def test_unrelated_packets_and_our_own_probe_are_not_conflicts() -> None:
    host = ArpHost()
    host.probe(PROBED, 0.0)
    host.feed(1, OUR_MAC, ZERO, PROBED)  # our own probe, looped back
    host.feed(1, OTHER_MAC, ip("198.18.0.5"), ip("198.18.0.6"))
    host.feed(1, OTHER_MAC, ip("198.18.0.5"), PROBED)  # someone asking for it: no owner
    assert host.conflicts == []


def test_no_conflicts_once_probing_stopped() -> None:
    host = ArpHost()
    host.probe(PROBED, 0.0)
    host.arp.stop_probing(PROBED)
    host.feed(2, OTHER_MAC, PROBED, ZERO)
    assert host.conflicts == [] and host.arp.probing == set()


def test_each_probe_reports_to_its_own_handler() -> None:
    # Two probes at once (two clients on one link, say): no single slot to overwrite.
    host = ArpHost()
    other = ip("198.18.0.101")
    heard: list[bytes] = []
    host.probe(PROBED, 0.0)
    host.arp.probe(other, 0.0, lambda ip_, mac_, now: heard.append(ip_))
    host.feed(2, OTHER_MAC, other, ZERO)
    host.feed(2, OTHER_MAC, PROBED, ZERO)
    assert heard == [other]
    assert host.conflicts == [(PROBED, OTHER_MAC, 1.0)]
    host.arp.stop_probing(other)
    host.feed(2, OTHER_MAC, other, ZERO)
    assert heard == [other] and host.arp.probing == {PROBED}
