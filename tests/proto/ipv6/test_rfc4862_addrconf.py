"""The address-configuration machine (netstack.proto.ipv6.addrconf) driven without an event loop,
time as a plain argument: link-local addresses and DAD (RFC 4862 5.3, 5.4), RFC 7217 identifiers
and their retries, router solicitation (RFC 4861 6.3.7), Router Advertisement processing
(RFC 4861 6.3.4, RFC 4862 5.5.3 with the two-hour rule, RFC 8106), lifetimes (RFC 4862 5.5.4),
static addresses, the bounds, and a hypothesis state machine over random inputs."""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import Iterable
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from netstack.proto.ipv6 import addrconf as ac
from netstack.proto.ipv6.addrconf import (
    TRANSITIONS,
    Addrconf,
    AddrconfConfig,
    AddressAdded,
    AddressRemoved,
    AddressState,
    AddressStateChanged,
    DnsServersChanged,
    DuplicateAddress,
    HopLimitChanged,
    JoinGroup,
    LeaveGroup,
    MtuChanged,
    Origin,
    ReachableTimeChanged,
    RetransTimerChanged,
    RouterAdded,
    SearchDomainsChanged,
    SendDadSolicit,
    SendRouterSolicit,
)
from netstack.proto.ipv6.addressing import (
    LINK_LOCAL_PREFIX,
    Candidate,
    combine,
    eui64_iid,
    solicited_node,
    stable_iid,
)

MAC = bytes.fromhex("001122334455")
SECRET = bytes(range(16))
INFINITE = 0xFFFFFFFF
TENTATIVE, PREFERRED = AddressState.TENTATIVE, AddressState.PREFERRED
DEPRECATED, DUPLICATE = AddressState.DEPRECATED, AddressState.DUPLICATE


