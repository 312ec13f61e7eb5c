"""The loop switch: ``with netstack.use(stack):`` makes the running event loop's network a
netstack stack, for the code run inside and every task it creates.

MirageOS picks its network at configure time (``--net socket`` or ``--net direct``) and the
same unikernel runs on either; this is that switch at run time. asyncio libraries (aiohttp,
websockets, ...) call the *event loop's* network methods, not a :class:`~netstack.Stack`'s,
so under the switch those methods answer from the stack:

- ``create_connection``, ``create_server``, ``create_datagram_endpoint``: the stack's, with
  asyncio's arguments, checks and errors;
- ``getaddrinfo`` / ``getnameinfo``: from ``stack.resolve`` (its host table
  ``stack.dns.hosts``, ``localhost``, then DNS), asyncio's result tuples and
  :class:`socket.gaierror` codes;
- ``start_tls``: netstack's TLS upgrade for netstack's transports (either engine, either
  loop);
- ``sendfile``: on uvloop (which implements it for no transport) the file goes over a
  netstack transport in chunks, as asyncio's own loop does it (outside the switch,
  ``transport.sendfile(file)`` does the same on any loop);
- ``sock_connect`` on a socket object records the target and opens the connection on the
  stack, and ``create_connection(sock=...)`` then hands it over (what aiohappyeyeballs, and so
  aiohttp's client, do); a datagram socket's ``sock_connect`` records its peer for
  ``create_datagram_endpoint(sock=...)``; ``create_server(sock=...)`` listens on the stack at
  the socket's address and port. The operating-system socket is never used for traffic: it is
  closed when it is handed over (``create_connection`` / ``create_datagram_endpoint``), or
  with the server that listens in its place.

A :class:`~netstack.HostStack` is the loop's own network: under it these calls go through the
host stack's methods (so its ``close()`` and ``stats()`` see them) and the socket calls stay
the loop's. A HostStack's methods called by name inside a switch of a netstack stack reach the
host's network all the same, and what they make (connections, servers, their handlers) runs
outside the switch, as code that was never under it.

What the switch does not take over is refused, never passed to the host's network in
silence: under a :class:`~netstack.Stack`, ``sock_sendto`` on an operating-system socket and
the ``sock_*`` I/O calls on a socket connected through the stack raise
:class:`NotImplementedError` (use ``create_datagram_endpoint`` / ``create_connection(sock=)``),
a ``sock=`` that the switch did not connect raises :class:`ValueError`, and an argument of a
newer Python's asyncio that netstack does not know yet raises :class:`NotImplementedError`
unless it is left at its default. Unix-domain sockets are not network: they stay the loop's.

Scope. The choice lives in a :class:`contextvars.ContextVar`: a task created inside the block
copies it, and netstack's transports and servers call their protocols in the context of the
code that made them (as asyncio's do), so a server started under the switch keeps serving
its handlers under it after the block ends, and two stacks in one loop each serve what runs
under them. The loop's methods are replaced on the loop *instance* (asyncio's and uvloop's
loops accept that); code outside every switch reaches the original methods, and the
originals are put back once nothing refers to a switch of that loop any more: when the last
block ended and the tasks, servers and connections made under it are gone. Other loops are
never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import functools
import inspect
import ipaddress
import logging
import socket
import ssl as ssl_module
import weakref
from asyncio.constants import _SendfileMode
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from .contract import NetworkStack
from .stack import Stack
from .streams import is_tls_config

__all__ = ["PATCHED", "active_stack", "unpatched", "use"]

log = logging.getLogger("netstack.switch")

#: The socket I/O calls: the loop's own, except on a socket the switch connected.
_SOCK_IO = (
    "sock_sendall",
    "sock_sendfile",
    "sock_recv",
    "sock_recv_into",
    "sock_recvfrom",
    "sock_recvfrom_into",
)
#: The loop methods the switch replaces while it is in use.
PATCHED = (
    "create_connection",
    "create_server",
    "create_datagram_endpoint",
    "start_tls",
    "sendfile",
    "getaddrinfo",
    "getnameinfo",
    "sock_connect",
    "sock_sendto",
    *_SOCK_IO,
)

_INET = (socket.AF_INET, socket.AF_INET6)
_EAI_ADDRFAMILY = getattr(socket, "EAI_ADDRFAMILY", socket.EAI_FAMILY)


# -- the scope ---------------------------------------------------------------------------------
class _Binding:
    """One ``use`` block's choice, held by the contexts that run under it (the block's, and
    copies in tasks, servers and connections); the loop stays patched while one exists."""

    __slots__ = ("__weakref__", "patch", "stack")

    def __init__(self, stack: NetworkStack, patch: _LoopPatch) -> None:
        self.stack = stack
        self.patch = patch
        patch.acquire()
        weakref.finalize(self, patch.release).atexit = False


_current: contextvars.ContextVar[_Binding | None] = contextvars.ContextVar(
    "netstack.use", default=None
)


def active_stack(loop: asyncio.AbstractEventLoop | None = None) -> NetworkStack | None:
    """The stack the switch gives the code running now (on ``loop``, by default the running
    loop), or None outside every ``netstack.use`` block."""
    binding = _current.get()
    if binding is None:
        return None
    if loop is None:
        loop = asyncio.get_running_loop()
    return binding.stack if binding.patch.loop() is loop else None


class use:
    # A function in the contract (``netstack.use(stack)``); a class, for ``with``.
    """``with netstack.use(stack):`` (or ``async with``): the running loop's network methods
    reach ``stack`` for the code inside and every task it creates.

    Args:
        stack: a :class:`netstack.Stack` or a :class:`netstack.HostStack` (anything that
            fulfils :class:`netstack.NetworkStack`), running on this loop.

    The block gives ``stack`` (``with netstack.use(stack) as s``). Blocks nest (the inner
    stack serves inside it), and one ``use`` object may be entered again.

    Raises:
        TypeError: ``stack`` is not a stack.
        RuntimeError: entered with no running event loop, or on a loop that is not the
            stack's.
    """

    def __init__(self, stack: NetworkStack) -> None:
        if not isinstance(stack, NetworkStack):
            raise TypeError(f"netstack.use takes a netstack.Stack or HostStack, got {stack!r}")
        self.stack = stack
        self._entered: list[contextvars.Token[_Binding | None]] = []

    def __enter__(self) -> NetworkStack:
        loop = asyncio.get_running_loop()
        if self.stack.loop is not loop:
            raise RuntimeError("netstack.use: the stack runs on another event loop")
        self._entered.append(_current.set(_Binding(self.stack, _patch_for(loop))))
        return self.stack

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._entered.pop()
        try:
            _current.reset(token)
        except ValueError:
            # Left in another context than it was entered in (an async fixture's teardown,
            # say): what was chosen before the block is chosen again.
            old = token.old_value
            _current.set(None if old is contextvars.Token.MISSING else old)

    async def __aenter__(self) -> NetworkStack:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"netstack.use({self.stack!r})"


# -- the loop's methods ------------------------------------------------------------------------
class _LoopPatch:
    """The methods put on one loop instance while a switch of that loop exists, and what they
    replaced."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        self.users = 0
        self.originals: dict[str, Any] = {}
        self._installed: dict[str, Any] = {}
        self._shadowed: dict[str, Any] = {}

    def acquire(self) -> None:
        self.users += 1
        if self.users == 1:
            self._install()

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            self._uninstall()

    def _install(self) -> None:
        loop = self.loop()
        if loop is None:
            return
        own = vars(loop)
        for name in PATCHED:
            original = getattr(loop, name, None)
            if original is None:
                continue  # a loop without this method (it stays without)
            if name in own:
                self._shadowed[name] = own[name]  # someone's own replacement: chained to
            self.originals[name] = original
            method = _method(self, name, original)
            self._installed[name] = method
            setattr(loop, name, method)

    def _uninstall(self) -> None:
        loop = self.loop()
        installed, self._installed = self._installed, {}
        shadowed, self._shadowed = self._shadowed, {}
        self.originals = {}
        if loop is None:
            return
        own = vars(loop)
        for name, method in installed.items():
            if own.get(name) is not method:
                log.debug("loop.%s was replaced over netstack.use's; left as it is", name)
                continue
            if name in shadowed:
                setattr(loop, name, shadowed[name])
            else:
                delattr(loop, name)


