"""Initial sequence numbers (RFC 6528) and SYN cookies.

RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M is a
timer ticking every 4 microseconds and F a keyed hash. Here F is BLAKE2s keyed with a secret
of the stack (drawn once, from the injected randomness), so ISNs are unpredictable to anyone
who does not see the connection, and still increase for one 4-tuple across incarnations.

SYN cookies (what RFC 4987 3.6 describes) let a listener whose SYN queue is full answer a SYN
without keeping state: the SYN-ACK's sequence number carries a coarse time, the MSS (as an
index into a small table) and a keyed hash of the 4-tuple, the time and the client's ISN.
A returning ACK whose number minus one is a valid cookie completes the handshake. Window
scaling, SACK and timestamps are not encoded, so such a connection runs without them.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

__all__ = ["COOKIE_MSS", "IsnGenerator", "Cookie"]

#: The MSS values a cookie can carry (3 bits), as Linux's msstab does for IPv4.
COOKIE_MSS = (536, 1300, 1440, 1460, 4312, 8960, 16344, 65495)
#: Cookie time ticks last 64 seconds; a cookie is valid in the tick it was made and the next.
_TICK = 64.0
_MAX_AGE = 2


class Cookie(NamedTuple):
    mss: int


class IsnGenerator:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the ISN secret needs at least 16 bytes")
        self._key = secret[:32]

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
        return self._f(b"ts", local_ip, remote_ip)

    def port_offset(self, local_ip: bytes, remote: tuple[bytes, int] | None) -> int:
        """RFC 6056 3.3.3: F(local address, remote address, remote port, secret)."""
        if remote is None:
            return self._f(b"port", local_ip)
        return self._f(b"port", local_ip, remote[0], remote[1].to_bytes(2, "big"))

    def cookie(
        self, local: tuple[bytes, int], remote: tuple[bytes, int], peer_isn: int, mss: int,
        now: float,
    ) -> int:  # fmt: skip
        """The ISN to answer a SYN with, when no state is kept for it."""
        tick = int(now / _TICK)
        index = max(i for i, m in enumerate(COOKIE_MSS) if m <= max(mss, COOKIE_MSS[0]))
        h = self._cookie_hash(local, remote, peer_isn, tick, index)
        return ((tick & 0x1F) << 27) | (index << 24) | h

    def check_cookie(
        self, local: tuple[bytes, int], remote: tuple[bytes, int], peer_isn: int, cookie: int,
        now: float,
    ) -> Cookie | None:  # fmt: skip
        """What a valid cookie carried, or None for a forged or stale one."""
        current = int(now / _TICK)
        age = (current - (cookie >> 27)) & 0x1F
        if age >= _MAX_AGE:
            return None
        # The hash covers the whole tick (not just the 5 bits carried), so a cookie is not
        # valid again when the counter wraps, and the MSS index, so it cannot be altered.
        index = (cookie >> 24) & 0x7
        if self._cookie_hash(local, remote, peer_isn, current - age, index) != cookie & 0xFFFFFF:
            return None
        return Cookie(COOKIE_MSS[index])

    def _cookie_hash(
        self,
        local: tuple[bytes, int],
        remote: tuple[bytes, int],
        peer_isn: int,
        tick: int,
        index: int,
    ) -> int:
        digest = self._f(
            b"cookie",
            local[0],
            local[1].to_bytes(2, "big"),
            remote[0],
            remote[1].to_bytes(2, "big"),
            peer_isn.to_bytes(4, "big"),
            tick.to_bytes(8, "big", signed=True),
            bytes((index,)),
        )
        return digest & 0xFFFFFF
