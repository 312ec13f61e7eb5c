"""Routes, for IPv4 and IPv6 alike: the route one datagram takes (:class:`OutRoute`), and the
table of configured routes each family's layer keeps (:class:`RouteTable`).

A route names its interface (:attr:`OutRoute.iface`), the per-interface object of the family's
layer, which offers what the transports need to send along it without asking which family it
is: the bytes of headers in front of a transport header (``headroom``) and the family layer's
``output`` (bound once, when the interface was made: the route carries the send function, as
a Linux ``dst_entry`` carries its ``output``).

:class:`InterfaceTable` keeps a family layer's per-interface objects by index.

The table orders its entries by longest prefix, then lowest metric, then on-link before via a
gateway, then the order they were added (RFC 1812 5.2.4.3's "longest match", with the metric
as the tie-break among equally specific routes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

__all__ = ["InterfaceTable", "OutRoute", "Output", "RouteInterface", "RouteTable", "TableEntry"]


class Output(Protocol):
    """A family layer's ``output``: send the transport message at the frame's headroom."""

    def __call__(
        self, frame: bytearray, route: Any, proto: int, now: float, *, df: bool = ...
    ) -> None: ...


class RouteInterface(Protocol):
    """What a route tells of the interface it leaves by."""

    @property
    def index(self) -> int: ...

    @property
    def headroom(self) -> int: ...

    @property
    def mtu(self) -> int: ...

    @property
    def output(self) -> Output: ...


_I = TypeVar("_I", bound=RouteInterface)


class OutRoute(NamedTuple, Generic[_I]):
    """Where a datagram to ``dst`` goes: from ``src`` via ``next_hop`` out of ``iface``;
    ``mac`` is set for broadcast and multicast destinations, ``local`` for this host's own
    addresses. ``iface`` is None only in a route made by hand (the layer then sends by its
    first interface)."""

    src: bytes
    dst: bytes
    next_hop: bytes
    mac: bytes | None = None
    local: bool = False
    iface: _I | None = None


@dataclass(slots=True)
class TableEntry:
    """One configured route: ``net``/``prefix`` (the network as an integer, and its mask)
    via ``gateway`` (None: on-link) out of interface ``ifindex`` (None: the interface on whose
    network the gateway, or for an on-link route the destination, lies, found at lookup);
    ``source`` is the address a connected route was made for."""

    net: int
    mask: int
    prefix: int
    gateway: bytes | None
    ifindex: int | None
    metric: int = 0
    source: bytes | None = None


class RouteTable:
    """The configured routes of one family, best first."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self._entries: list[TableEntry] = []

    def mask(self, prefix: int) -> int:
        full = (1 << self.bits) - 1
        return full ^ ((1 << (self.bits - prefix)) - 1)

    def add(
        self,
        net: int,
        prefix: int,
        gateway: bytes | None,
        ifindex: int | None,
        metric: int = 0,
        source: bytes | None = None,
    ) -> TableEntry:
        mask = self.mask(prefix)
        entry = TableEntry(net & mask, mask, prefix, gateway, ifindex, metric, source)
        self._entries.append(entry)
        # A stable sort: equal routes stay in the order they were added.
        self._entries.sort(key=lambda e: (-e.prefix, e.metric, e.gateway is not None))
        return entry

    def remove(
        self, net: int, prefix: int, gateway: bytes | None, ifindex: int | None = None
    ) -> int:
        """Remove the routes to ``net``/``prefix`` via ``gateway`` (and out of ``ifindex``
        when given); returns how many went."""
        before = len(self._entries)
        self._entries = [
            e
            for e in self._entries
            if not (
                e.net == net
                and e.prefix == prefix
                and e.gateway == gateway
                and (ifindex is None or e.ifindex == ifindex)
            )
        ]
        return before - len(self._entries)

    def remove_where(self, doomed: Callable[[TableEntry], bool]) -> None:
        """Remove every entry ``doomed`` says so of."""
        self._entries = [e for e in self._entries if not doomed(e)]

    def matches(self, d: int) -> Iterator[TableEntry]:
        """The entries whose network holds the address ``d``, best first."""
        for e in self._entries:
            if d & e.mask == e.net:
                yield e

    def __iter__(self) -> Iterator[TableEntry]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


_T = TypeVar("_T")


class InterfaceTable(dict[int, _T], Generic[_T]):
    """A family layer's per-interface objects by interface index. :attr:`by_index` finds
    them too, and the first one under 0 (no interface named); :attr:`first` is the first
    attached that is still there."""

    def __init__(self, family: str) -> None:
        super().__init__()
        self.family = family
        self.by_index: dict[int, _T] = {}

    @property
    def first(self) -> _T:
        return self.by_index[0]

    def attach(self, index: int, iface: _T) -> None:
        """Raises:
        ValueError: ``index`` is taken (or not positive)."""
        if index <= 0 or index in self:
            raise ValueError(f"interface index {index} is taken or invalid")
        self[index] = self.by_index[index] = iface
        self.by_index[0] = next(iter(self.values()))

    def detach(self, index: int) -> _T:
        """Raises:
        ValueError: no such interface, or it is the last one."""
        iface = self.find(index) if index else None
        if iface is None:
            raise ValueError(f"no {self.family} interface {index}")
        if len(self) == 1:
            raise ValueError("the last interface cannot be removed")
        del self[index], self.by_index[index]
        self.by_index[0] = next(iter(self.values()))
        return iface

    def find(self, index: int) -> _T:
        """The interface ``index`` (0: the first).

        Raises:
            ValueError: no such interface.
        """
        iface = self.by_index.get(index)
        if iface is None:
            raise ValueError(f"no {self.family} interface {index}")
        return iface
