"""RFC 826 packet reception and RFC 5227 announcements/conflicts, through ArpLayer over an
EthernetLayer whose transmit records the frames it is given (no event loop, time as a float)."""

from __future__ import annotations

import logging
import random
import struct

import pytest

from netstack.proto.arp.layer import ArpLayer
from netstack.proto.ethernet.layer import EthernetLayer
from netstack.proto.ethernet.wire import EtherType
from netstack.proto.neighbour.cache import NeighbourConfig, NeighbourState

OUR_MAC = bytes.fromhex("020000000001")
OUR_IP = bytes([198, 18, 0, 1])
PEER_MAC = bytes.fromhex("020000000002")
PEER_IP = bytes([198, 18, 0, 2])
OTHER_MAC = bytes.fromhex("020000000003")
OTHER_IP = bytes([198, 18, 0, 3])
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ZERO_IP = b"\x00" * 4

REQUEST, REPLY = 1, 2


def arp_body(
    op: int,
    sha: bytes,
    spa: bytes,
    tha: bytes,
    tpa: bytes,
    *,
    htype: int = 1,
    ptype: int = 0x0800,
) -> bytes:
    return struct.pack("!HHBBH", htype, ptype, len(sha), len(spa), op) + sha + spa + tha + tpa


def frame(body: bytes, *, dst: bytes = BROADCAST, src: bytes = PEER_MAC) -> bytes:
    return dst + src + b"\x08\x06" + body


def arp_frame(
    op: int,
    sha: bytes,
    spa: bytes,
    tha: bytes,
    tpa: bytes,
    *,
    dst: bytes = BROADCAST,
    src: bytes | None = None,
) -> bytes:
    return frame(arp_body(op, sha, spa, tha, tpa), dst=dst, src=src if src is not None else sha)


class Host:
    """An ArpLayer over an EthernetLayer with a recording transmit."""

    def __init__(self, config: NeighbourConfig | None = None) -> None:
        self.sent: list[bytes] = []
        self.eth = EthernetLayer(OUR_MAC, transmit=lambda f: self.sent.append(bytes(f)))
        self.arp = ArpLayer(self.eth, config)
        self.eth.handlers[EtherType.ARP] = self.arp.receive
        self.arp.addresses.add(OUR_IP)
        self.arp.source_selector = lambda target: OUR_IP

    def feed(self, data: bytes, now: float = 0.0) -> None:
        self.eth.receive(memoryview(data), now)

    def take(self) -> list[bytes]:
        out, self.sent = self.sent, []
        return out

    def drops(self) -> dict[str, int]:
        return self.arp.stats()["drops"]


@pytest.fixture
def host() -> Host:
    return Host()


def announcement(ip: bytes) -> bytes:
    """RFC 5227 3: a broadcast ARP request with sender and target address both ``ip``."""
    return arp_frame(REQUEST, OUR_MAC, ip, ZERO_MAC, ip, dst=BROADCAST)


# -- requests for our address -----------------------------------------------------------------


def test_request_for_our_address_is_answered(host: Host) -> None:
    host.feed(arp_frame(REQUEST, PEER_MAC, PEER_IP, ZERO_MAC, OUR_IP), 1.0)
    # The reply, byte for byte: unicast back to the asker, our MAC and IP as sender, the
    # asker's as target.
    expected = bytes.fromhex(
        "020000000002"  # Ethernet destination: the requester
        "020000000001"  # Ethernet source: us
        "0806"  # ARP
        "0001" "0800" "06" "04" "0002"  # Ethernet/IPv4, reply
        "020000000001" "c6120001"  # sender: us
        "020000000002" "c6120002"  # target: the requester
    )  # fmt: skip
    assert host.take() == [expected]
    stats = host.arp.stats()
    assert stats["requests_received"] == 1
    assert stats["replies_sent"] == 1
    assert stats["rx_packets"] == 1
    assert stats["drops"] == {}
    # RFC 826: being the target, we add the sender (unconfirmed, so STALE).
    assert host.arp.cache.entries() == [(PEER_IP, PEER_MAC, NeighbourState.STALE)]


def test_padded_request_is_answered(host: Host) -> None:
    padded = arp_frame(REQUEST, PEER_MAC, PEER_IP, ZERO_MAC, OUR_IP) + bytes(18)
    assert len(padded) == 60  # Ethernet minimum frame without FCS
    host.feed(padded)
    [reply] = host.take()
    assert len(reply) == 42
    assert reply[20:22] == b"\x00\x02"


