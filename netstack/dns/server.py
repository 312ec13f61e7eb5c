"""An authoritative DNS server over netstack UDP and TCP.

Two halves, as everywhere in netstack:

- the answering logic, without I/O: :class:`Authority` (a query message in, a response
  message out), :class:`Responder` (wire bytes in, wire bytes out, with the checks and
  counters around it) and :class:`RateLimiter` (token buckets, time passed in);
- the driver: :class:`DnsServer`, a UDP endpoint and a TCP listener on a stack, and
  :func:`serve`, which loads zones and starts one.

What it follows:

- RFC 1034 4.3.2: the authoritative lookup (the best zone for the name; referrals at zone
  cuts with glue; CNAMEs followed, also into another zone served here; NXDOMAIN when the
  name does not exist). RFC 4592: wildcards, from the closest encloser (3.3.1); a name that
  only has names below it (an empty non-terminal, 2.2.2) exists and gets NODATA, not
  NXDOMAIN (RFC 8020 2: NXDOMAIN means nothing exists below the name either).
- RFC 6604 2.1: after CNAMEs, the RCODE speaks of the last name in the chain.
- RFC 2308 2 and 3: NXDOMAIN and NODATA answers carry the zone's SOA in the authority
  section, with the TTL the smaller of the SOA record's TTL and its MINIMUM field.
- RFC 1035 4.1.1: AA set on authoritative answers; RD copied; RA clear (this server does not
  recurse); REFUSED for names outside the zones served (and for zone transfers, which are not
  offered); FORMERR for messages that do not parse. RFC 9619: a query has exactly one
  question. NOTIMP for opcodes other than QUERY, with no flag but QR copied (the other bits
  are the opcode's to define, RFC 6895 2) and no question, as BIND and NSD answer.
- RFC 1035 4.2.1 and RFC 6891 6.2.3-6.2.5: UDP answers fit in 512 bytes, or in the EDNS
  payload size the client gave (at least 512), and never more than this server's own limit;
  RFC 2181 9: additional records are left out before TC is set; a truncated answer is the
  header and question (and OPT, RFC 6891 7), with TC, telling the client to ask over TCP.
- RFC 3225 3: the DO bit of the query is copied into the answer's OPT.
- RFC 7830 and RFC 8467 4.1: an answer to a padded query is padded to a multiple of 468
  bytes on an encrypted transport only; cleartext answers are never padded (padding hides
  nothing there and would make each answer a larger reflection).
- RFC 6891: an OPT in the answer exactly when the query had one (6.1.1, 7), NOTIMP answers
  included; a query with EDNS version
  above 0 gets BADVERS (6.1.3); one with more than one OPT gets FORMERR (6.1.1), made of
  the header, the question and an OPT (7). Unknown EDNS options are ignored (6.1.2).
- RFC 7858: DNS over TLS, on port 853 when :func:`serve` is given a TLS configuration (an
  :class:`ssl.SSLContext` or netstack's own :class:`~netstack.tls.TLSConfig`), framed and
  limited as over TCP.
- RFC 1035 4.2.2 and RFC 7766: over TCP, every message has a two-byte length prefix; a
  connection carries any number of queries, answered in order, each answer written with its
  prefix in one write (8); idle connections are closed (6.2.3), and so are those whose
  message does not arrive whole in time.
- Response rate limiting (not an RFC; what authoritative servers do against reflection
  attacks): a token bucket per client address on UDP, 100 queries a second with bursts of
  200 by default; of the queries beyond it every second one "slips" (an answer with TC=1
  and nothing but the question, no larger than the query) and the others are dropped, as
  BIND's RRL does by default: a real client behind a busy address goes on over TCP, a
  forged-source flood reflects half its packets at most, without amplification. TCP is not
  rate limited (its source address cannot be forged) but capped: connections per client
  address and in all (RFC 7766 6.2.2, 10; at the cap in all, the connection idle longest
  gives way, 6.2.3), an idle timeout between messages and a deadline for each message, so
  connections that trickle bytes are closed.

Answers are kept in their wire form per question (:mod:`netstack.dns.answers`): a question
asked again is answered by patching the query's ID, RD bit and question bytes (its 0x20
mixed case) into the kept answer, byte for byte what dnspython would render; changing the
data through :meth:`DnsServer.set_records` or :meth:`DnsServer.reload` forgets them.

Nothing a client sends raises out of the server: dnspython's parse errors are caught at the
boundary, answered with FORMERR when the header allows it, and counted.

Zones (the ``zone`` argument of :func:`serve`, or items of a list of them) are any of:

- a :class:`dns.zone.Zone`;
- zone-file text (a ``str`` with a newline; it needs ``$ORIGIN`` or absolute names);
- a path to a zone file (``str`` or :class:`os.PathLike`);
- a ``dict`` of origin to names to records::

      {"example.test.": {
          "@":   [("SOA", "ns admin 1 3600 600 86400 60"), ("NS", "ns")],
          "ns":  [("A", "198.18.0.2")],
          "www": [("A", "198.18.0.2"), ("AAAA", "fd00::2", 60)],
      }}

  Owner names are relative to the origin (``"@"`` is the origin itself) unless they end
  with a dot; each record is ``(type, rdata text)`` or ``(type, rdata text, ttl)`` (the TTL
  defaults to :data:`DEFAULT_TTL`), the rdata written as in a zone file (names in it
  relative to the origin too). A dict may hold several zones.

Every zone needs an SOA record at its origin (negative answers carry it).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeAlias, TypeVar, cast

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

from ..errors import ClosedError
from .answers import AnswerCache, question_key

__all__ = [
    "DEFAULT_TTL",
    "Authority",
    "DnsServer",
    "RateLimiter",
    "Responder",
    "Verdict",
    "ZoneSpec",
    "load_zones",
    "serve",
]

log = logging.getLogger("netstack.dns.server")

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

#: The TTL of records given in a dict without one.
DEFAULT_TTL = 300
#: RFC 1035 4.2.1: the UDP limit for a client without EDNS.
CLASSIC_UDP_SIZE = 512
#: The largest UDP answer this server sends, whatever a client offers (RFC 6891 6.2.5 leaves
#: the choice to the responder; 1232 bytes fit the IPv6 minimum MTU without fragments).
UDP_PAYLOAD = 1232
#: Queries over UDP longer than this are dropped: no legitimate query comes near it.
MAX_UDP_QUERY = 4096
#: RFC 7858 3.1: the DNS over TLS port.
DOT_PORT = 853
#: RFC 7766 6.2.3: idle TCP connections are closed after this many seconds.
TCP_IDLE_TIMEOUT = 10.0
#: A DNS message over TCP must arrive whole within this many seconds of its first byte (the
#: idle timer runs only between messages, so a byte now and then does not hold a connection).
TCP_MESSAGE_TIMEOUT = 5.0
#: RFC 7766 6.2.2 and 10: TCP connections served at once, in all and per client address
#: (per client much looser than the one connection a client should open, RFC 7766 6.2.2:
#: one address may be many resolvers, or a NAT).
TCP_MAX_CONNECTIONS = 128
TCP_MAX_PER_CLIENT = 16
#: The UDP rate limit: queries a second per client address, the burst allowed, and the slip
#: ratio (every SLIP-th query over the limit is answered with TC=1, the others dropped).
RATE = 100.0
BURST = 200.0
SLIP = 2
#: CNAMEs followed within the zones served before the answer stops (loops stop sooner).
MAX_CNAME_CHAIN = 8
#: Answers kept in their wire form (:class:`~netstack.dns.answers.AnswerCache`).
CACHED_ANSWERS = 10_000

_HEADER_LEN = 12
_QR = int(dns.flags.QR)
_DO = int(dns.flags.DO)
_OPCODE_BITS = 0x7800
#: RFC 8467 4.1: responses over an encrypted transport are padded to a multiple of this.
RESPONSE_PADDING_BLOCK = 468
_IN = dns.rdataclass.IN

Record: TypeAlias = tuple[str, str] | tuple[str, str, int]
ZoneDict: TypeAlias = Mapping[str, Mapping[str, Sequence[Record]]]
ZoneSpec: TypeAlias = "dns.zone.Zone | str | os.PathLike[str] | ZoneDict"


# -- loading zones ------------------------------------------------------------------------------
def load_zones(spec: ZoneSpec | Sequence[ZoneSpec]) -> list[dns.zone.Zone]:
    """Zones with absolute names from any of the forms :func:`serve` takes (see the module
    docstring), or a list of them.

    Raises:
        ValueError: a zone without an SOA record at its origin, a zone of another class
            than IN, two zones with one origin, or a dict of the wrong shape.
        OSError: a zone file that cannot be read.
        dns.exception.DNSException: zone text or rdata that does not parse.
    """
    items: Iterable[Any]
    if isinstance(spec, (list, tuple)):
        items = spec
    else:
        items = [spec]
    zones: list[dns.zone.Zone] = []
    for item in items:
        zones.extend(_load_one(item))
    origins: set[dns.name.Name] = set()
    for z in zones:
        assert z.origin is not None
        if z.origin in origins:
            raise ValueError(f"two zones have the origin {z.origin}")
        origins.add(z.origin)
    return zones


def _load_one(item: Any) -> list[dns.zone.Zone]:
    if isinstance(item, dns.zone.Zone):
        return [_check(_absolute(item))]
    if isinstance(item, Mapping):
        return [_check(_from_dict(origin, names)) for origin, names in item.items()]
    if isinstance(item, str) and "\n" in item:
        return [_check(dns.zone.from_text(item, relativize=False))]
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        return [_check(dns.zone.from_text(path.read_text(), relativize=False, filename=str(path)))]
    raise ValueError(f"cannot make a zone of {type(item).__name__}: give a dns.zone.Zone, "
                     "zone-file text, a path or a dict")  # fmt: skip


def _absolute(zone: dns.zone.Zone) -> dns.zone.Zone:
    """``zone`` with absolute owner names and rdata names, which answers are built from."""
    if not zone.relativize:
        return zone
    # A relativized zone keeps names relative to its origin; its text, with $ORIGIN, read
    # back without relativizing is the same zone with every name absolute.
    return dns.zone.from_text(
        zone.to_text(want_origin=True), rdclass=zone.rdclass, relativize=False
    )


def _from_dict(origin_text: str, names: Mapping[str, Sequence[Record]]) -> dns.zone.Zone:
    if not isinstance(origin_text, str) or not isinstance(names, Mapping):
        raise ValueError("a zone dict maps an origin (str) to a dict of names to records")
    origin = dns.name.from_text(origin_text)
    zone = dns.zone.Zone(origin, rdclass=_IN, relativize=False)
    for owner_text, records in names.items():
        owner = dns.name.from_text(owner_text, origin)
        if not owner.is_subdomain(origin):
            raise ValueError(f"{owner} is outside the zone {origin}")
        if isinstance(records, (str, bytes)):
            raise ValueError(f"the records of {owner_text!r} must be a list of tuples")
        for record in records:
            if not isinstance(record, tuple) or len(record) not in (2, 3):
                raise ValueError(
                    f"a record is (type, rdata) or (type, rdata, ttl), got {record!r} "
                    f"for {owner_text!r}"
                )
            ttl = int(record[2]) if len(record) == 3 else DEFAULT_TTL
            rdata = dns.rdata.from_text(_IN, record[0], record[1], origin=origin, relativize=False)
            zone.find_rdataset(owner, rdata.rdtype, create=True).add(rdata, ttl)
    return zone


def _check(zone: dns.zone.Zone) -> dns.zone.Zone:
    origin = zone.origin
    if origin is None:
        raise ValueError("a zone needs an origin")
    if zone.rdclass != _IN:
        raise ValueError(f"zone {origin} is of class {dns.rdataclass.to_text(zone.rdclass)}, "
                         "only IN is served")  # fmt: skip
    node = zone.nodes.get(origin)
    if node is None or node.get_rdataset(_IN, dns.rdatatype.SOA) is None:
        raise ValueError(f"zone {origin} has no SOA record at its origin")
    return zone


# -- the answering logic -------------------------------------------------------------------------
def _rrset(owner: dns.name.Name, rds: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(owner, int(rds.ttl), list(rds))


def _make_response(query: dns.message.Message, payload: int) -> dns.message.Message:
    """dnspython's response to ``query`` (ID, question, QR, opcode, RD; an OPT when the
    query had one), with the DO bit copied and never padded (padding is the transport's
    business: see :meth:`Responder.respond`)."""
    response = dns.message.make_response(query, our_payload=payload, pad=0)
    if query.edns >= 0 and query.ednsflags & _DO:
        # RFC 3225 3: "The DO bit of the query MUST be copied in the response."
        response.want_dnssec(True)
    return response


@dataclass(slots=True)
class _ZoneIndex:
    """A zone with what answering needs precomputed: every name that exists (owner names
    and the empty non-terminals above them) and the zone cuts below the apex."""

    zone: dns.zone.Zone
    origin: dns.name.Name
    names: set[dns.name.Name] = field(default_factory=set)
    cuts: set[dns.name.Name] = field(default_factory=set)

    @classmethod
    def build(cls, zone: dns.zone.Zone) -> _ZoneIndex:
        assert zone.origin is not None
        index = cls(zone, zone.origin)
        for name, node in zone.nodes.items():
            n = name
            while n not in index.names:
                index.names.add(n)
                if n == index.origin or len(n) <= 1:
                    break
                n = n.parent()
            if name != index.origin and node.get_rdataset(_IN, dns.rdatatype.NS) is not None:
                index.cuts.add(name)
        return index

    def soa(self) -> dns.rrset.RRset:
        """The SOA for a negative answer (RFC 2308 3: TTL min(SOA TTL, MINIMUM))."""
        rds = self.zone.nodes[self.origin].get_rdataset(_IN, dns.rdatatype.SOA)
        assert rds is not None
        rrset = _rrset(self.origin, rds)
        rrset.ttl = min(int(rds.ttl), min(int(rd.minimum) for rd in rds))
        return rrset

    def cut_above(self, name: dns.name.Name) -> dns.name.Name | None:
        """The highest zone cut at or above ``name`` (below the apex), if any."""
        if not self.cuts:
            return None
        found = None
        n = name
        while n != self.origin and len(n) > 1:
            if n in self.cuts:
                found = n
            n = n.parent()
        return found

    def wildcard(self, name: dns.name.Name) -> Any:
        """The wildcard node that answers for ``name``, which does not exist (RFC 4592
        3.3.1: ``*`` under the closest encloser), or None."""
        n = name
        while n != self.origin and len(n) > 1:
            n = n.parent()
            if n in self.names:
                break
        return self.zone.nodes.get(dns.name.Name((b"*",) + n.labels))


class Authority:
    """Answers queries from zones; no I/O, no clock.

    Args:
        zones: zones with absolute names (see :func:`load_zones`).
        udp_payload: the payload size put in the OPT record of answers (RFC 6891 6.2.5).
    """

    def __init__(self, zones: Sequence[dns.zone.Zone], *, udp_payload: int = UDP_PAYLOAD) -> None:
        self.udp_payload = udp_payload
        self._zones = [_ZoneIndex.build(z) for z in zones]
        # Longest origin first, so the first match is the closest enclosing zone.
        self._zones.sort(key=lambda z: -len(z.origin))

    def zone_for(self, name: dns.name.Name) -> _ZoneIndex | None:
        for z in self._zones:
            if name.is_subdomain(z.origin):
                return z
        return None

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        """The response to a parsed query with one question of class IN."""
        response = _make_response(query, self.udp_payload)
        question = query.question[0]
        zi = self.zone_for(question.name)
        if zi is None:
            # Not an authority for the name, and no recursion offered (RFC 1035 4.1.1).
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        self._lookup(zi, question.name, question.rdtype, response)
        self._add_additional(response)
        return response

    def _lookup(
        self,
        zi: _ZoneIndex,
        qname: dns.name.Name,
        qtype: int,
        response: dns.message.Message,
    ) -> None:
        """RFC 1034 4.3.2, steps 3 and 4, for ``qname`` in ``zi``."""
        name = qname
        seen = {qname}
        while True:
            cut = zi.cut_above(name)
            if cut is not None:
                # Step 3b: a referral. AA speaks of the question's name: clear unless an
                # authoritative CNAME led here.
                if not response.answer:
                    response.flags &= ~dns.flags.AA
                ns = zi.zone.nodes[cut].get_rdataset(_IN, dns.rdatatype.NS)
                assert ns is not None
                response.authority.append(_rrset(cut, ns))
                return
            node = zi.zone.nodes.get(name)
            if node is None and name not in zi.names:
                node = zi.wildcard(name)  # step 3c, RFC 4592
            if node is None:
                if name not in zi.names:
                    response.set_rcode(dns.rcode.NXDOMAIN)  # RFC 6604 2.1: the last name
                response.authority.append(zi.soa())  # RFC 2308 2.1, 2.2 and 3
                return
            if qtype == dns.rdatatype.ANY:
                for rds in node:
                    if len(rds):
                        response.answer.append(_rrset(name, rds))
                return
            rds = node.get_rdataset(_IN, dns.rdatatype.RdataType.make(qtype))
            if rds is not None and len(rds):
                response.answer.append(_rrset(name, rds))
                return
            cname = node.get_rdataset(_IN, dns.rdatatype.CNAME)
            if cname is None or len(cname) == 0:
                response.authority.append(zi.soa())  # NODATA (RFC 2308 2.2)
                return
            # Step 3a: the CNAME goes into the answer and the lookup starts again at its
            # target, in whichever zone served here holds it.
            response.answer.append(_rrset(name, cname))
            target = cname[0].target
            next_zone = self.zone_for(target)
            if next_zone is None or target in seen or len(seen) > MAX_CNAME_CHAIN:
                return
            seen.add(target)
            zi, name = next_zone, target

    def _add_additional(self, response: dns.message.Message) -> None:
        """RFC 1035 3.3.9/3.3.11 and RFC 2782: addresses of the hosts named by MX, NS and SRV
        records (glue, for a referral), when a zone served here has them."""
        wanted: list[dns.name.Name] = []
        for rrset in (*response.answer, *response.authority):
            for rd in rrset:
                if rrset.rdtype == dns.rdatatype.MX:
                    wanted.append(rd.exchange)
                elif rrset.rdtype in (dns.rdatatype.NS, dns.rdatatype.SRV):
                    wanted.append(rd.target)
        present = {(r.name, r.rdtype) for r in response.answer}
        for target in wanted:
            zi = self.zone_for(target)
            node = zi.zone.nodes.get(target) if zi is not None else None
            if node is None:
                continue
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                rds = node.get_rdataset(_IN, rdtype)
                if rds is not None and (target, rdtype) not in present:
                    present.add((target, rdtype))
                    response.additional.append(_rrset(target, rds))


class Responder:
    """Wire bytes of a query in, wire bytes of the answer out (or None: nothing to send),
    with every check around :class:`Authority` and counters of what happened.

    Answers to plain queries are kept in their wire form (:class:`AnswerCache`), so the same
    question asked again is answered by patching the query's ID, RD bit and question bytes
    into the kept answer, without dnspython (:mod:`netstack.dns.answers` says which queries
    and why the result is the same bytes). Setting :attr:`authority` empties that cache.

    Args:
        authority: the answering logic.
        udp_payload: the largest UDP answer sent (RFC 6891 6.2.5).
        cached_answers: answers kept at most (0: none, every query answered the long way).

    Never raises on anything a client sends.
    """

    @property
    def authority(self) -> Authority:
        """The answering logic; a new one (new zone data) empties the answer cache."""
        return self._authority

    @authority.setter
    def authority(self, authority: Authority) -> None:
        self._authority = authority
        if self.answers is not None:
            self.answers.clear()

    def __init__(
        self,
        authority: Authority,
        *,
        udp_payload: int = UDP_PAYLOAD,
        cached_answers: int = CACHED_ANSWERS,
    ) -> None:
        #: Pre-rendered answers (:mod:`netstack.dns.answers`); None with ``cached_answers``
        #: 0, when every query is answered the long way.
        self.answers = AnswerCache(cached_answers) if cached_answers > 0 else None
        self.authority = authority
        self.udp_payload = max(CLASSIC_UDP_SIZE, udp_payload)
        self._last_rcode = ""
        self._last_varies = False
        self.queries = {"udp": 0, "tcp": 0}
        self.rcodes: dict[str, int] = {}
        self.drops: dict[str, int] = {}
        self.malformed = 0
        self.truncated = 0
        self.slipped = 0
        self.additional_omitted = 0

    def drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def respond(self, wire: bytes, *, udp: bool, encrypted: bool = False) -> bytes | None:
        """The answer to ``wire`` (one DNS message), or None when it is dropped.

        Args:
            wire: the message, without the TCP length prefix.
            udp: whether it came over UDP (answers are then size-limited).
            encrypted: whether it came over an encrypted transport (DNS over TLS): only
                then is an answer to a padded query padded (RFC 7830, RFC 8467).
        """
        answers = self.answers
        rest: bytes | None = None
        # Over UDP, a query seen before but for its ID first (AnswerCache.exact): the answer
        # it got but for the ID, counted the same way, with nothing parsed.
        if udp and answers is not None and (exact := answers.exact.get(wire[2:])) is not None:
            cached, rest, name_end = exact
            self.queries["udp"] += 1
            answers.hits += 1
        else:
            if len(wire) < _HEADER_LEN:
                self.drop("short")
                return None
            if udp and len(wire) > MAX_UDP_QUERY:
                self.drop("oversize")
                return None
            flags = int.from_bytes(wire[2:4], "big")
            if flags & _QR:
                # Never answer an answer: two servers would echo each other forever.
                self.drop("not_a_query")
                return None
            self.queries["udp" if udp else "tcp"] += 1
            found = None
            if answers is not None:
                found = question_key(
                    wire, udp=udp, encrypted=encrypted, udp_payload=self.udp_payload
                )
            if answers is None or found is None:
                return self._respond(wire, flags, udp, encrypted)[0]
            key, name_end = found
            kept = answers.get(key)
            if kept is None:
                truncated, omitted = self.truncated, self.additional_omitted
                out, cacheable = self._respond(wire, flags, udp, encrypted)
                if cacheable and out is not None:
                    answers.put(
                        key, name_end, out, rcode=self._last_rcode,
                        truncated=self.truncated != truncated,
                        additional_omitted=self.additional_omitted != omitted,
                        varies=self._last_varies,
                    )  # fmt: skip
                return out
            cached = kept
            if udp:
                answers.keep_exact(wire, cached, name_end)
        rcodes = self.rcodes
        rcodes[cached.rcode] = rcodes.get(cached.rcode, 0) + 1
        if cached.truncated:
            self.truncated += 1
        if cached.additional_omitted:
            self.additional_omitted += 1
        if rest is not None:
            return wire[:2] + rest
        return cached.render(wire, name_end)

    def _respond(
        self, wire: bytes, flags: int, udp: bool, encrypted: bool
    ) -> tuple[bytes | None, bool]:
        """The answer by dnspython, and whether it is the same for every query of the same
        question key (an answer rendered from the zones, not an error about the message)."""
        if dns.opcode.from_flags(flags) != dns.opcode.QUERY:
            return self._not_implemented(wire), False
        try:
            query = dns.message.from_wire(wire)
        except dns.message.BadEDNS:
            self.malformed += 1
            return self._bad_edns(wire), False
        except Exception as exc:  # dnspython raises many kinds on malformed wire
            self.malformed += 1
            log.debug("malformed query: %r", exc)
            return self._header_only(wire, dns.rcode.FORMERR), False
        try:
            response = self._answer(query)
            return self._render(query, response, udp, encrypted), True
        except Exception:  # a bug: count it, answer SERVFAIL, never let it into the loop
            log.exception("internal error answering a query")
            self.drop("internal_error")
            return self._header_only(wire, dns.rcode.SERVFAIL), False

    def slip(self, wire: bytes) -> bytes | None:
        """The answer to a query over the rate limit that slips: TC=1 with the header, the
        question and the OPT (RFC 6891 7) and nothing else, no larger than the query, so a
        real client asks again over TCP and a forged source gains nothing. None (drop) for
        anything but a well-formed QUERY with one question.

        Args:
            wire: the query, as it came over UDP.
        """
        if len(wire) < _HEADER_LEN or len(wire) > MAX_UDP_QUERY:
            return None
        flags = int.from_bytes(wire[2:4], "big")
        if flags & _QR or dns.opcode.from_flags(flags) != dns.opcode.QUERY:
            return None
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # dnspython raises many kinds on malformed wire
            return None
        if len(query.question) != 1:
            return None
        response = self._error(query, dns.rcode.NOERROR)
        response.flags |= dns.flags.TC
        self.slipped += 1
        self.queries["udp"] += 1
        self._count(dns.rcode.NOERROR)
        return response.to_wire(max_size=65535)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        if len(query.question) != 1:
            return self._error(query, dns.rcode.FORMERR, keep_question=False)  # RFC 9619
        if query.edns > 0:
            # RFC 6891 6.1.3: BADVERS, in an OPT of the highest version implemented (0).
            return self._error(query, dns.rcode.BADVERS)
        question = query.question[0]
        if question.rdclass != _IN:
            return self._error(query, dns.rcode.REFUSED)
        rdtype = question.rdtype
        if rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            return self._error(query, dns.rcode.REFUSED)  # transfers are not offered
        if rdtype == dns.rdatatype.OPT:
            return self._error(query, dns.rcode.FORMERR)  # RFC 6891 6.1.1: OPT is no question
        if dns.rdatatype.is_metatype(rdtype) and rdtype != dns.rdatatype.ANY:
            return self._error(query, dns.rcode.NOTIMP)
        return self.authority.answer(query)

    def _error(
        self, query: dns.message.Message, rcode: dns.rcode.Rcode, *, keep_question: bool = True
    ) -> dns.message.Message:
        response = _make_response(query, self.udp_payload)
        if not keep_question:
            response.question = []
        response.set_rcode(rcode)
        return response

    def _limit(self, query: dns.message.Message, udp: bool) -> int:
        if not udp:
            return 65535
        if query.edns < 0:
            return CLASSIC_UDP_SIZE  # RFC 1035 4.2.1
        # RFC 6891 6.2.3: a payload size below 512 is read as 512.
        return min(max(CLASSIC_UDP_SIZE, query.payload), self.udp_payload)

    def _render(
        self,
        query: dns.message.Message,
        response: dns.message.Message,
        udp: bool,
        encrypted: bool = False,
    ) -> bytes:
        limit = self._limit(query, udp)
        self._last_varies = False
        if encrypted and response.opt is not None and _padded(query):
            # RFC 7830 4 and RFC 8467 4.1: a padded query over an encrypted transport gets
            # a padded answer, in blocks of 468 bytes. Never on cleartext: padding there
            # hides nothing and makes every answer a bigger reflection.
            response.pad = RESPONSE_PADDING_BLOCK
        try:
            out = response.to_wire(max_size=65535)
        except dns.exception.TooBig:
            out = b""
            if not udp:  # no room even over TCP
                self._count(dns.rcode.SERVFAIL)
                return self._error(query, dns.rcode.SERVFAIL).to_wire(max_size=65535)
        if out and len(out) <= limit:
            self._count(response.rcode())
            self._last_varies = _varies(response)
            return out
        if response.additional:
            # RFC 2181 9: additional records may go without setting TC.
            response.additional = []
            self.additional_omitted += 1
            out = response.to_wire(max_size=65535)
            if len(out) <= limit:
                self._count(response.rcode())
                self._last_varies = _varies(response)
                return out
        # RFC 1035 4.2.1, RFC 2181 9: TC with nothing but the question (and OPT, RFC 6891 7);
        # the client asks again over TCP.
        truncated = self._error(query, response.rcode())
        truncated.flags |= dns.flags.TC | (response.flags & dns.flags.AA)
        self.truncated += 1
        self._count(response.rcode())
        return truncated.to_wire(max_size=65535)

    def _bad_edns(self, wire: bytes) -> bytes:
        """FORMERR for a query whose OPT records are wrong (RFC 6891 6.1.1): the header, the
        question and an OPT (RFC 6891 7)."""
        try:
            question = dns.message.from_wire(wire, question_only=True)
        except Exception:
            return self._header_only(wire, dns.rcode.FORMERR, edns=True)
        response = dns.message.make_response(question)
        response.use_edns(0, 0, self.udp_payload)
        response.set_rcode(dns.rcode.FORMERR)
        self._count(dns.rcode.FORMERR)
        return response.to_wire(max_size=65535)

    def _not_implemented(self, wire: bytes) -> bytes:
        """NOTIMP for an opcode other than QUERY (RFC 1035 4.1.1).

        The header bits between Opcode and RCODE mean what the opcode defines (RFC 6895 2;
        UPDATE has a Z field there, RFC 2136 2.2), so for an opcode not implemented here
        none of them is copied, RD included: the answer is QR, the ID and the opcode (as
        BIND answers), no question (its format is the opcode's too, as NSD answers). If the
        message parses and has an OPT, the answer has one, version 0, with DO copied (RFC
        6891 6.1.1, RFC 3225 3).
        """
        flags = int.from_bytes(wire[2:4], "big")
        response = dns.message.Message(id=int.from_bytes(wire[0:2], "big"))
        response.flags = _QR | (flags & _OPCODE_BITS)
        response.set_rcode(dns.rcode.NOTIMP)
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # any parse error: the header alone
            query = None
        if query is not None and query.opt is not None:
            ednsflags = _DO if query.ednsflags & _DO else 0
            response.use_edns(0, ednsflags, self.udp_payload)
            response.set_rcode(dns.rcode.NOTIMP)
        self._count(dns.rcode.NOTIMP)
        return response.to_wire(max_size=65535)

    def _header_only(self, wire: bytes, rcode: dns.rcode.Rcode, *, edns: bool = False) -> bytes:
        """A response made of the query's header alone (its question may not parse)."""
        flags = int.from_bytes(wire[2:4], "big")
        response = dns.message.Message(id=int.from_bytes(wire[0:2], "big"))
        # QR, the query's opcode and RD (RFC 1035 4.1.1).
        response.flags = _QR | (flags & (0x7800 | int(dns.flags.RD)))
        response.set_rcode(rcode)
        if edns:
            response.use_edns(0, 0, self.udp_payload)
        self._count(rcode)
        return response.to_wire(max_size=65535)

    def _count(self, rcode: int) -> None:
        text = dns.rcode.to_text(rcode)  # type: ignore[arg-type]
        self.rcodes[text] = self.rcodes.get(text, 0) + 1
        self._last_rcode = text

    def stats(self) -> dict[str, Any]:
        return {
            "udp_queries": self.queries["udp"],
            "tcp_queries": self.queries["tcp"],
            "responses": sum(self.rcodes.values()),
            "rcodes": dict(self.rcodes),
            "truncated": self.truncated,
            "slipped": self.slipped,
            "additional_omitted": self.additional_omitted,
            "malformed": self.malformed,
            "drops": dict(self.drops),
            "answer_cache": self.answers.stats() if self.answers is not None else {},
        }


def _varies(response: dns.message.Message) -> bool:
    """Whether dnspython renders ``response`` differently each time: it puts the records of
    an RRset in a new random order on every rendering."""
    sections = (response.answer, response.authority, response.additional)
    return any(len(rrset) > 1 for section in sections for rrset in section)


def _padded(query: dns.message.Message) -> bool:
    return any(o.otype == dns.edns.OptionType.PADDING for o in query.options)


class Verdict(Enum):
    """What :meth:`RateLimiter.check` says to do with a query."""

    ANSWER = "answer"
    #: Answer with TC=1 and nothing else (:meth:`Responder.slip`).
    SLIP = "slip"
    DROP = "drop"


# Module globals for the per-query path: an enum member read from its class costs ~100 ns.
_ANSWER = Verdict.ANSWER
_INF = math.inf


class RateLimiter:
    """A token bucket per client: ``rate`` queries a second on average, bursts of up to
    ``burst``; beyond them, every ``slip``-th query slips (a TC=1 answer) and the others are
    dropped. No clock inside: :meth:`check` takes the time.

    Slipping is what response rate limiting in authoritative servers does (BIND's RRL, whose
    default slip is 2 too): a forged-source flood reflects at most half of its queries, as
    answers no larger than the queries (no amplification), while a real client behind a busy
    address (a resolver, a NAT) that crossed the limit learns it at once and asks again over
    TCP, which is not limited. The first query over the limit slips, so a client that just
    crossed it is not left to time out.

    Args:
        rate: tokens added per second (``math.inf``: no limit).
        burst: the bucket's size; a new client starts with a full bucket.
        slip: 0: drop everything over the limit; 1: answer all of it with TC; n: answer the
            1st, (n+1)th, ... with TC and drop the others.
        max_clients: buckets kept; beyond it the least recently seen client is forgotten
            (and starts again with a full bucket).

    Raises:
        ValueError: ``rate`` not positive, ``burst`` below 1, ``slip`` negative or
            ``max_clients`` below 1.
    """

    def __init__(
        self, rate: float, burst: float, *, slip: int = SLIP, max_clients: int = 10000
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        if not burst >= 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        if slip < 0:
            raise ValueError(f"slip must be 0 or more, got {slip!r}")
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.slip = int(slip)
        self.max_clients = max_clients
        # client -> [tokens, when last seen, queries over the limit so far], changed in place
        self._buckets: OrderedDict[str | bytes, list[float]] = OrderedDict()

    def check(self, client: str | bytes, now: float) -> Verdict:
        """Take one token from ``client``'s bucket: :attr:`Verdict.ANSWER` when there was
        one, else :attr:`Verdict.SLIP` or :attr:`Verdict.DROP` by the slip ratio."""
        rate = self.rate
        if rate == _INF:
            return _ANSWER
        buckets = self._buckets
        entry = buckets.get(client)
        over: float
        if entry is None:
            tokens, over = self.burst, 0
        else:
            buckets.move_to_end(client)  # the least recently seen client goes first
            tokens, last, over = entry
            if now > last:
                tokens += (now - last) * rate
                if tokens > self.burst:
                    tokens = self.burst
            if tokens >= 1.0:  # the common case, a known client within its rate
                entry[0] = tokens - 1.0
                entry[1] = now
                return _ANSWER
        if tokens >= 1.0:
            buckets[client] = [tokens - 1.0, now, over]
            verdict = _ANSWER
        else:
            verdict = Verdict.SLIP if self.slip and over % self.slip == 0 else Verdict.DROP
            buckets[client] = [tokens, now, over + 1]
        if entry is None and len(buckets) > self.max_clients:
            buckets.popitem(last=False)
        return verdict

    def allow(self, client: str | bytes, now: float) -> bool:
        """Take one token from ``client``'s bucket; False when it is empty."""
        return self.check(client, now) is Verdict.ANSWER

    def __len__(self) -> int:
        return len(self._buckets)


# -- the driver ---------------------------------------------------------------------------------
class ServerStack(Protocol):
    """What :class:`DnsServer` needs of a stack (:class:`netstack.Stack` or
    :class:`netstack.HostStack`)."""

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], _P],
        local_addr: tuple[str | None, int] | None = ...,
        remote_addr: tuple[str, int] | None = ...,
    ) -> tuple[Any, _P]: ...

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = ...,
        port: int = ...,
        *,
        ssl: Any = ...,
    ) -> Any: ...


