"""The resolver's cache: RRsets and negative answers, kept for as long as their TTLs allow.

A machine (STYLE.md): no clock, no I/O; every call takes ``now`` (seconds, the driver's
``loop.time()``).

- RFC 1035 3.2.1 and RFC 1034 3.6: a record may be cached for its TTL, and a TTL of zero
  means it must not be cached at all.
- RFC 2181 5.2 and 8: an RRset has one TTL (the smallest of its records' is used); a TTL with
  the most significant bit set is treated as zero.
- RFC 2308: negative answers. 5: an NXDOMAIN is cached against the name alone (it denies
  every type), a NODATA against the name and type; a negative answer without an SOA record
  SHOULD NOT be cached. 3 and 5: its TTL is the smaller of the SOA record's TTL and the SOA
  MINIMUM field. 5 also notes that one to three hours is a sensible ceiling.
- A ceiling on positive TTLs too (one day by default, a local policy), so one overly long
  TTL cannot pin a stale entry for weeks.

Entries are bounded in number; the least recently used one goes first.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import dns.name
import dns.rdatatype
import dns.rrset

__all__ = ["CacheEntry", "DnsCache", "EntryKind", "negative_ttl"]

#: The key under which an NXDOMAIN for a name is kept: it answers for every type.
_ANY_TYPE = -1
#: RFC 2181 8: a TTL with its top bit set is read as zero.
_TTL_TOP_BIT = 1 << 31


class EntryKind(enum.Enum):
    """What a cache entry says."""

    #: Records of the asked type exist (the entry's ``rrset``).
    POSITIVE = "positive"
    #: The name does not exist, for any type (RFC 2308 2.1).
    NXDOMAIN = "nxdomain"
    #: The name exists but has no records of this type (RFC 2308 2.2).
    NODATA = "nodata"


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What :meth:`DnsCache.get` returns: the stored answer with the TTL it has left.

    Attributes:
        kind: positive, NXDOMAIN or NODATA.
        name: the owner name looked up.
        rdtype: the type looked up.
        ttl: whole seconds the entry has left (at least 1; an expired entry is never
            returned).
        rrset: for a positive entry, the records, with their TTL set to ``ttl``.
        soa: for a negative entry, the SOA record that proved it, with its TTL set to
            ``ttl`` (RFC 2308 5: a cached negative answer is given out with a decreasing
            TTL, like any other).
    """

    kind: EntryKind
    name: dns.name.Name
    rdtype: int
    ttl: int
    rrset: dns.rrset.RRset | None = None
    soa: dns.rrset.RRset | None = None

    @property
    def negative(self) -> bool:
        return self.kind is not EntryKind.POSITIVE


@dataclass(slots=True)
class _Stored:
    kind: EntryKind
    rrset: dns.rrset.RRset | None
    soa: dns.rrset.RRset | None
    expires: float


def _clamp(ttl: int, ceiling: int) -> int:
    if ttl >= _TTL_TOP_BIT or ttl < 0:
        return 0  # RFC 2181 8
    return min(ttl, ceiling)


def negative_ttl(soa: dns.rrset.RRset) -> int:
    """How long a negative answer proved by ``soa`` may be cached: the smaller of the SOA
    record's TTL and its MINIMUM field (RFC 2308 3 and 5).

    Raises:
        ValueError: ``soa`` is not a non-empty SOA RRset.
    """
    if soa.rdtype != dns.rdatatype.SOA or len(soa) == 0:
        raise ValueError("a negative answer is proved by an SOA record")
    minimum = min(int(rd.minimum) for rd in soa)
    return min(int(soa.ttl), minimum)


def _with_ttl(rrset: dns.rrset.RRset, ttl: int) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(rrset.name, ttl, list(rrset))