def test_request_from_a_probe_is_answered_but_teaches_nothing(host: Host) -> None:
    # RFC 5227 2.1.1: a probe has sender IP 0.0.0.0; we answer so the prober sees the
    # address is taken, and we learn no entry for 0.0.0.0.
    host.feed(arp_frame(REQUEST, PEER_MAC, ZERO_IP, ZERO_MAC, OUR_IP))
    [reply] = host.take()
    assert reply[:6] == PEER_MAC
    assert reply[28:32] == OUR_IP and reply[32:38] == PEER_MAC and reply[38:42] == ZERO_IP
    assert len(host.arp.cache) == 0


def test_request_unicast_to_another_mac_is_filtered_by_ethernet(host: Host) -> None:
    host.feed(arp_frame(REQUEST, PEER_MAC, PEER_IP, ZERO_MAC, OUR_IP, dst=OTHER_MAC))
    assert host.take() == []
    assert host.eth.stats()["drops"] == {"not_for_us": 1}
    assert len(host.arp.cache) == 0


# -- the merge rule ----------------------------------------------------------------------------


def test_request_for_another_address_is_not_answered_and_adds_nothing(host: Host) -> None:
    host.feed(arp_frame(REQUEST, PEER_MAC, PEER_IP, ZERO_MAC, OTHER_IP))
    assert host.take() == []
    assert PEER_IP not in host.arp.cache
    assert len(host.arp.cache) == 0
    assert host.arp.stats()["requests_received"] == 1
    assert host.arp.stats()["replies_sent"] == 0


def test_request_for_another_address_updates_an_existing_entry(host: Host) -> None:
    host.arp.cache.add_static(PEER_IP, PEER_MAC, 0.0)
    new_mac = bytes.fromhex("02000000aa02")
    host.feed(arp_frame(REQUEST, new_mac, PEER_IP, ZERO_MAC, OTHER_IP), 1.0)
    assert host.take() == []
    # RFC 826: "If the pair <protocol type, sender protocol address> is already in my
    # translation table, update the sender hardware address field".
    assert host.arp.cache.entries() == [(PEER_IP, new_mac, NeighbourState.STALE)]


def test_overheard_request_resolves_an_incomplete_entry(host: Host) -> None:
    packet = bytearray(64)
    host.arp.output(packet, PEER_IP, 0.0)
    [request] = host.take()
    assert request[:6] == BROADCAST
    host.feed(arp_frame(REQUEST, PEER_MAC, PEER_IP, ZERO_MAC, OTHER_IP), 0.5)
    [released] = host.take()
    assert released[:6] == PEER_MAC and released[6:12] == OUR_MAC
    assert released[12:14] == b"\x08\x00"
    assert host.arp.cache.state(PEER_IP) is NeighbourState.STALE


def test_gratuitous_arp_updates_existing_entry_only(host: Host) -> None:
    host.arp.cache.add_static(PEER_IP, PEER_MAC, 0.0)
    moved = bytes.fromhex("0200000000b2")
    host.feed(arp_frame(REQUEST, moved, PEER_IP, ZERO_MAC, PEER_IP), 1.0)
    assert host.arp.cache.entries() == [(PEER_IP, moved, NeighbourState.STALE)]
    # The reply form of gratuitous ARP too.
    again = bytes.fromhex("0200000000c2")
    host.feed(arp_frame(REPLY, again, PEER_IP, BROADCAST, PEER_IP), 2.0)
    assert host.arp.cache.entries() == [(PEER_IP, again, NeighbourState.STALE)]
    # An announcement from a host we do not know creates nothing.
    host.feed(arp_frame(REQUEST, OTHER_MAC, OTHER_IP, ZERO_MAC, OTHER_IP), 3.0)
    assert OTHER_IP not in host.arp.cache
    assert host.take() == []


# -- resolution through the layer --------------------------------------------------------------


def test_output_resolves_then_sends_queued_frames(host: Host) -> None:
    first, second = bytearray(60), bytearray(70)
    first[14:18] = b"one!"
    second[14:18] = b"two!"
    host.arp.output(first, PEER_IP, 0.0)
    host.arp.output(second, PEER_IP, 0.1)
    [request] = host.take()  # one request for both
    assert request == arp_frame(REQUEST, OUR_MAC, OUR_IP, ZERO_MAC, PEER_IP, dst=BROADCAST)
    host.feed(arp_frame(REPLY, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP, dst=OUR_MAC), 0.2)
    sent = host.take()
    assert [f[14:18] for f in sent] == [b"one!", b"two!"]
    assert all(f[:6] == PEER_MAC and f[12:14] == b"\x08\x00" for f in sent)
    assert host.arp.cache.state(PEER_IP) is NeighbourState.REACHABLE
    # Known now: sent at once.
    third = bytearray(60)
    host.arp.output(third, PEER_IP, 0.3)
    assert [f[:6] for f in host.take()] == [PEER_MAC]


