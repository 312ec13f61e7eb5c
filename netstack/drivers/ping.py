"""The ICMP echo driver: ``ping`` over ICMP (RFC 792) and ICMPv6 (RFC 4443 4.1, 4.2).

:class:`Pinger` sends echo requests through the dual-family IP facade and keeps a future per
request until its reply arrives (the composition root hands the ICMP layers' echo replies to
:meth:`Pinger.echo_reply`, and the errors quoting an echo request, through the facade, to
:meth:`Pinger.echo_error`). A reply must come from the address asked, carry the data sent,
and match identifier and sequence number; anything else is a counted drop of the ICMP layer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from ..core import Core, Rng
from ..proto.icmp.layer import IcmpLayer
from ..proto.icmp.wire import IcmpType
from ..proto.icmpv6.wire import Icmp6Type
from ..proto.ip.dual import DualIP

__all__ = ["PingCore", "Pinger"]

#: The largest echo payload (65 535 less the IPv4 and ICMP headers), as ``ping -s``.
MAX_SIZE = 65507
#: The type of an echo request, by the length of the family's addresses.
_ECHO_REQUEST = {4: IcmpType.ECHO_REQUEST, 16: Icmp6Type.ECHO_REQUEST}


class PingCore(Core, Protocol):
    """What the ping driver needs of a stack."""

    @property
    def ip(self) -> DualIP: ...

    @property
    def icmp(self) -> IcmpLayer: ...


class Pinger:
    """Echo requests in flight, by (identifier, sequence number)."""

    def __init__(self, core: PingCore, rng: Rng) -> None:
        self._core = core
        self._pings: dict[tuple[int, int], tuple[asyncio.Future[float], bytes, bytes]] = {}
        self._ident = rng.getrandbits(16)
        self._seq = rng.getrandbits(16)

    async def ping(self, dst: bytes, host: str, timeout: float, size: int, scope: int = 0) -> float:
        """Send one echo request to ``dst`` (4 or 16 bytes; ``scope``: the interface of a
        link-local IPv6 address) and wait for the reply.

        Returns:
            The round-trip time in seconds.

        Raises:
            TimeoutError: no reply in time.
            OSError: an ICMP error came back (e.g. host unreachable), or no route.
            ValueError: a bad size or timeout.
        """
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
            raise ValueError(f"size must be in 0..{MAX_SIZE}, got {size!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        core = self._core
        loop = core.loop
        self._seq = (self._seq + 1) & 0xFFFF
        key = (self._ident, self._seq)
        data = _pattern(size)
        fut: asyncio.Future[float] = loop.create_future()
        self._pings[key] = (fut, dst, data)
        # The round trip is timed with perf_counter: uvloop's loop.time() ticks in whole
        # milliseconds, coarser than a round trip on a memory link.
        sent = time.perf_counter()
        try:
            core.ip.send_echo_request(dst, key[0], key[1], data, loop.time(), scope)
            core.touch()
            async with asyncio.timeout(timeout):
                received = await fut
        except TimeoutError:
            raise TimeoutError(f"no echo reply from {host} within {timeout} s") from None
        finally:
            self._pings.pop(key, None)
        return received - sent

    def fail_all(self, exc: BaseException) -> None:
        """Fail every ping waiting (the stack closed, or its link failed)."""
        for fut, _, _ in self._pings.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pings.clear()

    # -- what the ICMP layers hand over ----------------------------------------------------
    def echo_reply(self, src: bytes, ident: int, seq: int, data: memoryview, now: float) -> None:
        core = self._core
        icmp = core.icmp  # the ICMPv6 layer's replies count here too, as they always have
        entry = self._pings.get((ident, seq))
        if entry is None:
            icmp.drop("echo_reply_unexpected", (ident, seq))
            return
        fut, dst, sent = entry
        is_local = core.ip.is_local
        if src != dst and not (is_local(src) and is_local(dst)) and dst[0] != 0xFF:
            icmp.drop("echo_reply_wrong_source", src)
            return
        if data != sent:
            icmp.drop("echo_reply_corrupt")
            return
        if not fut.done():
            fut.set_result(time.perf_counter())

    def echo_error(
        self, src: bytes, dst: bytes, request: memoryview, exc: OSError | None,
        room: int | None, now: float,
    ) -> None:  # fmt: skip
        """An ICMP or ICMPv6 error quoting one of our echo requests fails its ``ping()``."""
        if request[0] != _ECHO_REQUEST[len(src)]:
            return
        ident = int.from_bytes(request[4:6], "big")
        seq = int.from_bytes(request[6:8], "big")
        entry = self._pings.get((ident, seq))
        if entry is not None and exc is not None and not entry[0].done():
            entry[0].set_exception(exc)


def _pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]
