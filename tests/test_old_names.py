"""Modules and classes that moved or were renamed keep their old names, so code written
against them runs unchanged: each old name is the very object now found under the new one."""

from __future__ import annotations

import importlib

import pytest

import netstack.dhcp
import netstack.tls
from netstack.drivers import dhcp as dhcp_driver
from netstack.drivers import tcp as tcp_driver
from netstack.drivers import udp as udp_driver
from netstack.proto.mld import listener as mld_listener
from netstack.proto.mld import wire as mld_wire
from netstack.proto.ndp import wire as ndp_wire
from netstack.proto.neighbour import cache as neighbour_cache
from netstack.tls import connection as tls_connection
from netstack.tls import driver as tls_driver

MOVED = [
    # (old module, old name, new object)
    ("netstack.streams", "TcpTransport", tcp_driver.TcpTransport),
    ("netstack.streams", "Server", tcp_driver.Server),
    ("netstack.streams", "ListeningSocket", tcp_driver.ListeningSocket),
    ("netstack.datagram", "DatagramTransport", udp_driver.DatagramTransport),
    ("netstack.proto.arp.cache", "ArpCache", neighbour_cache.NeighbourCache),
    ("netstack.proto.arp.cache", "ArpConfig", neighbour_cache.NeighbourConfig),
    ("netstack.proto.arp.cache", "ArpState", neighbour_cache.NeighbourState),
    ("netstack.proto.arp.cache", "NeighbourResolved", neighbour_cache.NeighbourResolved),
    ("netstack.proto.icmpv6.ndp", "parse_router_advert", ndp_wire.parse_router_advert),
    ("netstack.proto.icmpv6.ndp", "validate_ip", ndp_wire.validate_ip),
    ("netstack.proto.icmpv6.mld", "build_report", mld_wire.build_report),
    ("netstack.proto.icmpv6.mld", "MLDV2_ROUTERS", mld_wire.MLDV2_ROUTERS),
    ("netstack.proto.icmpv6.listener", "MulticastListener", mld_listener.MulticastListener),
    ("netstack.tls", "TlsConnection", tls_connection.TLSConnection),
    ("netstack.tls", "TlsSession", tls_connection.TLSSession),
    ("netstack.tls", "TlsState", tls_connection.TLSState),
    ("netstack.tls", "TlsEvent", tls_connection.TLSEvent),
    ("netstack.tls.connection", "TlsConnection", tls_connection.TLSConnection),
    ("netstack.tls.driver", "TlsProtocol", tls_driver.TLSProtocol),
    ("netstack.tls.driver", "TlsTransport", tls_driver.TLSTransport),
]


@pytest.mark.parametrize(("module", "name", "new"), MOVED, ids=lambda x: str(x)[:40])
def test_old_name_is_the_new_object(module: str, name: str, new: object) -> None:
    assert getattr(importlib.import_module(module), name) is new


def test_old_module_lists_its_names() -> None:
    for module in ("netstack.proto.icmpv6.ndp", "netstack.proto.icmpv6.mld"):
        old = importlib.import_module(module)
        new = ndp_wire if module.endswith("ndp") else mld_wire
        assert sorted(old.__all__) == sorted(new.__all__)


def test_netstack_tls_casing_is_one() -> None:
    public = [n for n in netstack.tls.__all__ if n.lower().startswith("tls")]
    assert {n for n in public if n.startswith("Tls")} == {
        "TlsConnection", "TlsEvent", "TlsSession", "TlsState"
    }  # fmt: skip
    for old in ("TlsConnection", "TlsEvent", "TlsSession", "TlsState"):
        assert getattr(netstack.tls, old) is getattr(netstack.tls, "TLS" + old[3:])


def test_netstack_dhcp_is_the_public_face_of_its_driver() -> None:
    assert netstack.dhcp.serve is dhcp_driver.serve
    assert netstack.dhcp.configure is dhcp_driver.configure
    assert netstack.dhcp.DhcpClientDriver is dhcp_driver.DhcpClientDriver


def test_a_name_that_never_was_is_an_attribute_error() -> None:
    import netstack.streams

    with pytest.raises(AttributeError):
        netstack.streams.NoSuchThing  # noqa: B018
