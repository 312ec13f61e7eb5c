"""The neighbour cache machine (netstack.proto.neighbour.cache), which ARP and IPv6 neighbour
discovery share, driven without an event loop: every state transition of RFC 826 / RFC 1122
2.3.2 / RFC 4861 7.3, the bounds, the timer, and a hypothesis state machine that checks the
invariants under arbitrary input sequences."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from netstack.proto.neighbour.cache import (
    NeighbourCache,
    NeighbourConfig,
    NeighbourFailed,
    NeighbourResolved,
    NeighbourState,
    Request,
)

CONFIG = NeighbourConfig()  # the defaults: reachable 30 s, stale 60 s, delay 5 s, retrans 1 s


def ip(n: int) -> bytes:
    return bytes([198, 18, 0, n])


def mac(n: int) -> bytes:
    return bytes([0x02, 0, 0, 0, 0, n])


def drain_events(cache: NeighbourCache[str]) -> list[NeighbourResolved[str] | NeighbourFailed[str]]:
    out: list[NeighbourResolved[str] | NeighbourFailed[str]] = []
    while (event := cache.next_event()) is not None:
        out.append(event)
    return out


def resolved_cache(
    addr: bytes, hw: bytes, now: float, config: NeighbourConfig | None = None
) -> NeighbourCache[str]:
    """A cache holding one REACHABLE entry, learnt by a reply to our request at ``now``."""
    cache: NeighbourCache[str] = NeighbourCache(config)
    assert cache.resolve(addr, "first", now) is None
    cache.requests_to_send()
    cache.update(addr, hw, now, solicited=True, create=False)
    drain_events(cache)
    assert cache.state(addr) is NeighbourState.REACHABLE
    return cache


# -- INCOMPLETE --------------------------------------------------------------------------------


def test_resolve_unknown_queues_and_broadcasts() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    assert cache.resolve(ip(2), "p1", 10.0) is None
    assert cache.state(ip(2)) is NeighbourState.INCOMPLETE
    assert ip(2) in cache and len(cache) == 1
    assert cache.requests_to_send() == [Request(ip(2), None)]
    assert cache.requests_to_send() == []  # drained
    assert cache.pending_packets == 1
    assert cache.poll_at() == 10.0 + CONFIG.retrans_time
    assert cache.next_event() is None
    # A second packet for the same address queues without a second request.
    assert cache.resolve(ip(2), "p2", 10.5) is None
    assert cache.requests_to_send() == []
    assert cache.pending_packets == 2
    assert cache.entries() == [(ip(2), None, NeighbourState.INCOMPLETE)]


def test_incomplete_retries_then_fails_with_queued_packets() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    cache.resolve(ip(2), "p1", 0.0)
    cache.resolve(ip(2), "p2", 0.2)
    requests = cache.requests_to_send()
    cache.handle_timeout(0.999)
    assert cache.requests_to_send() == []
    assert cache.state(ip(2)) is NeighbourState.INCOMPLETE
    now = 0.0
    for _ in range(CONFIG.max_requests - 1):
        deadline = cache.poll_at()
        assert deadline == now + CONFIG.retrans_time
        now = deadline
        cache.handle_timeout(now)
        requests += cache.requests_to_send()
        assert cache.state(ip(2)) is NeighbourState.INCOMPLETE
        assert cache.next_event() is None
    # RFC 1122 2.3.2.1: one broadcast per retrans_time, max_requests of them in all.
    assert requests == [Request(ip(2), None)] * CONFIG.max_requests
    assert cache.poll_at() == now + CONFIG.retrans_time
    cache.handle_timeout(now + CONFIG.retrans_time)
    assert cache.requests_to_send() == []
    assert ip(2) not in cache
    assert drain_events(cache) == [NeighbourFailed(ip(2), ["p1", "p2"])]
    assert cache.pending_packets == 0
    assert cache.drops["unresolved"] == 2
    assert cache.poll_at() is None


def test_reply_releases_queued_packets_in_order() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    for i in range(5):
        cache.resolve(ip(2), f"p{i}", 0.1 * i)
    cache.update(ip(2), mac(2), 0.7, solicited=True, create=False)
    assert drain_events(cache) == [NeighbourResolved(ip(2), mac(2), ["p0", "p1", "p2", "p3", "p4"])]
    assert cache.state(ip(2)) is NeighbourState.REACHABLE
    assert cache.entries() == [(ip(2), mac(2), NeighbourState.REACHABLE)]
    assert cache.pending_packets == 0
    assert cache.poll_at() == 0.7 + CONFIG.reachable_time
    # Now known: sent directly, nothing queued, nothing requested.
    assert cache.resolve(ip(2), "p5", 1.0) == mac(2)
    assert cache.pending_packets == 0
    assert cache.requests_to_send() == [Request(ip(2), None)]  # only the very first one
    assert cache.next_event() is None


def test_unsolicited_news_of_an_incomplete_entry_resolves_it_as_stale() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    cache.resolve(ip(2), "p", 0.0)
    cache.update(ip(2), mac(2), 0.5, solicited=False, create=False)
    assert drain_events(cache) == [NeighbourResolved(ip(2), mac(2), ["p"])]
    assert cache.state(ip(2)) is NeighbourState.STALE
    assert cache.poll_at() == 0.5 + CONFIG.stale_time


# -- REACHABLE / STALE / DELAY / PROBE ----------------------------------------------------------


def test_reachable_becomes_stale_after_reachable_time() -> None:
    cache = resolved_cache(ip(2), mac(2), 100.0)
    cache.handle_timeout(100.0 + CONFIG.reachable_time - 0.001)
    assert cache.state(ip(2)) is NeighbourState.REACHABLE
    cache.handle_timeout(100.0 + CONFIG.reachable_time)
    assert cache.state(ip(2)) is NeighbourState.STALE
    assert cache.requests_to_send() == []  # going stale sends nothing
    assert cache.poll_at() == 100.0 + CONFIG.reachable_time + CONFIG.stale_time


def test_stale_unused_is_removed_after_stale_time() -> None:
    cache = resolved_cache(ip(2), mac(2), 0.0)
    t_stale = CONFIG.reachable_time
    cache.handle_timeout(t_stale)
    cache.handle_timeout(t_stale + CONFIG.stale_time - 0.001)
    assert cache.state(ip(2)) is NeighbourState.STALE
    cache.handle_timeout(t_stale + CONFIG.stale_time)
    assert ip(2) not in cache and len(cache) == 0
    assert cache.requests_to_send() == []
    assert cache.next_event() is None  # nothing was queued, nothing fails
    assert cache.poll_at() is None


def test_stale_used_goes_delay_then_probe_with_unicast_request() -> None:
    cache = resolved_cache(ip(2), mac(2), 0.0)
    cache.handle_timeout(CONFIG.reachable_time)
    assert cache.state(ip(2)) is NeighbourState.STALE
    used = CONFIG.reachable_time + 7.0
    # A STALE entry is still used to send (RFC 4861 7.3.3) and the packet is not queued.
    assert cache.resolve(ip(2), "x", used) == mac(2)
    assert cache.pending_packets == 0
    assert cache.state(ip(2)) is NeighbourState.DELAY
    assert cache.requests_to_send() == []  # DELAY waits before asking
    assert cache.poll_at() == used + CONFIG.delay_first_probe_time
    # Still used in DELAY, without restarting the delay.
    assert cache.resolve(ip(2), "y", used + 1.0) == mac(2)
    assert cache.poll_at() == used + CONFIG.delay_first_probe_time
    cache.handle_timeout(used + CONFIG.delay_first_probe_time - 0.001)
    assert cache.state(ip(2)) is NeighbourState.DELAY
    cache.handle_timeout(used + CONFIG.delay_first_probe_time)
    assert cache.state(ip(2)) is NeighbourState.PROBE
    # The probe is unicast to the address we have (RFC 1122 2.3.2.1 "unicast poll").
    assert cache.requests_to_send() == [Request(ip(2), mac(2))]
    assert cache.resolve(ip(2), "z", used + 5.5) == mac(2)  # PROBE entries are used too
    assert cache.poll_at() == used + CONFIG.delay_first_probe_time + CONFIG.retrans_time


def test_probe_answered_becomes_reachable() -> None:
    cache = resolved_cache(ip(2), mac(2), 0.0)
    cache.handle_timeout(30.0)
    cache.resolve(ip(2), "x", 31.0)
    cache.handle_timeout(36.0)
    assert cache.state(ip(2)) is NeighbourState.PROBE
    cache.requests_to_send()
    cache.update(ip(2), mac(2), 36.4, solicited=True, create=False)
    assert cache.state(ip(2)) is NeighbourState.REACHABLE
    assert cache.poll_at() == 36.4 + CONFIG.reachable_time
    assert cache.next_event() is None  # there was nothing queued to release
    # The probe timer is dead: nothing more is sent at the old deadline.
    cache.handle_timeout(37.0)
    cache.handle_timeout(40.0)
    assert cache.requests_to_send() == []
    assert cache.state(ip(2)) is NeighbourState.REACHABLE


def test_probe_unanswered_removes_entry_after_max_probes() -> None:
    cache = resolved_cache(ip(2), mac(2), 0.0)
    cache.handle_timeout(30.0)
    cache.resolve(ip(2), "x", 30.0)
    now = 35.0
    cache.handle_timeout(now)
    probes = cache.requests_to_send()
    for _ in range(CONFIG.max_probes - 1):
        now += CONFIG.retrans_time
        assert cache.poll_at() == now
        cache.handle_timeout(now)
        assert cache.state(ip(2)) is NeighbourState.PROBE
        probes += cache.requests_to_send()
    assert probes == [Request(ip(2), mac(2))] * CONFIG.max_probes
    now += CONFIG.retrans_time
    assert cache.poll_at() == now
    cache.handle_timeout(now)
    assert ip(2) not in cache
    assert cache.requests_to_send() == []
    assert cache.poll_at() is None
    # Next use starts over with a broadcast.
    assert cache.resolve(ip(2), "again", now + 1.0) is None
    assert cache.requests_to_send() == [Request(ip(2), None)]


def test_probe_answered_from_a_new_mac_is_taken() -> None:
    cache = resolved_cache(ip(2), mac(2), 0.0)
    cache.handle_timeout(30.0)
    cache.resolve(ip(2), "x", 30.0)
    cache.handle_timeout(35.0)
    cache.update(ip(2), mac(9), 35.5, solicited=True, create=False)
    assert cache.entries() == [(ip(2), mac(9), NeighbourState.REACHABLE)]
    assert cache.resolve(ip(2), "y", 36.0) == mac(9)


@pytest.mark.parametrize(
    "state", [NeighbourState.STALE, NeighbourState.DELAY, NeighbourState.PROBE]
)
def test_confirm_makes_reachable(state: NeighbourState) -> None:
    cache = resolved_cache(ip(2), mac(2), 0.0)
    cache.handle_timeout(30.0)
    now = 30.0
    if state is not NeighbourState.STALE:
        cache.resolve(ip(2), "x", 31.0)
        now = 31.0
    if state is NeighbourState.PROBE:
        cache.handle_timeout(36.0)
        now = 36.0
    assert cache.state(ip(2)) is state
    cache.requests_to_send()
    cache.confirm(ip(2), now + 0.5)
    assert cache.state(ip(2)) is NeighbourState.REACHABLE
    assert cache.poll_at() == now + 0.5 + CONFIG.reachable_time
    # The DELAY/PROBE timers are dead: no probe goes out while REACHABLE.
    cache.handle_timeout(now + 0.5 + CONFIG.reachable_time - 0.01)
    assert cache.requests_to_send() == []
    assert cache.state(ip(2)) is NeighbourState.REACHABLE


def test_confirm_of_reachable_does_not_extend_it() -> None:
    cache = resolved_cache(ip(2), mac(2), 0.0)
    cache.confirm(ip(2), 10.0)
    assert cache.poll_at() == CONFIG.reachable_time


def test_confirm_ignores_incomplete_and_unknown() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    cache.resolve(ip(2), "p", 0.0)
    cache.confirm(ip(2), 0.5)  # no address to confirm yet
    cache.confirm(ip(3), 0.5)
    assert cache.entries() == [(ip(2), None, NeighbourState.INCOMPLETE)]
    assert ip(3) not in cache
    assert cache.poll_at() == CONFIG.retrans_time


# -- update: the RFC 826 merge rule -------------------------------------------------------------


def test_update_without_create_ignores_unknown_address() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    cache.update(ip(2), mac(2), 0.0, solicited=False, create=False)
    cache.update(ip(3), mac(3), 0.0, solicited=True, create=False)
    assert len(cache) == 0
    assert cache.poll_at() is None


def test_update_with_create_adds_stale_entry() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    cache.update(ip(2), mac(2), 5.0, solicited=False, create=True)
    assert cache.entries() == [(ip(2), mac(2), NeighbourState.STALE)]
    assert cache.poll_at() == 5.0 + CONFIG.stale_time
    assert cache.next_event() is None
    assert cache.resolve(ip(2), "p", 6.0) == mac(2)


def test_unsolicited_new_mac_replaces_and_goes_stale() -> None:
    cache = resolved_cache(ip(2), mac(2), 0.0)
    cache.update(ip(2), mac(7), 3.0, solicited=False, create=False)
    assert cache.entries() == [(ip(2), mac(7), NeighbourState.STALE)]
    assert cache.poll_at() == 3.0 + CONFIG.stale_time


def test_unsolicited_same_mac_keeps_reachable_entry_and_its_timer() -> None:
    cache = resolved_cache(ip(2), mac(2), 0.0)
    cache.update(ip(2), mac(2), 3.0, solicited=False, create=True)
    assert cache.entries() == [(ip(2), mac(2), NeighbourState.REACHABLE)]
    assert cache.poll_at() == CONFIG.reachable_time


def test_add_static_is_reachable_and_forget_removes() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    cache.add_static(ip(4), mac(4), 1.0)
    assert cache.entries() == [(ip(4), mac(4), NeighbourState.REACHABLE)]
    cache.forget(ip(4))
    assert len(cache) == 0 and cache.poll_at() is None
    assert cache.next_event() is None
    cache.forget(ip(4))  # forgetting an unknown address is harmless


def test_forget_fails_queued_packets() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    cache.resolve(ip(2), "a", 0.0)
    cache.resolve(ip(2), "b", 0.0)
    cache.forget(ip(2))
    assert drain_events(cache) == [NeighbourFailed(ip(2), ["a", "b"])]
    assert cache.pending_packets == 0
    assert cache.poll_at() is None
    cache.handle_timeout(100.0)  # the dead timer does nothing
    assert cache.requests_to_send() == [Request(ip(2), None)]  # only the first one


# -- bounds -----------------------------------------------------------------------------------


def test_pending_per_entry_drops_the_oldest() -> None:
    cache: NeighbourCache[str] = NeighbourCache(NeighbourConfig(pending_per_entry=3))
    for i in range(5):
        cache.resolve(ip(2), f"p{i}", 0.0)
    assert cache.pending_packets == 3
    assert cache.drops["queue_full"] == 2
    cache.update(ip(2), mac(2), 0.5, solicited=True, create=False)
    assert drain_events(cache) == [NeighbourResolved(ip(2), mac(2), ["p2", "p3", "p4"])]
    assert cache.pending_packets == 0


def test_pending_total_bounds_all_entries() -> None:
    cache: NeighbourCache[str] = NeighbourCache(
        NeighbourConfig(pending_per_entry=4, pending_total=5)
    )
    for i in range(4):
        cache.resolve(ip(2), f"a{i}", 0.0)
    for i in range(4):
        cache.resolve(ip(3), f"b{i}", 0.0)
    assert cache.pending_packets == 5
    assert cache.drops["queue_full"] == 3
    cache.update(ip(3), mac(3), 0.5, solicited=True, create=False)
    cache.update(ip(2), mac(2), 0.5, solicited=True, create=False)
    assert drain_events(cache) == [
        NeighbourResolved(ip(3), mac(3), ["b0"]),
        NeighbourResolved(ip(2), mac(2), ["a0", "a1", "a2", "a3"]),
    ]
    # The room is back once the queues are released.
    cache.resolve(ip(4), "c0", 1.0)
    assert cache.pending_packets == 1


def test_max_entries_evicts_resolved_before_unresolved() -> None:
    cache: NeighbourCache[str] = NeighbourCache(NeighbourConfig(max_entries=3))
    cache.resolve(ip(1), "waiting", 0.0)  # the oldest entry, but unresolved
    cache.update(ip(2), mac(2), 1.0, solicited=False, create=True)
    cache.update(ip(3), mac(3), 2.0, solicited=False, create=True)
    assert cache.resolve(ip(4), "new", 3.0) is None
    assert len(cache) == 3
    assert ip(2) not in cache  # the least recently updated resolved entry
    assert {e[0] for e in cache.entries()} == {ip(1), ip(3), ip(4)}
    assert cache.drops["evicted"] == 1
    assert cache.next_event() is None  # a resolved entry has nothing queued
    assert cache.pending_packets == 2


def test_max_entries_all_unresolved_evicts_the_oldest_and_fails_its_packets() -> None:
    cache: NeighbourCache[str] = NeighbourCache(NeighbourConfig(max_entries=2))
    cache.resolve(ip(1), "one", 0.0)
    cache.resolve(ip(2), "two", 0.1)
    cache.resolve(ip(3), "three", 0.2)
    assert len(cache) == 2
    assert ip(1) not in cache
    assert drain_events(cache) == [NeighbourFailed(ip(1), ["one"])]
    assert cache.pending_packets == 2
    # Its timer is dead too: the next deadline is the second entry's.
    assert cache.poll_at() == 0.1 + CONFIG.retrans_time


# -- the timer --------------------------------------------------------------------------------


def test_poll_at_tracks_the_earliest_live_deadline() -> None:
    cache: NeighbourCache[str] = NeighbourCache()
    assert cache.poll_at() is None
    cache.add_static(ip(1), mac(1), 0.0)  # due at 30
    cache.update(ip(2), mac(2), 1.0, solicited=False, create=True)  # due at 61
    cache.resolve(ip(3), "p", 2.0)  # due at 3
    assert cache.poll_at() == 3.0
    cache.update(ip(3), mac(3), 2.5, solicited=True, create=False)  # now due at 32.5
    assert cache.poll_at() == 30.0
    cache.forget(ip(1))
    assert cache.poll_at() == 32.5
    cache.resolve(ip(2), "use", 10.0)  # STALE -> DELAY: re-armed earlier, at 15
    assert cache.poll_at() == 15.0
    cache.handle_timeout(15.0)  # PROBE, due at 16
    assert cache.poll_at() == 16.0
    cache.confirm(ip(2), 15.5)  # REACHABLE until 45.5
    assert cache.poll_at() == 32.5
    cache.forget(ip(3))
    assert cache.poll_at() == 45.5
    cache.forget(ip(2))
    assert cache.poll_at() is None


def test_handle_timeout_late_processes_each_state_once() -> None:
    """A very late timer runs each entry's step once, from the time it is handled."""
    cache = resolved_cache(ip(2), mac(2), 0.0)
    cache.handle_timeout(1000.0)  # REACHABLE expired long ago: STALE from now on
    assert cache.state(ip(2)) is NeighbourState.STALE
    assert cache.poll_at() == 1000.0 + CONFIG.stale_time


