"""Where a router's packet filter and NAT see the IP datagrams the stack handles: the hook
points, their verdicts, and the interface the IP layers call.

The points are those of Linux's netfilter, which the firewall rules people write are phrased
in (a datagram for this host: PREROUTING then INPUT; one forwarded: PREROUTING, FORWARD,
POSTROUTING; one this host sends: OUTPUT then POSTROUTING):

- ``PREROUTING``: every datagram received on an interface, before the route is chosen
  (destination NAT rewrites here, so the route is chosen for the new destination);
- ``INPUT``: a datagram for one of the stack's own addresses, before its transport sees it;
- ``FORWARD``: a datagram routed from one interface to another (the filter's main place);
- ``OUTPUT``: a datagram the stack's own transports send, before its route is final;
- ``POSTROUTING``: every datagram about to leave, once the interface is known (source NAT
  and masquerade rewrite here).

A :class:`PacketHooks` object sees each datagram as a mutable ``bytearray`` that starts at the
IP header and ends with the datagram (no link header, no trailer). It may rewrite addresses,
ports, identifiers and checksums in place (NAT), never the length. Its :class:`Verdict` says
what becomes of the datagram; for the two rejections the IP layer answers as RFC 1812 5.2.7.1
and RFC 4443 3.1 say a router does (ICMP Destination Unreachable, "communication
administratively prohibited": IPv4 type 3 code 13, ICMPv6 type 1 code 1) or, for TCP, with a
reset (RFC 9293 3.10.7.1's answer to a segment nobody takes), and counts it. The IP layers call
the hooks only while some are installed (``None`` otherwise), so a stack without a filter or
NAT pays one test per datagram.

Installing: ``stack.packet_hooks = hooks`` (``None`` removes them) sets the same object on the
IPv4 layer, the IPv6 layer and the forwarder (``ipv4.hooks``, ``ipv6.hooks``,
``forwarder.hooks``); a filter and a NAT together install one object that calls both in the
order netfilter's priorities give (NAT's PREROUTING before the filter's FORWARD, and so on).
Where each point is called, and what it sees:

- PREROUTING: in the IP layers' ``receive``, after the header is checked (version, lengths,
  IPv4 checksum) and before the destination is looked at; every datagram, fragments one by
  one (nothing is reassembled before it), loopback deliveries too. The datagram the hook
  returns is parsed again, so a rewritten destination decides local delivery or forwarding.
- INPUT: just before the transport (TCP, UDP, ICMP) gets a datagram for this host, after
  reassembly: IPv4 sees the whole datagram with a fresh header (no fragment fields), IPv6 the
  fixed header followed directly by the upper-layer message (extension headers left out).
- FORWARD and POSTROUTING (forwarded): in :class:`~.forward.Forwarder`, after the TTL and
  route checks, before the MTU check and fragmentation; the TTL is decremented after them.
- OUTPUT and POSTROUTING (this host's own): in the IP layers' ``output``, on the whole
  datagram before fragmentation; a destination rewritten at OUTPUT is routed again.
- Not seen: ARP, and IPv6 neighbour discovery and MLD messages (a link's own business, as
  Linux's filter usually lets them by).

A verdict other than ACCEPT is counted in the IP layer's drops (``hook_<point>``) and the
forwarder's (``<point>_<verdict>``, ``hook_dropped``, ``hook_rejected``), and acted on by
:meth:`~.forward.Forwarder.verdict`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

__all__ = ["Hook", "PacketHooks", "Verdict", "VerdictHandler", "run_hook"]


class Hook(enum.IntEnum):
    """A point on a datagram's way through the stack (netstack's names are netfilter's)."""

    PREROUTING = 0
    INPUT = 1
    FORWARD = 2
    OUTPUT = 3
    POSTROUTING = 4


class Verdict(enum.IntEnum):
    """What a hook decided for one datagram."""

    #: Go on (possibly rewritten).
    ACCEPT = 0
    #: Discard without a word (counted by the hook's owner and by the IP layer).
    DROP = 1
    #: Discard, answering the source with ICMP "administratively prohibited".
    REJECT_ICMP = 2
    #: Discard, answering a TCP segment with a reset (other protocols: as REJECT_ICMP).
    REJECT_RESET = 3


class PacketHooks(Protocol):
    """What the IP layers call at each :class:`Hook` while hooks are installed."""

    def run(
        self,
        hook: Hook,
        datagram: bytearray,
        ingress: int | None,
        egress: int | None,
        now: float,
    ) -> Verdict:
        """Decide on (and possibly rewrite) one IP datagram.

        Args:
            hook: where the datagram is.
            datagram: the IP datagram, header first; rewritten in place by NAT.
            ingress: the index of the interface it came in on (None for the stack's own).
            egress: the index of the interface it leaves by (None before the route is
                chosen, and at INPUT).
            now: the loop's time, for flow time-outs.

        Never raises on a datagram's contents: a malformed one is the hook's to drop and
        count.
        """
        ...


#: on_verdict(verdict, hook, datagram, input interface or None, now, is IPv6)
VerdictHandler = Callable[[Verdict, Hook, bytearray, "int | None", float, bool], None]


class _Counts(Protocol):
    def drop(self, reason: str, detail: object = ..., /) -> None: ...


def run_hook(
    hooks: PacketHooks, hook: Hook, datagram: bytearray, ingress: int | None,
    egress: int | None, now: float, counts: _Counts | None, on_verdict: VerdictHandler | None,
    v6: bool,
) -> bool:  # fmt: skip
    """Run ``hook``: True to go on; otherwise the datagram is counted as dropped in
    ``counts`` (``hook_<point>``) and the verdict handed to ``on_verdict``."""
    verdict = hooks.run(hook, datagram, ingress, egress, now)
    if verdict == Verdict.ACCEPT:
        return True
    if counts is not None:
        counts.drop(f"hook_{hook.name.lower()}")
    if on_verdict is not None:
        on_verdict(verdict, hook, datagram, ingress, now, v6)
    return False
