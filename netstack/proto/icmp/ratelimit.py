"""A token bucket for rate-limiting ICMP error messages (RFC 1812 4.3.2.8, RFC 4443 2.4(f)).

RFC 1122 3.2.2 lets a host limit the rate of the ICMP errors it sends; Linux limits them with a
token bucket (``icmp_msgs_per_sec``, ``icmp_msgs_burst``), and so does netstack.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; each message costs one."""

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last: float | None = None
        self.limited = 0

    def allow(self, now: float) -> bool:
        """Take a token if there is one; count the refusal otherwise."""
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now if self._last is None else max(self._last, now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.limited += 1
        return False