def a(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


P1, P2, P3 = a("2001:db8:1::"), a("2001:db8:2::"), a("2001:db8:3::")
ROUTER, ROUTER2, ROUTER3 = a("fe80::1"), a("fe80::2"), a("fe80::3")
DNS1, DNS2, DNS3 = a("2001:db8::53"), a("2001:db8::35"), a("2001:db8::5353")


class FixedRng:
    """Every ``random()`` is ``value``: delays are ``value`` times their maximum."""

    def __init__(self, value: float = 0.5) -> None:
        self.value = value

    def random(self) -> float:
        return self.value

    def getrandbits(self, k: int, /) -> int:
        return 0


# The Router Advertisement as the ICMPv6 layer hands it over (RFC 4861 4.2, 4.6.2; RFC 8106 5).
class Prefix(NamedTuple):
    prefix: bytes
    prefix_len: int = 64
    on_link: bool = True
    autonomous: bool = True
    valid_lifetime: int = 2592000
    preferred_lifetime: int = 604800


class Rdnss(NamedTuple):
    lifetime: int
    servers: tuple[bytes, ...]


class Dnssl(NamedTuple):
    lifetime: int
    domains: tuple[str, ...]


class RA(NamedTuple):
    cur_hop_limit: int = 0
    managed: bool = False
    other: bool = False
    router_lifetime: int = 1800
    reachable_time: int = 0
    retrans_timer: int = 0
    mtu: int | None = None
    prefixes: tuple[Prefix, ...] = ()
    rdnss: tuple[Rdnss, ...] = ()
    dnssl: tuple[Dnssl, ...] = ()


def make(rng: float = 0.5, *, link_mtu: int = 1500, **config: Any) -> Addrconf:
    return Addrconf(
        MAC, config=AddrconfConfig(**config), rng=FixedRng(rng), secret=SECRET, link_mtu=link_mtu
    )


def ll(counter: int = 0) -> bytes:
    """The RFC 7217 link-local address this host makes with ``counter``."""
    iid = stable_iid(LINK_LOCAL_PREFIX, 64, b"eth0", b"", counter, SECRET)
    return combine(LINK_LOCAL_PREFIX, iid)


def slaac(prefix: bytes, counter: int = 0) -> bytes:
    return combine(prefix, stable_iid(prefix, 64, b"eth0", b"", counter, SECRET))


LL_EUI64 = a("fe80::211:22ff:fe33:4455")


def sn(address: bytes) -> bytes:
    return solicited_node(address)


def events(m: Addrconf) -> list[Any]:
    out = []
    while (e := m.next_event()) is not None:
        out.append(e)
    return out


def tagged(items: Iterable[Any]) -> list[tuple[Any, ...]]:
    """Actions or events with their class, since NamedTuples of equal fields compare equal."""
    return [(type(x).__name__, *x) for x in items]


def run_until(m: Addrconf, t: float) -> tuple[list[tuple[float, Any]], list[Any]]:
    """Handle every deadline up to ``t`` at its own time; the actions (with their times) and
    events that came out."""
    acts: list[tuple[float, Any]] = []
    evs: list[Any] = []
    for _ in range(10_000):
        at = m.poll_at()
        if at is None or at > t:
            break
        m.handle_timeout(at)
        after = m.poll_at()
        assert after is None or after > at, "handle_timeout made no progress"
        acts += [(at, x) for x in m.actions_to_send()]
        evs += events(m)
    return acts, evs


def of(kind: type, items: Iterable[tuple[float, Any]]) -> list[tuple[float, Any]]:
    return [(t, x) for t, x in items if type(x) is kind]


def started(rng: float = 0.5, **config: Any) -> Addrconf:
    """A machine whose link-local address is PREFERRED and whose outputs are drained."""
    m = make(rng, **config)
    m.start(0.0)
    run_until(m, 1.0 + rng + m.retrans_timer * m.config.dad_transmits)
    m.actions_to_send()
    events(m)
    return m


def advertise(m: Addrconf, now: float, **prefix: Any) -> None:
    """An RA from ROUTER with one Prefix Information option for P1."""
    m.receive_router_advert(ROUTER, RA(prefixes=(Prefix(P1, **prefix),)), now)


def with_slaac(m: Addrconf, now: float, **prefix: Any) -> bytes:
    """Send an RA with one prefix and finish DAD on its address; the address."""
    m.receive_router_advert(ROUTER, RA(prefixes=(Prefix(P1, **prefix),)), now)
    added = [e for e in events(m) if isinstance(e, AddressAdded)]
    assert len(added) == 1
    run_until(m, now + 1.0 + m.retrans_timer * m.config.dad_transmits)
    m.actions_to_send()
    events(m)
    return added[0].info.address


# -- RFC 4862 5.3 / 5.4: the link-local address and DAD --------------------------------------


def test_start_makes_a_tentative_link_local_address_and_joins_its_group() -> None:
    m = make(0.5)
    m.start(10.0)
    (added,) = events(m)
    assert isinstance(added, AddressAdded)
    info = added.info
    assert (info.address, info.prefix_len, info.state, info.origin) == (
        ll(0), 64, TENTATIVE, Origin.LINK_LOCAL,
    )  # fmt: skip
    # RFC 4862 5.3: a link-local address never times out.
    assert info.valid_until == math.inf and info.preferred_until == math.inf
    assert info.dad_counter == 0
    assert tagged(m.actions_to_send()) == [("JoinGroup", sn(ll(0)))]
    assert m.is_tentative(ll(0)) and m.assigned(ll(0)) is None
    assert m.candidates() == [] and m.link_local_address() is None
    # RFC 4862 5.4.2: the first solicitation waits the random delay (0.5 of 1 s here).
    assert m.poll_at() == 10.5


def test_link_local_is_preferred_one_retrans_timer_after_its_solicitation() -> None:
    m = make(0.5)
    m.start(10.0)
    m.actions_to_send()
    events(m)
    acts, evs = run_until(m, 11.49)
    assert of(SendDadSolicit, acts) == [(10.5, SendDadSolicit(ll(0)))]
    assert evs == [] and m.is_tentative(ll(0))
    acts, evs = run_until(m, 11.5)
    assert tagged(evs) == [("AddressStateChanged", ll(0), TENTATIVE, PREFERRED)]
    info = m.assigned(ll(0))
    assert info is not None and info.state is PREFERRED
    assert m.candidates() == [Candidate(ll(0), 64, True)]
    assert m.link_local_address() == ll(0)


def test_join_group_comes_before_the_first_dad_solicitation() -> None:
    m = make(0.0)  # no delay at all
    m.start(0.0)
    acts = [(0.0, x) for x in m.actions_to_send()]
    more, _ = run_until(m, 0.0)
    kinds = [type(x) for _, x in acts + more if type(x) in (JoinGroup, SendDadSolicit)]
    assert kinds[:2] == [JoinGroup, SendDadSolicit]


def test_several_dad_transmits_are_retrans_timer_apart() -> None:
    m = make(0.5, dad_transmits=3)
    m.start(0.0)
    acts, evs = run_until(m, 10.0)
    assert of(SendDadSolicit, acts) == [(t, SendDadSolicit(ll(0))) for t in (0.5, 1.5, 2.5)]
    changed = [e for e in evs if isinstance(e, AddressStateChanged)]
    assert changed == [AddressStateChanged(ll(0), TENTATIVE, PREFERRED)]
    assert m.assigned(ll(0)) is not None
    # ...and the verdict came one RetransTimer after the last solicitation.
    m2 = make(0.5, dad_transmits=3)
    m2.start(0.0)
    run_until(m2, 3.49)
    assert m2.is_tentative(ll(0))
    run_until(m2, 3.5)
    assert not m2.is_tentative(ll(0))


def test_no_dad_when_dad_transmits_is_zero() -> None:
    """RFC 4862 5.4: DupAddrDetectTransmits 0 means no DAD; the address is usable at once."""
    m = make(0.5, dad_transmits=0)
    m.start(0.0)
    (added,) = events(m)
    assert added.info.state is PREFERRED
    assert tagged(m.actions_to_send()) == [("JoinGroup", sn(ll(0)))]
    acts, _ = run_until(m, 100.0)
    assert of(SendDadSolicit, acts) == []


def test_eui64_link_local_address() -> None:
    m = make(iid="eui64")
    m.start(0.0)
    (added,) = events(m)
    assert added.info.address == LL_EUI64 == combine(LINK_LOCAL_PREFIX, eui64_iid(MAC))


def test_start_twice_is_an_error() -> None:
    m = make()
    m.start(0.0)
    with pytest.raises(RuntimeError):
        m.start(1.0)


def test_bad_configuration() -> None:
    with pytest.raises(ValueError):
        make(iid="random")
    with pytest.raises(ValueError):
        Addrconf(b"\x00" * 8, rng=FixedRng(), secret=SECRET)


def test_reserved_identifiers_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 7217 5: a reserved identifier (RFC 5453) is handled like a DAD conflict."""
    real = ac.stable_iid

    def reserved_first(*args: Any) -> bytes:
        if args[4] == 0:  # DAD_Counter
            return bytes.fromhex("02005efffe005213")
        return real(*args)

    monkeypatch.setattr(ac, "stable_iid", reserved_first)
    m = make()
    m.start(0.0)
    (added,) = events(m)
    assert added.info.address == ll(1) and added.info.dad_counter == 1


def test_no_link_local_when_every_identifier_is_reserved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ac, "stable_iid", lambda *args: bytes(8))
    m = make()
    m.start(0.0)
    assert events(m) == [] and m.addresses == []
    assert m.drops["no_link_local"] == 1


# -- RFC 4862 5.4.3-5.4.5, RFC 7217 6: conflicts -------------------------------------------


def test_dad_conflict_by_solicitation_makes_a_new_stable_address() -> None:
    m = make(0.5)
    m.start(0.0)
    m.actions_to_send()
    events(m)
    run_until(m, 0.5)  # our solicitation went out
    m.actions_to_send()
    assert m.receive_dad_solicit(ll(0), 0.7) is False
    evs = events(m)
    assert tagged(evs[:2]) == [
        ("DuplicateAddress", ll(0), Origin.LINK_LOCAL),
        ("AddressRemoved", ll(0)),
    ]
    assert isinstance(evs[2], AddressAdded) and len(evs) == 3
    new = evs[2].info
    assert (new.address, new.state, new.dad_counter) == (ll(1), TENTATIVE, 1)
    assert tagged(m.actions_to_send()) == [("LeaveGroup", sn(ll(0))), ("JoinGroup", sn(ll(1)))]
    # RFC 7217 6: the new address waits a random 0..IDGEN_DELAY (0.5 of 1 s) first.
    assert m.poll_at() == pytest.approx(1.2)
    acts, evs = run_until(m, 2.3)
    assert of(SendDadSolicit, acts) == [(pytest.approx(1.2), SendDadSolicit(ll(1)))]
    assert tagged(evs) == [("AddressStateChanged", ll(1), TENTATIVE, PREFERRED)]
    assert [i.address for i in m.addresses] == [ll(1)]


def test_a_solicitation_before_ours_went_out_is_a_conflict_too() -> None:
    """RFC 4862 5.4.3: a solicitation for a tentative address received before one is sent."""
    m = make(0.9)
    m.start(0.0)
    events(m)
    assert m.receive_dad_solicit(ll(0), 0.1) is False
    assert [type(e) for e in events(m)] == [DuplicateAddress, AddressRemoved, AddressAdded]


def test_conflicts_retry_up_to_idgen_retries_then_give_up() -> None:
    m = make(0.5, idgen_retries=3)
    m.start(0.0)
    events(m)
    m.actions_to_send()
    for counter in range(3):
        assert m.receive_advert(ll(counter), 1.0) is False  # RFC 4862 5.4.4
        evs = events(m)
        assert evs[-1].info.address == ll(counter + 1)
        assert evs[-1].info.dad_counter == counter + 1
    m.actions_to_send()
    # The fourth conflict: out of retries (RFC 7217 6 says to limit them).
    assert m.receive_dad_solicit(ll(3), 2.0) is False
    assert tagged(events(m)) == [
        ("DuplicateAddress", ll(3), Origin.LINK_LOCAL),
        ("AddressStateChanged", ll(3), TENTATIVE, DUPLICATE),
    ]
    assert tagged(m.actions_to_send()) == [("LeaveGroup", sn(ll(3)))]
    (info,) = m.addresses
    assert (info.address, info.state, info.dad_counter) == (ll(3), DUPLICATE, 3)
    assert not m.is_tentative(ll(3)) and m.assigned(ll(3)) is None
    assert m.candidates() == []
    # It is kept for reporting but never answers or defends.
    assert m.receive_dad_solicit(ll(3), 3.0) is False
    assert m.receive_advert(ll(3), 3.0) is False
    acts, evs = run_until(m, 100.0)
    assert of(SendDadSolicit, acts) == [] and evs == []
    # RFC 7217 6: no fallback to another algorithm, and IP stays on (it is not EUI-64).
    assert not m.disabled


def test_eui64_link_local_conflict_is_duplicate_and_disables_the_interface() -> None:
    m = make(0.5, iid="eui64")
    m.start(0.0)
    events(m)
    m.actions_to_send()
    assert m.receive_advert(LL_EUI64, 0.6) is False
    assert tagged(events(m)) == [
        ("DuplicateAddress", LL_EUI64, Origin.LINK_LOCAL),
        ("AddressStateChanged", LL_EUI64, TENTATIVE, DUPLICATE),
    ]
    assert m.addresses[0].state is DUPLICATE
    # RFC 4862 5.4.5: IP operation on the interface SHOULD be disabled.
    assert m.disabled
    acts, _ = run_until(m, 100.0)
    assert of(SendRouterSolicit, acts) == []
    m.receive_router_advert(ROUTER, RA(prefixes=(Prefix(P1),)), 101.0)
    assert m.default_routers(101.0) == [] and len(m.addresses) == 1
    assert m.drops["ra_disabled"] == 1


def test_slaac_conflict_by_advert_makes_a_new_address_with_the_same_lifetimes() -> None:
    m = started()
    advertise(m, 10.0, valid_lifetime=3600, preferred_lifetime=1800)
    events(m)
    m.actions_to_send()
    assert m.receive_advert(slaac(P1, 0), 10.2) is False
    evs = events(m)
    assert tagged(evs[:2]) == [
        ("DuplicateAddress", slaac(P1, 0), Origin.SLAAC),
        ("AddressRemoved", slaac(P1, 0)),
    ]
    new = evs[2].info
    assert (new.address, new.origin, new.dad_counter) == (slaac(P1, 1), Origin.SLAAC, 1)
    assert (new.valid_until, new.preferred_until) == (3610.0, 1810.0)


def test_eui64_slaac_conflict_is_duplicate_without_disabling() -> None:
    m = started(iid="eui64")
    m.receive_router_advert(ROUTER, RA(prefixes=(Prefix(P1),)), 10.0)
    address = combine(P1, eui64_iid(MAC))
    assert m.is_tentative(address)
    events(m)
    m.receive_dad_solicit(address, 10.1)
    assert tagged(events(m)) == [
        ("DuplicateAddress", address, Origin.SLAAC),
        ("AddressStateChanged", address, TENTATIVE, DUPLICATE),
    ]
    assert not m.disabled
    # The same prefix again does not make another address.
    m.receive_router_advert(ROUTER, RA(prefixes=(Prefix(P1),)), 20.0)
    assert [e for e in events(m) if isinstance(e, AddressAdded)] == []


def test_assigned_addresses_are_defended_and_not_given_up() -> None:
    m = started()
    # RFC 4861 7.2.4: the caller answers DAD for an assigned address.
    assert m.receive_dad_solicit(ll(0), 5.0) is True
    # RFC 4862 5.4.4: an advertisement for an assigned address: reported, nothing removed.
    assert m.receive_advert(ll(0), 5.0) is True
    assert m.assigned(ll(0)) is not None and events(m) == []
    assert m.receive_dad_solicit(a("fe80::99"), 5.0) is False
    assert m.receive_advert(a("fe80::99"), 5.0) is False


# -- RFC 4861 6.3.7: router solicitation -----------------------------------------------------


def test_router_solicitations_three_times_four_seconds_apart() -> None:
    m = make(0.25)
    m.start(0.0)
    acts, _ = run_until(m, 1000.0)
    assert [t for t, _ in of(SendRouterSolicit, acts)] == [0.25, 4.25, 8.25]
    assert m.poll_at() is None


def test_router_solicitations_stop_on_an_advertisement_with_a_router_lifetime() -> None:
    m = make(0.25)
    m.start(0.0)
    acts, _ = run_until(m, 1.0)
    assert len(of(SendRouterSolicit, acts)) == 1
    m.receive_router_advert(ROUTER, RA(router_lifetime=1800), 1.0)
    acts, _ = run_until(m, 100.0)
    assert of(SendRouterSolicit, acts) == []


def test_an_advertisement_with_router_lifetime_zero_does_not_stop_them() -> None:
    m = make(0.25)
    m.start(0.0)
    run_until(m, 1.0)
    m.receive_router_advert(ROUTER, RA(router_lifetime=0), 1.0)
    acts, _ = run_until(m, 100.0)
    assert [t for t, _ in of(SendRouterSolicit, acts)] == [4.25, 8.25]


def test_no_router_solicitations_when_advertisements_are_not_accepted() -> None:
    m = make(0.25, accept_ra=False)
    m.start(0.0)
    acts, _ = run_until(m, 100.0)
    assert of(SendRouterSolicit, acts) == []
    m.receive_router_advert(ROUTER, RA(prefixes=(Prefix(P1),)), 100.0)
    assert m.default_routers(100.0) == [] and len(m.addresses) == 1
    assert m.drops["ra_not_accepted"] == 1


def test_max_rtr_solicitations_zero() -> None:
    m = make(0.25, max_rtr_solicitations=0)
    m.start(0.0)
    acts, _ = run_until(m, 100.0)
    assert of(SendRouterSolicit, acts) == []


# -- RFC 4861 6.3.4: the Default Router List -------------------------------------------------


def test_router_added_refreshed_and_expired() -> None:
    m = started()
    m.receive_router_advert(ROUTER, RA(router_lifetime=1800), 5.0)
    assert tagged(events(m)) == [("RouterAdded", ROUTER, 1805.0)]
    assert m.default_routers(5.0) == [ROUTER]
    assert m.poll_at() == 1805.0
    # A new advertisement resets the timer, without a new event.
    m.receive_router_advert(ROUTER, RA(router_lifetime=600), 100.0)
    assert events(m) == [] and m.poll_at() == 700.0
    _, evs = run_until(m, 699.0)
    assert evs == [] and m.default_routers(699.0) == [ROUTER]
    _, evs = run_until(m, 700.0)
    assert tagged(evs) == [("RouterRemoved", ROUTER)]
    assert m.default_routers(700.0) == []


def test_router_lifetime_zero_removes_the_router_at_once() -> None:
    m = started()
    m.receive_router_advert(ROUTER, RA(router_lifetime=1800), 5.0)
    events(m)
    m.receive_router_advert(ROUTER, RA(router_lifetime=0), 6.0)
    assert tagged(events(m)) == [("RouterRemoved", ROUTER)]
    # ...and a router not in the list with lifetime 0 is not added.
    m.receive_router_advert(ROUTER2, RA(router_lifetime=0), 7.0)
    assert events(m) == [] and m.default_routers(7.0) == []


def test_router_list_is_bounded() -> None:
    m = started(max_routers=2)
    for r in (ROUTER, ROUTER2, ROUTER3):
        m.receive_router_advert(r, RA(), 5.0)
    assert m.default_routers(5.0) == [ROUTER, ROUTER2]
    assert m.drops["routers_full"] == 1
    assert [type(e) for e in events(m)] == [RouterAdded, RouterAdded]


def test_managed_and_other_flags_are_kept() -> None:
    m = started()
    m.receive_router_advert(ROUTER, RA(managed=True, other=True), 5.0)
    assert m.managed and m.other


# -- RFC 4861 6.3.4: link parameters ---------------------------------------------------------


def test_mtu_option_bounds() -> None:
    m = make(link_mtu=1500)
    assert m.mtu == 1500
    m.receive_router_advert(ROUTER, RA(mtu=1280), 1.0)
    assert [e for e in events(m) if isinstance(e, MtuChanged)] == [MtuChanged(1280)]
    assert m.mtu == 1280
    for bad in (1279, 1501, 0):
        m.receive_router_advert(ROUTER, RA(mtu=bad), 2.0)
        assert m.mtu == 1280
    assert m.drops["ra_bad_mtu"] == 3
    m.receive_router_advert(ROUTER, RA(mtu=1500), 3.0)
    assert [e for e in events(m) if isinstance(e, MtuChanged)] == [MtuChanged(1500)]
    m.receive_router_advert(ROUTER, RA(mtu=1500), 4.0)
    assert [e for e in events(m) if isinstance(e, MtuChanged)] == []


def test_mtu_option_above_a_jumbo_link() -> None:
    m = make(link_mtu=9000)
    m.receive_router_advert(ROUTER, RA(mtu=9000), 1.0)
    assert m.mtu == 9000
    m.receive_router_advert(ROUTER, RA(mtu=9001), 1.0)
    assert m.mtu == 9000


def test_cur_hop_limit() -> None:
    m = make()
    assert m.hop_limit == 64
    m.receive_router_advert(ROUTER, RA(cur_hop_limit=0), 1.0)  # unspecified: no change
    assert m.hop_limit == 64
    m.receive_router_advert(ROUTER, RA(cur_hop_limit=200), 1.0)
    assert [e for e in events(m) if isinstance(e, HopLimitChanged)] == [HopLimitChanged(200)]
    m.receive_router_advert(ROUTER, RA(cur_hop_limit=200), 2.0)
    assert [e for e in events(m) if isinstance(e, HopLimitChanged)] == []
    assert m.hop_limit == 200


@given(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 3_600_000))
def test_reachable_time_is_randomised_around_the_base(r: float, base_ms: int) -> None:
    """RFC 4861 6.3.2: uniform between MIN_RANDOM_FACTOR (0.5) and MAX_RANDOM_FACTOR (1.5)
    times BaseReachableTime."""
    m = make(r)
    assert 15.0 <= m.reachable_time <= 45.0  # the initial 30 s base
    m.receive_router_advert(ROUTER, RA(reachable_time=base_ms), 1.0)
    base = base_ms / 1000
    changed = [e for e in events(m) if isinstance(e, ReachableTimeChanged)]
    if base == 30.0:
        assert changed == []
        return
    assert changed == [ReachableTimeChanged(m.reachable_time)]
    assert 0.5 * base <= m.reachable_time <= 1.5 * base
    assert m.reachable_time == pytest.approx(base * (0.5 + r))
    assert m.base_reachable_time == base
    # The same base again: nothing is recomputed (RFC 4861 6.3.4: only when it differs).
    m.receive_router_advert(ROUTER, RA(reachable_time=base_ms), 2.0)
    assert [e for e in events(m) if isinstance(e, ReachableTimeChanged)] == []


def test_reachable_time_draws_over_many_values_stay_in_range() -> None:
    m = Addrconf(MAC, rng=random.Random(7), secret=SECRET)
    seen = []
    for i in range(200):
        m.receive_router_advert(ROUTER, RA(reachable_time=10_000 + i), float(i))
        seen.append(m.reachable_time / m.base_reachable_time)
    assert min(seen) >= 0.5 and max(seen) <= 1.5
    assert max(seen) - min(seen) > 0.5  # it is actually random


def test_retrans_timer_sets_the_dad_spacing() -> None:
    m = started()
    m.receive_router_advert(ROUTER, RA(retrans_timer=2500), 5.0)
    assert [e for e in events(m) if isinstance(e, RetransTimerChanged)] == [
        RetransTimerChanged(2.5)
    ]
    assert m.retrans_timer == 2.5
    m.receive_router_advert(ROUTER, RA(retrans_timer=0), 6.0)  # unspecified: no change
    assert m.retrans_timer == 2.5
    info = m.add_static(a("2001:db8:9::1"), 64, 10.0)
    assert info.state is TENTATIVE
    acts, evs = run_until(m, 100.0)
    assert of(SendDadSolicit, acts) == [(10.0, SendDadSolicit(a("2001:db8:9::1")))]
    changed = [e for e in evs if isinstance(e, AddressStateChanged)]
    assert changed == [AddressStateChanged(a("2001:db8:9::1"), TENTATIVE, PREFERRED)]
    assert m.poll_at() is None or m.poll_at() > 12.5  # the verdict came at 12.5


# -- RFC 4862 5.5.3, 5.5.4: SLAAC ------------------------------------------------------------


def test_slaac_address_lifecycle() -> None:
    m = started()
    ra = RA(prefixes=(Prefix(P1, valid_lifetime=3600, preferred_lifetime=1800),))
    m.receive_router_advert(ROUTER, ra, 10.0)
    evs = events(m)
    assert tagged(evs) == [
        ("RouterAdded", ROUTER, 1810.0),
        (
            "AddressAdded",
            ac.AddressInfo(slaac(P1), 64, TENTATIVE, Origin.SLAAC, 3610.0, 1810.0, 0),
        ),
    ]
    assert tagged(m.actions_to_send()) == [("JoinGroup", sn(slaac(P1)))]
    # RFC 4862 5.4.2: a random delay before DAD on an address made from an advertisement.
    acts, evs = run_until(m, 11.5)
    assert of(SendDadSolicit, acts) == [(10.5, SendDadSolicit(slaac(P1)))]
    assert tagged(evs) == [("AddressStateChanged", slaac(P1), TENTATIVE, PREFERRED)]
    assert Candidate(slaac(P1), 64, True) in m.candidates()
    # RFC 4862 5.5.4: deprecated when the preferred lifetime ends...
    _, evs = run_until(m, 1810.0)
    assert tagged(evs) == [
        ("AddressStateChanged", slaac(P1), PREFERRED, DEPRECATED),
        ("RouterRemoved", ROUTER),
    ]
    assert Candidate(slaac(P1), 64, False) in m.candidates()
    assert m.assigned(slaac(P1)) is not None  # still usable
    # ...and gone when the valid lifetime ends.
    acts, evs = run_until(m, 3610.0)
    assert tagged(evs) == [("AddressRemoved", slaac(P1))]
    assert tagged(x for _, x in acts) == [("LeaveGroup", sn(slaac(P1)))]
    assert [i.address for i in m.addresses] == [ll(0)]


def test_slaac_with_eui64_shares_the_link_local_group() -> None:
    m = make(iid="eui64")
    m.start(0.0)
    m.receive_router_advert(ROUTER, RA(prefixes=(Prefix(P1),)), 0.1)
    address = combine(P1, eui64_iid(MAC))
    assert m.is_tentative(address)
    joins = [x for x in m.actions_to_send() if isinstance(x, JoinGroup)]
    assert joins == [JoinGroup(sn(LL_EUI64))] and sn(address) == sn(LL_EUI64)
    m.remove(address, 1.0)
    assert [x for x in m.actions_to_send() if isinstance(x, LeaveGroup)] == []


def test_preferred_lifetime_zero_gives_a_deprecated_address() -> None:
    m = started()
    m.receive_router_advert(ROUTER, RA(prefixes=(Prefix(P1, preferred_lifetime=0),)), 10.0)
    _, evs = run_until(m, 20.0)
    assert [e for e in evs if isinstance(e, AddressStateChanged)] == [
        AddressStateChanged(slaac(P1), TENTATIVE, DEPRECATED)
    ]


def test_valid_lifetime_ending_during_dad_removes_the_address() -> None:
    m = started(rng=0.9)
    advertise(m, 10.0, valid_lifetime=1, preferred_lifetime=1)
    _, evs = run_until(m, 20.0)
    assert AddressRemoved(slaac(P1)) in evs
    assert not [e for e in evs if isinstance(e, AddressStateChanged)]


def test_valid_lifetime_zero_makes_no_address() -> None:
    m = started()
    advertise(m, 10.0, valid_lifetime=0, preferred_lifetime=0)
    assert [i.address for i in m.addresses] == [ll(0)]


def test_infinite_lifetimes() -> None:
    m = started()
    address = with_slaac(m, 10.0, valid_lifetime=INFINITE, preferred_lifetime=INFINITE)
    info = m.assigned(address)
    assert info is not None and info.valid_until == math.inf == info.preferred_until


def hours(h: float) -> int:
    return int(h * 3600)


@pytest.mark.parametrize(
    ("first_valid", "later_valid", "expected_remaining"),
    [
        # 5.5.3 e 1: an advertised valid lifetime over two hours is taken, even if shorter.
        (hours(24), hours(3), hours(3)),
        (hours(1), hours(3), hours(3)),
        # 5.5.3 e 1: one longer than what remains is taken.
        (hours(1), hours(1.5), hours(1.5)),
        # 5.5.3 e 2: with two hours or less left, a shorter one is ignored.
        (hours(1), 60, hours(1) - 100),
        (hours(2) + 100, 0, hours(2)),  # exactly two hours left at the second advert
        # 5.5.3 e 3: otherwise the address keeps two hours.
        (hours(24), 60, hours(2)),
        (hours(24), 0, hours(2)),
        (INFINITE, hours(1), hours(2)),
        # Infinity is over two hours.
        (hours(1), INFINITE, math.inf),
    ],
)
def test_two_hour_rule(first_valid: int, later_valid: int, expected_remaining: float) -> None:
    m = started()
    address = with_slaac(m, 0.0, valid_lifetime=first_valid, preferred_lifetime=0)
    later = RA(prefixes=(Prefix(P1, valid_lifetime=later_valid, preferred_lifetime=0),))
    m.receive_router_advert(ROUTER, later, 100.0)
    info = m.assigned(address)
    assert info is not None
    assert info.valid_until - 100.0 == expected_remaining
    assert [e for e in events(m) if isinstance(e, AddressAdded)] == []


def test_preferred_lifetime_is_reset_and_can_undeprecate() -> None:
    m = started()
    address = with_slaac(m, 0.0, valid_lifetime=hours(24), preferred_lifetime=0)
    info = m.assigned(address)
    assert info is not None and info.state is DEPRECATED
    advertise(m, 100.0, valid_lifetime=hours(24), preferred_lifetime=600)
    assert [e for e in events(m) if isinstance(e, AddressStateChanged)] == [
        AddressStateChanged(address, DEPRECATED, PREFERRED)
    ]
    info = m.assigned(address)
    assert info is not None and info.preferred_until == 700.0
    # A preferred lifetime of 0 deprecates it again at once.
    advertise(m, 200.0, valid_lifetime=hours(24), preferred_lifetime=0)
    assert [e for e in events(m) if isinstance(e, AddressStateChanged)] == [
        AddressStateChanged(address, PREFERRED, DEPRECATED)
    ]


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        (Prefix(P1, prefix_len=48), "ra_prefix_len"),  # 5.5.3 d: 48 + 64 != 128
        (Prefix(P1, prefix_len=80), "ra_prefix_len"),
        (Prefix(P1, valid_lifetime=100, preferred_lifetime=200), "ra_preferred_over_valid"),
        (Prefix(a("fe80::"), on_link=True), "ra_link_local_prefix"),  # 5.5.3 b
        (Prefix(a("ff02::"), on_link=False), "ra_multicast_prefix"),
        (Prefix(P1[:8], on_link=False), "ra_bad_prefix"),
        (Prefix(P1, prefix_len=129), "ra_bad_prefix"),
    ],
)
def test_prefix_options_that_make_no_address(prefix: Prefix, reason: str) -> None:
    m = started()
    m.receive_router_advert(ROUTER, RA(prefixes=(prefix,)), 10.0)
    assert [i.address for i in m.addresses] == [ll(0)]
    assert m.drops[reason] == 1


def test_no_address_without_the_a_flag_or_with_slaac_off() -> None:
    m = started()
    m.receive_router_advert(ROUTER, RA(prefixes=(Prefix(P1, autonomous=False),)), 10.0)
    assert len(m.addresses) == 1 and m.on_link(a("2001:db8:1::77"))
    m2 = started(slaac=False)
    m2.receive_router_advert(ROUTER, RA(prefixes=(Prefix(P1),)), 10.0)
    assert len(m2.addresses) == 1


# -- RFC 4861 6.3.4, RFC 5942: the Prefix List and on-link determination ---------------------


def test_on_link_prefix_list() -> None:
    m = started()
    assert m.on_link(a("fe80::1234"))  # link-local is always on-link
    assert m.on_link(a("ff02::1"))
    assert not m.on_link(a("2001:db8:1::77"))
    ra = RA(prefixes=(Prefix(a("2001:db8:1::1"), autonomous=False, valid_lifetime=100),))
    m.receive_router_advert(ROUTER, ra, 0.0)
    # The bits beyond the prefix length are cleared.
    assert m.on_link_prefixes == [(P1, 64)]
    assert m.on_link(a("2001:db8:1::77")) and not m.on_link(a("2001:db8:2::77"))
    # Refreshed, then timed out (RFC 4861 6.3.5).
    advertise(m, 50.0, autonomous=False, valid_lifetime=200)
    run_until(m, 249.0)
    assert m.on_link(a("2001:db8:1::77"))
    run_until(m, 250.0)
    assert not m.on_link(a("2001:db8:1::77")) and m.on_link_prefixes == []


def test_on_link_prefix_lifetime_zero_removes_it() -> None:
    m = started()
    m.receive_router_advert(ROUTER, RA(prefixes=(Prefix(P1, autonomous=False),)), 0.0)
    assert m.on_link_prefixes == [(P1, 64)]
    advertise(m, 1.0, autonomous=False, valid_lifetime=0, preferred_lifetime=0)
    assert m.on_link_prefixes == []


def test_a_slaac_address_does_not_make_its_prefix_on_link() -> None:
    """RFC 5942 4: only the L flag (or manual configuration) says a prefix is on-link."""
    m = started()
    with_slaac(m, 0.0, on_link=False)
    assert m.assigned(slaac(P1)) is not None
    assert not m.on_link(a("2001:db8:1::77"))


def test_a_static_address_makes_its_prefix_on_link_once_assigned() -> None:
    m = started()
    m.add_static(a("2001:db8:7::1"), 64, 0.0)
    assert not m.on_link(a("2001:db8:7::99"))  # tentative
    run_until(m, 10.0)
    assert m.on_link(a("2001:db8:7::99")) and not m.on_link(a("2001:db8:8::99"))


def test_prefix_list_is_bounded() -> None:
    m = started(max_prefixes=2)
    ra = RA(prefixes=tuple(Prefix(p, autonomous=False) for p in (P1, P2, P3)))
    m.receive_router_advert(ROUTER, ra, 0.0)
    assert m.on_link_prefixes == [(P1, 64), (P2, 64)]
    assert m.drops["prefixes_full"] == 1


# -- RFC 8106: DNS options -------------------------------------------------------------------


def test_rdnss_added_refreshed_expired_and_removed() -> None:
    m = started()
    m.receive_router_advert(ROUTER, RA(rdnss=(Rdnss(300, (DNS1, DNS2)),)), 0.0)
    assert [e for e in events(m) if isinstance(e, DnsServersChanged)] == [
        DnsServersChanged((DNS1, DNS2))
    ]
    assert m.dns_servers == (DNS1, DNS2)
    m.receive_router_advert(ROUTER, RA(rdnss=(Rdnss(600, (DNS1,)),)), 100.0)
    assert [e for e in events(m) if isinstance(e, DnsServersChanged)] == []
    _, evs = run_until(m, 300.0)
    assert [e for e in evs if isinstance(e, DnsServersChanged)] == [DnsServersChanged((DNS1,))]
    # RFC 8106 5.1: lifetime 0 means the server must no longer be used.
    m.receive_router_advert(ROUTER, RA(rdnss=(Rdnss(0, (DNS1,)),)), 301.0)
    assert [e for e in events(m) if isinstance(e, DnsServersChanged)] == [DnsServersChanged(())]
    assert m.dns_servers == ()


def test_rdnss_infinite_lifetime_and_bad_servers() -> None:
    m = started()
    ra = RA(rdnss=(Rdnss(INFINITE, (DNS1, a("ff02::1"), a("::"))),))
    m.receive_router_advert(ROUTER, ra, 0.0)
    assert m.dns_servers == (DNS1,)
    assert m.drops["ra_bad_rdnss"] == 2
    assert m.poll_at() == 1800.0  # the router's lifetime: the server never expires


def test_rdnss_list_full_evicts_the_entry_that_expires_first() -> None:
    """RFC 8106 6.2 (d)."""
    m = started(max_rdnss=2)
    m.receive_router_advert(ROUTER, RA(rdnss=(Rdnss(100, (DNS1,)), Rdnss(1000, (DNS2,)))), 0.0)
    events(m)
    m.receive_router_advert(ROUTER, RA(rdnss=(Rdnss(500, (DNS3,)),)), 10.0)
    assert m.dns_servers == (DNS2, DNS3)
    assert m.drops["rdnss_evicted"] == 1
    assert [e for e in events(m) if isinstance(e, DnsServersChanged)] == [
        DnsServersChanged((DNS2, DNS3))
    ]


def test_dnssl() -> None:
    m = started(max_dnssl=2)
    ra = RA(dnssl=(Dnssl(300, ("example.com", "corp.example")),))
    m.receive_router_advert(ROUTER, ra, 0.0)
    assert [e for e in events(m) if isinstance(e, SearchDomainsChanged)] == [
        SearchDomainsChanged(("example.com", "corp.example"))
    ]
    m.receive_router_advert(ROUTER, RA(dnssl=(Dnssl(0, ("example.com",)),)), 10.0)
    assert m.search_domains == ("corp.example",)
    m.receive_router_advert(ROUTER, RA(dnssl=(Dnssl(50, ("a.example", "")),)), 20.0)
    assert m.search_domains == ("corp.example", "a.example")
    events(m)
    assert m.drops["ra_bad_dnssl"] == 1
    _, evs = run_until(m, 70.0)
    assert [e for e in evs if isinstance(e, SearchDomainsChanged)] == [
        SearchDomainsChanged(("corp.example",))
    ]
    m.receive_router_advert(ROUTER, RA(dnssl=(Dnssl(10, ("b.example", "c.example")),)), 80.0)
    assert len(m.search_domains) == 2 and m.drops["dnssl_evicted"] == 1


# -- bounds ----------------------------------------------------------------------------------


def test_address_list_is_bounded() -> None:
    m = started(max_addresses=3)
    ra = RA(prefixes=tuple(Prefix(p, on_link=False) for p in (P1, P2, P3)))
    m.receive_router_advert(ROUTER, ra, 0.0)
    assert [i.address for i in m.addresses] == [ll(0), slaac(P1), slaac(P2)]
    assert m.drops["addresses_full"] == 1
    with pytest.raises(ValueError):
        m.add_static(a("2001:db8:9::1"), 64, 1.0)


# -- static addresses ------------------------------------------------------------------------


def test_static_address_with_dad() -> None:
    m = started()
    info = m.add_static(a("2001:db8:9::1"), 64, 5.0)
    assert (info.state, info.origin, info.valid_until, info.dad_counter) == (
        TENTATIVE, Origin.STATIC, math.inf, 0,
    )  # fmt: skip
    assert tagged(events(m)) == [("AddressAdded", info)]
    assert tagged(m.actions_to_send()) == [("JoinGroup", sn(a("2001:db8:9::1")))]
    acts, evs = run_until(m, 6.0)
    assert of(SendDadSolicit, acts) == [(5.0, SendDadSolicit(a("2001:db8:9::1")))]
    assert tagged(evs) == [("AddressStateChanged", a("2001:db8:9::1"), TENTATIVE, PREFERRED)]


def test_static_address_dad_conflict_stays_duplicate() -> None:
    m = started()
    m.add_static(a("2001:db8:9::1"), 64, 5.0)
    events(m)
    m.actions_to_send()
    m.receive_dad_solicit(a("2001:db8:9::1"), 5.5)
    assert tagged(events(m)) == [
        ("DuplicateAddress", a("2001:db8:9::1"), Origin.STATIC),
        ("AddressStateChanged", a("2001:db8:9::1"), TENTATIVE, DUPLICATE),
    ]
    assert tagged(m.actions_to_send()) == [("LeaveGroup", sn(a("2001:db8:9::1")))]
    assert m.addresses[-1].state is DUPLICATE
    assert not m.disabled
    # It can be removed by hand (no second LeaveGroup).
    m.remove(a("2001:db8:9::1"), 6.0)
    assert tagged(events(m)) == [("AddressRemoved", a("2001:db8:9::1"))]
    assert m.actions_to_send() == []


def test_static_address_without_dad() -> None:
    m = started()
    info = m.add_static(a("2001:db8:9::1"), 48, 5.0, dad=False)
    assert info.state is PREFERRED
    assert m.assigned(a("2001:db8:9::1")) is not None
    assert tagged(m.actions_to_send()) == [("JoinGroup", sn(a("2001:db8:9::1")))]
    acts, _ = run_until(m, 100.0)
    assert of(SendDadSolicit, acts) == []


def test_static_address_before_start_waits_the_first_message_delay() -> None:
    m = make(0.5)
    m.add_static(a("2001:db8:9::1"), 64, 0.0)
    assert m.poll_at() == 0.5


@pytest.mark.parametrize(
    ("address", "prefix_len"),
    [
        (a("ff02::1"), 64),  # multicast
        (a("::"), 64),  # unspecified
        (a("::1"), 128),  # loopback (RFC 4291 2.5.3)
        (a("2001:db8::1"), 129),
        (a("2001:db8::1"), -1),
        (b"\x20\x01\x0d\xb8", 64),
    ],
)
def test_static_address_errors(address: bytes, prefix_len: int) -> None:
    m = started()
    with pytest.raises(ValueError):
        m.add_static(address, prefix_len, 1.0)


def test_static_address_already_there() -> None:
    m = started()
    with pytest.raises(ValueError):
        m.add_static(ll(0), 64, 1.0)
    m.add_static(a("2001:db8::1"), 64, 1.0)
    with pytest.raises(ValueError):
        m.add_static(a("2001:db8::1"), 64, 1.0)


def test_remove_leaves_the_group_when_no_address_needs_it() -> None:
    m = started()
    # 2001:db8::1 and 2001:db8:1::1 share the solicited-node group ff02::1:ff00:1.
    x, y = a("2001:db8::1"), a("2001:db8:1::1")
    assert sn(x) == sn(y)
    m.add_static(x, 64, 1.0)
    m.add_static(y, 64, 1.0)
    assert tagged(m.actions_to_send()) == [("JoinGroup", sn(x))]
    m.remove(x, 2.0)
    assert tagged(events(m))[-1] == ("AddressRemoved", x)
    assert m.actions_to_send() == []
    m.remove(y, 3.0)
    assert tagged(m.actions_to_send()) == [("LeaveGroup", sn(y))]
    with pytest.raises(ValueError):
        m.remove(y, 4.0)


def test_remove_the_link_local_address() -> None:
    m = started()
    m.remove(ll(0), 5.0)
    assert m.addresses == [] and m.link_local_address() is None
    assert tagged(m.actions_to_send()) == [("LeaveGroup", sn(ll(0)))]


def test_returned_infos_are_copies() -> None:
    m = started()
    m.addresses[0].state = DUPLICATE
    info = m.assigned(ll(0))
    assert info is not None
    info.valid_until = 0.0
    assert m.addresses[0].state is PREFERRED and m.addresses[0].valid_until == math.inf


def test_the_transition_table() -> None:
    assert TRANSITIONS[DUPLICATE] == frozenset()
    assert PREFERRED in TRANSITIONS[TENTATIVE] and DEPRECATED in TRANSITIONS[PREFERRED]
    assert TENTATIVE not in set().union(*TRANSITIONS.values())


# -- random inputs ---------------------------------------------------------------------------

PREFIX_POOL = [P1, P2, P3, a("2001:db8:4::"), a("fe80::"), a("2001:db8:5::1")]
LIFETIMES = [0, 1, 5, 60, 3600, 7200, 7201, 86400, INFINITE]

prefixes = st.builds(
    Prefix,
    prefix=st.sampled_from(PREFIX_POOL),
    prefix_len=st.sampled_from([64, 64, 64, 48, 128]),
    on_link=st.booleans(),
    autonomous=st.booleans(),
    valid_lifetime=st.sampled_from(LIFETIMES),
    preferred_lifetime=st.sampled_from(LIFETIMES),
)
adverts = st.builds(
    RA,
    cur_hop_limit=st.sampled_from([0, 1, 64, 255]),
    managed=st.booleans(),
    other=st.booleans(),
    router_lifetime=st.sampled_from([0, 1, 30, 1800, 9000]),
    reachable_time=st.sampled_from([0, 1, 30000, 3600000]),
    retrans_timer=st.sampled_from([0, 1, 1000, 5000]),
    mtu=st.sampled_from([None, 0, 1279, 1280, 1500, 1501, 9000]),
    prefixes=st.lists(prefixes, max_size=4).map(tuple),
    rdnss=st.lists(
        st.builds(
            Rdnss,
            lifetime=st.sampled_from(LIFETIMES),
            servers=st.lists(
                st.sampled_from([DNS1, DNS2, DNS3, a("2001:db8::4"), a("ff02::1")]), max_size=3
            ).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
    dnssl=st.lists(
        st.builds(
            Dnssl,
            lifetime=st.sampled_from(LIFETIMES),
            domains=st.lists(
                st.sampled_from(["a.example", "b.example", "c.example", ""]), max_size=3
            ).map(tuple),
        ),
        max_size=2,
    ).map(tuple),
)


class AddrconfStateMachine(RuleBasedStateMachine):
    """Random advertisements, DAD messages, static addresses and time: nothing raises, every
    bound holds, group membership matches the addresses, and the timer always moves on."""

    m: Addrconf
    now: float
    groups: set[bytes]

    @initialize(
        iid=st.sampled_from(["stable", "eui64"]),
        dad=st.integers(0, 2),
        seed=st.integers(0, 2**32 - 1),
    )
    def setup(self, iid: str, dad: int, seed: int) -> None:
        config = AddrconfConfig(
            iid=iid, dad_transmits=dad, max_addresses=5, max_routers=2, max_prefixes=3,
            max_rdnss=2, max_dnssl=2, idgen_retries=2,
        )  # fmt: skip
        self.m = Addrconf(MAC, config=config, rng=random.Random(seed), secret=SECRET)
        self.now = 0.0
        self.groups = set()
        self.m.start(0.0)
        self.flush()

    def flush(self) -> None:
        for action in self.m.actions_to_send():
            if isinstance(action, JoinGroup):
                assert action.group not in self.groups
                self.groups.add(action.group)
            elif isinstance(action, LeaveGroup):
                assert action.group in self.groups
                self.groups.remove(action.group)
            elif isinstance(action, SendDadSolicit):
                assert self.m.is_tentative(action.target)
                assert solicited_node(action.target) in self.groups
        while (e := self.m.next_event()) is not None:
            if isinstance(e, AddressStateChanged):
                assert e.new in TRANSITIONS[e.old]

    def _target(self, data: st.DataObject) -> bytes:
        known = [i.address for i in self.m.addresses]
        return data.draw(st.sampled_from(known + [a("fe80::99"), slaac(P1)]))

    @rule(dt=st.floats(0.0, 20000.0, allow_nan=False))
    def advance(self, dt: float) -> None:
        self.now += dt
        for _ in range(10_000):
            at = self.m.poll_at()
            if at is None or at > self.now:
                break
            self.m.handle_timeout(at)
            after = self.m.poll_at()
            assert after is None or after > at
            self.flush()
        self.m.handle_timeout(self.now)
        self.flush()
        at = self.m.poll_at()
        assert at is None or at > self.now

    @rule(ra=adverts, router=st.sampled_from([ROUTER, ROUTER2, ROUTER3]))
    def advert(self, ra: RA, router: bytes) -> None:
        self.m.receive_router_advert(router, ra, self.now)
        self.flush()

    @rule(data=st.data())
    def dad_solicit(self, data: st.DataObject) -> None:
        target = self._target(data)
        assigned = self.m.assigned(target) is not None
        assert self.m.receive_dad_solicit(target, self.now) is assigned
        self.flush()

    @rule(data=st.data())
    def advert_for(self, data: st.DataObject) -> None:
        target = self._target(data)
        assigned = self.m.assigned(target) is not None
        assert self.m.receive_advert(target, self.now) is assigned
        self.flush()

    @rule(n=st.integers(1, 3), dad=st.booleans())
    def add_static(self, n: int, dad: bool) -> None:
        try:
            self.m.add_static(a(f"2001:db8:9::{n}"), 64, self.now, dad=dad)
        except ValueError:
            pass
        self.flush()

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        target = self._target(data)
        try:
            self.m.remove(target, self.now)
        except ValueError:
            assert target not in {i.address for i in self.m.addresses}
        self.flush()

    @invariant()
    def bounds(self) -> None:
        m, c = self.m, self.m.config
        addresses = [i.address for i in m.addresses]
        assert len(addresses) == len(set(addresses)) <= c.max_addresses
        assert len(m.default_routers(-math.inf)) <= c.max_routers
        assert len(m.on_link_prefixes) <= c.max_prefixes
        assert len(m.dns_servers) <= c.max_rdnss
        assert len(m.search_domains) <= c.max_dnssl
        assert 1280 <= m.mtu <= 1500

    @invariant()
    def groups_match_addresses(self) -> None:
        needed = {solicited_node(i.address) for i in self.m.addresses if i.state is not DUPLICATE}
        assert self.groups == needed

    @invariant()
    def candidates_are_assigned(self) -> None:
        for c in self.m.candidates():
            info = self.m.assigned(c.address)
            assert info is not None and c.preferred == (info.state is PREFERRED)
        for i in self.m.addresses:
            assert i.preferred_until <= i.valid_until or i.origin is not Origin.SLAAC
            if i.origin is Origin.SLAAC:
                assert i.address[:8] in {p[:8] for p in PREFIX_POOL}

    @invariant()
    def timer_is_not_in_the_past(self) -> None:
        at = self.m.poll_at()
        assert at is None or at >= self.now


AddrconfStateMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_addrconf_state_machine = AddrconfStateMachine.TestCase
