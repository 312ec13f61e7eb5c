"""The router advertiser machine (RFC 4861 6.2.4, 6.2.6, 6.2.5; RFC 8106 5.1), driven without
an event loop: what it sends, when, and what the advertisement holds."""

from __future__ import annotations

import random

import pytest

from netstack.proto.icmpv6.wire import parse
from netstack.proto.ipv6.radv import (
    MAX_INITIAL_RTR_ADVERT_INTERVAL,
    MIN_DELAY_BETWEEN_RAS,
    AdvertConfig,
    RouterAdvertiser,
)
from netstack.proto.ndp.wire import parse_router_advert

LL = bytes.fromhex("fe80000000000000" + "0000000000000001")
PREFIX = bytes.fromhex("fd000001000000000000000000000000")
DNS = bytes.fromhex("fd000001000000000000000000000053")
MAC = b"\x02\x00\x00\x00\x00\x01"


class Iface:
    index = 3
    mtu = 1500

    def __init__(self) -> None:
        self.ll = LL

    def link_local(self) -> bytes:
        return self.ll


def make() -> tuple[RouterAdvertiser, list[tuple[int, bytes, bytes, bytes, float]], Iface]:
    sent: list[tuple[int, bytes, bytes, bytes, float]] = []
    radv = RouterAdvertiser(lambda *a: sent.append(a), random.Random(1))
    return radv, sent, Iface()


def test_initial_adverts_then_the_interval() -> None:
    radv, sent, iface = make()
    config = AdvertConfig(prefixes=[(PREFIX, 64)], dns=[DNS], mtu=1400, max_interval=100)
    radv.start(iface, MAC, config, 0.0)
    assert radv.poll_at() == 0.0
    radv.handle_timeout(0.0)
    assert len(sent) == 1
    index, msg, src, dst, _ = sent[0]
    assert index == 3 and src == LL and dst[:2] == b"\xff\x02"
    header, body = parse(msg)
    ra = parse_router_advert(header, body)
    assert ra.router_lifetime == 1800 and ra.mtu == 1400 and ra.source_mac == MAC
    assert ra.prefixes[0].prefix == PREFIX and ra.prefixes[0].autonomous
    assert ra.rdnss[0].servers == (DNS,) and 100 <= ra.rdnss[0].lifetime <= 200
    # RFC 4861 6.2.4: the first ones at most 16 s apart.
    for _ in range(2):
        at = radv.poll_at()
        assert at is not None and at - sent[-1][4] <= MAX_INITIAL_RTR_ADVERT_INTERVAL
        radv.handle_timeout(at)
    at = radv.poll_at()
    assert at is not None and config.low <= at - sent[-1][4] <= 100


def test_solicit_answered_soon_but_not_within_three_seconds_of_the_last() -> None:
    radv, sent, iface = make()
    radv.start(iface, MAC, AdvertConfig(prefixes=[(PREFIX, 64)]), 0.0)
    radv.handle_timeout(0.0)
    radv.receive_solicit(3, LL, 1.0)
    at = radv.poll_at()
    assert at is not None and at >= MIN_DELAY_BETWEEN_RAS  # RFC 4861 6.2.6
    radv.handle_timeout(at)
    assert len(sent) == 2
    while (at := radv.poll_at()) is not None and at < 100.0:
        radv.handle_timeout(at)
    radv.receive_solicit(3, LL, 100.0)
    at = radv.poll_at()
    assert at is not None and 100.0 <= at <= 100.5  # MAX_RA_DELAY_TIME
    assert radv.solicits_received == 2
    radv.receive_solicit(9, LL, 100.0)  # an interface not advertising: ignored
    assert radv.solicits_received == 2


def test_waits_for_a_link_local_address_and_withdraws_on_stop() -> None:
    radv, sent, iface = make()
    iface.ll = bytes(16)
    radv.start(iface, MAC, AdvertConfig(), 0.0)
    radv.handle_timeout(0.0)
    assert sent == []
    iface.ll = LL
    at = radv.poll_at()
    assert at is not None
    radv.handle_timeout(at)
    assert len(sent) == 1
    radv.stop(3, 5.0)
    header, body = parse(sent[-1][1])
    assert parse_router_advert(header, body).router_lifetime == 0  # RFC 4861 6.2.5
    assert radv.poll_at() is None


@pytest.mark.parametrize(
    "config",
    [
        AdvertConfig(max_interval=2),
        AdvertConfig(mtu=1000),
        AdvertConfig(router_lifetime=10),
        AdvertConfig(preferred_lifetime=10, valid_lifetime=5),
        AdvertConfig(prefixes=[(b"\x00", 64)]),
    ],
)
def test_bad_config_refused(config: AdvertConfig) -> None:
    radv, _, iface = make()
    with pytest.raises(ValueError):
        radv.start(iface, MAC, config, 0.0)