_patches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPatch] = (
    weakref.WeakKeyDictionary()
)


def _patch_for(loop: asyncio.AbstractEventLoop) -> _LoopPatch:
    patch = _patches.get(loop)
    if patch is None:
        patch = _patches[loop] = _LoopPatch(loop)
    return patch


def unpatched(loop: asyncio.AbstractEventLoop, name: str) -> Any:
    """The loop's own method ``name``, also while a switch has replaced it (what a
    :class:`~netstack.HostStack` calls, being the loop's network itself), run outside
    every switch."""
    patch = _patches.get(loop)
    original = None if patch is None else patch.originals.get(name)
    if original is None:
        return getattr(loop, name)
    if _current.get() is None:
        return original

    # Under a switch, asyncio's own methods still look up ``self.getaddrinfo`` and
    # ``self.sock_connect`` (happy eyeballs' racing tasks too): they run with no switch, and
    # what they make (transports, servers and their handlers) keeps that context, the host's.
    async def outside(*args: Any, **kwargs: Any) -> Any:
        token = _current.set(None)
        try:
            return await original(*args, **kwargs)
        finally:
            _current.reset(token)

    outside.__wrapped__ = original  # type: ignore[attr-defined]
    return outside


def _method(patch: _LoopPatch, name: str, original: Any) -> Callable[..., Awaitable[Any]]:
    """The replacement of ``loop.<name>``: the switch's stack for code under a switch of
    this loop, the original for any other."""
    impl = _IMPLEMENTATIONS[name]

    # The binding is looked up, never kept in a frame: a traceback that outlives the call
    # must not keep the loop patched.
    async def method(*args: Any, **kwargs: Any) -> Any:
        stack = _stack_of(patch)
        if stack is None:
            return await original(*args, **kwargs)
        return await impl(stack, original, *args, **kwargs)

    method.__name__ = name
    method.__qualname__ = f"netstack.use.{name}"
    method.__doc__ = getattr(original, "__doc__", None)
    method.__wrapped__ = original  # type: ignore[attr-defined]
    return method