# -- a hypothesis state machine ---------------------------------------------------------------

SMALL = NeighbourConfig(
    reachable_time=3.0,
    stale_time=6.0,
    delay_first_probe_time=2.0,
    retrans_time=1.0,
    max_requests=3,
    max_probes=2,
    max_entries=4,
    pending_per_entry=3,
    pending_total=5,
)
ADDRESSES = [ip(n) for n in range(1, 7)]
MACS = [mac(n) for n in range(1, 4)]


def _snapshot(cache: NeighbourCache[int]) -> tuple[object, ...]:
    return (sorted(cache.entries()), cache.pending_packets)


class CacheMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.cache: NeighbourCache[int] = NeighbourCache(SMALL)
        self.now = 0.0
        self.next_packet = 0
        self.queued = 0  # packets resolve() kept (returned None)
        self.released = 0
        self.failed = 0

    def _collect(self) -> None:
        for target, hw in self.cache.requests_to_send():
            assert target in self.cache
            if hw is None:
                assert self.cache.state(target) is NeighbourState.INCOMPLETE
            else:
                assert self.cache.state(target) is NeighbourState.PROBE
        while (event := self.cache.next_event()) is not None:
            assert event.packets == sorted(event.packets), "queued order is kept"
            if isinstance(event, NeighbourResolved):
                # Empty when pending_total left no room for this address's packets.
                self.released += len(event.packets)
            else:
                assert event.packets, "a failure is reported only for queued packets"
                self.failed += len(event.packets)

    @rule(addr=st.sampled_from(ADDRESSES))
    def resolve(self, addr: bytes) -> None:
        before = self.cache.state(addr)
        packet = self.next_packet
        self.next_packet += 1
        result = self.cache.resolve(addr, packet, self.now)
        if before is None or before is NeighbourState.INCOMPLETE:
            assert result is None
            self.queued += 1
        else:
            assert result is not None and len(result) == 6
            assert self.cache.state(addr) is not NeighbourState.STALE
        self._collect()

    @rule(addr=st.sampled_from(ADDRESSES), count=st.integers(2, 5))
    def burst(self, addr: bytes, count: int) -> None:
        for _ in range(count):
            self.resolve(addr)

    @rule(
        addr=st.sampled_from(ADDRESSES),
        hw=st.sampled_from(MACS),
        solicited=st.booleans(),
        create=st.booleans(),
    )
    def update(self, addr: bytes, hw: bytes, solicited: bool, create: bool) -> None:
        known = addr in self.cache
        self.cache.update(addr, hw, self.now, solicited=solicited, create=create)
        if known or create:
            assert (addr, hw, self.cache.state(addr)) in self.cache.entries()
            if solicited:
                assert self.cache.state(addr) is NeighbourState.REACHABLE
        else:
            assert addr not in self.cache
        self._collect()

    @rule(addr=st.sampled_from(ADDRESSES))
    def confirm(self, addr: bytes) -> None:
        before = self.cache.state(addr)
        self.cache.confirm(addr, self.now)
        if before not in (None, NeighbourState.INCOMPLETE):
            assert self.cache.state(addr) is NeighbourState.REACHABLE
        else:
            assert self.cache.state(addr) is before
        self._collect()

    @rule(addr=st.sampled_from(ADDRESSES))
    def forget(self, addr: bytes) -> None:
        self.cache.forget(addr)
        assert addr not in self.cache
        self._collect()

    @rule(dt=st.floats(min_value=0.0, max_value=8.0, allow_nan=False))
    def advance(self, dt: float) -> None:
        self.now += dt
        self.cache.handle_timeout(self.now)
        self._collect()

    @precondition(lambda self: self.cache.poll_at() is not None)
    @rule()
    def run_to_deadline(self) -> None:
        deadline = self.cache.poll_at()
        assert deadline is not None
        self.now = max(self.now, deadline)
        self.cache.handle_timeout(self.now)
        self._collect()

    @invariant()
    def bounded(self) -> None:
        assert len(self.cache) <= SMALL.max_entries
        assert 0 <= self.cache.pending_packets <= SMALL.pending_total

    @invariant()
    def packets_are_conserved(self) -> None:
        dropped = self.cache.drops.get("queue_full", 0)
        assert self.queued == (self.released + self.failed + self.cache.pending_packets + dropped)

    @invariant()
    def entries_are_consistent(self) -> None:
        states = [state for _, _, state in self.cache.entries()]
        for _, hw, state in self.cache.entries():
            assert (hw is None) == (state is NeighbourState.INCOMPLETE)
        # Only unresolved entries hold packets, at most pending_per_entry each.
        unresolved = states.count(NeighbourState.INCOMPLETE)
        assert self.cache.pending_packets <= unresolved * SMALL.pending_per_entry

    @invariant()
    def poll_at_is_the_earliest_real_deadline(self) -> None:
        deadline = self.cache.poll_at()
        if len(self.cache) == 0:
            assert deadline is None
            return
        # Every entry has a timer, and every timer that fires changes something visible
        # (a request, a state, an entry gone): so just before poll_at nothing may happen,
        # and at poll_at something must.
        assert deadline is not None
        assert deadline > self.now, "everything due by now has been handled"
        probe = copy.deepcopy(self.cache)
        before = _snapshot(probe)
        probe.handle_timeout(deadline - 1e-6)
        assert _snapshot(probe) == before
        assert probe.requests_to_send() == []
        assert probe.next_event() is None
        probe.handle_timeout(deadline)
        changed = _snapshot(probe) != before or probe.requests_to_send() != []
        assert changed, "poll_at() named a deadline at which nothing happens"


CacheMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_cache_state_machine = CacheMachine.TestCase
