"""What a driver needs of the stack it runs on: the narrow core.

The drivers in :mod:`netstack.drivers` (TCP transports and servers, UDP endpoints, ping,
DHCP) are typed against :class:`Core`, extended in each driver's module by the layers that
driver uses (``TcpCore`` adds the TCP layer, ``UdpCore`` UDP and IP, ...), never against
:class:`netstack.Stack`. The stack satisfies them (mypy checks it where the composition root
hands itself to a driver), and so would anything else that composes the same layers: a
driver depends on what it uses, not on who composed it, and no driver imports the stack, so
the import graph has no cycle (``tests/test_import_graph.py``). :mod:`netstack.dns` does the
same with its ``ResolverStack`` and ``ServerStack``, which :class:`netstack.HostStack` also
satisfies.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["Core", "Rng"]


class Rng(Protocol):
    """The source of randomness the stack was given (ISNs, ports, identifiers, jitter): a
    seeded :class:`random.Random` makes a run repeatable."""

    def getrandbits(self, k: int, /) -> int: ...
    def randrange(self, start: int, stop: int, /) -> int: ...
    def random(self) -> float: ...
    def uniform(self, a: float, b: float, /) -> float: ...


class Core(Protocol):
    """What every driver needs: the event loop, whether the stack is closed, and a way to
    say that a machine may have a new deadline."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def closed(self) -> bool: ...

    def touch(self) -> None:
        """An input reached a machine outside the receive path (a user's call): poll the
        machines' deadlines, and flush held acknowledgements, at the end of this turn of
        the event loop."""