def _stack_of(patch: _LoopPatch) -> NetworkStack | None:
    binding = _current.get()
    if binding is None or binding.patch is not patch:
        return None
    return binding.stack


# -- arguments as asyncio takes them -----------------------------------------------------------
@functools.cache
def _signature(name: str) -> inspect.Signature:
    return inspect.signature(getattr(asyncio.BaseEventLoop, name))


def _arguments(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by name, defaults filled in, checked against this Python's
    asyncio: an argument it does not take raises the :class:`TypeError` it would."""
    try:
        bound = _signature(name).bind(None, *args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{name}() {exc}") from None
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    del arguments["self"]
    return arguments


def _refuse_unknown(name: str, arguments: dict[str, Any], known: frozenset[str]) -> None:
    """A newer asyncio's argument the switch does not know is refused unless at its
    default (None, 0 or False in every asyncio so far)."""
    params = _signature(name).parameters
    for key, value in arguments.items():
        if key not in known and value is not params[key].default:
            raise NotImplementedError(
                f"netstack.use: {name}({key}=...) is not supported on a netstack stack"
            )


def _given(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments that differ from asyncio's defaults (what a HostStack passes on)."""
    params = _signature(name).parameters
    return {k: v for k, v in arguments.items() if v is not params[k].default}


def _check_ssl_socket(sock: Any) -> None:
    if isinstance(sock, ssl_module.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _is_inet(sock: Any) -> bool:
    return getattr(sock, "family", None) in _INET


# -- names: getaddrinfo and getnameinfo --------------------------------------------------------
def _literal(host: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int] | None:
    """An IP literal and its IPv6 scope id (``fe80::1%2``), or None for a name."""
    text, _, scope = host.partition("%")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return ip, int(scope) if scope.isdigit() else 0


def _socket_kinds(type_: int, proto: int) -> list[tuple[int, int]]:
    """The (type, protocol) pairs an answer covers, as glibc gives them."""
    if type_ not in (0, socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW):
        raise socket.gaierror(socket.EAI_SOCKTYPE, "ai_socktype not supported")
    if type_ == socket.SOCK_RAW:
        return [(socket.SOCK_RAW, proto)]
    table: list[tuple[int, int]] = [
        (socket.SOCK_STREAM, socket.IPPROTO_TCP),
        (socket.SOCK_DGRAM, socket.IPPROTO_UDP),
    ]
    kinds = [(t, p) for t, p in table if type_ in (0, t) and proto in (0, p)]
    if type_ == 0 and proto == 0:
        kinds.append((socket.SOCK_RAW, 0))
    if not kinds:
        raise socket.gaierror(socket.EAI_SOCKTYPE, "ai_socktype not supported")
    return kinds


def _service_ports(
    port: Any, kinds: list[tuple[int, int]], flags: int
) -> list[tuple[int, int, int]]:
    """``(type, proto, port)`` for every kind that has the service ``port``."""
    if port is None:
        return [(t, p, 0) for t, p in kinds]
    if isinstance(port, (bytes, bytearray)):
        port = bytes(port).decode("ascii", "replace")
    if isinstance(port, int):
        number: int | None = int(port)
    elif isinstance(port, str):
        number = int(port) if port.isascii() and port.isdigit() else None
    else:
        raise OSError("Int or String expected")
    if number is not None:
        if not 0 <= number <= 0xFFFF:
            raise socket.gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")
        return [(t, p, number) for t, p in kinds]
    if flags & socket.AI_NUMERICSERV:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    out = []
    for t, p in kinds:
        if t == socket.SOCK_RAW:
            continue
        try:
            out.append(
                (t, p, socket.getservbyname(port, "tcp" if t == socket.SOCK_STREAM else "udp"))
            )
        except OSError:
            continue
    if not out:
        raise socket.gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")
    return out


def _has_address(stack: Stack, version: int) -> bool:
    return any(a.version == version and not a.ip.is_loopback for a in stack.addresses)


async def _addresses(stack: Stack, host: str, family: int, flags: int) -> list[tuple[str, int]]:
    """``host``'s addresses for ``family`` as (text, scope id), in the stack's order."""
    literal = _literal(host)
    v4mapped = family == socket.AF_INET6 and flags & socket.AI_V4MAPPED
    if literal is not None:
        ip, scope = literal
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped and family == socket.AF_INET:
            ip = ip.ipv4_mapped
        if family == socket.AF_INET6 and ip.version == 4 and v4mapped:
            return [(f"::ffff:{ip}", 0)]
        if family and ip.version != (4 if family == socket.AF_INET else 6):
            raise socket.gaierror(_EAI_ADDRFAMILY, "Address family for hostname not supported")
        return [(str(ip), scope)]
    if flags & socket.AI_NUMERICHOST:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    try:
        names = await stack.resolve(host, 0 if v4mapped else family)
    except TimeoutError:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution") from None
    except ValueError as exc:
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: {exc}") from None
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
    found = [ipaddress.ip_address(a) for a in names]
    if v4mapped:
        six: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
        six = [ip for ip in found if ip.version == 6]
        four = [ipaddress.ip_address(f"::ffff:{ip}") for ip in found if ip.version == 4]
        found = six + four if flags & socket.AI_ALL or not six else six
    if flags & socket.AI_ADDRCONFIG:
        # RFC 3493 6.1: only families the host has a (non-loopback) address of.
        found = [ip for ip in found if ip.is_loopback or _has_address(stack, ip.version)]
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [(str(ip), 0) for ip in found]


async def getaddrinfo(
    stack: Stack,
    host: Any,
    port: Any,
    *,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]]:
    """:meth:`asyncio.loop.getaddrinfo` answered by a netstack stack: its resolver
    (``stack.resolve``: the host table ``stack.dns.hosts``, ``localhost``, then DNS), glibc's
    result shapes and :class:`socket.gaierror` codes.

    Raises:
        socket.gaierror: the name does not resolve, a bad family, type or service.
        OSError: ``port`` is neither an int nor a string.
    """
    if family not in (socket.AF_UNSPEC, *_INET):
        raise socket.gaierror(socket.EAI_FAMILY, "ai_family not supported")
    ports = _service_ports(port, _socket_kinds(type, proto), flags)
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("idna")
    if host is None:
        if port is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        passive = flags & socket.AI_PASSIVE
        wanted = [("0.0.0.0", 0), ("::", 0)] if passive else [("::1", 0), ("127.0.0.1", 0)]
        found = [a for a in wanted if not family or (":" in a[0]) == (family == socket.AF_INET6)]
    elif not isinstance(host, str):
        raise TypeError(f"getaddrinfo() argument 1 must be string or None, not {host!r}")
    elif not host:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    else:
        found = await _addresses(stack, host, family, flags)
    canonical = host if flags & socket.AI_CANONNAME and isinstance(host, str) else ""
    out: list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]] = []
    for address, scope in found:
        fam = socket.AF_INET6 if ":" in address else socket.AF_INET
        for t, p, number in ports:
            v6 = fam == socket.AF_INET6
            sockaddr = (address, number, 0, scope) if v6 else (address, number)
            out.append((fam, socket.SocketKind(t), p, "" if out else canonical, sockaddr))
    return out


