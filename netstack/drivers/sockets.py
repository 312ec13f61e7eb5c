"""Socket-like stand-ins: what a netstack transport answers to ``get_extra_info("socket")``.

asyncio's transports give an :class:`asyncio.trsock.TransportSocket` there, and libraries use
it for a few things: the address family, ``getsockname()`` / ``getpeername()``, and options
(aiohttp sets ``TCP_NODELAY`` and ``SO_KEEPALIVE`` on every connection this way). A netstack
connection has no operating-system socket, so :class:`TransportSocket` answers those from the
transport and carries the options it knows to the connection:

- TCP: ``TCP_NODELAY``; ``SO_KEEPALIVE`` with ``TCP_KEEPIDLE``, ``TCP_KEEPINTVL`` and
  ``TCP_KEEPCNT`` (the connection's own keep-alive timings); ``SO_REUSEADDR`` is kept and
  read back (it means something only before ``bind``, as on Linux); ``TCP_MAXSEG`` reads the
  connection's MSS.
- UDP: ``SO_BROADCAST`` (``allow_broadcast``), ``SO_REUSEADDR`` as for TCP.
- Both: ``SO_TYPE``, ``SO_DOMAIN``, ``SO_PROTOCOL``, ``SO_ERROR`` (always 0: errors reach the
  protocol).

Any other option raises :class:`OSError` ``ENOPROTOOPT`` naming the ones supported, never a
silent no-op. There is no socket descriptor. For a TCP connection :meth:`TransportSocket.fileno`
gives a :class:`Readiness` descriptor (an ``eventfd``, made on the first call) that ``poll`` /
``select`` see readable when a read would return at once, as a kernel socket's under asyncio:
data held while reading is paused, the end of the stream, a lost connection (httpcore keeps a
pooled connection only while its descriptor is not readable). It is no socket:
``socket.socket(fileno=)`` and ``getsockopt`` on it fail with ``ENOTSOCK``, ``os.fstat`` shows
no socket; nothing can be read from it or written to it through netstack. Once the transport
is closed, and for UDP always, ``fileno()`` is ``-1``, the value of a closed socket, which
every call that takes a descriptor refuses. Like asyncio's, it has no I/O methods (``send``,
``recv``, ``close``, ...); ``dup()``, ``get_inheritable()`` and ``shutdown()``, which asyncio's
pass to the descriptor, raise ``OSError`` ``EOPNOTSUPP`` saying to use the transport.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import weakref
from typing import Any, NoReturn, Protocol

__all__ = [
    "TCP_OPTIONS",
    "TCP_SUPPORTED",
    "UDP_SUPPORTED",
    "Readiness",
    "SocketOwner",
    "TransportSocket",
    "common_option",
    "option_name",
    "unsupported",
]

_INT = struct.Struct("i")

#: (level, option) -> name, for the messages.
_NAMES: dict[tuple[int, int], str] = {
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE): "SO_KEEPALIVE",
    (socket.SOL_SOCKET, socket.SO_REUSEADDR): "SO_REUSEADDR",
    (socket.SOL_SOCKET, socket.SO_BROADCAST): "SO_BROADCAST",
    (socket.SOL_SOCKET, socket.SO_TYPE): "SO_TYPE",
    (socket.SOL_SOCKET, socket.SO_ERROR): "SO_ERROR",
    (socket.IPPROTO_TCP, socket.TCP_NODELAY): "TCP_NODELAY",
    (socket.IPPROTO_TCP, socket.TCP_MAXSEG): "TCP_MAXSEG",
}
for _name in ("SO_DOMAIN", "SO_PROTOCOL"):
    if hasattr(socket, _name):
        _NAMES[(socket.SOL_SOCKET, getattr(socket, _name))] = _name
for _name in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"):
    if hasattr(socket, _name):
        _NAMES[(socket.IPPROTO_TCP, getattr(socket, _name))] = _name


#: The TCP options that are fields of the connection's ``TcpConfig``.
TCP_OPTIONS: dict[tuple[int, int], str] = {
    (socket.IPPROTO_TCP, socket.TCP_NODELAY): "nodelay",
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE): "keepalive",
}
for _name, _field in (
    ("TCP_KEEPIDLE", "keepalive_idle"),
    ("TCP_KEEPINTVL", "keepalive_interval"),
    ("TCP_KEEPCNT", "keepalive_count"),
):
    if hasattr(socket, _name):
        TCP_OPTIONS[(socket.IPPROTO_TCP, getattr(socket, _name))] = _field

_READ_ONLY = "SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ERROR (read only)"
#: What the error for an unsupported option lists.
TCP_SUPPORTED = [
    "TCP_NODELAY", "SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT",
    "SO_REUSEADDR", "TCP_MAXSEG (read only)", _READ_ONLY,
]  # fmt: skip
UDP_SUPPORTED = ["SO_BROADCAST", "SO_REUSEADDR", _READ_ONLY]


def common_option(level: int, option: int, sockname: Any, type: int) -> int | None:
    """The read-only options every socket answers (None for any other): its type, domain,
    protocol, and pending error (none: errors go to the protocol)."""
    if level != socket.SOL_SOCKET:
        return None
    if option == socket.SO_TYPE:
        return type
    if option == socket.SO_ERROR:
        return 0
    if option == getattr(socket, "SO_DOMAIN", None):
        v6 = isinstance(sockname, tuple) and len(sockname) == 4
        return int(socket.AF_INET6 if v6 else socket.AF_INET)
    if option == getattr(socket, "SO_PROTOCOL", None):
        return int(socket.IPPROTO_TCP if type == socket.SOCK_STREAM else socket.IPPROTO_UDP)
    return None


def option_name(level: int, option: int) -> str:
    """``"TCP_NODELAY"`` for ``(IPPROTO_TCP, TCP_NODELAY)``; the numbers when unknown."""
    return _NAMES.get((level, option), f"option {option} at level {level}")


def unsupported(level: int, option: int, supported: list[str]) -> OSError:
    """The error for an option netstack does not have (Linux's ``ENOPROTOOPT``)."""
    return OSError(
        errno.ENOPROTOOPT,
        f"netstack does not support {option_name(level, option)} on this socket "
        f"(it supports {', '.join(supported)})",
    )


class Readiness:
    """A descriptor that polls readable while ``set(True)``: an ``eventfd`` counter at 1 or 0
    (Linux; :meth:`open` gives None where there is none). Closed by :meth:`close`, or when it
    is collected."""

    __slots__ = ("__weakref__", "_close", "fd", "ready")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.ready = False
        self._close = weakref.finalize(self, os.close, fd)

    @classmethod
    def open(cls) -> Readiness | None:
        make = getattr(os, "eventfd", None)
        if make is None:
            return None
        return cls(make(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC))

    def set(self, ready: bool) -> None:
        if ready is self.ready or self.fd < 0:
            return
        self.ready = ready
        if ready:
            os.eventfd_write(self.fd, 1)
        else:
            os.eventfd_read(self.fd)

    def close(self) -> None:
        self.fd = -1
        self._close()


class SocketOwner(Protocol):
    """What a transport offers its :class:`TransportSocket`."""

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...

    def get_socket_option(self, level: int, option: int) -> int:
        """The option's value; ``OSError(ENOPROTOOPT)`` for one not supported."""
        ...

    def set_socket_option(self, level: int, option: int, value: int) -> None:
        """Set the option; ``OSError(ENOPROTOOPT)`` for one not supported."""
        ...


class TransportSocket:
    """A netstack endpoint shown as a socket: name, family, type and options, no descriptor
    and no I/O (the transport does that).

    Attributes:
        family: ``AF_INET`` or ``AF_INET6``, from the local address.
        type: ``SOCK_STREAM`` or ``SOCK_DGRAM``.
        proto: ``IPPROTO_TCP`` or ``IPPROTO_UDP``.
    """

    __slots__ = ("_owner", "proto", "type")

    def __init__(self, owner: SocketOwner, type: int) -> None:
        self._owner = owner
        self.type = socket.SocketKind(type)
        self.proto = socket.IPPROTO_TCP if type == socket.SOCK_STREAM else socket.IPPROTO_UDP

    @property
    def family(self) -> socket.AddressFamily:
        name = self._owner.get_extra_info("sockname")
        return socket.AF_INET6 if isinstance(name, tuple) and len(name) == 4 else socket.AF_INET

    def getsockname(self) -> Any:
        return self._owner.get_extra_info("sockname")

    def getpeername(self) -> Any:
        name = self._owner.get_extra_info("peername")
        if name is None:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return name

    def fileno(self) -> int:
        """The connection's :class:`Readiness` descriptor, or ``-1`` (see the module's
        docstring)."""
        readiness = getattr(self._owner, "readiness_fd", None)
        return -1 if readiness is None else int(readiness())

    def gettimeout(self) -> float:
        return 0.0

    def getblocking(self) -> bool:
        return False

    def setblocking(self, flag: bool) -> None:
        if flag:
            raise ValueError("setblocking(): transport sockets cannot be blocking")

    def settimeout(self, value: float | None) -> None:
        if value != 0:
            raise ValueError("settimeout(): only 0 timeout is allowed on transport sockets")

    def setsockopt(self, level: int, option: int, value: Any, optlen: int | None = None) -> None:
        """Set an option; see the module's docstring for those supported.

        Raises:
            OSError: ``ENOPROTOOPT`` for an option netstack does not support.
            ValueError: a value out of range (a keep-alive time that is not positive).
        """
        if optlen is not None or value is None:
            raise OSError(errno.EINVAL, "netstack's socket options take an integer value")
        if isinstance(value, (bytes, bytearray, memoryview)):
            if len(value) != _INT.size:
                raise OSError(errno.EINVAL, "netstack's socket options take a 4-byte integer")
            value = _INT.unpack(value)[0]
        self._owner.set_socket_option(level, option, int(value))

    def getsockopt(self, level: int, option: int, buflen: int | None = None) -> Any:
        """Read an option (as an int; with ``buflen``, its bytes).

        Raises:
            OSError: ``ENOPROTOOPT`` for an option netstack does not support.
        """
        value = self._owner.get_socket_option(level, option)
        if buflen is not None:
            return _INT.pack(value)[:buflen]
        return value

    def _no_descriptor(self, *args: Any) -> NoReturn:
        raise OSError(
            errno.EOPNOTSUPP,
            "a netstack connection has no operating-system socket: use its transport "
            "(write_eof() for shutdown(SHUT_WR), close() or abort())",
        )

    # What asyncio's TransportSocket offers beyond names and options needs a descriptor.
    dup = get_inheritable = shutdown = _no_descriptor

    def __getstate__(self) -> NoReturn:
        raise TypeError("Cannot serialize a netstack TransportSocket")

    def __repr__(self) -> str:
        peer = self._owner.get_extra_info("peername")
        return (
            f"<netstack TransportSocket family={self.family.name} type={self.type.name} "
            f"laddr={self.getsockname()}" + (f" raddr={peer}>" if peer else ">")
        )
