"""The resolver's cache as a machine: TTLs, negative caching (RFC 2308), bounds, with the time
passed in as a plain number."""

from __future__ import annotations

import ast
from pathlib import Path

import dns.name
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.dns.cache import DnsCache, EntryKind, negative_ttl

ORIGIN = dns.name.from_text("example.test.")


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text, ORIGIN)


def a(owner: str, ttl: int, *addresses: str) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(name(owner), ttl, "IN", "A", list(addresses or ["198.18.0.9"]))


def soa(ttl: int = 3600, minimum: int = 60) -> dns.rrset.RRset:
    return dns.rrset.from_text(
        ORIGIN, ttl, "IN", "SOA", f"ns.example.test. admin.example.test. 1 3600 600 86400 {minimum}"
    )


A, AAAA, MX = 1, 28, 15


# -- positive entries -------------------------------------------------------------------------
def test_entry_lives_for_its_ttl_and_counts_down() -> None:
    cache = DnsCache(16)
    assert cache.put(a("www", 300, "198.18.0.80"), now=1000.0)
    entry = cache.get(name("www"), A, 1000.0)
    assert entry is not None and entry.kind is EntryKind.POSITIVE and not entry.negative
    assert entry.ttl == 300 and entry.rrset is not None and entry.rrset.ttl == 300
    assert [rd.address for rd in entry.rrset] == ["198.18.0.80"]
    later = cache.get(name("www"), A, 1100.0)
    assert later is not None and later.ttl == 200 and later.rrset is not None
    assert later.rrset.ttl == 200  # the TTL handed out counts down
    assert cache.get(name("www"), A, 1299.5) is not None
    assert cache.get(name("www"), A, 1300.0) is None  # expired exactly at put + TTL
    assert len(cache) == 0 and cache.expired == 1


def test_stored_rrset_is_not_changed_by_what_get_returns() -> None:
    cache = DnsCache(16)
    cache.put(a("www", 300), 0.0)
    first = cache.get(name("www"), A, 10.0)
    assert first is not None and first.rrset is not None
    first.rrset.ttl = 5
    again = cache.get(name("www"), A, 20.0)
    assert again is not None and again.ttl == 280


def test_names_match_without_regard_to_case() -> None:
    cache = DnsCache(16)
    cache.put(a("WWW", 300), 0.0)
    assert cache.get(dns.name.from_text("www.EXAMPLE.test."), A, 1.0) is not None


def test_other_types_are_separate() -> None:
    cache = DnsCache(16)
    cache.put(a("www", 300), 0.0)
    assert cache.get(name("www"), AAAA, 1.0) is None
    assert cache.misses == 1


def test_zero_ttl_is_never_cached() -> None:
    # RFC 1035 3.2.1: zero values prohibit caching.
    cache = DnsCache(16)
    assert not cache.put(a("www", 0), 0.0)
    assert cache.get(name("www"), A, 0.0) is None and cache.not_cached == 1


def test_ttl_with_the_top_bit_set_reads_as_zero() -> None:
    # RFC 2181 8.
    cache = DnsCache(16)
    assert not cache.put(a("www", 2**31), 0.0)
    assert cache.put(a("www", 2**31 - 1), 0.0)


def test_positive_ttl_is_capped() -> None:
    cache = DnsCache(16, max_ttl=600)
    cache.put(a("www", 86400 * 30), 0.0)
    entry = cache.get(name("www"), A, 0.0)
    assert entry is not None and entry.ttl == 600
    assert cache.get(name("www"), A, 600.0) is None


def test_put_replaces_an_older_entry() -> None:
    cache = DnsCache(16)
    cache.put(a("www", 300, "198.18.0.1"), 0.0)
    cache.put(a("www", 60, "198.18.0.2"), 10.0)
    entry = cache.get(name("www"), A, 11.0)
    assert entry is not None and entry.rrset is not None
    assert [rd.address for rd in entry.rrset] == ["198.18.0.2"] and entry.ttl == 59


# -- negative entries (RFC 2308) --------------------------------------------------------------
def test_negative_ttl_is_the_smaller_of_soa_ttl_and_minimum() -> None:
    # RFC 2308 3 and 5.
    assert negative_ttl(soa(ttl=3600, minimum=60)) == 60
    assert negative_ttl(soa(ttl=30, minimum=60)) == 30
    with pytest.raises(ValueError):
        negative_ttl(a("www", 300))


def test_nxdomain_answers_for_every_type() -> None:
    # RFC 2308 5: an NXDOMAIN is cached against the name alone.
    cache = DnsCache(16)
    assert cache.put_negative(name("nope"), A, soa(3600, 60), 100.0, nxdomain=True)
    for rdtype in (A, AAAA, MX):
        entry = cache.get(name("nope"), rdtype, 130.0)
        assert entry is not None and entry.kind is EntryKind.NXDOMAIN and entry.negative
        assert entry.ttl == 30 and entry.rrset is None
        assert entry.soa is not None and entry.soa.ttl == 30
    assert cache.get(name("nope"), A, 160.0) is None  # min(3600, 60) seconds later
    assert cache.negative_hits == 3


def test_nodata_answers_only_for_its_type() -> None:
    # RFC 2308 5: NODATA is cached against the name and the type.
    cache = DnsCache(16)
    assert cache.put_negative(name("www"), AAAA, soa(300, 120), 0.0, nxdomain=False)
    entry = cache.get(name("www"), AAAA, 20.0)
    assert entry is not None and entry.kind is EntryKind.NODATA and entry.ttl == 100
    assert cache.get(name("www"), A, 20.0) is None


