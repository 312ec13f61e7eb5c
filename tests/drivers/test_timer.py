"""The machine timer every driver uses (netstack.drivers.timer), on a scripted loop: a
deadline reached early by the loop's clock still reaches the machine as its deadline, and the
timer fires in a context of its own, not in that of the code that armed it."""

from __future__ import annotations

import asyncio
import contextvars
import math
from typing import Any, cast

from netstack.drivers.timer import MachineTimer


class Handle:
    def __init__(
        self, loop: ScriptedLoop, when: float, callback: Any, context: contextvars.Context
    ) -> None:
        self.loop, self.when, self.callback, self.context = loop, when, callback, context
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ScriptedLoop:
    """``time()`` and ``call_at()`` only (as asyncio's: the callback runs in ``context``, by
    default a copy of the caller's); the test says when a handle fires."""

    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(
        self, when: float, callback: Any, *, context: contextvars.Context | None = None
    ) -> Handle:
        handle = Handle(
            self, when, callback, context if context is not None else contextvars.copy_context()
        )
        self.handles.append(handle)
        return handle

    def pending(self) -> list[float]:
        return [h.when for h in self.handles if not h.cancelled]

    def fire(self, at: float) -> None:
        """Run the pending handle, with the clock at ``at`` (perhaps before its time)."""
        [handle] = [h for h in self.handles if not h.cancelled]
        self.handles.remove(handle)
        self.now = at
        handle.context.run(handle.callback)


def make() -> tuple[ScriptedLoop, MachineTimer, list[float]]:
    loop = ScriptedLoop()
    fired: list[float] = []
    timer = MachineTimer(cast(asyncio.AbstractEventLoop, loop), fired.append)
    return loop, timer, fired


def test_an_early_firing_hands_the_deadline_itself() -> None:
    # uvloop's timers tick in whole milliseconds: a timer for 1.0004 may run at 1.000.
    loop, timer, fired = make()
    timer.rearm(1.0004)
    loop.fire(1.000)
    assert fired == [1.0004]
    assert timer.at == math.inf


def test_a_late_firing_hands_the_clock() -> None:
    loop, timer, fired = make()
    timer.rearm(2.0)
    loop.fire(2.5)
    assert fired == [2.5]


def test_rearm_is_exact() -> None:
    loop, timer, _ = make()
    timer.rearm(5.0)
    timer.rearm(5.0)  # the same deadline: the same handle
    assert loop.pending() == [5.0] and len(loop.handles) == 1
    timer.rearm(7.0)  # later: moved
    assert loop.pending() == [7.0]
    timer.rearm(None)
    assert loop.pending() == [] and timer.at == math.inf


def test_rearm_earlier_only_moves_the_deadline_sooner() -> None:
    loop, timer, fired = make()
    timer.rearm_earlier(None)
    assert loop.pending() == []
    timer.rearm_earlier(5.0)
    timer.rearm_earlier(9.0)  # later: the timer fires at 5 and the driver polls again
    assert loop.pending() == [5.0]
    timer.rearm_earlier(3.0)
    assert loop.pending() == [3.0] and timer.at == 3.0
    loop.fire(2.9995)
    assert fired == [3.0]
    timer.rearm_earlier(9.0)  # nothing armed any more: armed now
    assert loop.pending() == [9.0]


def test_cancel() -> None:
    loop, timer, fired = make()
    timer.rearm(1.0)
    timer.cancel()
    assert loop.pending() == [] and timer.at == math.inf and fired == []


def test_fires_in_a_context_of_its_own() -> None:
    """What the code that armed the timer had in its context variables (netstack.use's
    choice of stack, say) is not what the machines run in, nor kept by the timer."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="none")
    loop = ScriptedLoop()
    seen: list[str] = []
    timer = MachineTimer(cast(asyncio.AbstractEventLoop, loop), lambda now: seen.append(var.get()))

    def arm() -> None:
        var.set("the caller's")
        timer.rearm(1.0)

    contextvars.copy_context().run(arm)
    loop.fire(1.0)
    assert seen == ["none"]
