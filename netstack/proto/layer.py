"""What every protocol layer shares: counters, and drops counted with a reason.

A layer is the sans-IO core of one protocol as the stack composes it (the way MirageOS hands
each layer the layers below it): plain method calls with the current time passed in, sending
through the layer below, no event loop. Bad input never raises out of a layer's ``receive``:
it becomes a drop counted under a short reason, visible in ``Stack.stats()`` and logged at
DEBUG.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["Layer"]


class Layer:
    """Counters for one layer. Subclasses add plain ``int`` attributes named in ``_COUNTERS``
    (plain attributes keep the per-packet path cheap)."""

    name = "layer"
    _COUNTERS: tuple[str, ...] = ("rx_packets", "tx_packets")

    def __init__(self) -> None:
        self.drops: dict[str, int] = {}
        self._log = logging.getLogger(f"netstack.{self.name}")
        for counter in self._COUNTERS:
            setattr(self, counter, 0)

    def _drop(self, reason: str, detail: object = "") -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("drop (%s) %s", reason, detail)

    #: Count a drop for this layer: what a driver that judges input on the layer's behalf
    #: (ping matching echo replies) calls.
    drop = _drop

    def stats(self) -> dict[str, Any]:
        """The counters, and drops by reason."""
        out: dict[str, Any] = {c: getattr(self, c) for c in self._COUNTERS}
        out["drops"] = dict(self.drops)
        return out

    def reset_stats(self) -> None:
        self.drops.clear()
        for counter in self._COUNTERS:
            setattr(self, counter, 0)
