"""Happy Eyeballs (RFC 8305): the order in which a peer's addresses are tried, the racing of
the attempts, and the one error of a connection that no address took -- shared by
:class:`netstack.Stack` (handshakes on netstack's TCP) and :class:`netstack.HostStack`
(kernel sockets), which take asyncio's ``happy_eyeballs_delay``, ``interleave`` and
``all_errors`` with asyncio's meaning:

- ``interleave`` is RFC 8305's "First Address Family Count" (section 4): how many addresses
  of the first family are tried before one of the other; asyncio's default is no
  interleaving, or 1 with ``happy_eyeballs_delay``;
- ``happy_eyeballs_delay`` is the "Connection Attempt Delay" (section 5): the next attempt
  starts when this many seconds have passed or the one before it failed, whichever comes
  first, and the first to connect wins; without it, each attempt waits for the one before
  it to fail (asyncio's default);
- ``all_errors``: when every attempt failed, an :class:`ExceptionGroup` of their errors
  instead of asyncio's one error.

Addresses come sorted by the resolver (RFC 6724 destination address selection, which
section 4 asks for first). This module imports nothing of netstack.
"""

from __future__ import annotations

import asyncio
import asyncio.staggered
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

__all__ = [
    "MIN_ATTEMPT_DELAY",
    "attempt_delay",
    "connect_error",
    "first_family_count",
    "interleave",
    "race",
]

_T = TypeVar("_T")

#: RFC 8305 (5): "a subsequent connection MUST NOT be started within 10 milliseconds of the
#: previous attempt" -- a shorter ``happy_eyeballs_delay`` waits this long.
MIN_ATTEMPT_DELAY = 0.010


def attempt_delay(happy_eyeballs_delay: Any) -> float | None:
    """The Connection Attempt Delay for ``happy_eyeballs_delay`` (None: one attempt after
    the other).

    Raises:
        TypeError: not a number.
        ValueError: negative or not finite.
    """
    if happy_eyeballs_delay is None:
        return None
    if isinstance(happy_eyeballs_delay, bool) or not isinstance(happy_eyeballs_delay, (int, float)):
        raise TypeError(
            f"happy_eyeballs_delay must be a number of seconds, got {happy_eyeballs_delay!r}"
        )
    if not math.isfinite(happy_eyeballs_delay) or happy_eyeballs_delay < 0:
        raise ValueError(f"happy_eyeballs_delay must be >= 0, got {happy_eyeballs_delay!r}")
    return max(float(happy_eyeballs_delay), MIN_ATTEMPT_DELAY)


def first_family_count(interleave: Any, delay: float | None) -> int | None:
    """RFC 8305's First Address Family Count for asyncio's ``interleave`` (None: the order
    the resolver gave); with happy eyeballs and no ``interleave``, 1 (as asyncio does).

    Raises:
        TypeError: not an integer.
        ValueError: negative.
    """
    if interleave is None:
        return 1 if delay is not None else None
    if isinstance(interleave, bool) or not isinstance(interleave, int):
        raise TypeError(f"interleave must be an int, got {interleave!r}")
    if interleave < 0:
        raise ValueError(f"interleave must be >= 0, got {interleave!r}")
    return interleave or None  # 0 is asyncio's "no interleaving"


def interleave(items: Iterable[_T], first_count: int, family: Callable[[_T], int]) -> list[_T]:
    """RFC 8305 (4): ``items`` (sorted by preference) reordered so that the families take
    turns -- ``first_count`` of the first family, then one of each family in turn, the order
    within a family kept.

    Raises:
        ValueError: ``first_count`` is less than 1.
    """
    if first_count < 1:
        raise ValueError(f"the First Address Family Count must be >= 1, got {first_count}")
    lanes: dict[int, deque[_T]] = {}
    for item in items:
        lanes.setdefault(family(item), deque()).append(item)
    if not lanes:
        return []
    queues = list(lanes.values())
    first = queues[0]
    out = [first.popleft() for _ in range(min(first_count - 1, len(first)))]
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.popleft())
    return out


def connect_error(errors: Sequence[BaseException], all_errors: bool) -> BaseException:
    """The error of a connection for which every attempt failed, as asyncio raises it: an
    :class:`ExceptionGroup` of them all with ``all_errors``, else the one error (also when
    all say the same), else an :class:`OSError` listing them. An error that is no
    :class:`OSError` (a bad argument, a bug) is raised as it is."""
    for error in errors:
        if not isinstance(error, OSError):
            return error
    if not errors:
        return OSError("no address to connect to")
    if all_errors:
        return ExceptionGroup("create_connection failed", list(errors))  # type: ignore[type-var]
    texts = {str(error) for error in errors}
    if len(texts) == 1:
        return errors[0]
    return OSError(f"Multiple exceptions: {', '.join(str(error) for error in errors)}")


async def race(
    attempts: Sequence[Callable[[], Awaitable[_T]]],
    delay: float | None,
    *,
    all_errors: bool,
    discard: Callable[[_T], None],
) -> _T:
    """Run ``attempts`` as RFC 8305 (5) says, with :func:`asyncio.staggered.staggered_race`:
    the first at once, each next one ``delay`` seconds after the one before or as soon as it
    failed (only after it failed with ``delay`` None); the first to succeed wins and the
    others are cancelled. An attempt must undo what it did when cancelled; a result that
    arrives too late to win is handed to ``discard``.

    Raises:
        OSError, ExceptionGroup: every attempt failed (:func:`connect_error`).
    """
    if len(attempts) == 1:
        # One address, nothing to race: connect without staggered_race's tasks (asyncio's
        # create_connection does the same), which a connection rate would pay for.
        try:
            return await attempts[0]()
        except Exception as exc:  # as staggered_race collects them
            raise connect_error([exc], all_errors) from None
    succeeded: list[_T] = []

    def keeping(attempt: Callable[[], Awaitable[_T]]) -> Callable[[], Awaitable[_T]]:
        async def run() -> _T:
            result = await attempt()
            succeeded.append(result)
            return result

        return run

    winner, index, errors = await asyncio.staggered.staggered_race(
        [keeping(attempt) for attempt in attempts], delay
    )
    for result in succeeded:
        if index is None or result is not winner:
            discard(result)
    if index is None:
        raise connect_error([e for e in errors if e is not None], all_errors)
    won: _T = winner
    return won
