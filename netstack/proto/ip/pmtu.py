"""The path MTU per destination, for IPv4 (RFC 1191) and IPv6 (RFC 8201): lowered by an
ICMP "fragmentation needed" or an ICMPv6 Packet Too Big, never raised by one, forgotten after
a timeout so that a larger MTU is tried again, and bounded in size.

RFC 1191 5 / RFC 8201 5.2: the estimate belongs to the path (here: the destination), so a new
connection to a destination whose path is narrower than the link starts with segments that
fit, instead of losing its first ones again. RFC 1191 6.3 / RFC 8201 5.3: an estimate that
has been lowered is raised again after some time; both suggest 10 minutes.
"""

from __future__ import annotations

__all__ = ["PathMtuCache"]


class PathMtuCache:
    """Path MTU estimates by destination address (a machine: time is passed in).

    Args:
        floor: the least MTU an ICMP message can lower an estimate to (68 for IPv4, RFC 1191
            3 / RFC 791; 1280 for IPv6, RFC 8201 4).
        timeout: seconds an estimate is kept.
        entries: the most destinations remembered; the oldest estimate goes first.
    """

    __slots__ = ("_entries", "_floor", "_max", "_timeout")

    def __init__(self, floor: int, timeout: float, entries: int) -> None:
        self._floor = floor
        self._timeout = timeout
        self._max = entries
        self._entries: dict[bytes, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, dst: bytes, link_mtu: int, now: float | None = None) -> int:
        """The MTU towards ``dst`` over a link of ``link_mtu``: the link's, or less when a
        router said so and the estimate has not expired (without ``now``, not checked)."""
        entry = self._entries.get(dst)
        if entry is None:
            return link_mtu
        mtu, until = entry
        if now is not None and now >= until:
            del self._entries[dst]  # RFC 1191 6.3, RFC 8201 5.3: try the link MTU again
            return link_mtu
        return min(mtu, link_mtu)

    def lower(self, dst: bytes, mtu: int, link_mtu: int, now: float) -> int | None:
        """A router said only ``mtu`` bytes pass towards ``dst``: lower the estimate.

        Returns:
            The new path MTU, or None when nothing changed (an ICMP message never raises an
            estimate: RFC 1191 6.3, RFC 8201 4).
        """
        mtu = max(mtu, self._floor)
        if mtu >= self.get(dst, link_mtu, now):
            return None
        if dst not in self._entries and len(self._entries) >= self._max:
            oldest = min(self._entries, key=lambda k: self._entries[k][1])
            del self._entries[oldest]
        self._entries[dst] = (mtu, now + self._timeout)
        return mtu
