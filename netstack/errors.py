"""The one exception tree of netstack.

Wire input never raises past a layer boundary: a :class:`ParseError` is caught there, counted in
``stats()`` and logged at DEBUG. Everything else here is raised at an API call, and the classes
that correspond to an operating-system error also subclass the builtin one, so that code written
for asyncio's sockets (``except ConnectionRefusedError:``) works unchanged on netstack.
"""

from __future__ import annotations

import errno

__all__ = [
    "AddressInUseError",
    "ClosedError",
    "LinkError",
    "MessageTooLargeError",
    "NetstackError",
    "NoRouteError",
    "ParseError",
]


class NetstackError(Exception):
    """Base class of every exception netstack raises on purpose."""


class ParseError(NetstackError, ValueError):
    """Bytes from the wire that do not form a valid header or message.

    Attributes:
        reason: a short, stable, snake_case reason, used as the drop counter's name.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class LinkError(NetstackError, OSError):
    """A link transport failed: the device is gone, the link is closed, or opening it failed."""


class NoRouteError(NetstackError, OSError):
    """No route to the destination (like ``EHOSTUNREACH``/``ENETUNREACH``)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENETUNREACH, message)


class AddressInUseError(NetstackError, OSError):
    """The local address and port are already bound (like ``EADDRINUSE``)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EADDRINUSE, message)


class MessageTooLargeError(NetstackError, OSError):
    """A datagram larger than the protocol allows (like ``EMSGSIZE``)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EMSGSIZE, message)


class ClosedError(NetstackError, OSError):
    """The stack, endpoint or link has been closed and cannot be used any more."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EBADF, message)