async def getnameinfo(stack: Stack, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
    """:meth:`asyncio.loop.getnameinfo` answered by a netstack stack: the host table
    (``stack.dns.hosts``, and ``localhost`` for loopback addresses), then a PTR query when the
    stack has name servers, else the address itself.

    Raises:
        socket.gaierror: ``NI_NAMEREQD`` and no name; a host that is not an address.
        TypeError: ``sockaddr`` is not a tuple.
    """
    if not isinstance(sockaddr, tuple) or len(sockaddr) not in (2, 3, 4):
        raise TypeError("getnameinfo() argument 1 must be a tuple")
    host, port = sockaddr[0], sockaddr[1]
    if not isinstance(port, int):
        raise TypeError("'str' object cannot be interpreted as an integer")
    literal = _literal(host) if isinstance(host, str) else None
    if literal is None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    ip = literal[0]
    name: str | None = None
    if not flags & socket.NI_NUMERICHOST:
        name = await _reverse(stack, ip)
        if name is not None and flags & socket.NI_NOFQDN:
            name = name.split(".", 1)[0]
    if name is None:
        if flags & socket.NI_NAMEREQD:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        name = str(ip)
    service = str(port)
    if not flags & socket.NI_NUMERICSERV:
        try:
            service = socket.getservbyport(port, "udp" if flags & socket.NI_DGRAM else "tcp")
        except (OSError, OverflowError):
            pass
    return name, service


async def _reverse(stack: Stack, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    for name, addresses in stack.dns.hosts.items():
        for text in addresses:
            try:
                if ipaddress.ip_address(text) == ip:
                    return name
            except ValueError:
                continue
    if ip.is_loopback:
        return "localhost"
    if not stack.dns_servers:
        return None
    import dns.reversename

    try:
        rrset = await stack.dns.resolve_rrset(
            dns.reversename.from_address(str(ip)).to_text(), "PTR"
        )
    except TimeoutError:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution") from None
    except OSError:
        return None
    for rdata in rrset:
        return str(rdata.target).rstrip(".")
    return None


async def _numeric(stack: Stack, host: Any, family: int, flags: int = 0) -> Any:
    """``host`` as an address literal: itself if it is one (or None / ""), else its first
    address by :func:`getaddrinfo` (a local address given by name)."""
    if not isinstance(host, str) or not host or _literal(host) is not None:
        return host
    infos = await getaddrinfo(stack, host, None, family=family, type=socket.SOCK_STREAM,
                              flags=flags)  # fmt: skip
    return infos[0][4][0]


# -- sockets handed over -----------------------------------------------------------------------
class _Held(asyncio.Protocol):
    """The protocol of a connection ``sock_connect`` opened, until ``create_connection
    (sock=...)`` gives it the application's: reading paused, anything early kept."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc


class _Connected:
    """A stream socket ``sock_connect`` connected through the stack."""

    def __init__(self, transport: asyncio.Transport, held: _Held) -> None:
        self.transport = transport
        self.held = held
        self.adopted = False

    def abandon(self, loop: asyncio.AbstractEventLoop) -> None:
        """The socket was collected without being handed to ``create_connection``."""
        if self.adopted or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self.transport.abort)


class _Addressed:
    """A datagram socket ``sock_connect`` gave a peer."""

    def __init__(self, remote: tuple[str, int]) -> None:
        self.remote = remote


#: What the switch knows of the socket objects it was given.
_sockets: weakref.WeakKeyDictionary[Any, _Connected | _Addressed] = weakref.WeakKeyDictionary()


def _close(sock: Any) -> None:
    """Close an operating-system socket the switch was handed (asyncio's transports and
    servers own the sockets given to them, and so does what took their place here)."""
    close = getattr(sock, "close", None)
    if callable(close):
        close()


def _close_with(server: Any, sock: Any) -> None:
    """Close ``sock`` when ``server`` (the netstack server listening in its place) closes."""
    close = server.close

    def close_both() -> None:
        close()
        _close(sock)

    server.close = close_both


def _bound_address(sock: Any) -> tuple[str | None, int] | None:
    """What ``sock`` was bound to, as a ``local_addr`` (None when it was not)."""
    try:
        name = sock.getsockname()
    except OSError:
        return None
    host, port = name[0], name[1]
    wildcard = host in ("0.0.0.0", "::", "")
    if wildcard and port == 0:
        return None
    return (None if wildcard else host, port)


def _feed(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    if isinstance(protocol, asyncio.BufferedProtocol):
        view = memoryview(data)
        while view:
            buf = memoryview(protocol.get_buffer(len(view)))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            protocol.buffer_updated(n)
            view = view[n:]
    else:
        protocol.data_received(data)  # type: ignore[attr-defined]


async def _adopt(
    stack: Stack,
    sock: Any,
    protocol_factory: Callable[[], Any],
    ssl: Any,
    server_hostname: str | None,
    handshake_timeout: float | None,
) -> tuple[asyncio.Transport, Any]:
    """``create_connection(sock=sock)`` for a socket ``sock_connect`` connected: the
    application's protocol (over TLS with ``ssl``) takes over the connection."""
    record = _sockets.get(sock)
    if not isinstance(record, _Connected) or record.adopted:
        raise ValueError(
            f"netstack.use: sock={sock!r} was not connected by loop.sock_connect under "
            "netstack.use; a netstack connection cannot use an operating-system socket"
        )
    held, transport = record.held, record.transport
    if held.lost:
        raise held.error or ConnectionResetError(
            errno.ECONNRESET, "the connection ended before create_connection(sock=...)"
        )
    record.adopted = True
    del _sockets[sock]
    _close(sock)

    async def attach(factory: Callable[[], Any]) -> tuple[asyncio.Transport, Any]:
        protocol = factory()
        transport.set_protocol(protocol)
        # Resumed first: what was held arrives on a later turn of the loop, after
        # connection_made, which may pause reading again.
        transport.resume_reading()
        protocol.connection_made(transport)
        for chunk in held.data:
            _feed(protocol, chunk)
        if held.eof and not protocol.eof_received():
            transport.close()
        return transport, protocol

    if not ssl:
        return await attach(protocol_factory)
    from .tls.stream import connect_tls

    return await connect_tls(
        stack.loop, attach, protocol_factory, ssl, server_hostname, handshake_timeout
    )


# -- the methods under a Stack -----------------------------------------------------------------
_CONNECTION_ARGS = frozenset(
    {
        "protocol_factory", "host", "port", "ssl", "family", "proto", "flags", "sock",
        "local_addr", "server_hostname", "ssl_handshake_timeout", "ssl_shutdown_timeout",
        "happy_eyeballs_delay", "interleave",
    }
)  # fmt: skip
_SERVER_ARGS = frozenset(
    {
        "protocol_factory", "host", "port", "family", "flags", "sock", "backlog", "ssl",
        "reuse_address", "reuse_port", "ssl_handshake_timeout", "ssl_shutdown_timeout",
        "start_serving", "keep_alive",
    }
)  # fmt: skip
_DATAGRAM_ARGS = frozenset(
    {
        "protocol_factory", "local_addr", "remote_addr", "family", "proto", "flags",
        "reuse_port", "allow_broadcast", "sock",
    }
)  # fmt: skip


async def _create_connection(stack: NetworkStack, original: Any, *args: Any, **kwargs: Any) -> Any:
    a = _arguments("create_connection", args, kwargs)
    if not isinstance(stack, Stack):
        return await stack.create_connection(**_given("create_connection", a))
    _refuse_unknown("create_connection", a, _CONNECTION_ARGS)
    host, port, ssl, sock = a["host"], a["port"], a["ssl"], a["sock"]
    server_hostname = a["server_hostname"]
    # asyncio's checks, in asyncio's order and words.
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    if a["ssl_handshake_timeout"] is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if a["ssl_shutdown_timeout"] is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    if sock is not None:
        _check_ssl_socket(sock)
    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
    else:
        if sock is None:
            raise ValueError("host and port was not specified and no sock specified")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        if not _is_inet(sock):
            return await original(*args, **kwargs)
        return await _adopt(stack, sock, a["protocol_factory"], ssl, server_hostname,
                            a["ssl_handshake_timeout"])  # fmt: skip
    _socket_kinds(socket.SOCK_STREAM, a["proto"])
    family, flags = a["family"], a["flags"]
    if isinstance(host, str) and _literal(host) is None and flags & socket.AI_NUMERICHOST:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    local_addr = a["local_addr"]
    if isinstance(local_addr, tuple) and len(local_addr) >= 2:
        local_addr = (await _numeric(stack, local_addr[0], family), local_addr[1])
    options: dict[str, Any] = {
        "ssl": ssl or None, "family": family, "local_addr": local_addr,
        "server_hostname": server_hostname if ssl else None,
        "ssl_handshake_timeout": a["ssl_handshake_timeout"],
    }  # fmt: skip
    for name in ("happy_eyeballs_delay", "interleave"):
        if a[name] is not None:
            options[name] = a[name]
    return await stack.create_connection(a["protocol_factory"], host, port, **options)


async def _create_server(stack: NetworkStack, original: Any, *args: Any, **kwargs: Any) -> Any:
    a = _arguments("create_server", args, kwargs)
    if not isinstance(stack, Stack):
        return await stack.create_server(**_given("create_server", a))
    _refuse_unknown("create_server", a, _SERVER_ARGS)
    host, port, ssl, sock = a["host"], a["port"], a["ssl"], a["sock"]
    if isinstance(ssl, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    if a["ssl_handshake_timeout"] is not None and ssl is None:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if a["ssl_shutdown_timeout"] is not None and ssl is None:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    if sock is not None:
        _check_ssl_socket(sock)
    options: dict[str, Any] = {
        "family": a["family"], "backlog": a["backlog"], "ssl": ssl,
        "reuse_address": a["reuse_address"], "reuse_port": a["reuse_port"],
        "ssl_handshake_timeout": a["ssl_handshake_timeout"],
        "start_serving": a["start_serving"],
    }  # fmt: skip
    if a.get("keep_alive"):
        options["keepalive"] = True
    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        hosts = [host] if isinstance(host, str) or host is None else list(host)
        local: list[str | None] = []
        for one in hosts:
            if one in (None, ""):
                local.append(None)
                continue
            infos = await getaddrinfo(stack, one, port, family=a["family"],
                                      type=socket.SOCK_STREAM, flags=a["flags"])  # fmt: skip
            local.extend(info[4][0] for info in infos if info[4][0] not in local)
        where: Any = local[0] if len(local) == 1 else local
        return await stack.create_server(a["protocol_factory"], where, port or 0, **options)
    if sock is None:
        raise ValueError("Neither host/port nor sock were specified")
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"A Stream Socket was expected, got {sock!r}")
    if not _is_inet(sock):
        return await original(*args, **kwargs)
    name = sock.getsockname()
    options["family"] = sock.family
    server = await stack.create_server(a["protocol_factory"], name[0], name[1], **options)
    _close_with(server, sock)
    return server


async def _create_datagram_endpoint(
    stack: NetworkStack, original: Any, *args: Any, **kwargs: Any
) -> Any:
    a = _arguments("create_datagram_endpoint", args, kwargs)
    if not isinstance(stack, Stack):
        return await stack.create_datagram_endpoint(**_given("create_datagram_endpoint", a))
    _refuse_unknown("create_datagram_endpoint", a, _DATAGRAM_ARGS)
    sock, family = a["sock"], a["family"]
    local_addr, remote_addr = a["local_addr"], a["remote_addr"]
    if sock is not None:
        if sock.type == socket.SOCK_STREAM:
            raise ValueError(f"A datagram socket was expected, got {sock!r}")
        modifiers = {
            "local_addr": local_addr, "remote_addr": remote_addr, "family": family,
            "proto": a["proto"], "flags": a["flags"], "reuse_port": a["reuse_port"],
            "allow_broadcast": a["allow_broadcast"],
        }  # fmt: skip
        problems = ", ".join(f"{k}={v}" for k, v in modifiers.items() if v)
        if problems:
            raise ValueError(
                "socket modifier keyword arguments can not be used when sock is specified. "
                f"({problems})"
            )
        if not _is_inet(sock):
            return await original(*args, **kwargs)
        record = _sockets.pop(sock, None)
        transport, protocol = await stack.create_datagram_endpoint(
            a["protocol_factory"],
            local_addr=_bound_address(sock),
            remote_addr=record.remote if isinstance(record, _Addressed) else None,
            family=sock.family,
        )
        _close(sock)
        return transport, protocol
    if family == getattr(socket, "AF_UNIX", None):
        return await original(*args, **kwargs)
    for addr in (local_addr, remote_addr):
        if addr is not None and not isinstance(addr, tuple):
            raise TypeError("2-tuple is expected")
    if local_addr is None and remote_addr is None and family == 0:
        raise ValueError("unexpected address family")
    if local_addr is not None:
        local_addr = (await _numeric(stack, local_addr[0], family, a["flags"]), *local_addr[1:])
    return await stack.create_datagram_endpoint(
        a["protocol_factory"], local_addr=local_addr, remote_addr=remote_addr, family=family,
        proto=a["proto"], flags=a["flags"], reuse_port=a["reuse_port"],
        allow_broadcast=a["allow_broadcast"],
    )  # fmt: skip


async def _start_tls(stack: NetworkStack, original: Any, *args: Any, **kwargs: Any) -> Any:
    a = _arguments("start_tls", args, kwargs)
    transport, context = a["transport"], a["sslcontext"]
    ours = transport.get_extra_info("stack") is not None
    if not ours and not is_tls_config(context):
        return await original(*args, **kwargs)
    if not isinstance(context, ssl_module.SSLContext) and not is_tls_config(context):
        raise TypeError(
            f"sslcontext is expected to be an instance of ssl.SSLContext, got {context!r}"
        )
    from .tls.stream import start_tls

    return await start_tls(
        transport, a["protocol"], context, server_side=a["server_side"],
        server_hostname=a["server_hostname"],
        ssl_handshake_timeout=a["ssl_handshake_timeout"],
    )  # fmt: skip


async def _sendfile(stack: NetworkStack, original: Any, *args: Any, **kwargs: Any) -> Any:
    """``loop.sendfile``: asyncio's loop sends a file over netstack's transports itself (its
    fallback, in chunks paced by flow control); uvloop implements it for no transport, so
    the switch runs the same fallback there for the transports asyncio's would take."""
    a = _arguments("sendfile", args, kwargs)
    loop, transport = stack.loop, a["transport"]
    if isinstance(loop, asyncio.BaseEventLoop) or (
        getattr(transport, "_sendfile_compatible", None) is not _SendfileMode.FALLBACK
    ):
        return await original(*args, **kwargs)
    # asyncio's BaseEventLoop.sendfile, in its order and words.
    if transport.is_closing():
        raise RuntimeError("Transport is closing")
    if not a["fallback"]:
        raise RuntimeError(
            f"fallback is disabled and native sendfile is not supported for transport {transport!r}"
        )
    file, offset, count = a["file"], a["offset"], a["count"]
    own = getattr(transport, "sendfile", None)
    if own is not None:  # a TcpTransport's, the same algorithm without the protocol swap
        return await own(file, offset, count)
    fallback: Any = asyncio.BaseEventLoop._sendfile_fallback  # type: ignore[attr-defined]
    return await fallback(loop, transport, file, offset, count)


async def _getaddrinfo(stack: NetworkStack, original: Any, *args: Any, **kwargs: Any) -> Any:
    if not isinstance(stack, Stack):
        return await original(*args, **kwargs)
    return await getaddrinfo(stack, **_arguments("getaddrinfo", args, kwargs))


async def _getnameinfo(stack: NetworkStack, original: Any, *args: Any, **kwargs: Any) -> Any:
    if not isinstance(stack, Stack):
        return await original(*args, **kwargs)
    return await getnameinfo(stack, **_arguments("getnameinfo", args, kwargs))


async def _sock_connect(stack: NetworkStack, original: Any, *args: Any, **kwargs: Any) -> Any:
    a = _arguments("sock_connect", args, kwargs)
    sock, address = a["sock"], a["address"]
    if not isinstance(stack, Stack) or not _is_inet(sock):
        return await original(*args, **kwargs)
    _check_ssl_socket(sock)
    if sock in _sockets:
        raise OSError(errno.EISCONN, "Transport endpoint is already connected")
    if not isinstance(address, tuple) or len(address) < 2:
        kind = "AF_INET6" if sock.family == socket.AF_INET6 else "AF_INET"
        raise TypeError(f"{kind} address must be tuple, not {type(address).__name__}")
    infos = await getaddrinfo(stack, address[0], address[1], family=sock.family,
                              type=sock.type, proto=sock.proto)  # fmt: skip
    host, port = infos[0][4][0], infos[0][4][1]
    if sock.type == socket.SOCK_DGRAM:
        _sockets[sock] = _Addressed((host, port))
        return None
    if sock.type != socket.SOCK_STREAM:
        raise OSError(errno.EPROTOTYPE, f"netstack.use: cannot connect {sock!r}")
    transport, held = await stack.create_connection(
        _Held, host, port, family=sock.family, local_addr=_bound_address(sock)
    )
    record = _sockets[sock] = _Connected(transport, held)
    weakref.finalize(sock, record.abandon, stack.loop).atexit = False
    return None


def _refused(call: str, sock: Any, why: str) -> NotImplementedError:
    return NotImplementedError(f"netstack.use: loop.{call}({sock!r}, ...) {why}")


def _sock_io(call: str) -> Callable[..., Awaitable[Any]]:
    """``sock_recv``, ``sock_sendall``, ...: the loop's, except on a socket the switch
    connected (its connection is the stack's: hand it to ``create_connection``)."""

    async def io(stack: NetworkStack, original: Any, *args: Any, **kwargs: Any) -> Any:
        a = _arguments(call, args, kwargs)
        if isinstance(stack, Stack) and a["sock"] in _sockets:
            raise _refused(
                call, a["sock"], "on a socket connected through the stack: hand it to "
                "loop.create_connection(sock=...) or create_datagram_endpoint(sock=...)",
            )  # fmt: skip
        return await original(*args, **kwargs)

    return io


async def _sock_sendto(stack: NetworkStack, original: Any, *args: Any, **kwargs: Any) -> Any:
    a = _arguments("sock_sendto", args, kwargs)
    if isinstance(stack, Stack) and _is_inet(a["sock"]):
        raise _refused(
            "sock_sendto", a["sock"], "would send from an operating-system socket, past the "
            "stack: use loop.create_datagram_endpoint",
        )  # fmt: skip
    return await original(*args, **kwargs)


_IMPLEMENTATIONS: dict[str, Callable[..., Awaitable[Any]]] = {
    "create_connection": _create_connection,
    "create_server": _create_server,
    "create_datagram_endpoint": _create_datagram_endpoint,
    "start_tls": _start_tls,
    "sendfile": _sendfile,
    "getaddrinfo": _getaddrinfo,
    "getnameinfo": _getnameinfo,
    "sock_connect": _sock_connect,
    "sock_sendto": _sock_sendto,
    **{name: _sock_io(name) for name in _SOCK_IO},
}
