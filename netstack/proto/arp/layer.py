"""The ARP layer (RFC 826) over Ethernet: answers for the host's own addresses, resolves
next hops for IPv4 through the neighbour cache (:class:`~..neighbour.cache.NeighbourCache`,
shared with IPv6 neighbour discovery), announces addresses and watches for conflicts (RFC
5227), and probes addresses a host is about to take (RFC 5227 2.1, for DHCP).

Packet reception follows RFC 826's "Packet Reception" algorithm: the sender's address is
merged into an existing entry, an entry is added only when this host is the target, and a
request for one of this host's addresses is answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import ParseError
from ..ethernet.layer import EthernetLayer
from ..ethernet.wire import ETHERNET_HEADER_LEN, EtherType
from ..layer import Layer
from ..neighbour.cache import NeighbourCache, NeighbourConfig, NeighbourFailed, NeighbourResolved
from .wire import ETH_IPV4_LEN, HTYPE_ETHERNET, PTYPE_IPV4, ArpOp, ArpPacket, parse

__all__ = ["ArpLayer"]

BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ZERO_IP = b"\x00" * 4

#: RFC 5227 1.1: ANNOUNCE_NUM and ANNOUNCE_INTERVAL, DEFEND_INTERVAL.
ANNOUNCE_NUM = 2
ANNOUNCE_INTERVAL = 2.0
DEFEND_INTERVAL = 10.0

#: Called with the frames that could not be sent because ``ip`` did not answer.
FailedHandler = Callable[[bytes, list[bytearray], float], None]
#: Called with (probed address, the other host's MAC, now) on a probe conflict.
ProbeConflictHandler = Callable[[bytes, bytes, float], None]


#: EtherType.IPV4 as a plain int, for every IPv4 frame sent (a class attribute of an enum is
#: a slow lookup on Python 3.11).
_IPV4 = int(EtherType.IPV4)


class ArpLayer(Layer):
    name = "arp"
    _COUNTERS = (
        "rx_packets",
        "tx_packets",
        "requests_received",
        "replies_received",
        "requests_sent",
        "replies_sent",
        "announcements_sent",
        "conflicts",
        "probes_sent",
        "probe_conflicts",
    )

    def __init__(self, eth: EthernetLayer, config: NeighbourConfig | None = None) -> None:
        super().__init__()
        self.eth = eth
        self.cache: NeighbourCache[bytearray] = NeighbourCache(config)
        #: The IPv4 addresses this host answers for on this link (kept by the IPv4 layer).
        self.addresses: set[bytes] = set()
        self.on_failed: FailedHandler | None = None
        #: Picks the sender address for a request to a target (set by the IPv4 layer).
        self.source_selector: Callable[[bytes], bytes] | None = None
        self.rx_packets = self.tx_packets = 0
        self.requests_received = self.replies_received = 0
        self.requests_sent = self.replies_sent = self.conflicts = 0
        self.announcements_sent = 0
        self.probes_sent = self.probe_conflicts = 0
        #: Addresses being probed (RFC 5227 2.1).
        self.probing: set[bytes] = set()
        #: Who hears of a conflict for each, as :meth:`probe` was told.
        self._probe_handlers: dict[bytes, ProbeConflictHandler] = {}
        self._announcements: list[tuple[float, bytes, int]] = []
        self._last_defence: dict[bytes, float] = {}

    # -- receive ---------------------------------------------------------------------------
    def receive(
        self, data: memoryview, src_mac: bytes, group: bool, now: float, ifindex: int = 0
    ) -> None:
        try:
            pkt = parse(data)
        except ParseError as exc:
            self._drop(exc.reason, exc)
            return
        if not pkt.is_ethernet_ipv4:
            self._drop("unsupported_hardware", (pkt.htype, pkt.ptype))
            return
        if pkt.op not in (ArpOp.REQUEST, ArpOp.REPLY):
            self._drop("unknown_op", pkt.op)
            return
        self.rx_packets += 1
        if pkt.op == ArpOp.REQUEST:
            self.requests_received += 1
        else:
            self.replies_received += 1
        sha, spa, tpa = pkt.sha, pkt.spa, pkt.tpa
        if sha == self.eth.mac:
            self._drop("own_packet")
            return
        if self.probing:
            self._check_probe(pkt.op, sha, spa, tpa, now)
        if spa in self.addresses:
            self._conflict(spa, sha, now)
            return
        if sha[0] & 1 or sha == ZERO_MAC:
            self._drop("bad_sender_mac", sha.hex(":"))
            return
        for_us = tpa in self.addresses
        if spa != ZERO_IP:  # an RFC 5227 probe teaches nothing
            self.cache.update(
                spa,
                sha,
                now,
                solicited=for_us and pkt.op == ArpOp.REPLY and not group,
                create=for_us,
            )
        if for_us and pkt.op == ArpOp.REQUEST:
            self._send(ArpOp.REPLY, sha, tpa, spa, sha)
        self._flush(now)

    def _conflict(self, ip: bytes, mac: bytes, now: float) -> None:
        """Someone else uses one of our addresses (RFC 5227 2.4)."""
        self.conflicts += 1
        self._log.warning(
            "address conflict: %s is also used by %s", ".".join(map(str, ip)), mac.hex(":")
        )
        last = self._last_defence.get(ip)
        if last is None or now - last >= DEFEND_INTERVAL:
            # RFC 5227 2.4 (b): defend once with an announcement, then only record.
            self._last_defence[ip] = now
            self._announce(ip)

    def _check_probe(self, op: int, sha: bytes, spa: bytes, tpa: bytes, now: float) -> None:
        """RFC 5227 2.1.1: while probing, any ARP packet whose sender address is the probed
        one, or a probe (sender 0.0.0.0) for it from another host, is a conflict."""
        if spa in self.probing:
            ip = spa
        elif spa == ZERO_IP and op == ArpOp.REQUEST and tpa in self.probing:
            ip = tpa
        else:
            return
        self.probe_conflicts += 1
        self._log.info("probe conflict: %s is claimed by %s", ".".join(map(str, ip)), sha.hex(":"))
        handler = self._probe_handlers.get(ip)
        if handler is not None:
            handler(ip, sha, now)

    # -- probes ----------------------------------------------------------------------------
    def probe(self, ip: bytes, now: float, on_conflict: ProbeConflictHandler) -> None:
        """Send an ARP probe for ``ip`` (RFC 5227 2.1.1: a broadcast request with sender
        address 0.0.0.0 and target hardware address zero) and watch for conflicts until
        :meth:`stop_probing`: each is reported to ``on_conflict(ip, mac, now)``."""
        self.probing.add(ip)
        self._probe_handlers[ip] = on_conflict
        frame = bytearray(ETHERNET_HEADER_LEN + ETH_IPV4_LEN)
        ArpPacket(
            ArpOp.REQUEST, self.eth.mac, ZERO_IP, ZERO_MAC, ip, HTYPE_ETHERNET, PTYPE_IPV4
        ).emit_into(frame, ETHERNET_HEADER_LEN)
        self.tx_packets += 1
        self.probes_sent += 1
        self.eth.send(frame, BROADCAST, EtherType.ARP)

    def stop_probing(self, ip: bytes) -> None:
        self.probing.discard(ip)
        self._probe_handlers.pop(ip, None)

    # -- send ------------------------------------------------------------------------------
    def output(self, frame: bytearray, next_hop: bytes, now: float) -> None:
        """Send an IPv4 frame (Ethernet header left blank) to ``next_hop`` on this link."""
        mac = self.cache.resolve(next_hop, frame, now)
        if mac is not None:
            self.eth.send(frame, mac, _IPV4)
        else:
            self._flush(now)

    def announce(self, ip: bytes, now: float) -> None:
        """Announce a new address with gratuitous ARP (RFC 5227 2.3), ANNOUNCE_NUM times."""
        self._announce(ip)
        if ANNOUNCE_NUM > 1:
            self._announcements.append((now + ANNOUNCE_INTERVAL, ip, ANNOUNCE_NUM - 1))

    @property
    def announcing(self) -> bool:
        """Announcements of a new address are still to be repeated."""
        return bool(self._announcements)

    def _announce(self, ip: bytes) -> None:
        # An ARP request with sender and target address both the announced one (RFC 5227 3).
        self.announcements_sent += 1
        self._send(ArpOp.REQUEST, BROADCAST, ip, ip, ZERO_MAC)

    def _send(self, op: int, dst_mac: bytes, spa: bytes, tpa: bytes, tha: bytes) -> None:
        frame = bytearray(ETHERNET_HEADER_LEN + ETH_IPV4_LEN)
        ArpPacket(op, self.eth.mac, spa, tha, tpa, HTYPE_ETHERNET, PTYPE_IPV4).emit_into(
            frame, ETHERNET_HEADER_LEN
        )
        self.tx_packets += 1
        if op == ArpOp.REPLY:
            self.replies_sent += 1
        elif spa != tpa:
            self.requests_sent += 1
        self.eth.send(frame, dst_mac, EtherType.ARP)

    def _source_for(self, target: bytes) -> bytes:
        """Our address on the target's subnet (chosen by the IPv4 layer)."""
        return self.source_selector(target) if self.source_selector else ZERO_IP

    def _flush(self, now: float) -> None:
        cache = self.cache
        for target, mac in cache.requests_to_send():
            spa = self._source_for(target)
            self._send(ArpOp.REQUEST, mac or BROADCAST, spa, target, ZERO_MAC)
        while (event := cache.next_event()) is not None:
            if isinstance(event, NeighbourResolved):
                for frame in event.packets:
                    self.eth.send(frame, event.mac, EtherType.IPV4)
            elif isinstance(event, NeighbourFailed):
                self._log.debug("no answer from %s", ".".join(map(str, event.ip)))
                if self.on_failed is not None and event.packets:
                    self.on_failed(event.ip, event.packets, now)

    # -- time ------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        at = self.cache.poll_at()
        if self._announcements:
            first = min(a[0] for a in self._announcements)
            at = first if at is None else min(at, first)
        return at

    def handle_timeout(self, now: float) -> None:
        self.cache.handle_timeout(now)
        if self._announcements:
            due = [a for a in self._announcements if a[0] <= now]
            self._announcements = [a for a in self._announcements if a[0] > now]
            for _, ip, left in due:
                if ip in self.addresses:
                    self._announce(ip)
                    if left > 1:
                        self._announcements.append((now + ANNOUNCE_INTERVAL, ip, left - 1))
        self._flush(now)

    def reset_stats(self) -> None:
        super().reset_stats()
        self.cache.drops.clear()

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["entries"] = len(self.cache)
        out["pending_packets"] = self.cache.pending_packets
        drops = out["drops"]
        for reason, n in self.cache.drops.items():
            drops[reason] = drops.get(reason, 0) + n
        return out
