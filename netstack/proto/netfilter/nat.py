"""Network address translation for IPv4: masquerade (source NAT to an interface's address,
with port allocation) and port forwards (destination NAT), with hairpinning.

Behaviour, by the requirements of RFC 4787 (UDP) and RFC 5382 (TCP):

- Mapping: endpoint-independent (RFC 4787 4.1 REQ-1, RFC 5382 4.1 REQ-1). An internal
  (address, port) leaving through a masqueraded interface gets one external port, the same
  for every destination, for as long as any of its flows lives; ICMP echo identifiers are
  mapped the same way. A mapping outlives none of its flows, whose time-outs are the RFCs'
  minimums or more (see ``conntrack``), and is refreshed by outbound traffic (RFC 4787 4.3
  REQ-6) as each flow is.
- Port assignment: never "port overloading" (RFC 4787 4.2.1 REQ-3; RFC 5382 asks the same of
  TCP): an external port belongs to one internal endpoint at a time. Ports
  are drawn at random from the configured range (RFC 6056's reasoning), keeping the parity of
  the internal port where one is free (RFC 4787 4.2.2 REQ-4, RECOMMENDED); the stack's own
  traffic keeps its port when it can (its address already is the external one). A draw is
  bounded work: a few random probes, then a walk of at most the range from a random point.
- Filtering: address-and-port-dependent by default (only answers to flows seen); the
  endpoint-independent and address-dependent behaviours of RFC 4787 (5) REQ-8 and RFC 5382
  (4.3) REQ-3 are a ``filtering=`` away: inbound datagrams to a live mapping from any remote,
  or from an address the mapping has sent to.
- An unsolicited inbound TCP SYN gets no answer (RFC 5382 4.3 REQ-4 forbids answering within
  6 seconds; this NAT drops it, which a port forward or endpoint-independent filtering can
  change).
- Hairpinning (RFC 4787 6 REQ-9; RFC 5382 asks it of TCP too): a flow from inside to a port
  forward's external address is forwarded back inside with its source translated to the
  client's external mapping ("External source IP address and port", REQ-9a), so the server answers
  through the NAT.
- ICMP errors are translated with their flow (RFC 5508 for ICMP, RFC 5382 for TCP's): outer
  and quoted headers, and the checksums of both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .conntrack import Entry, FlowTable, Key
from .packet import PROTO_ICMP, PROTO_TCP, PROTO_UDP

__all__ = ["FILTERING", "Mapping", "Masquerade", "Nat", "PortForward"]

#: RFC 4787 (5) filtering behaviours.
FILTERING = ("endpoint-independent", "address-dependent", "address-and-port-dependent")
_PROTOS = {"tcp": PROTO_TCP, "udp": PROTO_UDP}
#: Remote addresses a mapping remembers for address-dependent filtering.
MAX_REMOTES = 64
_PROBES = 16


class Rng(Protocol):
    def randrange(self, start: int, stop: int, /) -> int: ...


@dataclass(frozen=True, slots=True)
class Masquerade:
    """Source NAT of flows leaving through interface ``ifindex`` to its first IPv4 address."""

    ifindex: int
    ports: tuple[int, int]
    filtering: str


@dataclass(frozen=True, slots=True)
class PortForward:
    """Destination NAT: ``proto`` datagrams to ``port`` on an address of interface
    ``ifindex`` go to ``to`` (an IPv4 address and port)."""

    proto: str
    port: int
    to: tuple[str, int]
    ifindex: int
    to_addr: bytes


class Mapping:
    """One endpoint-independent mapping: an internal endpoint's external port."""

    __slots__ = ("proto", "internal", "iport", "external", "eport", "ifindex", "refs", "remotes")

    def __init__(
        self, proto: int, internal: bytes, iport: int, external: bytes, eport: int, ifindex: int
    ) -> None:
        self.proto = proto
        self.internal = internal
        self.iport = iport
        self.external = external
        self.eport = eport
        self.ifindex = ifindex
        self.refs = 0
        self.remotes: set[bytes] = set()


