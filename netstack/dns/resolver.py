"""The stub resolver: names to addresses and records, over a stack's own UDP and TCP.

A driver (STYLE.md): it owns the sockets, futures and timeouts; messages are dnspython's,
the cache is the :class:`~netstack.dns.cache.DnsCache` machine and the checks on answers are
the plain function :func:`match_response`.

What it follows:

- RFC 1035 4.2.1 and 7.2: queries over UDP to each configured server in turn, ``attempts``
  rounds, ``timeout`` seconds per try (RFC 1123 6.1.3.3: retransmit, and spread over the
  servers); RFC 1035 4.2.2 and RFC 7766 5: a truncated (TC) answer is asked again over TCP,
  with the two-byte length prefix, and the answer is matched by ID and question there too
  (RFC 7766 7).
- RFC 5452 9.1: an answer is accepted only if its ID, its question (name, type, class) and
  its source address and port match the query's; anything else is dropped and counted, and
  the query goes on waiting for the real answer. RFC 5452 9.2: every query has a
  fresh random ID (from :mod:`secrets`) and its own UDP endpoint with a random source port
  (the stack draws it from 49152-65535, RFC 6056 3.3.1); RFC 5452 5: identical questions
  in flight at once are sent only once.
- RFC 1034 3.6.2 and 5.3.3: CNAME chains are followed (at most :data:`MAX_CNAME_HOPS`),
  from the answer and from the cache; RFC 6604 2.1: NXDOMAIN speaks of the chain's end.
- RFC 2308: NXDOMAIN and NODATA answers are cached, as the cache module says.
- RFC 6891: queries carry an OPT record offering :data:`EDNS_PAYLOAD` bytes (6.2.5); a server
  answering FORMERR without an OPT does not know EDNS, and is asked again without it (7).
- RFC 6724 6: :meth:`Resolver.resolve` orders the addresses by the destination address
  selection rules, with the stack's own source address selection: IPv6 first when the stack
  has a source for it, except that RFC 6724 2.1's default policy table ranks unique-local
  IPv6 addresses (fc00::/7) below IPv4.
- Search domains as resolv.conf(5) does with ``ndots:1``: a name with a dot is tried as
  given first, a name without one after the search domains; a name ending in a dot is only
  tried as given. A static host table and RFC 6761 6.3 (``localhost``) come before DNS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

from ..errors import ClosedError
from ..proto.ipv6.addressing import is_v4_mapped, sort_destinations
from .cache import DnsCache, EntryKind
from .hosts import hosts_lookup

__all__ = [
    "EDNS_PAYLOAD",
    "MAX_CNAME_HOPS",
    "NameNotFound",
    "Resolver",
    "ResolverError",
    "ResolverStack",
    "match_response",
]

log = logging.getLogger("netstack.dns.resolver")

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

#: RFC 1034 5.3.3 leaves the bound to the implementation; 8 is what common resolvers allow.
MAX_CNAME_HOPS = 8
#: The UDP payload size offered in queries (RFC 6891 6.2.5; 1232 bytes fit the IPv6 minimum
#: MTU without fragments).
EDNS_PAYLOAD = 1232
#: RFC 1035 4.2.1: the UDP limit without EDNS.
CLASSIC_UDP_SIZE = 512
#: Messages read from one TCP connection while looking for the answer that matches.
MAX_TCP_MESSAGES = 16
#: resolv.conf(5) ``ndots``: names with at least this many dots are tried as given first.
NDOTS = 1

_QR = int(dns.flags.QR)
_TC = int(dns.flags.TC)
_IN = dns.rdataclass.IN
_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
_EAI_NODATA = getattr(socket, "EAI_NODATA", socket.EAI_NONAME)


class NameNotFound(socket.gaierror):
    """The name does not exist (NXDOMAIN), or has no records of the type asked for (NODATA).

    A :class:`socket.gaierror` (``EAI_NONAME``, or ``EAI_NODATA`` for NODATA where the
    platform has it), so code written for ``getaddrinfo`` catches it.

    Attributes:
        name: the name as asked.
        rdtype: the type asked for (text), or None for an address lookup.
        nxdomain: True when the name does not exist at all.
    """

    def __init__(self, name: str, rdtype: str | None = None, *, nxdomain: bool = True) -> None:
        what = "no such name" if nxdomain else f"no {rdtype or 'address'} records"
        super().__init__(socket.EAI_NONAME if nxdomain else _EAI_NODATA, f"{name}: {what}")
        self.name = name
        self.rdtype = rdtype
        self.nxdomain = nxdomain


class ResolverError(socket.gaierror):
    """Every server answered with an error (SERVFAIL, REFUSED, ...), or the answers made no
    sense (a CNAME loop); ``EAI_AGAIN``, as ``getaddrinfo`` reports a temporary failure.

    Attributes:
        rcode: the RCODE of the last error answer, when there was one.
    """

    def __init__(self, message: str, rcode: int | None = None) -> None:
        super().__init__(socket.EAI_AGAIN, message)
        self.rcode = rcode


class ResolverStack(Protocol):
    """What :class:`Resolver` needs of a stack (:class:`netstack.Stack` or
    :class:`netstack.HostStack`)."""

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], _P],
        local_addr: tuple[str | None, int] | None = ...,
        remote_addr: tuple[str, int] | None = ...,
    ) -> tuple[Any, _P]: ...

    async def open_connection(
        self, host: str | None = ..., port: int | None = ...
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


class _Server(NamedTuple):
    host: str
    port: int


def _parse_server(text: str) -> _Server:
    """``"198.18.0.2"``, ``"198.18.0.2:5353"``, ``"fd00::2"`` or ``"[fd00::2]:5353"``.

    Raises:
        ValueError: not an IP address (with an optional port).
    """
    text = str(text).strip()
    port = 53
    host = text
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad name server {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"bad port in name server {text!r}")
    return _Server(str(ipaddress.ip_address(host)), port)


def _rdtype(rdtype: str | int) -> dns.rdatatype.RdataType:
    if isinstance(rdtype, str):
        return dns.rdatatype.from_text(rdtype)
    return dns.rdatatype.RdataType.make(rdtype)


def _type_text(rdtype: int) -> str:
    return dns.rdatatype.to_text(rdtype)  # type: ignore[arg-type]


def match_response(
    query: dns.message.Message, wire: bytes, *, max_size: int | None = None
) -> tuple[dns.message.Message | None, str]:
    """Whether ``wire`` is the answer to ``query`` (RFC 5452 9.1; the source address and
    port are the caller's to check).

    Returns:
        ``(message, "")`` for the answer, else ``(None, reason)``: ``short``, ``oversize``
        (longer than ``max_size``, the payload size offered), ``wrong_id``,
        ``not_a_response``, ``bad_compression`` (a compression pointer that loops or
        points forward, RFC 1035 4.1.4), ``malformed`` (anything else dnspython refuses),
        ``wrong_opcode`` or ``wrong_question``. A truncated (TC) answer is parsed only as
        far as its question, which is all of it that is used.
    """
    if len(wire) < 12:
        return None, "short"
    if max_size is not None and len(wire) > max_size:
        return None, "oversize"
    if int.from_bytes(wire[0:2], "big") != query.id:
        return None, "wrong_id"
    flags = int.from_bytes(wire[2:4], "big")
    if not flags & _QR:
        return None, "not_a_response"
    try:
        message = dns.message.from_wire(wire, question_only=bool(flags & _TC))
    except dns.name.BadPointer:
        return None, "bad_compression"
    except Exception:  # dnspython raises many kinds on malformed wire
        return None, "malformed"
    if message.opcode() != query.opcode():
        return None, "wrong_opcode"
    if not message.question and message.rcode() == dns.rcode.FORMERR:
        # A server that could not read the query cannot repeat its question (RFC 1035
        # 4.1.1); the ID and the port still had to match.
        return message, ""
    if len(message.question) != 1:
        return None, "wrong_question"
    got, sent = message.question[0], query.question[0]
    if got.name != sent.name or got.rdtype != sent.rdtype or got.rdclass != sent.rdclass:
        return None, "wrong_question"
    return message, ""


def _literal_version(name: str) -> int | None:
    """4 or 6 for an IP address literal (an IPv6 zone allowed), None for a name."""
    try:
        if ":" in name:
            socket.inet_pton(socket.AF_INET6, name.split("%", 1)[0])
            return 6
        socket.inet_pton(socket.AF_INET, name)
        return 4
    except OSError:
        return None


def _same_host(addr: Any, server: _Server) -> bool:
    try:
        host = ipaddress.ip_address(str(addr[0]).split("%", 1)[0])
        return host == ipaddress.ip_address(server.host) and int(addr[1]) == server.port
    except (ValueError, TypeError, IndexError):
        return False


class _UdpExchange(asyncio.DatagramProtocol):
    """One query over UDP: the first datagram that matches completes ``future``."""

    def __init__(
        self,
        resolver: Resolver,
        query: dns.message.Message,
        server: _Server,
        future: asyncio.Future[dns.message.Message],
        max_size: int,
    ) -> None:
        self.resolver = resolver
        self.query = query
        self.server = server
        self.future = future
        self.max_size = max_size

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.future.done():
            self.resolver._drop("late")
            return
        if not _same_host(addr, self.server):
            self.resolver._drop("wrong_source")
            return
        message, reason = match_response(self.query, data, max_size=self.max_size)
        if message is None:
            self.resolver._drop(reason)
            return
        self.future.set_result(message)

    def error_received(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.future.done():
            self.future.set_exception(exc or ConnectionAbortedError("the endpoint was closed"))


class Resolver:
    """A stub resolver on a stack.

    Args:
        stack: the stack whose UDP and TCP carry the queries (it is the only one used).
        servers: name server addresses, IPv4 or IPv6, optionally with a port
            (``"198.18.0.1"``, ``"fd00::1"``, ``"[fd00::1]:5353"``, ``"198.18.0.1:5353"``).
        search: domains tried for names that are not absolute (resolv.conf ``search``).
        hosts: a static table of names to addresses, consulted before DNS.
        timeout: seconds to wait for one server to answer one try.
        attempts: rounds over the server list.
        edns: offer EDNS(0) in queries.
        cache_size: entries the cache holds.

    Attributes:
        servers: the name servers, a list the owner may change at any time (DHCP, RDNSS).
            When empty, the stack's ``dns_servers`` (if it has them) are used.
        search: the search domains (a list).
        hosts: the static host table (a dict).
        cache: the :class:`~netstack.dns.cache.DnsCache`.

    Raises:
        ValueError: a server that is not an IP address, a timeout that is not positive, or
            fewer than one attempt.
    """

    def __init__(
        self,
        stack: ResolverStack,
        servers: Sequence[str] = (),
        *,
        search: Sequence[str] = (),
        hosts: Mapping[str, Sequence[str]] | None = None,
        timeout: float = 2.0,
        attempts: int = 2,
        edns: bool = True,
        cache_size: int = 1024,
    ) -> None:
        if isinstance(servers, str):
            servers = [servers]
        for s in servers:
            _parse_server(s)
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts!r}")
        self.stack = stack
        self.servers: list[str] = [str(s) for s in servers]
        self.search: list[str] = [str(d) for d in search]
        self.hosts: dict[str, list[str]] = {k: list(v) for k, v in (hosts or {}).items()}
        self.timeout = float(timeout)
        self.attempts = int(attempts)
        self.edns = bool(edns)
        self.cache = DnsCache(cache_size)
        self._inflight: dict[tuple[dns.name.Name, int], asyncio.Future[dns.message.Message]] = {}
        self._candidate_memo: dict[tuple[str, tuple[str, ...]], list[dns.name.Name]] = {}
        self._order_memo: dict[tuple[str, ...], tuple[float, list[str]]] = {}
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "queries", "udp_sent", "tcp_sent", "responses", "timeouts", "truncated",
                "edns_fallbacks", "server_errors", "network_errors", "hosts_answers",
                "coalesced",
            ),
            0,
        )  # fmt: skip
        self._drops: dict[str, int] = {}
        self._rcodes: dict[str, int] = {}

    # -- counters --------------------------------------------------------------------------
    def _count(self, what: str, n: int = 1) -> None:
        self._counters[what] = self._counters.get(what, 0) + n

    def _drop(self, reason: str) -> None:
        self._drops[reason] = self._drops.get(reason, 0) + 1

    def stats(self) -> dict[str, Any]:
        """Counters: ``queries`` (exchanges with servers started), ``udp_sent``,
        ``tcp_sent``, ``responses``, ``timeouts``, ``truncated``, ``cache_hits`` (negative
        ones included), ``cache_misses``, ``rcodes`` of the answers accepted, ``drops`` by
        reason (answers that did not match their query, see :func:`match_response`, plus
        ``wrong_source`` and ``late``) and the cache's own counters under ``cache``."""
        cache = self.cache.stats()
        out: dict[str, Any] = dict(self._counters)
        out["cache_hits"] = cache["hits"] + cache["negative_hits"]
        out["cache_misses"] = cache["misses"]
        out["rcodes"] = dict(self._rcodes)
        out["drops"] = dict(self._drops)
        out["cache"] = cache
        return out

    def _servers(self) -> list[_Server]:
        configured = self.servers or list(getattr(self.stack, "dns_servers", None) or ())
        out: list[_Server] = []
        for text in configured:
            try:
                server = _parse_server(text)
            except ValueError:
                self._drop("bad_server")
                continue
            if server not in out:
                out.append(server)
        return out

    # -- one question, every server ----------------------------------------------------------
    async def query(
        self, name: str | dns.name.Name, rdtype: str | int = "A"
    ) -> dns.message.Message:
        """Ask the servers about ``name`` (made absolute if it is not) and ``rdtype``.

        Servers are tried in order, ``attempts`` rounds; a server that answers with an error
        RCODE is not asked again. No cache, no search domains, no CNAME following.

        Returns:
            The first answer with RCODE NOERROR or NXDOMAIN; when every server that answered
            gave an error RCODE (SERVFAIL, REFUSED, ...), the last such answer.

        Raises:
            TimeoutError: no server answered (also when every one was unreachable; the last
                error is the ``__cause__``).
            ResolverError: no name servers are configured.
            ClosedError: the stack is closed.
            dns.exception.DNSException: ``name`` is not a valid domain name.
        """
        qname = name if isinstance(name, dns.name.Name) else dns.name.from_text(name)
        qtype = _rdtype(rdtype)
        servers = self._servers()
        if not servers:
            raise ResolverError("no name servers are configured")
        self._count("queries")
        last: dns.message.Message | None = None
        last_exc: BaseException | None = None
        failed: set[_Server] = set()
        for _ in range(self.attempts):
            for server in servers:
                if server in failed:
                    continue
                try:
                    response = await self._ask(server, qname, qtype)
                except TimeoutError as exc:
                    self._count("timeouts")
                    last_exc = exc
                    continue
                except ClosedError:
                    raise  # the stack is gone: no server can be asked
                except OSError as exc:
                    # An ICMP error (port or host unreachable), no route, a reset TCP
                    # connection: this server will not answer this question.
                    self._count("network_errors")
                    log.debug("name server %s: %s", server.host, exc)
                    failed.add(server)
                    last_exc = exc
                    continue
                rcode = response.rcode()
                text = dns.rcode.to_text(rcode)
                self._rcodes[text] = self._rcodes.get(text, 0) + 1
                if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                    return response
                self._count("server_errors")
                failed.add(server)
                last = response
        if last is not None:
            return last
        names = ", ".join(s.host for s in servers)
        raise TimeoutError(f"no answer about {qname} from {names}") from last_exc

    async def _ask(
        self, server: _Server, qname: dns.name.Name, qtype: dns.rdatatype.RdataType
    ) -> dns.message.Message:
        response = await self._exchange(server, qname, qtype, self.edns)
        if self.edns and response.rcode() == dns.rcode.FORMERR and response.opt is None:
            # RFC 6891 7: a server that does not implement EDNS answers FORMERR without an
            # OPT record; ask it again the RFC 1035 way.
            self._count("edns_fallbacks")
            response = await self._exchange(server, qname, qtype, False)
        return response

    async def _exchange(
        self,
        server: _Server,
        qname: dns.name.Name,
        qtype: dns.rdatatype.RdataType,
        edns: bool,
    ) -> dns.message.Message:
        # RFC 5452 9.2: an unpredictable ID for every message sent.
        qid = secrets.randbelow(65536)
        if edns:
            query = dns.message.make_query(qname, qtype, use_edns=0, payload=EDNS_PAYLOAD, id=qid)
        else:
            query = dns.message.make_query(qname, qtype, use_edns=False, id=qid)
        wire = query.to_wire()
        response = await self._udp(server, query, wire)
        if response.flags & dns.flags.TC:
            # RFC 7766 5 (RFC 1035 4.2.1): the whole answer over TCP.
            self._count("truncated")
            response = await self._tcp(server, query, wire)
        self._count("responses")
        return response

    async def _udp(
        self, server: _Server, query: dns.message.Message, wire: bytes
    ) -> dns.message.Message:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dns.message.Message] = loop.create_future()
        max_size = EDNS_PAYLOAD if query.edns >= 0 else CLASSIC_UDP_SIZE
        # A fresh endpoint per message: the stack gives it a random source port (RFC 5452
        # 9.2), and, being connected, it hears only from the server's address and port.
        transport, _ = await self.stack.create_datagram_endpoint(
            lambda: _UdpExchange(self, query, server, future, max_size),
            remote_addr=(server.host, server.port),
        )
        try:
            transport.sendto(wire)
            self._count("udp_sent")
            async with asyncio.timeout(self.timeout):
                return await future
        finally:
            transport.close()

    async def _tcp(
        self, server: _Server, query: dns.message.Message, wire: bytes
    ) -> dns.message.Message:
        async with asyncio.timeout(self.timeout):
            reader, writer = await self.stack.open_connection(server.host, server.port)
            try:
                # RFC 1035 4.2.2, RFC 7766 8: the length prefix and the message in one write.
                writer.write(len(wire).to_bytes(2, "big") + wire)
                self._count("tcp_sent")
                for _ in range(MAX_TCP_MESSAGES):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                    message, reason = match_response(query, data)
                    if message is not None:
                        return message
                    self._drop(reason)
                raise ConnectionError(f"no answer matched the query on TCP to {server.host}")
            except asyncio.IncompleteReadError as exc:
                raise ConnectionResetError(
                    f"{server.host} closed the TCP connection before answering"
                ) from exc
            finally:
                writer.close()

    async def _fetch(self, qname: dns.name.Name, qtype: int) -> dns.message.Message:
        """:meth:`query`, sent once for any number of identical questions at once
        (RFC 5452 5: duplicate questions in flight make forgery easier)."""
        key = (qname, qtype)
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(self.query(qname, qtype))
            self._inflight[key] = future

            def done(f: asyncio.Future[dns.message.Message]) -> None:
                if self._inflight.get(key) is f:
                    del self._inflight[key]
                if not f.cancelled():
                    f.exception()  # retrieved: every waiter may have gone

            future.add_done_callback(done)
        else:
            self._count("coalesced")
        return await asyncio.shield(future)

    # -- records -------------------------------------------------------------------------------
    def _candidates(self, name: str) -> list[dns.name.Name]:
        """The absolute names to try for ``name``, in order (search domains applied),
        remembered per search list (names repeat; parsing them is most of a cache hit).

        Raises:
            NameNotFound: ``name`` is not a valid domain name (as ``getaddrinfo`` says of
                one: no such name).
        """
        key = (name, tuple(self.search))
        known = self._candidate_memo.get(key)
        if known is not None:
            return known
        out = self._make_candidates(name)
        if len(self._candidate_memo) >= 1024:
            self._candidate_memo.clear()
        self._candidate_memo[key] = out
        return out

    def _make_candidates(self, name: str) -> list[dns.name.Name]:
        try:
            if name.endswith("."):
                return [dns.name.from_text(name)]
            relative = dns.name.from_text(name, origin=None)
        except dns.exception.DNSException as exc:
            raise NameNotFound(name) from exc
        absolute = relative.concatenate(dns.name.root)
        searched: list[dns.name.Name] = []
        for domain in self.search:
            try:
                searched.append(relative.concatenate(dns.name.from_text(domain)))
            except dns.exception.DNSException:
                continue  # a domain that makes the name too long, or is malformed
        ordered = [absolute, *searched] if name.count(".") >= NDOTS else [*searched, absolute]
        out: list[dns.name.Name] = []
        for candidate in ordered:
            if candidate not in out:
                out.append(candidate)
        return out

    async def resolve_rrset(self, name: str, rdtype: str | int = "A") -> dns.rrset.RRset:
        """The records of ``rdtype`` for ``name``, after the host table, the search domains
        and CNAME chains.

        Args:
            name: a domain name (relative names go through the search domains); for PTR, an
                IP address is turned into its reverse name (RFC 1035 3.5, RFC 3596 2.5).
            rdtype: ``"A"``, ``"AAAA"``, ``"MX"``, ``"TXT"``, ``"SRV"``, ``"PTR"``, ... or
                the number.

        Returns:
            The RRset, owned by the name at the end of any CNAME chain, with the TTL it has
            left (0 for host-table answers).

        Raises:
            NameNotFound: NXDOMAIN or NODATA for every candidate name, or ``name`` is not a
                valid domain name.
            TimeoutError: no server answered.
            ResolverError: the servers answered with errors, or a CNAME loop.
        """
        qtype = _rdtype(rdtype)
        if qtype == dns.rdatatype.PTR:
            with contextlib.suppress(ValueError):
                ipaddress.ip_address(name)
                name = dns.reversename.from_address(name).to_text()
        candidates = self._candidates(name)
        if qtype in _ADDRESS_TYPES:
            addresses = self._from_hosts(name, 6 if qtype == dns.rdatatype.AAAA else 4)
            if addresses:
                self._count("hosts_answers")
                owner = dns.name.from_text(name)
                return dns.rrset.from_text_list(owner, 0, _IN, qtype, addresses)
        nxdomain = True
        failure: ResolverError | None = None
        for candidate in candidates:
            try:
                return await self._lookup(candidate, qtype)
            except NameNotFound as exc:
                nxdomain = nxdomain and exc.nxdomain
            except ResolverError as exc:
                failure = exc
        if failure is not None:
            raise failure
        raise NameNotFound(name, _type_text(qtype), nxdomain=nxdomain)

    async def _lookup(
        self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType
    ) -> dns.rrset.RRset:
        """``qtype`` records of the absolute ``qname``, from the cache or the servers,
        following CNAMEs."""
        loop = asyncio.get_running_loop()
        name = qname
        seen = {qname}
        for _ in range(MAX_CNAME_HOPS + 1):
            entry = self.cache.get(name, qtype, loop.time())
            if entry is not None:
                if entry.rrset is not None:
                    return entry.rrset
                raise NameNotFound(
                    qname.to_text(), _type_text(qtype), nxdomain=entry.kind is EntryKind.NXDOMAIN
                )
            target: dns.name.Name | None = None
            if qtype != dns.rdatatype.CNAME:
                alias = self.cache.get(name, dns.rdatatype.CNAME, loop.time(), count=False)
                if alias is not None and alias.rrset is not None:
                    target = alias.rrset[0].target
            if target is None:
                response = await self._fetch(name, qtype)
                result = self._absorb(qname, name, qtype, response)
                if isinstance(result, dns.rrset.RRset):
                    return result
                target = result
            if target in seen:
                raise ResolverError(f"{qname}: CNAME loop at {target}")
            seen.add(target)
            name = target
        raise ResolverError(f"{qname}: more than {MAX_CNAME_HOPS} CNAMEs")

    def _absorb(
        self,
        qname: dns.name.Name,
        name: dns.name.Name,
        qtype: dns.rdatatype.RdataType,
        response: dns.message.Message,
    ) -> dns.rrset.RRset | dns.name.Name:
        """Cache what ``response`` (to ``name``, ``qtype``) says; return the records, or the
        name the CNAME chain leads to when the answer stops there.

        Raises:
            NameNotFound: NXDOMAIN or NODATA.
            ResolverError: an error RCODE, or a CNAME loop within the answer.
        """
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise ResolverError(
                f"{qname}: {dns.rcode.to_text(rcode)} from every name server", int(rcode)
            )
        now = asyncio.get_running_loop().time()
        current = name
        chain = {name}
        while True:
            # Only records on the chain from the question's name are taken (RFC 1034 5.3.3;
            # anything else in the answer was not asked for).
            rrset = response.get_rrset(response.answer, current, _IN, qtype)
            if rrset is not None and len(rrset):
                self.cache.put(rrset, now)
                return rrset
            if qtype == dns.rdatatype.CNAME:
                break
            alias = response.get_rrset(response.answer, current, _IN, dns.rdatatype.CNAME)
            if alias is None or not len(alias):
                break
            self.cache.put(alias, now)
            target = alias[0].target
            if target in chain or len(chain) > MAX_CNAME_HOPS:
                raise ResolverError(f"{qname}: CNAME loop at {target}")
            chain.add(target)
            current = target
        soa = None
        for rrset in response.authority:
            # The SOA must be of a zone that holds the name (RFC 2308 3: the zone's own).
            if rrset.rdtype == dns.rdatatype.SOA and current.is_subdomain(rrset.name):
                soa = rrset
                break
        if rcode == dns.rcode.NXDOMAIN:
            self.cache.put_negative(current, qtype, soa, now, nxdomain=True)
            raise NameNotFound(qname.to_text(), _type_text(qtype), nxdomain=True)
        if current != name and soa is None:
            return current  # the server stopped at a CNAME: ask about its target
        self.cache.put_negative(current, qtype, soa, now, nxdomain=False)
        raise NameNotFound(qname.to_text(), _type_text(qtype), nxdomain=False)

    # -- addresses ---------------------------------------------------------------------------
    def _from_hosts(self, name: str, version: int | None) -> list[str]:
        out = []
        for text in hosts_lookup(self.hosts, name):
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                continue
            if version is None or ip.version == version:
                out.append(text)
        return out

    async def resolve(self, name: str, family: int = 0) -> list[str]:
        """The addresses of ``name``, best first.

        IP literals come back as they are; then the host table (and ``localhost``, RFC 6761
        6.3); then DNS, AAAA and A at once, through the search domains. The addresses are
        ordered by RFC 6724 6 with the stack's own source selection: IPv6 first when the
        stack has an IPv6 source for it (unique-local IPv6 after IPv4, RFC 6724 2.1), IPv4
        first when only IPv4 is reachable.

        Args:
            name: a host name or an IP address.
            family: ``socket.AF_INET``, ``socket.AF_INET6``, or 0 for both.

        Returns:
            Addresses as strings, without duplicates.

        Raises:
            NameNotFound: the name has no address of the family asked for, or is not a
                valid domain name.
            TimeoutError: no server answered.
            ResolverError: the servers answered with errors.
            ValueError: a bad ``family``.
        """
        if family not in (0, socket.AF_INET, socket.AF_INET6):
            raise ValueError("family must be AF_INET, AF_INET6 or 0")
        version = {int(socket.AF_INET): 4, int(socket.AF_INET6): 6}.get(family)
        literal = _literal_version(name)
        if literal is not None:
            if version is not None and literal != version:
                raise NameNotFound(name, nxdomain=False)
            return [name]
        addresses = self._from_hosts(name, version)
        if addresses:
            self._count("hosts_answers")
            return self._order(addresses)
        if not name or name == ".":
            raise NameNotFound(name or ".")
        types = [dns.rdatatype.AAAA, dns.rdatatype.A]
        if version == 4:
            types = [dns.rdatatype.A]
        elif version == 6:
            types = [dns.rdatatype.AAAA]
        failure: BaseException | None = None
        nxdomain = True
        candidates = self._candidates(name)
        now = asyncio.get_running_loop().time()
        for candidate in candidates:
            cached = self._cached_addresses(candidate, types, now)
            if cached:
                # Every type answered from the cache: no task, no copy of the RRsets. (All
                # negative goes the long way, which tells NXDOMAIN from NODATA.)
                return self._order(list(dict.fromkeys(cached)))
            results = await asyncio.gather(
                *(self._lookup(candidate, t) for t in types), return_exceptions=True
            )
            found: list[str] = []
            for result in results:
                if isinstance(result, dns.rrset.RRset):
                    found.extend(rd.address for rd in result if rd.rdtype in _ADDRESS_TYPES)
                elif isinstance(result, NameNotFound):
                    nxdomain = nxdomain and result.nxdomain
                elif isinstance(result, TimeoutError):
                    failure = result
                elif isinstance(result, Exception):
                    failure = failure or result
                else:
                    raise result  # CancelledError, KeyboardInterrupt, ...
            if found:
                return self._order(list(dict.fromkeys(found)))
            if isinstance(failure, TimeoutError):
                break  # the servers are silent: other names would only wait as long
        if failure is not None:
            raise failure
        raise NameNotFound(name, nxdomain=nxdomain)

    def _cached_addresses(
        self, qname: dns.name.Name, types: list[dns.rdatatype.RdataType], now: float
    ) -> list[str] | None:
        """The addresses of ``qname`` when the cache holds an answer (positive or negative)
        for every type in ``types``, following cached CNAMEs; None on any miss."""
        found: list[str] = []
        for qtype in types:
            name = qname
            for _ in range(MAX_CNAME_HOPS + 1):
                rrset = self.cache.peek(name, qtype, now)
                if rrset is False:
                    break  # negative: nothing of this type
                if rrset is not None:
                    found.extend(rd.address for rd in rrset if rd.rdtype in _ADDRESS_TYPES)
                    break
                alias = self.cache.peek(name, dns.rdatatype.CNAME, now)
                if alias is None or alias is False:
                    return None
                name = alias[0].target
            else:
                return None
        return found

    def _order(self, addresses: list[str]) -> list[str]:
        """RFC 6724 6 destination ordering with the stack's source selection, or IPv6 then
        IPv4 for a stack that does not expose its routing."""
        if len(addresses) < 2:
            return addresses
        # The order depends on the stack's routes and addresses, which change rarely: it is
        # remembered for a second.
        now = time.monotonic()
        key = tuple(addresses)
        known = self._order_memo.get(key)
        if known is not None and known[0] > now:
            return list(known[1])
        ordered = self._order_now(addresses)
        if len(self._order_memo) >= 1024:
            self._order_memo.clear()
        self._order_memo[key] = (now + 1.0, ordered)
        return list(ordered)

    def _order_now(self, addresses: list[str]) -> list[str]:
        ips = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
        ipv4 = getattr(self.stack, "ipv4", None)
        ipv6 = getattr(self.stack, "ipv6", None)
        if ipv4 is None or ipv6 is None:
            return [
                a for _, a in sorted(zip(ips, addresses, strict=True), key=lambda p: -p[0].version)
            ]
        mapped_prefix = bytes(10) + b"\xff\xff"
        keys = [ip.packed if ip.version == 6 else mapped_prefix + ip.packed for ip in ips]

        def source_for(dst: bytes) -> bytes | None:
            try:
                if is_v4_mapped(dst):
                    return mapped_prefix + bytes(ipv4.route(dst[12:]).src)
                if not getattr(ipv6, "enabled", True):
                    return None
                return bytes(ipv6.route(dst).src)
            except (OSError, ValueError):
                return None

        deprecated: set[bytes] = set()
        addrconf = getattr(ipv6, "addrconf", None)
        if addrconf is not None:
            deprecated = {c.address for c in addrconf.candidates() if not c.preferred}
        ordered = sort_destinations(keys, source_for, is_deprecated=deprecated.__contains__)
        by_key = dict(zip(keys, addresses, strict=True))
        return [by_key[k] for k in ordered]

    def __repr__(self) -> str:
        servers = ", ".join(self.servers) or "no servers"
        return f"<Resolver {servers}; {len(self.cache)} cached>"
