"""Connection tracking, NAT and the packet filter composed behind one
:class:`~netstack.proto.ip.hooks.PacketHooks`: what the IP layers call at each hook point.

At each point, in Linux's order:

- PREROUTING (received) and OUTPUT (sent by the stack): the datagram is dissected and found
  in the flow table (or a flow is made for it: port forwards and endpoint-independent
  mappings translate its destination here, so the route is chosen for the new one); a
  destination translation is applied; at OUTPUT the filter's output chain decides;
- FORWARD and INPUT: the filter's forward or input chain decides (on the addresses after
  destination NAT, before source NAT); at INPUT a flow is settled as untranslated;
- POSTROUTING: a new flow's source translation is decided (masquerade, hairpinning) and
  applied.

A flow dropped by the filter on its first datagram is forgotten at once. The hooks of one
datagram are run one after another with the same ``bytearray``: what PREROUTING or OUTPUT
found is kept for the later hooks of that datagram (found again from the datagram if the
buffer is another one). Malformed datagrams are dropped and counted by reason; nothing raises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...errors import ParseError
from ..checksum import checksum, verify
from ..ip.hooks import Hook, Verdict
from ..layer import Layer
from .conntrack import ORIG, REPLY, ConntrackConfig, CtState, Entry, FlowTable, TcpState
from .filter import Filter
from .nat import Nat, Rng
from .packet import (
    KIND_ERROR,
    KIND_FLOW,
    KIND_LATER_FRAGMENT,
    KIND_UNTRACKED,
    PROTO_ICMP,
    PROTO_TCP,
    Packet,
    dissect,
    set_address_only,
    set_destination,
    set_source,
)

__all__ = ["Netfilter"]

_PREROUTING, _INPUT, _FORWARD, _OUTPUT, _POSTROUTING = (
    Hook.PREROUTING, Hook.INPUT, Hook.FORWARD, Hook.OUTPUT, Hook.POSTROUTING,
)  # fmt: skip
_NEW, _ESTABLISHED, _RELATED, _INVALID = (
    CtState.NEW, CtState.ESTABLISHED, CtState.RELATED, CtState.INVALID,
)  # fmt: skip
_SYN, _RST, _ACK = 0x02, 0x04, 0x10
_ACCEPT, _DROP = Verdict.ACCEPT, Verdict.DROP
_MAX_CONTEXTS = 4
#: ICMPv6 messages of the link itself: MLD (RFC 2710 3, RFC 3810 5: 130-132, 143) and
#: neighbour discovery (RFC 4861 4: 133-137).
_LINK_ICMP6 = frozenset({130, 131, 132, 133, 134, 135, 136, 137, 143})
FragKey = tuple[bool, bytes, bytes, int, int]


class _Context:
    """What the first hook of a datagram found, for its later hooks."""

    __slots__ = ("buf", "packet", "entry", "direction", "state", "new", "stray")

    def __init__(
        self, buf: bytearray, packet: Packet | None, entry: Entry | None, direction: int,
        state: int, new: bool,
    ) -> None:  # fmt: skip
        self.buf = buf
        self.packet = packet
        self.entry = entry
        self.direction = direction
        self.state = state
        self.new = new
        #: The flow an INVALID segment was found in (out of its window, or out of place).
        self.stray: Entry | None = None


class Netfilter(Layer):
    """Connection tracking, NAT (:attr:`nat`) and the packet filter (:attr:`filter`), as one
    :class:`~netstack.proto.ip.hooks.PacketHooks` (and one layer of the stack: ``stats()``
    under ``"netfilter"``, time-outs through ``poll_at``/``handle_timeout``).

    Args:
        rng: for port allocation.
        addresses_of: an interface index -> its IPv4 addresses (packed), the first the one
            masquerading uses.
        resolve: an Interface, name or index -> the index.
        config: table bounds and time-outs.
    """

    name = "netfilter"
    _COUNTERS = (
        "packets", "new_flows", "related", "invalid", "filtered", "rejected", "context_misses",
        "syns_held", "syns_superseded", "syns_answered", "fragments_held",
        "fragments_released",
    )  # fmt: skip

    def __init__(
        self,
        rng: Rng,
        addresses_of: Callable[[int], Sequence[bytes]],
        resolve: Callable[[object], int],
        config: ConntrackConfig | None = None,
    ) -> None:
        super().__init__()
        self.packets = self.new_flows = self.related = self.invalid = 0
        self.filtered = self.rejected = self.context_misses = 0
        self.syns_held = self.syns_superseded = self.syns_answered = 0
        self.fragments_held = self.fragments_released = 0
        self.table = FlowTable(config or ConntrackConfig(), self._removed)
        self.nat = Nat(self.table, rng, addresses_of, resolve)
        self.filter = Filter(resolve)
        #: Whether the stack's own TCP takes a SYN (local address, port, remote address,
        #: port): a listener or a connection there. None: it takes none.
        self.tcp_takes: Callable[[bytes, int, bytes, int], bool] | None = None
        #: Answers a held SYN once its time is up: (the datagram, the interface it came in
        #: on, now) -> ICMP Port Unreachable to its source. None: held SYNs end silently.
        self.port_unreachable: Callable[[bytearray, int | None, float], None] | None = None
        #: Unsolicited inbound SYNs held back (RFC 5382 REQ-4), by (source, source port,
        #: destination, destination port), oldest first: (deadline, copy, ingress).
        self._held: dict[tuple[bytes, int, bytes, int], tuple[float, bytearray, int | None]] = {}
        #: Takes a held fragment back once its first fragment has gone by: (the datagram,
        #: the interface it came in on, now) -> received again on that interface. None:
        #: fragments are not held (those without their flow are dropped at once).
        self.reinject: Callable[[bytearray, int, float], None] | None = None
        #: Later fragments that came before their first: by datagram identity (as
        #: FlowTable.fragments), oldest first: (deadline, [(datagram, ingress), ...]).
        self._held_frags: dict[FragKey, tuple[float, list[tuple[bytearray, int]]]] = {}
        self._held_frag_count = 0
        self._held_frag_bytes = 0
        #: Held fragments whose first fragment came: to be received again at the next tick.
        self._ready: list[tuple[bytearray, int]] = []
        #: The contexts of the datagrams on their way, latest last (a datagram's later hooks
        #: may come after another datagram's first: an ICMP error the IP layer sends about
        #: it, say). At most _MAX_CONTEXTS; an older one is found by dissecting again.
        self._ctxs: list[_Context] = []

    def _removed(self, entry: Entry) -> None:
        self.nat.release(entry)

    # -- PacketHooks --------------------------------------------------------------------------
    def run(
        self,
        hook: Hook,
        datagram: bytearray,
        ingress: int | None,
        egress: int | None,
        now: float,
    ) -> Verdict:
        """See :class:`netstack.proto.ip.hooks.PacketHooks`."""
        try:
            if hook == _PREROUTING or hook == _OUTPUT:
                return self._first(hook, datagram, ingress, egress, now)
            for ctx in reversed(self._ctxs):
                if ctx.buf is datagram:
                    break
            else:
                self.context_misses += 1
                made = self._classify(datagram, ingress, now, hook)
                if made is None:
                    return _DROP
                ctx = made
            if hook == _POSTROUTING:
                return self._postrouting(ctx, datagram, egress)
            verdict = self._filter("input" if hook == _INPUT else "forward", ctx, ingress, egress)
            if hook == _INPUT and verdict == _ACCEPT:
                stray = ctx.stray
                if stray is not None and (stray.snat or stray.dnat):
                    # An invalid segment of a translated flow, untranslated: the tuple is
                    # the NAT's, not the stack's, whose TCP would answer it with a reset
                    # the flow's real end could take.
                    self._drop("invalid_of_translated_flow")
                    self._forget(datagram)
                    return _DROP
                if ctx.state == _NEW and self._hold_syn(ctx, datagram, ingress, now):
                    return _DROP
                entry = ctx.entry
                if entry is not None and not entry.nat_done:
                    entry.nat_done = True
                self._translate_source(ctx, datagram)
                self._forget(datagram)
            return verdict
        except ParseError as exc:  # a rewrite found the datagram other than dissected
            self._drop(exc.reason, exc)
            return _DROP
        except (IndexError, ValueError, KeyError) as exc:
            self._drop("internal_error", exc)
            return _DROP

    def _first(
        self, hook: Hook, d: bytearray, ingress: int | None, egress: int | None, now: float
    ) -> Verdict:
        ctx = self._classify(d, ingress, now, hook)
        if ctx is None:
            return _DROP
        self._translate_destination(ctx, d)
        if hook == _OUTPUT:
            return self._filter("output", ctx, ingress, egress)
        return _ACCEPT

    # -- classification -----------------------------------------------------------------------
    def _classify(
        self, d: bytearray, ingress: int | None, now: float, hook: Hook
    ) -> _Context | None:
        self.packets += 1
        self._forget(d)
        try:
            p = dissect(d)
        except ParseError as exc:
            self.invalid += 1
            self._drop(exc.reason, exc)
            return None
        table = self.table
        kind = p.kind
        if kind == KIND_FLOW:
            key = (p.proto, p.src, p.sport, p.dst, p.dport)
            entry = table.flows.get(key)
            if entry is not None and entry.expires <= now:
                table.expired += 1
                table.remove(entry)
                entry = None
            if entry is not None:
                direction = ORIG if key == entry.orig else REPLY
                if p.proto == PROTO_TCP and not table.tcp_segment(
                    entry, direction, d, p.l4, p.end, p.tcp_flags
                ):
                    self.invalid += 1
                    ctx = _Context(d, p, None, ORIG, _INVALID, False)
                    ctx.stray = entry
                else:
                    if direction == REPLY and not entry.replied:
                        table.mark_replied(entry)
                    table.touch(entry, now)
                    state = _ESTABLISHED if entry.replied else _NEW
                    ctx = _Context(d, p, entry, direction, state, False)
            else:
                made = self._new_flow(d, p, key, ingress, now, hook)
                if made is None:
                    return None
                ctx = made
            if p.fragment and ctx.entry is not None:
                fkey = (p.v6, p.src, p.dst, p.proto, p.frag_id)
                table.note_fragment(fkey, ctx.entry, ctx.direction, now)
                if self._held_frags:
                    self._release_fragments(fkey)
        elif kind == KIND_ERROR:
            ctx = self._related(d, p)
        elif kind == KIND_LATER_FRAGMENT:
            fkey = (p.v6, p.src, p.dst, p.proto, p.frag_id)
            hit = table.fragment_flow(fkey, now)
            if hit is None:
                # RFC 4787 (11) REQ-14 asks a NAT to take fragments out of order: one whose
                # first fragment has not gone by waits for it (bounded), else it cannot be
                # placed without reassembly.
                if (
                    hook == _PREROUTING
                    and ingress is not None
                    and self._hold_fragment(fkey, d, ingress, now)
                ):
                    return None
                self.invalid += 1
                self._drop("fragment_without_flow")
                ctx = _Context(d, p, None, ORIG, _INVALID, False)
            else:
                entry, direction = hit
                state = _ESTABLISHED if entry.replied else _NEW
                ctx = _Context(d, p, entry, direction, state, False)
        else:  # ICMP messages that are neither echo nor errors: not tracked, always new
            ctx = _Context(d, p, None, ORIG, _NEW, False)
        ctxs = self._ctxs
        if len(ctxs) >= _MAX_CONTEXTS:
            del ctxs[0]
        ctxs.append(ctx)
        return ctx

    def _forget(self, d: bytearray) -> None:
        """The datagram's way through the hooks ended (or starts again)."""
        ctxs = self._ctxs
        for i in range(len(ctxs) - 1, -1, -1):
            if ctxs[i].buf is d:
                del ctxs[i]
                return

    def _new_flow(
        self, d: bytearray, p: Packet, key: tuple[int, bytes, int, bytes, int],
        ingress: int | None, now: float, hook: Hook,
    ) -> _Context | None:  # fmt: skip
        table = self.table
        proto = p.proto
        if proto == PROTO_TCP and (p.tcp_flags & (_SYN | _ACK)) != _SYN:
            # Not the start of a connection: nothing to track it from (RFC 9293 3.5).
            self.invalid += 1
            return _Context(d, p, None, ORIG, _INVALID, False)
        if p.src == p.dst and p.sport == p.dport:
            self.invalid += 1
            self._drop("land")
            return None
        if not table.has_room(now):
            self._drop("table_full")
            return None
        reply = (proto, p.dst, p.dport, p.src, p.sport)
        entry = Entry(key, reply, TcpState.SYN_SENT if proto == PROTO_TCP else 0, now)
        if not table.add(entry, now):
            self._drop("tuple_clash")
            return None
        if proto == PROTO_TCP:
            table.tcp_segment(entry, ORIG, d, p.l4, p.end, p.tcp_flags)  # its sequence space
        self.new_flows += 1
        if hook == _PREROUTING and not p.v6:
            to = self.nat.destination_for(proto, p.src, p.dst, p.dport, ingress)
            if to is not None and not self.nat.apply_destination(entry, to, ingress):
                table.remove(entry)
                self._drop("nat_clash")
                return None
        return _Context(d, p, entry, ORIG, _NEW, True)

    def _related(self, d: bytearray, p: Packet) -> _Context:
        """An ICMP error: RELATED to the flow of the datagram it quotes (found by that
        datagram's tuple reversed: the error travels as answers to it do), INVALID when it
        quotes no flow or is not addressed to the quoted datagram's source."""
        inner = p.inner
        assert inner is not None
        start, end = p.l4, p.end
        if not (verify(d[start:end]) if not p.v6 else True):
            self.invalid += 1
            self._drop("icmp_checksum")
            return _Context(d, p, None, ORIG, _INVALID, False)
        table = self.table
        entry = table.flows.get((inner.proto, inner.dst, inner.dport, inner.src, inner.sport))
        if entry is not None:
            direction = ORIG if entry.orig == (
                inner.proto, inner.dst, inner.dport, inner.src, inner.sport
            ) else REPLY  # fmt: skip
            translate = True
        else:
            # The quoted datagram as it still is in the table: an error the stack itself makes
            # about a datagram not yet translated (it goes back the way the datagram came).
            entry = table.flows.get(inner.key())
            if entry is None:
                self.invalid += 1
                self._drop("icmp_error_no_flow")
                return _Context(d, p, None, ORIG, _INVALID, False)
            direction = REPLY if entry.orig == inner.key() else ORIG
            translate = False
        if p.dst != inner.src:
            # An error goes to the source of what it quotes; one that does not is about
            # some other flow (RFC 5927 4's checks, from the router's place).
            self.invalid += 1
            self._drop("icmp_error_misaddressed")
            return _Context(d, p, None, ORIG, _INVALID, False)
        self.related += 1
        return _Context(d, p, entry if translate else None, direction, _RELATED, False)

    # -- unsolicited SYNs (RFC 5382 REQ-4) ----------------------------------------------------
    def _hold_syn(
        self, ctx: _Context, d: bytearray, ingress: int | None, now: float
    ) -> bool:  # fmt: skip
        """RFC 5382 REQ-4: a NAT does not answer an unsolicited inbound SYN for 6 seconds; if
        an outbound SYN of the same connection is translated meanwhile (a simultaneous open,
        the way TCP hole punching works) the inbound one is dropped silently, otherwise it is
        answered with ICMP Port Unreachable (type 3, code 3). A SYN to a masqueraded address
        and a port of its range that the stack's own TCP does not take is held here (a copy,
        at most ``max_held_syns``; beyond that new ones are dropped without a word, which
        the requirement allows as well). True: held (or dropped), its flow forgotten."""
        p, entry = ctx.packet, ctx.entry
        if p is None or p.proto != PROTO_TCP or p.v6 or ingress is None:
            return False
        if (p.tcp_flags & (_SYN | _ACK | _RST)) != _SYN or ctx.direction != ORIG:
            return False
        if entry is None or entry.replied or entry.snat or entry.dnat:
            return False
        masq = self.nat.masquerades.get(ingress)
        if masq is None or not masq.ports[0] <= p.dport <= masq.ports[1]:
            return False
        takes = self.tcp_takes
        if takes is not None and takes(p.dst, p.dport, p.src, p.sport):
            return False
        if p.dst not in self.nat.addresses_of(ingress):
            return False
        self.table.remove(entry)  # the outbound SYN, if it comes, makes the flow
        self._forget(d)
        held = self._held
        key = (p.src, p.sport, p.dst, p.dport)
        if key in held:
            return True  # a retransmission: the first one's time runs
        if len(held) >= self.table.config.max_held_syns:
            self._drop("syn_hold_full")
            return True
        held[key] = (now + self.table.config.syn_hold, bytearray(d), ingress)
        self.syns_held += 1
        return True

    def _release_held(self, now: float) -> None:
        """Answer the held SYNs whose time is up (the oldest first; all have the same hold)."""
        held = self._held
        while held:
            key = next(iter(held))
            deadline, d, ingress = held[key]
            if deadline > now:
                break
            del held[key]
            self.syns_answered += 1
            if self.port_unreachable is not None:
                self.port_unreachable(d, ingress, now)

    # -- fragments before their first (RFC 4787 REQ-14) ---------------------------------------
    def _hold_fragment(self, key: FragKey, d: bytearray, ingress: int, now: float) -> bool:
        """Keep a later fragment whose first fragment has not come (the IP layer made ``d``
        for this datagram alone, and lets it go on a DROP: it is kept, not copied). False
        when holding is off or full: the caller drops it."""
        config = self.table.config
        if self.reinject is None:
            return False
        n = len(d)
        if (
            self._held_frag_count >= config.max_held_fragments
            or self._held_frag_bytes + n > config.max_held_fragment_bytes
        ):
            self._drop("fragment_hold_full")
            return False
        held = self._held_frags.get(key)
        if held is None:
            held = self._held_frags[key] = (now + config.fragment_hold, [])
        held[1].append((d, ingress))
        self._held_frag_count += 1
        self._held_frag_bytes += n
        self.fragments_held += 1
        self._forget(d)
        return True

    def _release_fragments(self, key: FragKey) -> None:
        """The first fragment of ``key`` went by: its held fragments go again at the next
        tick (after the first one's own hooks have decided its translation)."""
        held = self._held_frags.pop(key, None)
        if held is None:
            return
        for d, ingress in held[1]:
            self._held_frag_count -= 1
            self._held_frag_bytes -= len(d)
            self._ready.append((d, ingress))

    def _expire_fragments(self, now: float) -> None:
        frags = self._held_frags
        while frags:
            key = next(iter(frags))
            deadline, batch = frags[key]
            if deadline > now:
                break
            del frags[key]
            for d, _ in batch:
                self._held_frag_count -= 1
                self._held_frag_bytes -= len(d)
                self.invalid += 1
                self._drop("fragment_without_flow")

    # -- translation --------------------------------------------------------------------------
    def _translate_destination(self, ctx: _Context, d: bytearray) -> None:
        """The destination half of the flow's translation (PREROUTING, OUTPUT)."""
        entry = ctx.entry
        if entry is not None and entry.rewrites_destination(ctx.direction):
            self._translate(ctx, entry, d, False)

    def _translate_source(self, ctx: _Context, d: bytearray) -> None:
        """The source half (POSTROUTING, INPUT)."""
        entry = ctx.entry
        if entry is not None and entry.rewrites_source(ctx.direction):
            self._translate(ctx, entry, d, True)

    def _translate(self, ctx: _Context, entry: Entry, d: bytearray, source: bool) -> None:
        """Rewrite the datagram's source (or destination) to the flow's target; in an ICMP
        error, the outer address and the quoted datagram's other end (RFC 5508)."""
        p = ctx.packet
        if p is None:
            return
        _, ts, tsp, td, tdp = entry.target(ctx.direction)
        addr, port = (ts, tsp) if source else (td, tdp)
        if p.kind == KIND_ERROR:
            inner = p.inner
            assert inner is not None
            set_address_only(d, p, source, addr)
            (set_destination if source else set_source)(d, inner, addr, port)
            self._refill_icmp(d, p)
        elif p.kind == KIND_LATER_FRAGMENT:
            set_address_only(d, p, source, addr)
        else:
            (set_source if source else set_destination)(d, p, addr, port)

    @staticmethod
    def _refill_icmp(d: bytearray, p: Packet) -> None:
        """The ICMP checksum over the rewritten message (checked before it was rewritten)."""
        c = p.l4 + 2
        d[c] = d[c + 1] = 0
        value = checksum(memoryview(d)[p.l4 : p.end])
        d[c], d[c + 1] = value >> 8, value & 0xFF

    def _postrouting(self, ctx: _Context, d: bytearray, egress: int | None) -> Verdict:
        entry, p = ctx.entry, ctx.packet
        if entry is not None and entry.dead:
            # Evicted (or timed out) between this datagram's hooks: it belongs to no flow.
            self._drop("flow_gone")
            self._forget(d)
            return _DROP
        if entry is not None and not entry.nat_done and ctx.direction == ORIG:
            if not self.nat.bind_source(entry, egress, len(entry.orig[1]) == 16):
                self.table.remove(entry)
                self._drop("nat_failed")
                self._forget(d)
                return _DROP
            if self._held and entry.snat:
                # The connection's own SYN went out: the held inbound one is dropped.
                _, rs, rsp, ext, eport = entry.reply
                if self._held.pop((rs, rsp, ext, eport), None) is not None:
                    self.syns_superseded += 1
        if entry is None and p is not None and ctx.state != _RELATED:
            if not p.v6 and not self.nat.ensures_no_leak(p.src, egress):
                self._drop("untranslated_leak")
                return _DROP
        self._translate_source(ctx, d)
        self._forget(d)
        return _ACCEPT

    # -- the filter ---------------------------------------------------------------------------
    def _filter(
        self, chain: str, ctx: _Context, ingress: int | None, egress: int | None
    ) -> Verdict:
        f = self.filter
        if not f.active:
            return _ACCEPT
        p = ctx.packet
        if p is None:
            return _ACCEPT
        if p.kind == KIND_UNTRACKED and p.v6 and p.icmp_type in _LINK_ICMP6:
            # Neighbour and router discovery and MLD are the link's own business (see
            # netstack.proto.ip.hooks): a filter that dropped them would cut IPv6 off.
            return _ACCEPT
        if p.kind == KIND_ERROR or p.kind == KIND_LATER_FRAGMENT:
            sport = dport = -1
        else:
            sport = p.sport if p.sport_at >= 0 else -1
            dport = p.dport if p.dport_at >= 0 else -1
            if p.proto == PROTO_ICMP or p.proto == 58:
                sport = dport = -1
        verdict = f.decide(
            chain, p.v6, p.proto, p.src, p.dst, sport, dport, p.icmp_type, ctx.state,
            ingress, egress, p.end - p.start,
        )  # fmt: skip
        if verdict != _ACCEPT:
            self.filtered += 1
            if verdict != _DROP:
                self.rejected += 1
            if ctx.new and ctx.entry is not None:
                self.table.remove(ctx.entry)  # a refused flow leaves nothing behind
            self._forget(ctx.buf)
        return verdict

    # -- the layer's timer and accounting -----------------------------------------------------
    def poll_at(self) -> float | None:
        if self._ready:
            return 0.0  # held fragments to take back at once
        at = self.table.poll_at()
        # (Both holds keep their oldest first, and all of one kind wait as long.)
        if self._held:
            first = next(iter(self._held.values()))[0]
            if at is None or first < at:
                at = first
        if self._held_frags:
            first = next(iter(self._held_frags.values()))[0]
            if at is None or first < at:
                at = first
        return at

    def handle_timeout(self, now: float) -> None:
        self.table.expire(now)
        if self._held:
            self._release_held(now)
        if self._held_frags:
            self._expire_fragments(now)
        if self._ready:
            ready, self._ready = self._ready, []
            reinject = self.reinject
            for d, ingress in ready:
                self.fragments_released += 1
                if reinject is not None:
                    reinject(d, ingress, now)

    def flows(self) -> list[dict[str, Any]]:
        """The tracked flows (for people and tests): tuples, state, translation."""
        from ipaddress import ip_address

        def show(key: tuple[int, bytes, int, bytes, int]) -> tuple[Any, ...]:
            p, s, sp, d, dp = key
            return (p, str(ip_address(s)), sp, str(ip_address(d)), dp)

        seen: set[int] = set()
        out = []
        for entry in self.table.flows.values():
            if id(entry) in seen:
                continue
            seen.add(id(entry))
            out.append({
                "orig": show(entry.orig), "reply": show(entry.reply),
                "state": TcpState(entry.state).name if entry.state else None,
                "replied": entry.replied, "snat": entry.snat, "dnat": entry.dnat,
                "expires": entry.expires,
            })  # fmt: skip
        return out

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out["conntrack"] = self.table.stats()
        out["nat"] = self.nat.stats()
        out["filter"] = self.filter.stats()
        out["syns_holding"] = len(self._held)
        out["fragments_holding"] = self._held_frag_count
        return out

    def reset_stats(self) -> None:
        super().reset_stats()
        self.table.reset_stats()
        self.nat.reset_stats()
        self.filter.reset_stats()