class _PackedEndpoint(Protocol):
    """What the server uses of netstack's datagram transport beyond asyncio's
    (:meth:`netstack.drivers.udp.DatagramTransport.set_packed_receiver`)."""

    def set_packed_receiver(
        self, receiver: Callable[[memoryview, bytes, int, int], None] | None
    ) -> None: ...

    def sendto_packed(
        self, data: bytes | bytearray | memoryview, dst: bytes, port: int, scope: int = 0
    ) -> None: ...


class _UdpService(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A netstack endpoint hands datagrams over as its UDP layer has them (the driver's
        # class is not imported here: only the stack imports drivers).
        if hasattr(transport, "set_packed_receiver") and hasattr(transport, "sendto_packed"):
            endpoint = cast(_PackedEndpoint, transport)
            self.server._packed = endpoint
            endpoint.set_packed_receiver(self.server._on_packed_datagram)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.server._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error about an answer sent: nothing to do but note it.
        self.server.icmp_errors += 1


class _TcpService(asyncio.Protocol):
    """One TCP connection: length-prefixed queries in, answers out (RFC 7766).

    One timer at a time: between messages the idle timer (RFC 7766 6.2.3), counted from the
    last answer; once a message's first byte is in, that message's deadline, which more
    bytes of the same message do not move.
    """

    def __init__(self, server: DnsServer, *, encrypted: bool = False) -> None:
        self.server = server
        #: DNS over TLS (RFC 7858): the connection is the TLS listener's.
        self.encrypted = encrypted
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.client = ""
        self.admitted = False
        #: When the connection last finished a message (or opened): the idle ones give way
        #: first when every slot is taken.
        self.last_active = 0.0
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance() check: uvloop's transports do not derive from asyncio's classes.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else ""
        self.last_active = self._loop.time()
        if not self.server._admit(self):
            transport.close()
            return
        self._arm(self.last_active + self.server.tcp_idle_timeout, self._on_idle)

    def _arm(self, at: float, callback: Callable[[], None]) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self._loop.call_at(at, callback)

    def _on_idle(self) -> None:
        self.timer = None
        self.server.tcp_idle_closed += 1
        if self.transport is not None:
            self.transport.close()

    def _on_deadline(self) -> None:
        self.timer = None
        self.server.tcp_message_timeouts += 1
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        started = not self.buffer
        self.buffer += data
        buf = self.buffer
        while len(buf) >= 2:
            n = int.from_bytes(buf[0:2], "big")
            if len(buf) < 2 + n:
                break
            wire = bytes(buf[2 : 2 + n])
            del buf[: 2 + n]
            started = True
            out = self.server._answer(wire, encrypted=self.encrypted)
            if out is not None and self.transport is not None:
                self.transport.write(len(out).to_bytes(2, "big") + out)  # RFC 7766 8
        if self.transport is None or self.transport.is_closing():
            return
        now = self._loop.time()
        if not buf:
            self.last_active = now
            self._arm(now + self.server.tcp_idle_timeout, self._on_idle)
        elif started:
            # A new message began in this data: its deadline counts from now.
            self._arm(now + self.server.tcp_message_timeout, self._on_deadline)

    def eof_received(self) -> bool:
        return False  # the client is done: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.server._release(self)
        self.transport = None

    # A client that sends queries and never reads the answers stops being read from.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()


def _listening_port(server: Any, default: int) -> int:
    """The port a listener (netstack's Server or asyncio's) is bound to."""
    addresses = getattr(server, "addresses", None)
    if addresses:
        return int(addresses[0][1])
    sockets = getattr(server, "sockets", None)
    if sockets:
        return int(sockets[0].getsockname()[1])
    return default


class DnsServer:
    """An authoritative DNS server on a stack's UDP and TCP port; made by :func:`serve`.

    Attributes:
        zones: the zones served (absolute names).
        port: the port listened on.
        tls_port: the DNS over TLS port, when served (RFC 7858).
        responder: the answering logic and its counters.
        limiter: the per-client rate limit on UDP (:class:`RateLimiter`, with its slip).
        tcp_idle_timeout: seconds a TCP connection may stay silent between messages
            (:data:`TCP_IDLE_TIMEOUT`).
        tcp_message_timeout: seconds a message over TCP may take from its first byte to
            its last (:data:`TCP_MESSAGE_TIMEOUT`).
        tcp_max_connections: TCP connections served at once, DNS over TLS included
            (:data:`TCP_MAX_CONNECTIONS`).
        tcp_max_per_client: TCP connections served at once per client address, DNS over
            TLS included (:data:`TCP_MAX_PER_CLIENT`).
    """

    def __init__(
        self,
        stack: ServerStack,
        zones: Sequence[dns.zone.Zone],
        *,
        rate: float = RATE,
        burst: float = BURST,
        slip: int = SLIP,
        udp_payload: int = UDP_PAYLOAD,
    ) -> None:
        self.stack = stack
        self.zones = list(zones)
        self.authority = Authority(self.zones, udp_payload=udp_payload)
        self.responder = Responder(self.authority, udp_payload=udp_payload)
        self.limiter = RateLimiter(rate, burst, slip=slip)
        self.port = 0
        self.tcp_idle_timeout = TCP_IDLE_TIMEOUT
        self.tcp_message_timeout = TCP_MESSAGE_TIMEOUT
        self.tcp_max_connections = TCP_MAX_CONNECTIONS
        self.tcp_max_per_client = TCP_MAX_PER_CLIENT
        self.tcp_connections = 0
        self.tcp_idle_closed = 0
        self.tcp_message_timeouts = 0
        self.tcp_refused = 0
        self.tcp_evicted = 0
        self._per_client: dict[str, int] = {}
        self.icmp_errors = 0
        self.internal_errors = 0
        #: The DNS over TLS port (RFC 7858), when served.
        self.tls_port: int | None = None
        self.tls_queries = 0
        self._udp: asyncio.DatagramTransport | None = None
        #: The same endpoint when it is netstack's (answers go by its packed address path).
        self._packed: _PackedEndpoint | None = None
        self._tcp: Any = None
        self._tls: Any = None
        # Insertion-ordered: among connections idle equally long (uvloop's clock ticks in
        # milliseconds), the oldest gives way first.
        self._connections: dict[_TcpService, None] = {}
        self._closed = False
        self._loop = asyncio.get_running_loop()

    def set_records(
        self, name: str, rdtype: str, values: Sequence[str], ttl: int = DEFAULT_TTL
    ) -> None:
        """Replace (or with no ``values`` remove) the ``rdtype`` records of ``name`` in the
        zone that holds it, and answer from the new data at once (a DHCP server registering
        its clients' names, say).

        Args:
            name: an absolute name, or one relative to the only zone served.
            rdtype: ``"A"``, ``"AAAA"``, ``"PTR"``, ...
            values: rdata texts as in a zone file.
            ttl: the records' TTL.

        Raises:
            ValueError: the name is in no zone served here, or names the zone's origin SOA.
            dns.exception.DNSException: rdata that does not parse.
        """
        if name.endswith("."):
            owner = dns.name.from_text(name)
        elif len(self.zones) == 1:
            owner = dns.name.from_text(name, origin=self.zones[0].origin)
        else:
            raise ValueError(f"{name!r}: give an absolute name, {len(self.zones)} zones are served")
        zone = next(
            (z for z in self.zones if z.origin is not None and owner.is_subdomain(z.origin)),
            None,
        )
        if zone is None:
            raise ValueError(f"{owner} is in no zone served here")
        kind = dns.rdatatype.from_text(rdtype)
        if kind == dns.rdatatype.SOA:
            raise ValueError("the SOA record cannot be replaced this way")
        if values:
            rdataset = dns.rdataset.from_text_list(dns.rdataclass.IN, kind, ttl, list(values))
            zone.replace_rdataset(owner, rdataset)
        else:
            zone.delete_rdataset(owner, kind)
        self.reload()

    def reload(self) -> None:
        """Answer from the zones' data as it is now: after changing the
        :class:`dns.zone.Zone` objects in :attr:`zones` in place (:meth:`set_records` does
        this itself). Answers kept in their wire form are forgotten."""
        self.authority = Authority(self.zones, udp_payload=self.authority.udp_payload)
        self.responder.authority = self.authority

    async def start(
        self, host: str | None, port: int, *, tls: Any = None, tls_port: int = DOT_PORT
    ) -> None:
        """Open the UDP endpoint and the TCP listener (both on the UDP endpoint's port when
        ``port`` is 0), and with ``tls`` (an :class:`ssl.SSLContext` or a
        :class:`netstack.tls.TLSConfig`) a DNS over TLS listener on ``tls_port``."""
        transport, _ = await self.stack.create_datagram_endpoint(
            lambda: _UdpService(self), local_addr=(host, port)
        )
        self._udp = transport
        try:
            sockname = transport.get_extra_info("sockname")
            self.port = int(sockname[1]) if sockname else port
            self._tcp = await self.stack.create_server(lambda: _TcpService(self), host, self.port)
            if tls is not None:
                self._tls = await self.stack.create_server(
                    lambda: _TcpService(self, encrypted=True), host, tls_port, ssl=tls
                )
                self.tls_port = _listening_port(self._tls, tls_port)
        except BaseException:
            transport.close()
            if self._tcp is not None:
                self._tcp.close()
            raise

    def _admit(self, conn: _TcpService) -> bool:
        """Whether a new connection may be served (RFC 7766 6.2.2 and 10): not beyond the
        cap per client address; at the cap in all, the connection idle longest (between
        messages) is closed to make room (RFC 7766 6.2.3), and with none idle the new one is
        refused."""
        if self._closed or self._per_client.get(conn.client, 0) >= self.tcp_max_per_client:
            self.tcp_refused += 1
            return False
        if len(self._connections) >= self.tcp_max_connections:
            idle = [c for c in self._connections if not c.buffer]
            if not idle:
                self.tcp_refused += 1
                return False
            victim = min(idle, key=lambda c: c.last_active)
            self.tcp_evicted += 1
            self._release(victim)
            if victim.transport is not None:
                victim.transport.close()
        conn.admitted = True
        self._connections[conn] = None
        self._per_client[conn.client] = self._per_client.get(conn.client, 0) + 1
        self.tcp_connections += 1
        return True

    def _release(self, conn: _TcpService) -> None:
        if not conn.admitted:
            return
        conn.admitted = False
        self._connections.pop(conn, None)
        left = self._per_client.get(conn.client, 0) - 1
        if left > 0:
            self._per_client[conn.client] = left
        else:
            self._per_client.pop(conn.client, None)

    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            out = self._udp_answer(data, str(addr[0]))
            if out is not None and self._udp is not None and not self._udp.is_closing():
                self._udp.sendto(out, addr)
        except Exception:  # never into the event loop
            self.internal_errors += 1
            log.exception("internal error in the DNS server (UDP)")

    def _on_packed_datagram(self, data: memoryview, src: bytes, port: int, ifindex: int) -> None:
        """A query from a netstack stack's UDP layer (the endpoint's packed receiver): the
        same as :meth:`_on_datagram` without the address tuple and its parsing back, and
        with :meth:`_udp_answer`'s common case inline (this runs once per query)."""
        try:
            wire = bytes(data)
            limiter = self.limiter
            # The rate limit's buckets by packed address here (one kind of key per server).
            verdict = _ANSWER if limiter.rate == _INF else limiter.check(src, self._loop.time())
            if verdict is _ANSWER:
                out = self.responder.respond(wire, udp=True)
            else:
                out = self._over_limit(wire, verdict)
            udp = self._packed
            if out is not None and udp is not None:
                # The scope of a link-local source is the interface it came in on.
                link_local = len(src) == 16 and src[0] == 0xFE and src[1] & 0xC0 == 0x80
                udp.sendto_packed(out, src, port, ifindex if link_local else 0)
        except ClosedError:
            pass  # the endpoint closed: nothing more is sent
        except Exception:  # never into the event loop
            self.internal_errors += 1
            log.exception("internal error in the DNS server (UDP)")

    def _udp_answer(self, wire: bytes, client: str | bytes) -> bytes | None:
        """The answer to a query over UDP from ``client``, within the rate limit; None to
        send nothing."""
        limiter = self.limiter
        verdict = _ANSWER if limiter.rate == _INF else limiter.check(client, self._loop.time())
        if verdict is _ANSWER:
            return self.responder.respond(wire, udp=True)
        return self._over_limit(wire, verdict)

    def _over_limit(self, wire: bytes, verdict: Verdict) -> bytes | None:
        out = self.responder.slip(wire) if verdict is Verdict.SLIP else None
        if out is None:
            self.responder.drop("rate_limited")
        return out

    def _answer(self, wire: bytes, *, encrypted: bool) -> bytes | None:
        if encrypted:
            self.tls_queries += 1
        try:
            return self.responder.respond(wire, udp=False, encrypted=encrypted)
        except Exception:
            self.internal_errors += 1
            log.exception("internal error in the DNS server (TCP)")
            return None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop serving: the UDP endpoint, the TCP listener and its open connections."""
        if self._closed:
            return
        self._closed = True
        if self._udp is not None:
            self._udp.close()
        for listener in (self._tcp, self._tls):
            if listener is not None:
                listener.close()
        for conn in list(self._connections):
            self._release(conn)
            if conn.transport is not None:
                conn.transport.close()

    async def wait_closed(self) -> None:
        """Wait until the TCP listener and its connections are gone (a closed connection
        counts as gone at once, as in asyncio; its FIN goes on in the background)."""
        for listener in (self._tcp, self._tls):
            if listener is not None:
                await listener.wait_closed()

    async def __aenter__(self) -> DnsServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()

    def stats(self) -> dict[str, Any]:
        """Queries by transport, responses by RCODE, truncations, answers slipped by the
        rate limit (TC=1), malformed queries, drops by reason (``rate_limited``, ``short``,
        ``oversize``, ``not_a_query``, ...), and TCP connections: served in all, open now,
        closed idle, closed at a message's deadline, refused at a cap, and closed to make
        room for a new one (``tcp_evicted``)."""
        out = self.responder.stats()
        out["tcp_connections"] = self.tcp_connections
        out["tcp_open"] = len(self._connections)
        out["tcp_idle_closed"] = self.tcp_idle_closed
        out["tcp_message_timeouts"] = self.tcp_message_timeouts
        out["tcp_refused"] = self.tcp_refused
        out["tcp_evicted"] = self.tcp_evicted
        out["tls_queries"] = self.tls_queries
        out["icmp_errors"] = self.icmp_errors
        out["internal_errors"] = self.internal_errors
        out["clients"] = len(self.limiter)
        return out

    def __repr__(self) -> str:
        origins = ", ".join(str(z.origin) for z in self.zones)
        state = " closed" if self._closed else ""
        return f"<DnsServer port {self.port} zones {origins}{state}>"


async def serve(
    stack: ServerStack,
    zone: ZoneSpec | Sequence[ZoneSpec],
    port: int = 53,
    *,
    host: str | None = None,
    rate: float = RATE,
    burst: float = BURST,
    slip: int = SLIP,
    tls: Any = None,
    tls_port: int = DOT_PORT,
) -> DnsServer:
    """Serve ``zone`` authoritatively on ``stack``, over UDP and TCP.

    Args:
        stack: a :class:`netstack.Stack` (or anything with its ``create_datagram_endpoint``
            and ``create_server``, such as :class:`netstack.HostStack`).
        zone: a :class:`dns.zone.Zone`, zone-file text, a path to a zone file, a dict of
            zones (shape in this module's docstring), or a list of any of them.
        port: the UDP and TCP port (0: an ephemeral one, see ``server.port``).
        host: the local address to listen on; None for every address.
        rate: UDP queries a second allowed per client address, on average.
        burst: UDP queries a client may send at once before ``rate`` applies.
        slip: of the UDP queries over the limit, every ``slip``-th is answered with TC=1
            (so a real client goes on over TCP, which is not limited) and the others are
            dropped; 1 answers all of them, 0 drops all (see :class:`RateLimiter`).
        tls: an :class:`ssl.SSLContext` or a :class:`netstack.tls.TLSConfig` (server side) to
            serve DNS over TLS too (RFC 7858), on ``tls_port``; answers there to padded
            queries are padded (RFC 8467), the only place they are.
        tls_port: the DNS over TLS port (853, RFC 7858 3.1; 0: an ephemeral one, see
            ``server.tls_port``).

    Returns:
        The running :class:`DnsServer`.

    Raises:
        ValueError: a zone that cannot be served (see :func:`load_zones`), or bad
            ``rate``/``burst``/``slip``.
        OSError: a zone file that cannot be read, or the port is taken.
        dns.exception.DNSException: zone text that does not parse.
    """
    zones = load_zones(zone)
    if not zones:
        raise ValueError("no zone to serve")
    server = DnsServer(stack, zones, rate=rate, burst=burst, slip=slip)
    await server.start(host, port, tls=tls, tls_port=tls_port)
    return server