def test_reply_to_broadcast_is_not_taken_as_confirmation(host: Host) -> None:
    host.arp.output(bytearray(60), PEER_IP, 0.0)
    host.take()
    host.feed(arp_frame(REPLY, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP, dst=BROADCAST), 0.2)
    assert len(host.take()) == 1
    assert host.arp.cache.state(PEER_IP) is NeighbourState.STALE


def test_on_failed_after_max_requests() -> None:
    host = Host(NeighbourConfig(max_requests=3, retrans_time=1.0))
    failures: list[tuple[bytes, list[bytearray], float]] = []
    host.arp.on_failed = lambda ip, frames, now: failures.append((ip, frames, now))
    packet = bytearray(60)
    packet[14:18] = b"lost"
    host.arp.output(packet, PEER_IP, 0.0)
    now = 0.0
    while (deadline := host.arp.poll_at()) is not None:
        assert deadline > now
        now = deadline
        host.arp.handle_timeout(now)
    sent = host.take()
    assert sent == [arp_frame(REQUEST, OUR_MAC, OUR_IP, ZERO_MAC, PEER_IP)] * 3
    assert len(failures) == 1
    ip, frames, when = failures[0]
    assert ip == PEER_IP and when == now == 3.0
    assert [bytes(f[14:18]) for f in frames] == [b"lost"]
    assert host.arp.stats()["drops"]["unresolved"] == 1
    assert host.arp.stats()["requests_sent"] == 3


def test_pending_queue_bound_through_the_layer() -> None:
    host = Host(NeighbourConfig(pending_per_entry=2))
    for i in range(4):
        packet = bytearray(60)
        packet[14] = i
        host.arp.output(packet, PEER_IP, 0.0)
    assert len(host.take()) == 1  # the request
    assert host.arp.stats()["pending_packets"] == 2
    host.feed(arp_frame(REPLY, PEER_MAC, PEER_IP, OUR_MAC, OUR_IP, dst=OUR_MAC), 0.5)
    assert [f[14] for f in host.take()] == [2, 3]  # the oldest went first
    assert host.arp.stats()["drops"]["queue_full"] == 2


# -- RFC 5227: announcements and conflicts -----------------------------------------------------


def test_announce_twice_two_seconds_apart(host: Host) -> None:
    new_ip = bytes([198, 18, 0, 9])
    host.arp.addresses.add(new_ip)
    host.arp.announce(new_ip, 10.0)
    assert host.take() == [announcement(new_ip)]
    assert host.arp.poll_at() == 12.0
    host.arp.handle_timeout(11.9)
    assert host.take() == []
    host.arp.handle_timeout(12.0)
    assert host.take() == [announcement(new_ip)]
    assert host.arp.poll_at() is None  # ANNOUNCE_NUM is 2: done
    host.arp.handle_timeout(30.0)
    assert host.take() == []
    stats = host.arp.stats()
    assert stats["announcements_sent"] == 2
    assert stats["requests_sent"] == 0  # announcements are not counted as requests


def test_announcement_stops_when_the_address_is_removed(host: Host) -> None:
    new_ip = bytes([198, 18, 0, 9])
    host.arp.addresses.add(new_ip)
    host.arp.announce(new_ip, 0.0)
    host.take()
    host.arp.addresses.discard(new_ip)
    host.arp.handle_timeout(2.0)
    assert host.take() == []


def test_conflict_is_counted_logged_and_defended_once_per_interval(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="netstack.arp")
    intruder = arp_frame(REQUEST, OTHER_MAC, OUR_IP, ZERO_MAC, OUR_IP)
    host.feed(intruder, 100.0)
    assert host.take() == [announcement(OUR_IP)]
    assert host.arp.stats()["conflicts"] == 1
    assert any(
        r.levelno == logging.WARNING and "198.18.0.1" in r.getMessage() for r in caplog.records
    )
    # Within DEFEND_INTERVAL (10 s): recorded, not defended again.
    host.feed(intruder, 105.0)
    host.feed(arp_frame(REPLY, OTHER_MAC, OUR_IP, OUR_MAC, OUR_IP, dst=OUR_MAC), 109.9)
    assert host.take() == []
    assert host.arp.stats()["conflicts"] == 3
    host.feed(intruder, 110.0)
    assert host.take() == [announcement(OUR_IP)]
    assert host.arp.stats()["conflicts"] == 4
    # The intruder's claim never enters the cache.
    assert OUR_IP not in host.arp.cache


