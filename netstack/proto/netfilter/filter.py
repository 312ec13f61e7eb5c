"""The packet filter: ordered rules per direction, a default policy per direction, counters
per rule.

A :class:`Rule` is plain data: the direction it applies to (``chain``: ``"input"`` for
datagrams to the stack, ``"forward"`` for datagrams routed through it, ``"output"`` for what
it sends), what it matches (interfaces in and out, source and destination prefixes,
protocol, ports, ICMP type, connection-tracking state) and its action (``"accept"``,
``"drop"``, ``"reject"``). The first rule that matches decides; none matching, the chain's
policy does. Every field left ``None`` matches anything. Addresses are matched as they are at
the filter's hook, which is after destination NAT and before source NAT (Linux's order): a
forwarding rule names a port forward's internal server, and a masqueraded client's own
address.

ICMP messages that are neither echo nor errors are not tracked: their state is always
``new``. IPv6 neighbour and router discovery and MLD (ICMPv6 types 130-137 and 143) are the
link's own business and never filtered, so an input chain that drops by default leaves IPv6
working.

``reject`` answers as a router does (RFC 1812 5.2.7.1: ICMP "communication administratively
prohibited"; RFC 4443 3.1 for IPv6) or, for TCP, with a reset (RFC 9293 3.10.7.1);
``reject-icmp`` answers TCP with the ICMP error instead. The answers themselves are the IP
layer's to send (see ``netstack.proto.ip.hooks``).

The text form (:func:`parse_rules`), one rule a line, ``#`` comments::

    policy forward drop
    forward accept state established,related
    forward accept in lan proto tcp dport 80,443 state new
    forward accept in lan proto icmp icmp-type 8
    input reject proto udp dport 1-1023 src 198.18.0.0/15
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..ip.hooks import Verdict
from .conntrack import CtState
from .packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP

__all__ = ["CHAINS", "Filter", "Rule", "parse_rules"]

CHAINS = ("input", "forward", "output")
ACTIONS = ("accept", "drop", "reject", "reject-icmp")
_PROTO_NAMES = {"tcp": PROTO_TCP, "udp": PROTO_UDP, "icmp": PROTO_ICMP, "icmpv6": PROTO_ICMPV6}
_STATES = {s.name.lower(): s for s in CtState}

Ports = int | tuple[int, int] | Iterable[int | tuple[int, int]]


@dataclass(frozen=True)
class Rule:
    """One filter rule (plain data; see the module docstring).

    Attributes:
        action: ``"accept"``, ``"drop"``, ``"reject"`` or ``"reject-icmp"``.
        chain: ``"input"``, ``"forward"`` or ``"output"``.
        iif, oif: the interface a datagram came in on / leaves by (name or index).
        src, dst: an address or prefix (``"198.18.1.0/24"``, ``"fd00::/8"``).
        proto: ``"tcp"``, ``"udp"``, ``"icmp"``, ``"icmpv6"`` or a protocol number.
        sport, dport: a port, a (low, high) range, or a list of either.
        icmp_type: an ICMP or ICMPv6 type.
        state: connection-tracking states: ``"new"``, ``"established"``, ``"related"``,
            ``"invalid"`` (a name, a comma-separated string or a collection of names).
        comment: for people.
    """

    action: str
    chain: str = "forward"
    iif: str | int | None = None
    oif: str | int | None = None
    src: str | None = None
    dst: str | None = None
    proto: str | int | None = None
    sport: Ports | None = None
    dport: Ports | None = None
    icmp_type: int | None = None
    state: str | Iterable[str] | None = None
    comment: str = ""


class _Compiled:
    """A rule made ready for matching, with its counters."""

    __slots__ = (
        "rule", "verdict", "verdict_tcp", "iif", "oif", "family", "src", "dst", "proto",
        "sport", "dport", "icmp_type", "states", "packets", "bytes",
    )  # fmt: skip

    def __init__(self, rule: Rule, resolve: Callable[[object], int]) -> None:
        if rule.action not in ACTIONS:
            raise ValueError(f"action {rule.action!r} is not one of {ACTIONS}")
        if rule.chain not in CHAINS:
            raise ValueError(f"chain {rule.chain!r} is not one of {CHAINS}")
        self.rule = rule
        self.verdict, self.verdict_tcp = _verdicts(rule.action)
        self.iif = None if rule.iif is None else resolve(rule.iif)
        self.oif = None if rule.oif is None else resolve(rule.oif)
        self.family = 0
        self.src = self._prefix(rule.src)
        self.dst = self._prefix(rule.dst)
        proto = rule.proto
        if isinstance(proto, str):
            if proto.lower() not in _PROTO_NAMES:
                raise ValueError(f"protocol {proto!r} is not one of {sorted(_PROTO_NAMES)}")
            proto = _PROTO_NAMES[proto.lower()]
        if proto is not None and not 0 <= proto <= 255:
            raise ValueError(f"protocol number {proto} is not 0-255")
        self.proto = proto
        if (rule.sport is not None or rule.dport is not None) and proto not in (
            PROTO_TCP, PROTO_UDP,
        ):  # fmt: skip
            raise ValueError("ports are matched only with proto 'tcp' or 'udp'")
        if rule.icmp_type is not None:
            if proto not in (PROTO_ICMP, PROTO_ICMPV6) or not 0 <= rule.icmp_type <= 255:
                raise ValueError("icmp_type (0-255) goes with proto 'icmp' or 'icmpv6'")
        self.icmp_type = rule.icmp_type
        self.sport = _ports(rule.sport)
        self.dport = _ports(rule.dport)
        self.states = _states(rule.state)
        self.packets = 0
        self.bytes = 0

    def _prefix(self, text: str | None) -> tuple[int, int] | None:
        if text is None:
            return None
        net = ipaddress.ip_network(text, strict=False)
        family = 6 if net.version == 6 else 4
        if self.family and self.family != family:
            raise ValueError("src and dst of one rule are of one IP version")
        self.family = family
        return int(net.network_address), int(net.netmask)


def _verdicts(action: str) -> tuple[Verdict, Verdict]:
    if action == "accept":
        return Verdict.ACCEPT, Verdict.ACCEPT
    if action == "drop":
        return Verdict.DROP, Verdict.DROP
    if action == "reject":
        return Verdict.REJECT_ICMP, Verdict.REJECT_RESET
    return Verdict.REJECT_ICMP, Verdict.REJECT_ICMP


def _ports(spec: Ports | None) -> tuple[tuple[int, int], ...] | None:
    if spec is None:
        return None
    items: Iterable[Any]
    if isinstance(spec, int):
        items = [spec]
    elif isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(x, int) for x in spec):
        items = [spec]
    else:
        items = spec
    out = []
    for item in items:
        lo, hi = (item, item) if isinstance(item, int) else item
        if not 0 <= lo <= hi <= 65535:
            raise ValueError(f"port range {item!r} is not within 0-65535")
        out.append((lo, hi))
    if not out:
        raise ValueError("an empty port list matches nothing")
    return tuple(out)


def _states(spec: str | Iterable[str] | None) -> frozenset[int] | None:
    if spec is None:
        return None
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out = set()
    for name in names:
        state = _STATES.get(name.strip().lower())
        if state is None:
            raise ValueError(f"state {name!r} is not one of {sorted(_STATES)}")
        out.add(int(state))
    return frozenset(out)


def _in(ranges: tuple[tuple[int, int], ...], port: int) -> bool:
    for lo, hi in ranges:
        if lo <= port <= hi:
            return True
    return False


class Filter:
    """The rules and policies of the three chains, and their counters. ``stack.filter``.

    Rules are replaced as a whole (:meth:`replace`, or assigning :attr:`rules`) or edited
    (:meth:`append`, :meth:`insert`, :meth:`remove`); tracked flows are untouched either way,
    so established connections carry on under the new rules (as far as the new rules accept
    them).
    """

    def __init__(self, resolve: Callable[[object], int] | None = None) -> None:
        self._resolve: Callable[[object], int] = resolve or _index_only
        self._chains: dict[str, list[_Compiled]] = {c: [] for c in CHAINS}
        self._policy: dict[str, str] = dict.fromkeys(CHAINS, "accept")
        self._policy_verdicts = {c: _verdicts("accept") for c in CHAINS}
        self.policy_hits: dict[str, int] = dict.fromkeys(CHAINS, 0)
        #: Whether any chain has a rule or a policy other than accept (else the filter is
        #: skipped).
        self.active = False

    # -- the public API -----------------------------------------------------------------------
    @property
    def rules(self) -> list[Rule]:
        """Every rule, input chain first, in order of evaluation within each chain."""
        return [c.rule for chain in CHAINS for c in self._chains[chain]]

    @rules.setter
    def rules(self, rules: Iterable[Rule]) -> None:
        self.replace(rules)

    def replace(self, rules: Iterable[Rule]) -> None:
        """Put ``rules`` in place of all rules, atomically: every rule is checked first, and
        on an error nothing changes. A rule equal to one in force keeps its counters (a
        reloaded rule file counts on where it was unchanged).

        Raises:
            ValueError: a rule that makes no sense (unknown action, chain, protocol or state;
                ports without TCP or UDP; prefixes of two IP versions); KeyError: an unknown
                interface.
        """
        chains: dict[str, list[_Compiled]] = {c: [] for c in CHAINS}
        for rule in rules:
            if not isinstance(rule, Rule):
                raise TypeError(f"{rule!r} is not a netstack filter Rule")
            compiled = _Compiled(rule, self._resolve)
            chains[rule.chain].append(compiled)
        for chain, compiled_rules in chains.items():
            old = list(self._chains.get(chain, ()))
            for c in compiled_rules:
                for i, before in enumerate(old):
                    if before.rule == c.rule:
                        c.packets, c.bytes = before.packets, before.bytes
                        del old[i]
                        break
        self._chains = chains
        self._update_active()

    def append(self, rule: Rule) -> None:
        """Add ``rule`` at the end of its chain."""
        compiled = _Compiled(rule, self._resolve)
        self._chains[rule.chain].append(compiled)
        self._update_active()

    def insert(self, index: int, rule: Rule) -> None:
        """Add ``rule`` at ``index`` of its chain."""
        compiled = _Compiled(rule, self._resolve)
        self._chains[rule.chain].insert(index, compiled)
        self._update_active()

    def remove(self, rule: Rule) -> None:
        """Remove the first rule equal to ``rule``.

        Raises:
            ValueError: no such rule.
        """
        chain = self._chains.get(rule.chain, [])
        for i, c in enumerate(chain):
            if c.rule == rule:
                del chain[i]
                self._update_active()
                return
        raise ValueError(f"{rule!r} is not a rule of this filter")

    def set_policy(self, chain: str, action: str) -> None:
        """The verdict for datagrams no rule of ``chain`` matches.

        Raises:
            ValueError: unknown chain or action.
        """
        if chain not in CHAINS:
            raise ValueError(f"chain {chain!r} is not one of {CHAINS}")
        if action not in ACTIONS:
            raise ValueError(f"action {action!r} is not one of {ACTIONS}")
        self._policy[chain] = action
        self._policy_verdicts[chain] = _verdicts(action)
        self._update_active()

    @property
    def policy(self) -> dict[str, str]:
        """The policies by chain (a copy: use :meth:`set_policy`)."""
        return dict(self._policy)

    def load(self, text: str) -> None:
        """Replace rules and policies with those of ``text`` (:func:`parse_rules`); atomic."""
        rules, policies = parse_rules(text)
        self.replace(rules)
        for chain in CHAINS:
            self.set_policy(chain, policies.get(chain, "accept"))

    def counters(self) -> list[dict[str, Any]]:
        """Each rule's matches: ``{"chain", "index", "rule", "packets", "bytes"}``."""
        return [
            {"chain": chain, "index": i, "rule": c.rule, "packets": c.packets, "bytes": c.bytes}
            for chain in CHAINS
            for i, c in enumerate(self._chains[chain])
        ]

    def stats(self) -> dict[str, Any]:
        return {
            "rules": sum(len(v) for v in self._chains.values()),
            "policy": dict(self._policy),
            "policy_hits": dict(self.policy_hits),
        }

    def reset_stats(self) -> None:
        for compiled in self._chains.values():
            for c in compiled:
                c.packets = c.bytes = 0
        for name in CHAINS:
            self.policy_hits[name] = 0

    def _update_active(self) -> None:
        self.active = any(self._chains.values()) or any(
            p != "accept" for p in self._policy.values()
        )

    # -- matching (the per-packet path) -------------------------------------------------------
    def decide(
        self,
        chain: str,
        v6: bool,
        proto: int,
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        icmp_type: int,
        state: int,
        ingress: int | None,
        egress: int | None,
        length: int,
    ) -> Verdict:
        """The verdict of ``chain`` for one datagram (counted on the rule that decided)."""
        family = 6 if v6 else 4
        src_int = dst_int = -1
        for c in self._chains[chain]:
            if c.family and c.family != family:
                continue
            if c.proto is not None and c.proto != proto:
                continue
            if c.states is not None and state not in c.states:
                continue
            if c.iif is not None and c.iif != ingress:
                continue
            if c.oif is not None and c.oif != egress:
                continue
            if c.src is not None:
                if src_int < 0:
                    src_int = int.from_bytes(src, "big")
                if src_int & c.src[1] != c.src[0]:
                    continue
            if c.dst is not None:
                if dst_int < 0:
                    dst_int = int.from_bytes(dst, "big")
                if dst_int & c.dst[1] != c.dst[0]:
                    continue
            if c.sport is not None and (sport < 0 or not _in(c.sport, sport)):
                continue
            if c.dport is not None and (dport < 0 or not _in(c.dport, dport)):
                continue
            if c.icmp_type is not None and c.icmp_type != icmp_type:
                continue
            c.packets += 1
            c.bytes += length
            return c.verdict_tcp if proto == PROTO_TCP else c.verdict
        self.policy_hits[chain] += 1
        v = self._policy_verdicts[chain]
        return v[1] if proto == PROTO_TCP else v[0]


