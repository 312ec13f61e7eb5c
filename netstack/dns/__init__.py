"""DNS for netstack: a stub resolver and an authoritative server, on a stack's own UDP and TCP,
with messages, names and zones from dnspython.

- :class:`Resolver`: names to addresses and records (``stack.dns`` is one);
  :meth:`Resolver.resolve` is what ``stack.resolve()`` and ``open_connection`` use.
- :func:`serve`: an authoritative server for zones from zone files, zone-file text,
  :class:`dns.zone.Zone` objects or dicts (:mod:`netstack.dns.server` documents the shapes).
- :class:`~netstack.dns.cache.DnsCache`: the resolver's cache, a machine with time passed in.

Errors: :class:`NameNotFound` (NXDOMAIN or NODATA) and :class:`ResolverError` (servers
answering with errors) are :class:`socket.gaierror` subclasses, as ``getaddrinfo`` raises;
no server answering is :class:`TimeoutError`. Zone and message errors are dnspython's own.
"""

from .cache import CacheEntry, DnsCache, EntryKind
from .hosts import parse_hosts
from .resolver import NameNotFound, Resolver, ResolverError, match_response
from .server import DnsServer, load_zones, serve

__all__ = [
    "CacheEntry",
    "DnsCache",
    "DnsServer",
    "EntryKind",
    "NameNotFound",
    "Resolver",
    "ResolverError",
    "load_zones",
    "match_response",
    "parse_hosts",
    "serve",
]
