"""DHCP on a :class:`~netstack.Stack`: :func:`serve` runs a server, :func:`configure` a client.

The public face of the DHCP driver (:mod:`netstack.drivers.dhcp`, which holds the code and
its description) over the sans-IO machines of :mod:`netstack.proto.dhcp`.
"""

from __future__ import annotations

from .drivers.dhcp import (
    AddressDeclined,
    DhcpClientConfig,
    DhcpClientDriver,
    DhcpServerHandle,
    DhcpState,
    Lease,
    LeaseAcquired,
    LeaseExpired,
    LeaseLost,
    LeaseRenewed,
    ServerLease,
    configure,
    serve,
)

__all__ = [
    "AddressDeclined",
    "DhcpClientConfig",
    "DhcpClientDriver",
    "DhcpServerHandle",
    "DhcpState",
    "Lease",
    "LeaseAcquired",
    "LeaseExpired",
    "LeaseLost",
    "LeaseRenewed",
    "ServerLease",
    "configure",
    "serve",
]
