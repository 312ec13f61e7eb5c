"""The neighbour cache as IPv6 uses it (RFC 4861 7.2.5 and 7.3): Neighbor Advertisements
with the Solicited and Override flags, on the same NUD machine as ARP, with explicit time."""

from __future__ import annotations

from netstack.proto.neighbour.cache import NeighbourCache, NeighbourResolved, NeighbourState

IP = bytes.fromhex("fd000000000000000000000000000002")
MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")


def resolved(cache: NeighbourCache[str], now: float = 0.0) -> NeighbourCache[str]:
    assert cache.resolve(IP, "first", now) is None
    cache.advert(IP, MAC1, now, solicited=True, override=False)
    return cache


def test_solicited_advert_resolves_incomplete_and_releases_packets() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    assert cache.resolve(IP, "p1", 0.0) is None
    assert cache.resolve(IP, "p2", 0.1) is None
    assert cache.requests_to_send()[0].mac is None  # multicast solicitation
    cache.advert(IP, MAC1, 0.2, solicited=True, override=False)
    assert cache.state(IP) is NeighbourState.REACHABLE
    event = cache.next_event()
    assert isinstance(event, NeighbourResolved) and event.packets == ["p1", "p2"]
    assert cache.resolve(IP, "p3", 0.3) == MAC1


def test_unsolicited_advert_for_incomplete_is_stale() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    cache.resolve(IP, "p", 0.0)
    cache.advert(IP, MAC1, 0.1, solicited=False, override=True)
    assert cache.state(IP) is NeighbourState.STALE


def test_advert_without_target_address_leaves_incomplete() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    cache.resolve(IP, "p", 0.0)
    cache.advert(IP, None, 0.1, solicited=True, override=True)
    assert cache.state(IP) is NeighbourState.INCOMPLETE


def test_advert_without_entry_is_ignored() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    cache.advert(IP, MAC1, 0.0, solicited=True, override=True)
    assert IP not in cache


def test_different_address_without_override_only_makes_reachable_stale() -> None:
    cache = resolved(NeighbourCache())
    cache.advert(IP, MAC2, 1.0, solicited=True, override=False)
    assert cache.state(IP) is NeighbourState.STALE
    assert cache.entries() == [(IP, MAC1, NeighbourState.STALE)]  # the address is not taken
    cache.advert(IP, MAC2, 2.0, solicited=False, override=False)
    assert cache.entries() == [(IP, MAC1, NeighbourState.STALE)]


def test_override_replaces_the_address() -> None:
    cache = resolved(NeighbourCache())
    cache.advert(IP, MAC2, 1.0, solicited=False, override=True)
    assert cache.entries() == [(IP, MAC2, NeighbourState.STALE)]
    cache.advert(IP, MAC2, 2.0, solicited=True, override=True)
    assert cache.entries() == [(IP, MAC2, NeighbourState.REACHABLE)]


def test_solicited_advert_confirms_a_probed_entry() -> None:
    cache = resolved(NeighbourCache())
    cache.handle_timeout(31.0)  # REACHABLE -> STALE after reachable_time
    assert cache.state(IP) is NeighbourState.STALE
    assert cache.resolve(IP, "p", 31.0) == MAC1  # used: DELAY
    assert cache.state(IP) is NeighbourState.DELAY
    cache.handle_timeout(36.1)
    assert cache.state(IP) is NeighbourState.PROBE
    assert cache.requests_to_send()[-1].mac == MAC1  # unicast probe
    cache.advert(IP, None, 36.5, solicited=True, override=False)
    assert cache.state(IP) is NeighbourState.REACHABLE