def test_our_own_packet_echoed_back_is_not_a_conflict(host: Host) -> None:
    host.feed(announcement(OUR_IP), 1.0)  # e.g. looped back by a hub
    assert host.take() == []
    assert host.arp.stats()["conflicts"] == 0
    assert host.drops() == {"own_packet": 1}


# -- malformed input ---------------------------------------------------------------------------

GOOD = arp_body(REQUEST, PEER_MAC, PEER_IP, ZERO_MAC, OUR_IP)
UNSUPPORTED = "unsupported_hardware"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "truncated"),
        (GOOD[:7], "truncated"),
        (GOOD[:27], "truncated"),
        (struct.pack("!HHBBH", 1, 0x0800, 200, 200, 1) + bytes(30), "truncated"),
        (arp_body(REQUEST, PEER_MAC, PEER_IP, ZERO_MAC, OUR_IP, htype=6), UNSUPPORTED),
        (arp_body(REQUEST, PEER_MAC, PEER_IP, ZERO_MAC, OUR_IP, ptype=0x86DD), UNSUPPORTED),
        (arp_body(REQUEST, PEER_MAC + b"\x00\x00", PEER_IP, bytes(8), OUR_IP), UNSUPPORTED),
        (arp_body(REQUEST, PEER_MAC, bytes(16), ZERO_MAC, bytes(16)), UNSUPPORTED),
        (arp_body(0, PEER_MAC, PEER_IP, ZERO_MAC, OUR_IP), "unknown_op"),
        (arp_body(3, PEER_MAC, PEER_IP, ZERO_MAC, OUR_IP), "unknown_op"),  # RARP request
        (arp_body(0xFFFF, PEER_MAC, PEER_IP, ZERO_MAC, OUR_IP), "unknown_op"),
    ],
)
def test_malformed_arp_is_a_counted_drop(host: Host, body: bytes, reason: str) -> None:
    host.feed(frame(body))
    assert host.take() == []
    assert host.drops() == {reason: 1}
    assert host.arp.stats()["rx_packets"] == 0
    assert len(host.arp.cache) == 0


@pytest.mark.parametrize(
    "sha",
    [
        ZERO_MAC,
        BROADCAST,
        bytes.fromhex("01005e000001"),  # IPv4 multicast
        bytes.fromhex("333300000001"),  # IPv6 multicast
    ],
)
def test_group_or_zero_sender_mac_is_dropped(host: Host, sha: bytes) -> None:
    host.arp.cache.add_static(PEER_IP, PEER_MAC, 0.0)
    # Addressed to us, from an address we know: neither answered, learnt nor merged.
    host.feed(frame(arp_body(REQUEST, sha, PEER_IP, ZERO_MAC, OUR_IP), src=PEER_MAC), 1.0)
    assert host.take() == []
    assert host.drops() == {"bad_sender_mac": 1}
    assert host.arp.cache.entries() == [(PEER_IP, PEER_MAC, NeighbourState.REACHABLE)]


def test_garbage_never_raises(host: Host) -> None:
    rng = random.Random(826)
    for n in range(2000):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
        if n % 2:  # keep the Ethernet/IPv4 prefix half the time, to reach deeper checks
            body = GOOD[:8] + body
        host.feed(frame(body), float(n))
    host.arp.handle_timeout(1e6)
    stats = host.arp.stats()
    assert sum(stats["drops"].values()) > 0
    assert len(host.arp.cache) <= host.arp.cache.config.max_entries


def test_reset_stats_clears_every_counter() -> None:
    host = Host(NeighbourConfig(pending_per_entry=1))
    host.arp.output(bytearray(60), PEER_IP, 0.0)
    host.arp.output(bytearray(60), PEER_IP, 0.0)  # the cache drops the first one
    host.feed(frame(b"\x00"))  # the layer drops a truncated packet
    assert host.drops() == {"queue_full": 1, "truncated": 1}
    host.arp.reset_stats()
    stats = host.arp.stats()
    assert stats["tx_packets"] == 0 and stats["requests_sent"] == 0
    # Drops counted by the cache are part of the layer's stats, so they are reset too.
    assert stats["drops"] == {}
    # The cache itself is state, not a counter: the entry and its packet are still there.
    assert stats["entries"] == 1 and stats["pending_packets"] == 1