def test_negative_answer_without_soa_is_not_cached() -> None:
    # RFC 2308 5: SHOULD NOT be cached.
    cache = DnsCache(16)
    assert not cache.put_negative(name("nope"), A, None, 0.0, nxdomain=True)
    assert not cache.put_negative(name("nope"), A, a("x", 60), 0.0, nxdomain=True)
    assert cache.get(name("nope"), A, 0.0) is None


def test_negative_ttl_is_capped() -> None:
    cache = DnsCache(16, max_negative_ttl=10)
    cache.put_negative(name("nope"), A, soa(86400, 86400), 0.0, nxdomain=True)
    assert cache.get(name("nope"), A, 9.0) is not None
    assert cache.get(name("nope"), A, 10.0) is None


def test_nxdomain_replaces_what_the_name_had_and_data_replaces_nxdomain() -> None:
    cache = DnsCache(16)
    cache.put(a("gone", 300), 0.0)
    cache.put_negative(name("gone"), MX, soa(), 0.0, nxdomain=False)
    cache.put_negative(name("gone"), A, soa(), 1.0, nxdomain=True)
    entry = cache.get(name("gone"), A, 2.0)
    assert entry is not None and entry.kind is EntryKind.NXDOMAIN
    assert len(cache) == 1  # the A and the NODATA went with it
    cache.put(a("gone", 300), 3.0)
    entry = cache.get(name("gone"), A, 4.0)
    assert entry is not None and entry.kind is EntryKind.POSITIVE
    assert cache.get(name("gone"), MX, 4.0) is None


def test_remove_and_clear() -> None:
    cache = DnsCache(16)
    cache.put(a("www", 300), 0.0)
    cache.put_negative(name("www"), AAAA, soa(), 0.0, nxdomain=False)
    cache.remove(name("www"), A)
    assert cache.get(name("www"), A, 1.0) is None
    assert cache.get(name("www"), AAAA, 1.0) is not None
    cache.remove(name("www"))
    assert len(cache) == 0
    cache.put(a("www", 300), 0.0)
    cache.clear()
    assert len(cache) == 0


def test_expire_drops_every_expired_entry() -> None:
    cache = DnsCache(16)
    cache.put(a("short", 10), 0.0)
    cache.put(a("long", 1000), 0.0)
    assert cache.expire(50.0) == 1
    assert len(cache) == 1


# -- bounds -----------------------------------------------------------------------------------
def test_least_recently_used_entry_goes_first() -> None:
    cache = DnsCache(3)
    for n in ("one", "two", "three"):
        cache.put(a(n, 300), 0.0)
    assert cache.get(name("one"), A, 1.0) is not None  # "one" is now the most recent
    cache.put(a("four", 300), 2.0)
    assert len(cache) == 3 and cache.evicted == 1
    assert cache.get(name("two"), A, 3.0) is None
    for n in ("one", "three", "four"):
        assert cache.get(name(n), A, 3.0) is not None


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        DnsCache(0)
    with pytest.raises(ValueError):
        DnsCache(10, max_ttl=-1)


def test_stats_count_hits_and_misses() -> None:
    cache = DnsCache(4)
    cache.put(a("www", 300), 0.0)
    cache.get(name("www"), A, 1.0)
    cache.get(name("other"), A, 1.0)
    cache.get(name("other"), A, 1.0, count=False)
    assert cache.stats() == {
        "entries": 1,
        "hits": 1,
        "negative_hits": 0,
        "misses": 1,
        "expired": 0,
        "evicted": 0,
        "not_cached": 0,
    }


OPS = st.lists(
    st.tuples(
        st.sampled_from(["put", "nx", "nodata", "get"]),
        st.integers(0, 7),
        st.sampled_from([A, AAAA]),
        st.integers(0, 400),
        st.floats(0, 50, allow_nan=False),
    ),
    max_size=60,
)


@given(OPS)
@settings(max_examples=200, deadline=None)
def test_never_over_the_bound_and_never_an_expired_answer(ops: list[tuple]) -> None:
    cache = DnsCache(5)
    now = 0.0
    # What was put, and until when it may be given out (NXDOMAIN under the type None).
    until: dict[tuple[str, int | None], float] = {}
    for op, n, rdtype, ttl, step in ops:
        now += step
        owner = f"h{n}"
        if op == "put":
            rrset = a(owner, ttl) if rdtype == A else dns.rrset.from_text(
                name(owner), ttl, "IN", "AAAA", "fd00::9"
            )  # fmt: skip
            cache.put(rrset, now)
            until[(owner, rdtype)] = now + ttl
        elif op in ("nx", "nodata"):
            cache.put_negative(name(owner), rdtype, soa(ttl, 300), now, nxdomain=op == "nx")
            until[(owner, None if op == "nx" else rdtype)] = now + min(ttl, 300)
        else:
            entry = cache.get(name(owner), rdtype, now)
            if entry is not None:
                key = (owner, None if entry.kind is EntryKind.NXDOMAIN else rdtype)
                assert until[key] > now, "an expired entry was given out"
                assert entry.ttl <= until[key] - now + 1
        assert len(cache) <= 5


# -- the machine rule (STYLE.md): no clock, no I/O ------------------------------------------------
def test_cache_module_imports_no_clock_or_io() -> None:
    source = (Path(__file__).resolve().parents[2] / "netstack" / "dns" / "cache.py").read_text()
    forbidden = {"asyncio", "time", "socket", "os", "random", "threading", "selectors"}
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
    assert not {f.split(".")[0] for f in found} & forbidden, found
