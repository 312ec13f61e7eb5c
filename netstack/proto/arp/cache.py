"""The old home and names of the neighbour cache, which ARP and IPv6 neighbour discovery
share: it is :mod:`netstack.proto.neighbour.cache` now, and these names still import."""

from __future__ import annotations

from ..neighbour.cache import (
    AddressConflict,
    NeighbourCache,
    NeighbourConfig,
    NeighbourFailed,
    NeighbourResolved,
    NeighbourState,
    Request,
)

ArpCache = NeighbourCache
ArpConfig = NeighbourConfig
ArpState = NeighbourState

__all__ = [
    "AddressConflict",
    "ArpCache",
    "ArpConfig",
    "ArpState",
    "NeighbourCache",
    "NeighbourConfig",
    "NeighbourFailed",
    "NeighbourResolved",
    "NeighbourState",
    "Request",
]
