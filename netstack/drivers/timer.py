"""One ``loop.call_at`` timer driven by sans-IO machines' ``poll_at()`` deadlines.

Every driver arms its timer this way (STYLE.md, drivers; aioquic's asyncio protocol does the
same): after each input it asks the machines for their earliest deadline and re-arms, and
when the timer fires the machines get ``now`` clamped to the deadline it was armed for. An
event loop may fire a timer a little early (uvloop's clock and timers tick in whole
milliseconds), and a machine handed a ``now`` just short of its deadline would do nothing and
ask for the same deadline again.

The timer fires in a :mod:`contextvars` context of its own, never in that of whichever
application code happened to make the machines ask for a deadline (``netstack.use``'s choice
of stack would otherwise live on in the timer for as long as it is re-armed).
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import Callable

__all__ = ["MachineTimer"]


class MachineTimer:
    """A timer for the deadlines of one or more machines.

    Args:
        loop: the event loop.
        fire: called with ``now`` (at least the deadline) when the timer expires.
    """

    __slots__ = ("_loop", "_fire", "_handle", "_context", "at")

    def __init__(self, loop: asyncio.AbstractEventLoop, fire: Callable[[float], None]) -> None:
        self._loop = loop
        self._fire = fire
        self._handle: asyncio.TimerHandle | None = None
        self._context = contextvars.Context()
        #: The deadline armed for; ``math.inf`` when not armed.
        self.at = math.inf

    def rearm(self, at: float | None) -> None:
        """Expire at ``at`` exactly (None: not at all)."""
        if at is not None and at == self.at and self._handle is not None:
            return
        self.cancel()
        if at is None or at == math.inf:
            return
        self._arm(at)

    def rearm_earlier(self, at: float | None) -> None:
        """Expire at ``at`` if that is sooner than the deadline armed for. A later deadline
        leaves the timer as it is: it fires early, the machines do nothing yet, and the
        driver re-arms for what they ask then. Machines whose deadlines move later with
        every input (TCP's retransmission timer on each acknowledgement) so cost no
        cancelled timer handle per input."""
        if at is not None and at < self.at:
            if self._handle is not None:
                self._handle.cancel()
            self._arm(at)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.at = math.inf

    def _arm(self, at: float) -> None:
        self.at = at
        self._handle = self._loop.call_at(at, self._expired, context=self._context)

    def _expired(self) -> None:
        self._handle = None
        now = self._loop.time()
        if now < self.at:
            now = self.at
        self.at = math.inf
        self._fire(now)
