"""RFC 5681 4.1, restarting idle connections: "TCP SHOULD set cwnd to no more than RW before
beginning transmission if the TCP has not sent data in an interval exceeding the
retransmission timeout", RW = min(IW, cwnd). Two machines over a simulated wire, no event
loop.
"""

from __future__ import annotations

import pytest
from tcp_harness import TcpConfig, pair

from netstack.proto.tcp.congestion import initial_window

MSS = 1460
IW_SEGMENTS = initial_window(MSS) // MSS


def burst_after(congestion: str, idle: float, sack: bool = False) -> tuple[int, int, int]:
    """A transfers 2 MiB to B, sits idle for ``idle`` seconds, then writes 4 MiB at once.
    Returns A's cwnd before the idle period, B's window, and the data segments A sent at
    that instant. ``sack``: with SACK and timestamps (RACK-TLP)."""
    options = dict(timestamps=sack, sack=sack)
    wire = pair(TcpConfig(congestion=congestion, **options), TcpConfig(**options), delay=0.01)
    a, b = wire.ends
    a.send(bytes(2 * 1024 * 1024), wire.now)
    wire.run_until(lambda: a.snd_una == a.snd_max and a.unsent == 0, until=60.0)
    assert a.snd_una == a.snd_max
    cwnd = a.cc.cwnd
    done = wire.now
    wire.run(until=done + idle)  # delayed ACKs and the like settle; no data is sent
    at = wire.now = done + idle
    a.send(bytes(4 * 1024 * 1024), at)
    wire.collect()
    burst = [s for t, side, s in wire.log if side == 0 and t == at and s.payload]
    return cwnd, a.snd_wnd, len(burst)


@pytest.mark.parametrize("sack", [False, True], ids=["plain", "sack-ts"])
@pytest.mark.parametrize("congestion", ["newreno", "cubic"])
def test_a_write_after_ten_seconds_idle_starts_with_the_restart_window(
    congestion: str, sack: bool
) -> None:
    """The reported case: after 10 s idle one 4 MB write left as 2 740 segments in one burst;
    RFC 5681 allows RW = min(IW, cwnd), 10 segments."""
    cwnd, _, burst = burst_after(congestion, 10.0, sack)
    assert cwnd > 4 * initial_window(MSS)  # the transfer had opened the window
    assert burst == IW_SEGMENTS


@pytest.mark.parametrize("congestion", ["newreno", "cubic"])
def test_a_pause_shorter_than_the_rto_keeps_the_window(congestion: str) -> None:
    cwnd, rwnd, burst = burst_after(congestion, 0.1)  # the RTO is at least 200 ms
    assert burst * MSS >= min(cwnd, rwnd) - MSS
    assert burst > 10 * IW_SEGMENTS
