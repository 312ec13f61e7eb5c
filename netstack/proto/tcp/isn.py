"""Initial sequence numbers (RFC 6528) and SYN cookies.

RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M is a
timer ticking every 4 microseconds and F a keyed hash. Here F is BLAKE2s keyed with a secret
of the stack (drawn once, from the injected randomness), so ISNs are unpredictable to anyone
who does not see the connection, and still increase for one 4-tuple across incarnations.

SYN cookies (what RFC 4987 3.6 describes) let a listener whose SYN queue is full answer a SYN
without keeping state: the SYN-ACK's sequence number carries a coarse time, the MSS (as an
index into a small table) and a keyed hash of the 4-tuple, the time and the client's ISN.
A returning ACK whose number minus one is a valid cookie completes the handshake.

The options the SYN offered are kept the way Linux keeps them: when the SYN carries
timestamps, the SYN-ACK's timestamp value has its low 6 bits replaced by the peer's window
scale (4 bits, 15 for none) and SACK-permitted (1 bit), and the ACK's echo brings them back
(RFC 7323 allows any timestamp clock; the lost 6 bits are 63 ms at most). Unlike Linux, the
option bits are also covered by the cookie's hash, so they cannot be altered. Without
timestamps there is nowhere to keep them, and the connection runs without window scaling
and SACK (as Linux's does).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

__all__ = [
    "COOKIE_MSS",
    "NO_COOKIE_OPTIONS",
    "Cookie",
    "IsnGenerator",
    "cookie_options",
    "cookie_ts",
]

#: The MSS values a cookie can carry (3 bits), as Linux's msstab does for IPv4.
COOKIE_MSS = (536, 1300, 1440, 1460, 4312, 8960, 16344, 65495)
#: Cookie time ticks last 64 seconds; a cookie is valid in the tick it was made and the next.
_TICK = 64.0
_MAX_AGE = 2
#: The low bits of the SYN-ACK's timestamp value that carry the options.
_TS_OPTION_BITS = 6
_TS_MASK = (1 << _TS_OPTION_BITS) - 1
_NO_WSCALE = 0xF
_SACK_BIT = 0x10
#: The option bits of a cookie without timestamps (nothing kept).
NO_COOKIE_OPTIONS = 0x3F
#: Answers of the per-host-pair and per-destination hashes remembered at most.
_MEMO_SIZE = 4096


class Cookie(NamedTuple):
    mss: int
    #: The peer's window scale (None: it offered none), SACK-permitted, and whether
    #: timestamps were negotiated.
    wscale: int | None = None
    sack: bool = False
    timestamps: bool = False


def cookie_options(wscale: int | None, sack: bool) -> int:
    """The 6 option bits a cookie's timestamp carries."""
    return (_NO_WSCALE if wscale is None else min(wscale, 14)) | (_SACK_BIT if sack else 0)


def cookie_ts(ts_now: int, options: int) -> int:
    """The SYN-ACK timestamp value: our clock with its low bits replaced by ``options``,
    never ahead of the clock (as Linux does, so the peer never sees time go backwards)."""
    ts = (ts_now & ~_TS_MASK & 0xFFFFFFFF) | options
    if ((ts - ts_now) & 0xFFFFFFFF) < (1 << 31) and ts != ts_now:
        ts = (ts - (1 << _TS_OPTION_BITS)) & 0xFFFFFFFF
    return ts


def _decode_options(options: int) -> Cookie | None:
    if options == NO_COOKIE_OPTIONS:
        return Cookie(0)
    wscale = options & 0xF
    if wscale != _NO_WSCALE and wscale > 14:
        return None
    return Cookie(
        0, None if wscale == _NO_WSCALE else wscale, bool(options & _SACK_BIT), timestamps=True
    )