def _index_only(key: object) -> int:
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    index = getattr(key, "index", None)
    if isinstance(index, int):
        return index
    raise KeyError(f"no interface {key!r}")


# -- the text form -------------------------------------------------------------------------------

_WORDS = {
    "in": "iif", "out": "oif", "src": "src", "dst": "dst", "proto": "proto",
    "sport": "sport", "dport": "dport", "icmp-type": "icmp_type", "state": "state",
}  # fmt: skip


def _port_list(text: str) -> list[int | tuple[int, int]]:
    out: list[int | tuple[int, int]] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        out.append((int(lo), int(hi)) if sep else int(lo))
    return out


def parse_rules(text: str) -> tuple[list[Rule], dict[str, str]]:
    """Parse the text form (see the module docstring): ``CHAIN ACTION [WORD VALUE]...`` per
    rule, ``policy CHAIN ACTION`` per policy, ``#`` to the end of a line a comment.

    Returns:
        (rules, policies by chain).

    Raises:
        ValueError: a line that is not a rule or policy, naming its line number.
    """
    rules: list[Rule] = []
    policies: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line, _, comment = raw.partition("#")
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "policy":
                if len(words) != 3 or words[1] not in CHAINS or words[2] not in ACTIONS:
                    raise ValueError("policy CHAIN ACTION")
                policies[words[1]] = words[2]
                continue
            if len(words) < 2 or words[0] not in CHAINS or words[1] not in ACTIONS:
                raise ValueError(f"a rule starts with one of {CHAINS} and an action")
            fields: dict[str, Any] = {}
            rest = words[2:]
            if len(rest) % 2:
                raise ValueError(f"{rest[-1]!r} has no value")
            for word, value in zip(rest[::2], rest[1::2], strict=True):
                name = _WORDS.get(word)
                if name is None or name in fields:
                    raise ValueError(f"unknown or repeated word {word!r}")
                if name in ("sport", "dport"):
                    fields[name] = _port_list(value)
                elif name == "icmp_type":
                    fields[name] = int(value)
                elif name in ("iif", "oif"):
                    fields[name] = int(value) if value.isdigit() else value
                elif name == "proto":
                    fields[name] = int(value) if value.isdigit() else value
                else:
                    fields[name] = value
            rule = Rule(words[1], words[0], comment=comment.strip(), **fields)
            _Compiled(rule, lambda key: 0)  # check all but the interfaces now
            rules.append(rule)
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return rules, policies
