"""The old name of the multicast listener machine, now :mod:`netstack.proto.mld.listener`."""

from __future__ import annotations

from ..mld.listener import (
    MldConfig,
    MldMessage,
    MulticastListener,
    SendDone,
    SendReport,
    SendV2Report,
)

__all__ = [
    "MldConfig",
    "MldMessage",
    "MulticastListener",
    "SendDone",
    "SendReport",
    "SendV2Report",
]
