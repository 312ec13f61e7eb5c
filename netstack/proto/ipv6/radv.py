"""The router side of neighbour discovery: Router Advertisements on chosen interfaces (RFC 4861
6.2), with prefixes for SLAAC (RFC 4862 5.5.3), the link MTU (RFC 4861 4.6.4) and DNS servers
(RDNSS, RFC 8106 5.1), so that hosts on the link configure themselves through this stack.

RFC 4861 6.2.4: an interface that starts advertising sends its first advertisements at
intervals of at most MAX_INITIAL_RTR_ADVERT_INTERVAL (16 s), MAX_INITIAL_RTR_ADVERTISEMENTS
(3) of them, then one every random interval between MinRtrAdvInterval and MaxRtrAdvInterval.
RFC 4861 6.2.6: a Router Solicitation is answered with a multicast advertisement after a
random delay of at most MAX_RA_DELAY_TIME (0.5 s), and never sooner than
MIN_DELAY_BETWEEN_RAS (3 s) after the last multicast one. RFC 4861 6.2.5: an interface that
stops advertising sends a final advertisement with a Router Lifetime of zero.
An advertisement goes from the interface's link-local address (RFC 4861 6.1.2: hosts believe
no other); until it has one (duplicate address detection), advertising waits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..layer import Layer
from ..ndp import wire as ndp
from .addressing import ALL_NODES, UNSPECIFIED

__all__ = ["AdvertConfig", "RouterAdvertiser"]

MAX_INITIAL_RTR_ADVERT_INTERVAL = 16.0
MAX_INITIAL_RTR_ADVERTISEMENTS = 3
MAX_RA_DELAY_TIME = 0.5
MIN_DELAY_BETWEEN_RAS = 3.0


class Rng(Protocol):
    def random(self) -> float: ...


class _Iface(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def mtu(self) -> int: ...

    def link_local(self) -> bytes: ...


@dataclass(slots=True)
class AdvertConfig:
    """What one interface advertises (RFC 4861 6.2.1's AdvSendAdvertisements and the rest).

    ``prefixes``: (prefix as 16 bytes, length) pairs, on-link and autonomous (SLAAC needs
    length 64, RFC 4862 5.5.3); ``dns``: RDNSS servers (16 bytes each); ``mtu``: the MTU
    option (None: none sent); ``router_lifetime``: 0 says "not a default router"."""

    prefixes: list[tuple[bytes, int]] = field(default_factory=list)
    dns: list[bytes] = field(default_factory=list)
    mtu: int | None = None
    router_lifetime: int = 1800
    cur_hop_limit: int = 64
    valid_lifetime: int = 86400
    preferred_lifetime: int = 14400
    max_interval: float = 600.0
    min_interval: float | None = None

    def check(self) -> None:
        """Raises:
        ValueError: a field out of RFC 4861 6.2.1's ranges."""
        if not 4.0 <= self.max_interval <= 1800.0:
            raise ValueError("max_interval must be 4..1800 seconds (RFC 4861 6.2.1)")
        low = self.min_interval
        if low is not None and not 3.0 <= low <= 0.75 * self.max_interval:
            raise ValueError("min_interval must be 3 s .. 0.75 * max_interval (RFC 4861 6.2.1)")
        if not (self.router_lifetime == 0 or self.max_interval <= self.router_lifetime <= 9000):
            raise ValueError("router_lifetime must be 0 or max_interval..9000 (RFC 4861 6.2.1)")
        if self.mtu is not None and self.mtu < 1280:
            raise ValueError("an IPv6 link MTU is at least 1280 (RFC 8200 5)")
        if self.preferred_lifetime > self.valid_lifetime:
            raise ValueError("preferred_lifetime exceeds valid_lifetime (RFC 4861 4.6.2)")
        for prefix, length in self.prefixes:
            if len(prefix) != 16 or not 0 <= length <= 128:
                raise ValueError("a prefix is 16 bytes and a length 0..128")
        for server in self.dns:
            if len(server) != 16:
                raise ValueError("an RDNSS server is an IPv6 address")

    @property
    def low(self) -> float:
        # RFC 4861 6.2.1 (with erratum 3154): 0.33 * Max when Max >= 9 s, else 0.75 * Max.
        if self.min_interval is not None:
            return self.min_interval
        m = self.max_interval
        return 0.33 * m if m >= 9.0 else 0.75 * m


@dataclass(slots=True)
class _State:
    iface: _Iface
    config: AdvertConfig
    mac: bytes
    next_at: float
    initial_left: int = MAX_INITIAL_RTR_ADVERTISEMENTS
    last_multicast: float | None = None
    sent: int = 0


#: send(interface index, the message with its checksum, source, destination, now)
Send = Callable[[int, bytes, bytes, bytes, float], None]


class RouterAdvertiser(Layer):
    """Router Advertisements on the interfaces given to :meth:`start`."""

    name = "radv"
    _COUNTERS = ("solicits_received", "adverts_sent")

    def __init__(self, send: Send, rng: Rng) -> None:
        super().__init__()
        self._send = send
        self._rng = rng
        self._ifaces: dict[int, _State] = {}
        self.solicits_received = 0
        self.adverts_sent = 0

    def start(self, iface: _Iface, mac: bytes, config: AdvertConfig, now: float) -> None:
        """Advertise on ``iface`` (again, with a new ``config``, if it did already): the
        first advertisement at once.

        Raises:
            ValueError: a bad ``config``.
        """
        config.check()
        self._ifaces[iface.index] = _State(iface, config, mac, now)

    def stop(self, index: int, now: float) -> None:
        """Stop advertising on interface ``index``, with a final advertisement of Router
        Lifetime zero (RFC 4861 6.2.5)."""
        state = self._ifaces.pop(index, None)
        if state is not None and state.iface.link_local() != UNSPECIFIED:
            self._advertise(state, now, lifetime=0)

    def forget(self, index: int) -> None:
        """The interface is gone: nothing more is sent on it."""
        self._ifaces.pop(index, None)

    @property
    def interfaces(self) -> list[int]:
        return list(self._ifaces)

    def receive_solicit(self, index: int, src: bytes, now: float) -> None:
        """A valid Router Solicitation on interface ``index`` (RFC 4861 6.2.6)."""
        state = self._ifaces.get(index)
        if state is None:
            return
        self.solicits_received += 1
        at = now + self._rng.random() * MAX_RA_DELAY_TIME
        if state.last_multicast is not None:
            at = max(at, state.last_multicast + MIN_DELAY_BETWEEN_RAS)
        state.next_at = min(state.next_at, at)

    def poll_at(self) -> float | None:
        # Asked after every batch of frames: a host advertises on no interface.
        at = None
        for state in self._ifaces.values():
            if at is None or state.next_at < at:
                at = state.next_at
        return at

    def handle_timeout(self, now: float) -> None:
        for state in list(self._ifaces.values()):
            if state.next_at > now:
                continue
            if state.iface.link_local() == UNSPECIFIED:
                state.next_at = now + 1.0  # its link-local address is still tentative
                continue
            self._advertise(state, now, lifetime=state.config.router_lifetime)
            config = state.config
            interval = config.low + self._rng.random() * (config.max_interval - config.low)
            state.initial_left -= 1
            if state.initial_left > 0:
                interval = min(interval, MAX_INITIAL_RTR_ADVERT_INTERVAL)
            state.next_at = now + interval

    def message(self, state: _State, lifetime: int) -> tuple[bytes, bytes]:
        """The advertisement of one interface, and the link-local source it goes from."""
        config = state.config
        src = state.iface.link_local()
        prefixes = [
            ndp.PrefixInfo(
                prefix, length, True, length == 64, config.valid_lifetime, config.preferred_lifetime
            )  # fmt: skip
            for prefix, length in config.prefixes
        ]
        # RFC 8106 5.1: a lifetime between MaxRtrAdvInterval and twice that.
        dns_lifetime = int(2 * config.max_interval)
        rdnss = [ndp.Rdnss(dns_lifetime, tuple(config.dns))] if config.dns else []
        msg = ndp.build_router_advert(
            src, ALL_NODES, cur_hop_limit=config.cur_hop_limit, router_lifetime=lifetime,
            source_mac=state.mac, mtu=config.mtu, prefixes=prefixes, rdnss=rdnss,
        )  # fmt: skip
        return msg, src

    def _advertise(self, state: _State, now: float, lifetime: int) -> None:
        msg, src = self.message(state, lifetime)
        state.last_multicast = now
        state.sent += 1
        self.adverts_sent += 1
        self._send(state.iface.index, msg, src, ALL_NODES, now)