class Nat:
    """The NAT's configuration and mappings. Made by :class:`~.hooks.Netfilter`; a stack
    hands it out as ``stack.nat``.

    Interfaces are given as :class:`netstack.Interface` objects, names or indexes; the
    ``resolve`` function the owner passes turns them into indexes.
    """

    def __init__(
        self,
        table: FlowTable,
        rng: Rng,
        addresses_of: Callable[[int], Sequence[bytes]],
        resolve: Callable[[object], int],
    ) -> None:
        self._table = table
        self._rng = rng
        self._addresses_of = addresses_of
        self._resolve = resolve
        self.masquerades: dict[int, Masquerade] = {}
        #: (protocol number, external port) -> forwards of that port (one per interface).
        self._forwards: dict[tuple[int, int], list[PortForward]] = {}
        #: (protocol, internal address, internal port, interface) -> mapping.
        self._by_internal: dict[tuple[int, bytes, int, int], Mapping] = {}
        #: (protocol, external address, external port) -> mapping.
        self._by_external: dict[tuple[int, bytes, int], Mapping] = {}
        self.translated = 0
        self.port_exhausted = 0
        self.clashes = 0
        self.hairpinned = 0
        self.mappings_created = 0

    def addresses_of(self, ifindex: int) -> Sequence[bytes]:
        """The IPv4 addresses of interface ``ifindex`` (the first is the masquerade's)."""
        return self._addresses_of(ifindex)

    # -- configuration (the public API) -------------------------------------------------------
    def masquerade(
        self,
        interface: object,
        *,
        ports: tuple[int, int] = (1024, 49151),
        filtering: str = "address-and-port-dependent",
    ) -> Masquerade:
        """Translate the source of IPv4 flows leaving through ``interface`` to its address.

        Args:
            interface: an Interface, its name or its index.
            ports: the external port range (inclusive); the default leaves the stack's own
                ephemeral ports (49152-65535) alone.
            filtering: RFC 4787 (5): ``"address-and-port-dependent"`` (answers only),
                ``"address-dependent"`` or ``"endpoint-independent"``.

        Returns:
            The masquerade, for :meth:`remove`.

        Raises:
            ValueError: a bad port range or filtering name, or no such interface.
        """
        lo, hi = ports
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"port range {ports} is not within 1-65535")
        if filtering not in FILTERING:
            raise ValueError(f"filtering must be one of {FILTERING}")
        m = Masquerade(self._resolve(interface), (lo, hi), filtering)
        self.masquerades[m.ifindex] = m
        return m

    def forward_port(
        self, proto: str, port: int, *, to: tuple[str, int], on: object
    ) -> PortForward:
        """Forward ``proto`` (``"tcp"`` or ``"udp"``) datagrams to ``port`` on an address of
        interface ``on`` to ``to`` = (IPv4 address, port). Flows from inside to that address
        and port are hairpinned.

        Returns:
            The forward, for :meth:`remove`.

        Raises:
            ValueError: unknown protocol, bad port or address, or no such interface.
        """
        import ipaddress

        number = _PROTOS.get(proto)
        if number is None:
            raise ValueError(f"protocol {proto!r}: port forwards take 'tcp' or 'udp'")
        host, to_port = to
        if not 1 <= port <= 65535 or not 1 <= to_port <= 65535:
            raise ValueError("ports are 1-65535")
        addr = ipaddress.IPv4Address(host).packed
        fwd = PortForward(proto, port, (host, to_port), self._resolve(on), addr)
        same = self._forwards.setdefault((number, port), [])
        same[:] = [f for f in same if f.ifindex != fwd.ifindex] + [fwd]
        return fwd

    def remove(self, rule: Masquerade | PortForward) -> None:
        """Stop a masquerade or a port forward for new flows (tracked flows keep theirs)."""
        if isinstance(rule, Masquerade):
            if self.masquerades.get(rule.ifindex) == rule:
                del self.masquerades[rule.ifindex]
            return
        key = (_PROTOS[rule.proto], rule.port)
        same = [f for f in self._forwards.get(key, ()) if f != rule]
        if same:
            self._forwards[key] = same
        else:
            self._forwards.pop(key, None)

    @property
    def forwards(self) -> list[PortForward]:
        return [f for same in self._forwards.values() for f in same]

    @property
    def mappings(self) -> list[dict[str, Any]]:
        """The live mappings (internal endpoint, external endpoint, flows using it)."""
        from ipaddress import IPv4Address

        return [
            {
                "proto": m.proto,
                "internal": (str(IPv4Address(m.internal)), m.iport),
                "external": (str(IPv4Address(m.external)), m.eport),
                "flows": m.refs,
            }
            for m in self._by_external.values()
        ]

    # -- destination NAT (a new flow, at PREROUTING) ----------------------------------------
    def destination_for(
        self, proto: int, src: bytes, dst: bytes, dport: int, ingress: int | None
    ) -> tuple[bytes, int, int, Mapping | None] | None:
        """Where a new flow to ``dst``:``dport`` goes instead, the interface whose external
        address it was to (for hairpinning) and the mapping that let it in; None when no
        forward or mapping takes it (or filtering refuses it)."""
        for fwd in self._forwards.get((proto, dport), ()):
            if dst in self._addresses_of(fwd.ifindex):
                return fwd.to_addr, fwd.to[1], fwd.ifindex, None
        m = self._by_external.get((proto, dst, dport))
        if m is not None:
            masq = self.masquerades.get(m.ifindex)
            if masq is None or masq.filtering == "address-and-port-dependent":
                return None
            if masq.filtering == "address-dependent" and not (
                src in m.remotes or (ingress != m.ifindex and m.external in m.remotes)
            ):
                return None
            return m.internal, m.iport, m.ifindex, m
        return None

    def apply_destination(
        self, entry: Entry, to: tuple[bytes, int, int, Mapping | None], ingress: int | None
    ) -> bool:
        """Make ``entry`` a destination-translated flow; False on a clash of tuples. A flow
        let in by a mapping holds it, as the mapping's own flows do (so its port is not given
        to another endpoint while the flow lives)."""
        addr, port, ifindex, m = to
        p, s, sp, _, _ = entry.orig
        if not self._table.rekey_reply(entry, (p, addr, port, s, sp)):
            self.clashes += 1
            return False
        entry.dnat = True
        if ingress != ifindex:
            entry.hairpin = ifindex
        if m is not None:
            entry.in_mapping = m
            m.refs += 1
        return True

    # -- source NAT (the first datagram at POSTROUTING) -------------------------------------
    def bind_source(self, entry: Entry, egress: int | None, v6: bool) -> bool:
        """Decide the source translation of a new flow leaving through ``egress``: masquerade
        it if the interface is masqueraded, or if it is hairpinned. False when it cannot be
        translated (no address, ports exhausted, a clash): the caller drops the datagram."""
        entry.nat_done = True
        if v6:
            return True
        ifindex = egress if egress in self.masquerades else entry.hairpin
        masq = self.masquerades.get(ifindex) if ifindex else None
        if masq is None:
            if not entry.hairpin:
                return True
            masq = Masquerade(entry.hairpin, (1024, 49151), "address-and-port-dependent")
            ifindex = entry.hairpin
        addresses = self._addresses_of(ifindex)
        if not addresses:
            self.port_exhausted += 1
            return False
        p, s, sp, d, dp = entry.orig
        external = addresses[0]
        if s in addresses:
            return True  # already from the interface's address (the stack's own traffic)
        # Where the flow goes, once destination NAT is applied: the reply's source.
        _, rs, rsp, _, _ = entry.reply
        if p != PROTO_TCP and p != PROTO_UDP and p != PROTO_ICMP:
            # Tracked by addresses alone: the external address is the translation.
            return self._rekey(entry, (p, rs, rsp, external, sp), None)
        key = (p, s, sp, ifindex)
        m = self._by_internal.get(key)
        if m is None or m.external != external:
            if m is not None:
                self._forget(m)  # the interface's address changed
            eport = self._allocate(p, external, sp, masq.ports, ifindex)
            if eport is None:
                self.port_exhausted += 1
                return False
            m = Mapping(p, s, sp, external, eport, ifindex)
            self._by_internal[key] = m
            self._by_external[(p, external, eport)] = m
            self.mappings_created += 1
        if entry.hairpin:
            self.hairpinned += 1
        # (Echo replies carry the identifier where other flows carry the destination port.)
        reply = (p, rs, rsp, external, m.eport)
        if not self._rekey(entry, reply, m):
            return False
        if len(m.remotes) < MAX_REMOTES:
            m.remotes.add(rs)
        return True

    def _rekey(self, entry: Entry, reply: Key, m: Mapping | None) -> bool:
        if not self._table.rekey_reply(entry, reply):
            self.clashes += 1
            if m is not None and not m.refs:
                self._forget(m)
            return False
        entry.snat = True
        if m is not None:
            entry.mapping = m
            m.refs += 1
        self.translated += 1
        return True

    def _taken(self, proto: int, external: bytes, port: int, ifindex: int) -> bool:
        if (proto, external, port) in self._by_external:
            return True
        return any(f.ifindex == ifindex for f in self._forwards.get((proto, port), ()))

    def _allocate(
        self, proto: int, external: bytes, iport: int, ports: tuple[int, int], ifindex: int
    ) -> int | None:
        lo, hi = ports
        n = hi - lo + 1
        rng = self._rng
        # RFC 4787 4.2.2 REQ-4: keep the internal port's parity where a port is free.
        parity = iport & 1
        for _ in range(_PROBES):
            port = lo + rng.randrange(0, n)
            if (port & 1) != parity and port + 1 <= hi:
                port += 1
            elif (port & 1) != parity and port - 1 >= lo:
                port -= 1
            if not self._taken(proto, external, port, ifindex):
                return port
        start = rng.randrange(0, n)
        for i in range(n):
            port = lo + (start + i) % n
            if not self._taken(proto, external, port, ifindex):
                return port
        return None

    # -- the end of a flow --------------------------------------------------------------------
    def release(self, entry: Entry) -> None:
        """A flow ended: the mappings it held are let go (and forgotten when unused)."""
        for m in (entry.mapping, entry.in_mapping):
            if m is not None:
                m.refs -= 1
                if m.refs <= 0:
                    self._forget(m)
        entry.mapping = entry.in_mapping = None

    def _forget(self, m: Mapping) -> None:
        if self._by_internal.get((m.proto, m.internal, m.iport, m.ifindex)) is m:
            del self._by_internal[(m.proto, m.internal, m.iport, m.ifindex)]
        if self._by_external.get((m.proto, m.external, m.eport)) is m:
            del self._by_external[(m.proto, m.external, m.eport)]

    def ensures_no_leak(self, src: bytes, egress: int | None) -> bool:
        """Whether an untranslated datagram from ``src`` may leave through ``egress``: not
        through a masqueraded interface unless from the interface's own address (an
        untracked or invalid datagram from inside would show an internal address)."""
        if egress is None or egress not in self.masquerades:
            return True
        return src in self._addresses_of(egress)

    def stats(self) -> dict[str, Any]:
        return {
            "masquerades": len(self.masquerades),
            "forwards": sum(len(v) for v in self._forwards.values()),
            "mappings": len(self._by_external),
            "mappings_created": self.mappings_created,
            "translated_flows": self.translated,
            "port_exhausted": self.port_exhausted,
            "clashes": self.clashes,
            "hairpinned": self.hairpinned,
        }

    def reset_stats(self) -> None:
        self.translated = self.port_exhausted = self.clashes = self.hairpinned = 0
        self.mappings_created = 0