class DnsCache:
    """A bounded cache of RRsets and negative answers, keyed by (owner name, type).

    Names compare without regard to case (RFC 4343), as :class:`dns.name.Name` does.

    Args:
        max_entries: how many entries are kept; beyond it the least recently used goes.
        max_ttl: the longest a positive entry is kept, whatever its TTL says.
        max_negative_ttl: the longest a negative entry is kept (RFC 2308 5: one to three
            hours works well; three hours by default).

    Raises:
        ValueError: a bound below 1 (``max_entries``) or below 0 (the TTL ceilings).
    """

    def __init__(
        self, max_entries: int = 1024, *, max_ttl: int = 86400, max_negative_ttl: int = 10800
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if max_ttl < 0 or max_negative_ttl < 0:
            raise ValueError("TTL ceilings cannot be negative")
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self._entries: OrderedDict[tuple[dns.name.Name, int], _Stored] = OrderedDict()
        # Which keys each name has, so an NXDOMAIN can drop everything the name had.
        self._types: dict[dns.name.Name, set[int]] = {}
        self.hits = 0
        self.negative_hits = 0
        self.misses = 0
        self.expired = 0
        self.evicted = 0
        self.not_cached = 0

    def __len__(self) -> int:
        return len(self._entries)

    # -- lookups ---------------------------------------------------------------------------
    def peek(
        self, name: dns.name.Name, rdtype: int, now: float
    ) -> dns.rrset.RRset | Literal[False] | None:
        """What :meth:`get` would answer, without copying: the cached RRset (its TTLs as
        stored: read only), False for a negative entry, None for a miss. Counts a hit."""
        stored = self._live((name, int(rdtype)), now) or self._live((name, _ANY_TYPE), now)
        if stored is None:
            return None
        if stored.kind is EntryKind.POSITIVE:
            self.hits += 1
            return stored.rrset
        self.negative_hits += 1
        return False

    def get(
        self, name: dns.name.Name, rdtype: int, now: float, *, count: bool = True
    ) -> CacheEntry | None:
        """The cached answer for ``name`` and ``rdtype``, or None.

        An NXDOMAIN for ``name`` answers for every type (RFC 2308 5). Expired entries are
        removed and not returned. With ``count=False`` a miss is not counted (a second look
        on behalf of the same question, as for a CNAME).
        """
        key = (name, int(rdtype))
        stored = self._live(key, now)
        if stored is None:
            key = (name, _ANY_TYPE)
            stored = self._live(key, now)
        if stored is None:
            if count:
                self.misses += 1
            return None
        self._entries.move_to_end(key)
        # Round up: an entry with 0.4 s left is still good for this answer, and 0 would
        # read as "do not cache" to whoever passes it on.
        left = max(1, int(stored.expires - now + 0.999))
        if stored.kind is EntryKind.POSITIVE:
            self.hits += 1
            assert stored.rrset is not None
            return CacheEntry(
                stored.kind, name, int(rdtype), left, rrset=_with_ttl(stored.rrset, left)
            )
        self.negative_hits += 1
        soa = _with_ttl(stored.soa, left) if stored.soa is not None else None
        return CacheEntry(stored.kind, name, int(rdtype), left, soa=soa)

    def _live(self, key: tuple[dns.name.Name, int], now: float) -> _Stored | None:
        stored = self._entries.get(key)
        if stored is None:
            return None
        if stored.expires <= now:
            self._remove(key)
            self.expired += 1
            return None
        return stored

    # -- updates ---------------------------------------------------------------------------
    def put(self, rrset: dns.rrset.RRset, now: float) -> bool:
        """Cache ``rrset`` under its owner name and type for its TTL (capped at
        ``max_ttl``). Returns False when it was not cached (a TTL of zero, RFC 1035 3.2.1,
        or an empty RRset).

        A positive entry replaces a cached NXDOMAIN for the same name.
        """
        ttl = _clamp(int(rrset.ttl), self.max_ttl)
        name = rrset.name
        if ttl == 0 or len(rrset) == 0:
            # Not kept, but newer than what was (RFC 2181 5.4.1): the older entry goes.
            self._remove((name, int(rrset.rdtype)))
            self.not_cached += 1
            return False
        self._remove((name, _ANY_TYPE))
        self._store((name, int(rrset.rdtype)), _Stored(EntryKind.POSITIVE, rrset, None, now + ttl))
        return True

    def put_negative(
        self,
        name: dns.name.Name,
        rdtype: int,
        soa: dns.rrset.RRset | None,
        now: float,
        *,
        nxdomain: bool,
    ) -> bool:
        """Cache a negative answer: ``name`` does not exist (``nxdomain=True``, for every
        type) or has no ``rdtype`` records (NODATA). ``soa`` is the SOA RRset from the
        answer's authority section.

        Returns False when it was not cached: without an SOA record (RFC 2308 5: such
        answers SHOULD NOT be cached) or with a negative TTL of zero.
        """
        if soa is None or soa.rdtype != dns.rdatatype.SOA or len(soa) == 0:
            self.not_cached += 1
            return False
        ttl = _clamp(negative_ttl(soa), self.max_negative_ttl)
        if ttl == 0:
            # Not kept, but it denies what was (RFC 2181 5.4.1; RFC 2308 5).
            self.remove(name, None if nxdomain else rdtype)
            self._remove((name, _ANY_TYPE))
            self.not_cached += 1
            return False
        if nxdomain:
            # RFC 2308 5: the NXDOMAIN denies every type the name might have had cached.
            for t in list(self._types.get(name, ())):
                self._remove((name, t))
            key = (name, _ANY_TYPE)
            kind = EntryKind.NXDOMAIN
        else:
            self._remove((name, _ANY_TYPE))
            key = (name, int(rdtype))
            kind = EntryKind.NODATA
        self._store(key, _Stored(kind, None, soa, now + ttl))
        return True

    def remove(self, name: dns.name.Name, rdtype: int | None = None) -> None:
        """Forget ``name`` (every type when ``rdtype`` is None)."""
        if rdtype is None:
            for t in list(self._types.get(name, ())):
                self._remove((name, t))
        else:
            self._remove((name, int(rdtype)))

    def clear(self) -> None:
        self._entries.clear()
        self._types.clear()

    def expire(self, now: float) -> int:
        """Drop every expired entry; returns how many went. Lookups drop expired entries on
        their own, so this is only to give memory back early."""
        gone = [key for key, stored in self._entries.items() if stored.expires <= now]
        for key in gone:
            self._remove(key)
        self.expired += len(gone)
        return len(gone)

    def _store(self, key: tuple[dns.name.Name, int], stored: _Stored) -> None:
        self._entries[key] = stored
        self._entries.move_to_end(key)
        self._types.setdefault(key[0], set()).add(key[1])
        while len(self._entries) > self.max_entries:
            old, _ = self._entries.popitem(last=False)
            self._forget_type(old)
            self.evicted += 1

    def _remove(self, key: tuple[dns.name.Name, int]) -> None:
        if self._entries.pop(key, None) is not None:
            self._forget_type(key)

    def _forget_type(self, key: tuple[dns.name.Name, int]) -> None:
        types = self._types.get(key[0])
        if types is not None:
            types.discard(key[1])
            if not types:
                del self._types[key[0]]

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self._entries),
            "hits": self.hits,
            "negative_hits": self.negative_hits,
            "misses": self.misses,
            "expired": self.expired,
            "evicted": self.evicted,
            "not_cached": self.not_cached,
        }

    def __repr__(self) -> str:
        return f"<DnsCache {len(self._entries)}/{self.max_entries} entries>"