class IsnGenerator:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the ISN secret needs at least 16 bytes")
        self._key = secret[:32]
        #: The answers of ts_offset() and port_offset(), asked for every connection and
        #: pure functions of their arguments (per pair of hosts, per destination).
        self._memo: dict[tuple[bytes, ...], int] = {}

    def _memo_f(self, *parts: bytes) -> int:
        """:meth:`_f`, remembered (for a bounded number of arguments)."""
        memo = self._memo
        value = memo.get(parts)
        if value is None:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            value = memo[parts] = self._f(*parts)
        return value

    def _f(self, *parts: bytes) -> int:
        digest = hashlib.blake2s(b"".join(parts), key=self._key, digest_size=4).digest()
        return int.from_bytes(digest, "big")

    def isn(self, local: tuple[bytes, int], remote: tuple[bytes, int], now: float) -> int:
        """RFC 6528 3: the 4 microsecond clock plus the keyed hash of the 4-tuple."""
        m = int(now * 250_000)
        f = self._f(local[0], local[1].to_bytes(2, "big"), remote[0], remote[1].to_bytes(2, "big"))
        return (m + f) & 0xFFFFFFFF

    def ts_offset(self, local_ip: bytes, remote_ip: bytes) -> int:
        """The timestamp clock offset for a pair of hosts (RFC 7323 5.4)."""
        return self._memo_f(b"ts", local_ip, remote_ip)

    def port_offset(self, local_ip: bytes, remote: tuple[bytes, int] | None) -> int:
        """RFC 6056 3.3.3: F(local address, remote address, remote port, secret)."""
        if remote is None:
            return self._memo_f(b"port", local_ip)
        return self._memo_f(b"port", local_ip, remote[0], remote[1].to_bytes(2, "big"))

    def cookie(
        self, local: tuple[bytes, int], remote: tuple[bytes, int], peer_isn: int, mss: int,
        now: float, options: int = NO_COOKIE_OPTIONS,
    ) -> int:  # fmt: skip
        """The ISN to answer a SYN with, when no state is kept for it. ``options`` are the
        bits :func:`cookie_options` made for the SYN-ACK's timestamp (or
        :data:`NO_COOKIE_OPTIONS` without timestamps)."""
        tick = int(now / _TICK)
        index = max(i for i, m in enumerate(COOKIE_MSS) if m <= max(mss, COOKIE_MSS[0]))
        h = self._cookie_hash(local, remote, peer_isn, tick, index, options)
        return ((tick & 0x1F) << 27) | (index << 24) | h

    def check_cookie(
        self, local: tuple[bytes, int], remote: tuple[bytes, int], peer_isn: int, cookie: int,
        now: float, ts_ecr: int | None = None,
    ) -> Cookie | None:  # fmt: skip
        """What a valid cookie carried, or None for a forged or stale one. ``ts_ecr`` is the
        returning ACK's timestamp echo (None when it has no timestamps)."""
        current = int(now / _TICK)
        age = (current - (cookie >> 27)) & 0x1F
        if age >= _MAX_AGE:
            return None
        options = NO_COOKIE_OPTIONS if ts_ecr is None else ts_ecr & _TS_MASK
        decoded = _decode_options(options)
        if decoded is None:
            return None
        # The hash covers the whole tick (not just the 5 bits carried), so a cookie is not
        # valid again when the counter wraps, the MSS index and the option bits, so neither
        # can be altered.
        index = (cookie >> 24) & 0x7
        h = self._cookie_hash(local, remote, peer_isn, current - age, index, options)
        if h != cookie & 0xFFFFFF:
            return None
        return decoded._replace(mss=COOKIE_MSS[index])

    def _cookie_hash(
        self,
        local: tuple[bytes, int],
        remote: tuple[bytes, int],
        peer_isn: int,
        tick: int,
        index: int,
        options: int = NO_COOKIE_OPTIONS,
    ) -> int:
        digest = self._f(
            b"cookie",
            local[0],
            local[1].to_bytes(2, "big"),
            remote[0],
            remote[1].to_bytes(2, "big"),
            peer_isn.to_bytes(4, "big"),
            tick.to_bytes(8, "big", signed=True),
            bytes((index, options)),
        )
        return digest & 0xFFFFFF
