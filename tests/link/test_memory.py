"""In-memory links (netstack.link.memory) and the shared link machinery (netstack.link.base):
MemoryLink.pair, the learning Switch, seeded Impairments, MacAddress and QueuedTransmitter.

Timing is only ever checked as a lower bound ("not before the delay"); everything else is
ordering, presence and counters."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import FrozenInstanceError

import pytest

from netstack.errors import LinkError
from netstack.link.base import (
    Buffer,
    FrameCallback,
    Link,
    LinkStats,
    MacAddress,
    QueuedTransmitter,
)
from netstack.link.memory import Impairment, MemoryLink, Switch

MAC_A = MacAddress("02:00:00:00:00:0a")
MAC_B = MacAddress("02:00:00:00:00:0b")
MAC_C = MacAddress("02:00:00:00:00:0c")
BROADCAST = b"\xff" * 6
ETHERTYPE = b"\x88\xb5"  # IEEE 802 local experimental


def frame(dst: bytes, src: bytes, payload: bytes = b"", size: int = 60) -> bytes:
    """An Ethernet frame of at least ``size`` bytes (padded with zeros)."""
    raw = dst + src + ETHERTYPE + payload
    return raw + bytes(max(0, size - len(raw)))


def numbered(i: int, dst: bytes = MAC_B, src: bytes = MAC_A, size: int = 60) -> bytes:
    return frame(dst, src, i.to_bytes(4, "big"), size)


def number(data: bytes) -> int:
    return int.from_bytes(data[14:18], "big")


class Sink:
    """A listener that records each frame (copied) and when it arrived."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.times: list[float] = []
        self.loop = asyncio.get_running_loop()

    def __call__(self, view: memoryview) -> None:
        self.frames.append(bytes(view))
        self.times.append(self.loop.time())

    async def wait_for(self, n: int, timeout: float = 5.0) -> None:
        deadline = self.loop.time() + timeout
        while len(self.frames) < n:
            if self.loop.time() > deadline:
                raise AssertionError(f"got {len(self.frames)} frames, expected {n}")
            await asyncio.sleep(0.001)


async def settle(turns: int = 5) -> None:
    """Let the loop run the callbacks that are ready (immediate deliveries)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def quiet(link_sinks: Sequence[Sink], idle: float = 0.05, timeout: float = 5.0) -> None:
    """Wait until no frame has arrived for ``idle`` seconds (delayed frames are all in)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = -1
    while loop.time() < deadline:
        count = sum(len(s.frames) for s in link_sinks)
        if count == last:
            return
        last = count
        await asyncio.sleep(idle)
    raise AssertionError("frames kept arriving")


class Listening:
    """Links with a listener each, disconnected (and their listen tasks ended) on exit."""

    def __init__(self, *links: MemoryLink) -> None:
        self.links = links
        self.tasks: list[asyncio.Task[None]] = []
        self.sinks: list[Sink] = []

    async def __aenter__(self) -> list[Sink]:
        for link in self.links:
            sink = Sink()
            self.sinks.append(sink)
            self.tasks.append(asyncio.create_task(link.listen(sink)))
        await settle()
        return self.sinks

    async def __aexit__(self, *exc: object) -> None:
        for link in self.links:
            await link.disconnect()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 5.0)


# -- MemoryLink.pair --------------------------------------------------------------------------


async def test_pair_delivers_both_ways_in_order() -> None:
    a, b = MemoryLink.pair()
    async with Listening(a, b) as (sink_a, sink_b):
        to_b = [numbered(i, MAC_B, a.mac) for i in range(50)]
        to_a = [numbered(1000 + i, MAC_A, b.mac) for i in range(50)]
        for x, y in zip(to_b, to_a, strict=True):
            await a.write(x)
            await b.write(y)
        await sink_a.wait_for(50)
        await sink_b.wait_for(50)
        await settle()
        assert sink_b.frames == to_b
        assert sink_a.frames == to_a  # nothing echoed back to the sender


async def test_delivery_happens_on_the_loop_not_inside_the_send() -> None:
    a, b = MemoryLink.pair()
    async with Listening(a, b) as (_, sink_b):
        a.transmit(numbered(1))
        assert sink_b.frames == []
        await settle()
        assert [number(f) for f in sink_b.frames] == [1]


async def test_write_writev_transmit_are_equivalent() -> None:
    a, b = MemoryLink.pair()
    data = numbered(7, size=100)
    async with Listening(a, b) as (_, sink_b):
        await a.write(data)
        await a.write(bytearray(data))
        await a.write(memoryview(data))
        await a.writev([data[:6], memoryview(data)[6:14], bytearray(data[14:50]), data[50:]])
        await a.writev([data])
        a.transmit(data)
        await sink_b.wait_for(6)
        await settle()
        assert sink_b.frames == [data] * 6  # writev sends ONE frame gathered from its parts
    assert a.stats().tx_packets == 6


async def test_stats_count_both_ends_and_reset() -> None:
    a, b = MemoryLink.pair()
    sizes = [60, 100, 1514, 14]
    async with Listening(a, b) as (_, sink_b):
        for i, n in enumerate(sizes):
            await a.write(numbered(i, size=n)[:n])
        await sink_b.wait_for(len(sizes))
        sa, sb = a.stats(), b.stats()
        assert (sa.tx_packets, sa.tx_bytes, sa.rx_packets, sa.rx_bytes) == (4, sum(sizes), 0, 0)
        assert (sb.rx_packets, sb.rx_bytes, sb.tx_packets, sb.tx_bytes) == (4, sum(sizes), 0, 0)
        assert sa.rx_dropped == sa.tx_dropped == sb.rx_dropped == sb.tx_dropped == 0
        assert sb.as_dict() == {
            "rx_packets": 4,
            "rx_bytes": sum(sizes),
            "rx_dropped": 0,
            "tx_packets": 0,
            "tx_bytes": 0,
            "tx_dropped": 0,
        }
        # stats() is a snapshot, not the live counters.
        sa.tx_packets = 999
        assert a.stats().tx_packets == 4
        a.reset_stats()
        b.reset_stats()
        assert a.stats() == LinkStats() and b.stats() == LinkStats()
        await a.write(numbered(9))
        await sink_b.wait_for(5)
        assert a.stats().tx_packets == 1 and b.stats().rx_packets == 1


@pytest.mark.parametrize("mtu", [1500, 68, 9000])
async def test_frame_size_limits(mtu: int) -> None:
    a, b = MemoryLink.pair(mtu=mtu)
    async with Listening(a, b) as (_, sink_b):
        longest = mtu + 14 + 4  # the Ethernet header and room for one 802.1Q tag
        for bad in (b"", b"x" * 13, b"x" * (longest + 1)):
            with pytest.raises(LinkError):
                await a.write(bad)
            with pytest.raises(LinkError):
                await a.writev([bad[:5], bad[5:]])
            with pytest.raises(LinkError):
                a.transmit(bad)
        await a.write(frame(MAC_B, MAC_A, size=14)[:14])
        await a.writev([b"x" * (longest - 1), b"y"])
        await sink_b.wait_for(2)
        assert [len(f) for f in sink_b.frames] == [14, longest]
    assert a.stats().tx_packets == 2  # refused frames are not counted as sent


@pytest.mark.parametrize("mtu", [0, 67, 65536])
def test_mtu_is_checked(mtu: int) -> None:
    with pytest.raises(ValueError):
        MemoryLink.pair(mtu=mtu)
    with pytest.raises(ValueError):
        MemoryLink(mtu=mtu)


async def test_disconnect_ends_listen_and_fails_writes() -> None:
    a, b = MemoryLink.pair()
    sink = Sink()
    task = asyncio.create_task(b.listen(sink))
    await settle()
    assert not task.done()
    await b.disconnect()
    await asyncio.wait_for(task, 5.0)  # listen returned
    assert b.closed
    with pytest.raises(LinkError):
        await b.write(numbered(1))
    with pytest.raises(LinkError):
        await b.writev([numbered(1)])
    with pytest.raises(LinkError):
        b.transmit(numbered(1))
    with pytest.raises(LinkError):
        await b.listen(Sink())
    await b.disconnect()  # twice is fine
    # The peer can still send; the frames are dropped (and counted) at the closed end.
    await a.write(numbered(2))
    await settle()
    assert sink.frames == []
    assert b.stats().rx_dropped == 1
    assert a.stats().tx_packets == 1
    await a.disconnect()


async def test_disconnect_drops_frames_not_yet_delivered() -> None:
    a, b = MemoryLink.pair()
    sink = Sink()
    task = asyncio.create_task(b.listen(sink))
    await settle()
    a.transmit(numbered(1))
    await b.disconnect()
    await asyncio.wait_for(task, 5.0)
    await settle()
    assert sink.frames == []
    await a.disconnect()


async def test_frames_without_a_listener_are_counted_as_dropped() -> None:
    a, b = MemoryLink.pair()
    await a.write(numbered(1))
    await a.write(numbered(2))
    await settle()
    assert b.stats().rx_dropped == 2
    assert b.stats().rx_packets == 0
    assert a.stats().tx_packets == 2
    # They are gone, not held for a later listener.
    async with Listening(b) as (sink,):
        await a.write(numbered(3))
        await sink.wait_for(1)
        await settle()
        assert [number(f) for f in sink.frames] == [3]
    await a.disconnect()


async def test_one_listener_at_a_time_and_relisten_after_cancel() -> None:
    a, b = MemoryLink.pair()
    first = Sink()
    task = asyncio.create_task(b.listen(first))
    await settle()
    with pytest.raises(LinkError):
        await b.listen(Sink())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await a.write(numbered(1))
    await settle()
    assert b.stats().rx_dropped == 1
    async with Listening(b) as (second,):
        await a.write(numbered(2))
        await second.wait_for(1)
    assert first.frames == []
    assert [number(f) for f in second.frames] == [2]
    await a.disconnect()


async def test_a_raising_listener_does_not_break_the_link() -> None:
    a, b = MemoryLink.pair()
    got: list[int] = []

    def on_frame(view: memoryview) -> None:
        got.append(number(bytes(view)))
        if len(got) == 1:
            raise RuntimeError("listener bug")

    task = asyncio.create_task(b.listen(on_frame))
    await settle()
    for i in range(3):
        a.transmit(numbered(i))
    await settle()
    assert got == [0, 1, 2]
    await b.disconnect()
    await asyncio.wait_for(task, 5.0)


async def test_memoryview_given_to_the_listener_is_read_only() -> None:
    a, b = MemoryLink.pair()
    seen: list[bool] = []
    task = asyncio.create_task(b.listen(lambda v: seen.append(v.readonly)))
    await settle()
    a.transmit(bytearray(numbered(1)))
    await settle()
    assert seen == [True]
    await b.disconnect()
    await task


async def test_rx_queue_is_bounded() -> None:
    a, b = MemoryLink.pair()
    async with Listening(b) as (sink,):
        # All sent before the loop gets a turn: the receive queue (4096 by default) fills.
        for i in range(5000):
            a.transmit(numbered(i))
        await settle()
        await quiet([sink])
        assert len(sink.frames) == 4096
        assert [number(f) for f in sink.frames] == list(range(4096))
        assert b.stats().rx_dropped == 5000 - 4096
        assert b.stats().rx_packets == 4096
        assert a.stats().tx_dropped == 0
    await a.disconnect()


async def test_unplugged_link_counts_tx_dropped() -> None:
    link = MemoryLink()
    await link.write(numbered(1))
    assert link.stats().tx_packets == 1
    assert link.stats().tx_dropped == 1


# -- Switch -----------------------------------------------------------------------------------


def ports(switch: Switch, n: int) -> list[MemoryLink]:
    macs = [MacAddress(bytes([2, 0, 0, 0, 1, i])) for i in range(n)]
    return [switch.port(mac=m) for m in macs]


async def test_switch_floods_unknown_then_forwards_after_learning() -> None:
    switch = Switch()
    p = ports(switch, 4)
    async with Listening(*p) as sinks:
        # p0 -> p1, p1 unknown: flooded to every port but p0.
        p[0].transmit(numbered(1, p[1].mac, p[0].mac))
        await settle()
        assert [len(s.frames) for s in sinks] == [0, 1, 1, 1]
        # p1 -> p0: p0 was learnt, so only p0 gets it.
        p[1].transmit(numbered(2, p[0].mac, p[1].mac))
        await settle()
        assert [len(s.frames) for s in sinks] == [1, 1, 1, 1]
        # p0 -> p1: now p1 is known too.
        p[0].transmit(numbered(3, p[1].mac, p[0].mac))
        await settle()
        assert [len(s.frames) for s in sinks] == [1, 2, 1, 1]
        assert [number(f) for f in sinks[1].frames] == [1, 3]
        assert number(sinks[0].frames[0]) == 2
        assert switch.stats.flooded == 1
        assert switch.stats.forwarded == 2
        assert switch.stats.learned == 2
        assert switch.ports == p


@pytest.mark.parametrize(
    "dst",
    [BROADCAST, bytes.fromhex("01005e000001"), bytes.fromhex("333300000001")],
)
async def test_switch_floods_group_frames_but_never_back(dst: bytes) -> None:
    switch = Switch()
    p = ports(switch, 3)
    async with Listening(*p) as sinks:
        # Let the switch learn every port first: group frames are flooded anyway.
        for i, link in enumerate(p):
            link.transmit(numbered(i, BROADCAST, link.mac))
        await settle()
        for s in sinks:
            s.frames.clear()
        for i, link in enumerate(p):
            link.transmit(numbered(10 + i, dst, link.mac))
        await settle()
        for i, s in enumerate(sinks):
            assert sorted(number(f) for f in s.frames) == [10 + j for j in range(3) if j != i]


async def test_switch_filters_frames_for_the_ingress_port() -> None:
    switch = Switch()
    p = ports(switch, 3)
    async with Listening(*p) as sinks:
        # Two hosts behind port 0 (as behind a hub): C is learnt on port 0.
        p[0].transmit(numbered(1, BROADCAST, MAC_C))
        await settle()
        p[0].transmit(numbered(2, MAC_C, p[0].mac))
        await settle()
        assert [[number(f) for f in s.frames] for s in sinks] == [[], [1], [1]]
        assert switch.stats.filtered == 1


async def test_switch_does_not_learn_group_source_addresses() -> None:
    switch = Switch()
    p = ports(switch, 3)
    group = bytes.fromhex("01005e000001")
    async with Listening(*p) as sinks:
        p[0].transmit(numbered(1, BROADCAST, group))
        await settle()
        assert switch.stats.learned == 0
        # A frame to that address is a group frame, flooded, not sent to port 0 alone.
        p[1].transmit(numbered(2, group, p[1].mac))
        await settle()
        assert [number(f) for f in sinks[0].frames] == [2]
        assert [number(f) for f in sinks[2].frames] == [1, 2]


async def test_switch_learning_follows_a_host_that_moves() -> None:
    switch = Switch()
    p = ports(switch, 3)
    async with Listening(*p) as sinks:
        p[0].transmit(numbered(1, BROADCAST, MAC_C))  # C behind port 0
        p[1].transmit(numbered(2, BROADCAST, MAC_C))  # C moved behind port 1
        await settle()
        p[2].transmit(numbered(3, MAC_C, p[2].mac))
        await settle()
        assert 3 in [number(f) for f in sinks[1].frames]
        assert 3 not in [number(f) for f in sinks[0].frames]


async def test_switch_entries_age_out() -> None:
    switch = Switch(aging=0.3)
    p = ports(switch, 3)
    async with Listening(*p) as sinks:
        p[1].transmit(numbered(1, BROADCAST, p[1].mac))
        await settle()
        p[0].transmit(numbered(2, p[1].mac, p[0].mac))
        await settle()
        assert [number(f) for f in sinks[2].frames] == [1]  # forwarded, not flooded
        await asyncio.sleep(0.4)
        p[0].transmit(numbered(3, p[1].mac, p[0].mac))
        await settle()
        assert [number(f) for f in sinks[2].frames] == [1, 3]  # aged out: flooded again
        assert [number(f) for f in sinks[1].frames] == [2, 3]


async def test_switch_port_mtu() -> None:
    switch = Switch(mtu=100)
    small = switch.port()
    big = switch.port(mtu=1500)
    assert small.mtu == 100 and big.mtu == 1500
    with pytest.raises(LinkError):
        small.transmit(numbered(1, size=119))


# -- Impairment -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"loss": -0.1},
        {"loss": 1.5},
        {"duplicate": 2.0},
        {"reorder": -1.0},
        {"corrupt": 1.01},
        {"delay": -0.001},
        {"jitter": -1.0},
        {"reorder_delay": -0.5},
        {"rate": 0},
        {"rate": -100.0},
        {"limit": 0},
    ],
)
def test_impairment_arguments_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Impairment(**kwargs)  # type: ignore[arg-type]


def test_impairment_edges_are_accepted() -> None:
    Impairment(loss=0.0, duplicate=1.0, reorder=1.0, corrupt=1.0, delay=0.0, rate=1.0, limit=1)


def test_impairment_seed_is_chosen_and_kept() -> None:
    chosen = Impairment()
    assert isinstance(chosen.seed, int) and 0 <= chosen.seed < 2**32
    assert len({Impairment().seed for _ in range(8)}) > 1
    assert Impairment(seed=1234).seed == 1234
    assert Impairment(seed=0).seed == 0  # a falsy seed is still a seed
    with pytest.raises(FrozenInstanceError):
        chosen.seed = 5  # type: ignore[misc]


async def run_impaired(
    impairment: Impairment, n: int, size: int = 60, both: bool = False
) -> tuple[list[bytes], list[bytes], MemoryLink, MemoryLink]:
    """Send ``n`` numbered frames a -> b in one burst through a pair with ``impairment``;
    return (sent, delivered, a, b) once everything has arrived."""
    a, b = MemoryLink.pair(impairment=impairment)
    sent = [numbered(i, size=size) for i in range(n)]
    async with Listening(a, b) as (_, sink_b):
        for f in sent:
            a.transmit(f)
        await settle()
        await quiet([sink_b], idle=max(0.1, 3 * (impairment.delay + impairment.jitter)))
    return sent, sink_b.frames, a, b


async def test_impairment_is_deterministic_for_a_seed() -> None:
    mixed = {"loss": 0.1, "duplicate": 0.1, "reorder": 0.1, "corrupt": 0.1}
    _, first, a1, _ = await run_impaired(Impairment(**mixed, seed=4242), 400)
    _, second, a2, _ = await run_impaired(Impairment(**mixed, seed=4242), 400)
    _, other, _, _ = await run_impaired(Impairment(**mixed, seed=4243), 400)
    assert first == second
    assert first != other
    s1, s2 = a1.impairment_stats()["tx"], a2.impairment_stats()["tx"]
    assert s1 == s2
    # Every kind of impairment happened, so the comparison covered all of them.
    assert s1.lost and s1.duplicated and s1.reordered and s1.corrupted
    assert s1.frames == 400


async def test_a_chosen_seed_replays_the_run() -> None:
    unseeded = Impairment(loss=0.3, duplicate=0.1, reorder=0.1, corrupt=0.1)
    _, first, _, _ = await run_impaired(unseeded, 200)
    assert unseeded.seed is not None
    _, replay, _, _ = await run_impaired(
        Impairment(loss=0.3, duplicate=0.1, reorder=0.1, corrupt=0.1, seed=unseeded.seed), 200
    )
    assert replay == first, f"seed {unseeded.seed} did not replay"


async def test_no_impairment_is_transparent() -> None:
    sent, got, a, _ = await run_impaired(Impairment(seed=1), 300)
    assert got == sent
    stats = a.impairment_stats()["tx"]
    assert (stats.frames, stats.lost, stats.duplicated, stats.reordered, stats.corrupted) == (
        300,
        0,
        0,
        0,
        0,
    )


async def test_loss_rate() -> None:
    imp = Impairment(loss=0.25, seed=11)
    sent, got, a, _ = await run_impaired(imp, 2000)
    lost = a.impairment_stats()["tx"].lost
    assert 350 <= lost <= 650, f"seed {imp.seed}: {lost} of 2000 lost at p=0.25"
    assert len(got) == 2000 - lost
    assert a.stats().tx_dropped == lost
    # What arrives is intact and in order.
    numbers = [number(f) for f in got]
    assert numbers == sorted(numbers)
    assert all(f == sent[number(f)] for f in got)


async def test_duplicate_rate() -> None:
    imp = Impairment(duplicate=0.2, seed=12)
    sent, got, a, _ = await run_impaired(imp, 2000)
    duplicated = a.impairment_stats()["tx"].duplicated
    assert 250 <= duplicated <= 550, f"seed {imp.seed}: {duplicated} duplicates at p=0.2"
    assert len(got) == 2000 + duplicated
    counts = collections.Counter(number(f) for f in got)
    assert set(counts) == set(range(2000))
    assert sum(1 for c in counts.values() if c == 2) == duplicated
    assert max(counts.values()) == 2


async def test_corrupt_flips_exactly_one_bit() -> None:
    imp = Impairment(corrupt=0.3, seed=13)
    sent, got, a, _ = await run_impaired(imp, 2000, size=100)
    assert len(got) == len(sent)
    flipped = 0
    for original, delivered in zip(sent, got, strict=True):
        assert len(delivered) == len(original)
        bits = sum(bin(x ^ y).count("1") for x, y in zip(original, delivered, strict=True))
        assert bits in (0, 1), f"seed {imp.seed}: {bits} bits changed"
        flipped += bits
    assert flipped == a.impairment_stats()["tx"].corrupted
    assert 450 <= flipped <= 750, f"seed {imp.seed}: {flipped} corrupted at p=0.3"


async def test_reorder_changes_order_but_keeps_every_frame() -> None:
    imp = Impairment(reorder=0.2, seed=14)
    sent, got, a, _ = await run_impaired(imp, 300)
    assert sorted(got) == sorted(sent)
    assert got != sent, f"seed {imp.seed}: nothing was reordered"
    reordered = a.impairment_stats()["tx"].reordered
    assert 20 <= reordered <= 110
    numbers = [number(f) for f in got]
    late = sum(1 for i in range(1, len(numbers)) if numbers[i] < numbers[i - 1])
    assert late >= 1


async def test_delay_delays_and_keeps_order() -> None:
    a, b = MemoryLink.pair(impairment=Impairment(delay=0.2, seed=15))
    async with Listening(a, b) as (_, sink):
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(3):
            a.transmit(numbered(i))
        await settle()
        assert sink.frames == []  # not delivered at once
        await sink.wait_for(3)
        assert [number(f) for f in sink.frames] == [0, 1, 2]
        assert all(t >= start + 0.2 - 0.001 for t in sink.times)


async def test_jitter_keeps_order() -> None:
    imp = Impairment(delay=0.02, jitter=0.015, seed=16)
    sent, got, _, _ = await run_impaired(imp, 100)
    assert got == sent


async def test_order_holds_when_the_loop_is_late() -> None:
    # A frame held by jitter whose timer the busy loop has not run yet still leaves before a
    # frame sent after it that is already due.
    for seed in range(8):
        a, b = MemoryLink.pair(impairment=Impairment(jitter=0.005, seed=seed))
        async with Listening(a, b) as (_, sink):
            a.transmit(numbered(0))
            time.sleep(0.02)  # the loop is busy past frame 0's due time
            a.transmit(numbered(1))
            await sink.wait_for(2)
            assert [number(f) for f in sink.frames] == [0, 1], f"seed {seed}"


async def test_rate_spaces_frames() -> None:
    # 100-byte frames at 80 kbit/s: one every 10 ms.
    a, b = MemoryLink.pair(impairment=Impairment(rate=80_000, seed=17))
    async with Listening(a, b) as (_, sink):
        start = asyncio.get_running_loop().time()
        for i in range(5):
            a.transmit(numbered(i, size=100))
        await sink.wait_for(5)
        assert [number(f) for f in sink.frames] == list(range(5))
        for k, t in enumerate(sink.times, start=1):
            assert t >= start + k * 0.010 - 0.001, f"frame {k} arrived too early"


async def test_limit_drops_frames_beyond_the_queue() -> None:
    imp = Impairment(delay=0.05, limit=5, seed=18)
    sent, got, a, _ = await run_impaired(imp, 12)
    assert got == sent[:5]
    stats = a.impairment_stats()["tx"]
    assert stats.overflowed == 7
    assert a.stats().tx_dropped == 7
    # Once the queue has drained there is room again.
    assert stats.frames == 12


async def test_pair_impairment_applies_to_both_directions() -> None:
    a, b = MemoryLink.pair(impairment=Impairment(loss=1.0, seed=19))
    async with Listening(a, b) as (sink_a, sink_b):
        a.transmit(numbered(1))
        b.transmit(numbered(2, MAC_A, MAC_B))
        await settle()
        assert sink_a.frames == [] and sink_b.frames == []
        assert a.impairment_stats()["tx"].lost == 1
        assert b.impairment_stats()["tx"].lost == 1
        assert set(a.impairment_stats()) == {"tx"}


async def test_pair_directions_have_their_own_random_streams() -> None:
    a, b = MemoryLink.pair(impairment=Impairment(loss=0.5, seed=20))
    async with Listening(a, b) as (sink_a, sink_b):
        for i in range(200):
            a.transmit(numbered(i))
            b.transmit(numbered(i, MAC_A, MAC_B))
        await settle()
        assert [number(f) for f in sink_a.frames] != [number(f) for f in sink_b.frames]


async def test_impairment_can_be_removed() -> None:
    a, b = MemoryLink.pair(impairment=Impairment(loss=1.0, seed=21))
    a.impairment = None
    assert a.impairment is None and a.impairment_stats() == {}
    async with Listening(a, b) as (_, sink):
        a.transmit(numbered(1))
        await settle()
        assert len(sink.frames) == 1


async def test_switch_port_impairment_applies_both_directions() -> None:
    switch = Switch()
    lossy = switch.port(mac=MAC_A, impairment=Impairment(loss=1.0, seed=22))
    clean = switch.port(mac=MAC_B)
    async with Listening(lossy, clean) as (sink_lossy, sink_clean):
        lossy.transmit(numbered(1, BROADCAST, MAC_A))
        clean.transmit(numbered(2, BROADCAST, MAC_B))
        await settle()
        assert sink_lossy.frames == [] and sink_clean.frames == []
        stats = lossy.impairment_stats()
        assert set(stats) == {"tx", "rx"}
        assert stats["tx"].lost == 1 and stats["rx"].lost == 1
        assert lossy.stats().tx_dropped == 1
        assert lossy.stats().rx_dropped == 1
        assert clean.impairment_stats() == {}


async def test_switch_port_corruption_hits_each_direction_once() -> None:
    switch = Switch()
    noisy = switch.port(mac=MAC_A, impairment=Impairment(corrupt=1.0, seed=23))
    clean = switch.port(mac=MAC_B)
    async with Listening(noisy, clean) as (sink_noisy, sink_clean):
        out = numbered(1, BROADCAST, MAC_A, size=200)
        back = numbered(2, BROADCAST, MAC_B, size=200)
        noisy.transmit(out)
        clean.transmit(back)
        await settle()
        assert len(sink_clean.frames) == 1 and len(sink_noisy.frames) == 1

        def bits(x: bytes, y: bytes) -> int:
            return sum(bin(p ^ q).count("1") for p, q in zip(x, y, strict=True))

        assert bits(sink_clean.frames[0], out) == 1
        assert bits(sink_noisy.frames[0], back) == 1


# -- MacAddress -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["02:00:5e:10:00:01", "02-00-5E-10-00-01", "2:0:5e:10:0:1", "02:00:5E:10:00:01"],
)
def test_mac_address_parses(text: str) -> None:
    mac = MacAddress(text)
    assert mac == bytes([0x02, 0x00, 0x5E, 0x10, 0x00, 0x01])
    assert str(mac) == "02:00:5e:10:00:01"
    assert repr(mac) == "MacAddress('02:00:5e:10:00:01')"
    assert isinstance(mac, bytes) and len(mac) == 6


def test_mac_address_from_bytes() -> None:
    raw = bytes.fromhex("aabbccddeeff")
    for value in (raw, bytearray(raw), memoryview(raw)):
        assert MacAddress(value) == raw
    assert str(MacAddress(raw)) == "aa:bb:cc:dd:ee:ff"
    assert MacAddress(MacAddress(raw)) == raw


@pytest.mark.parametrize(
    "value",
    [
        "",
        "02:00:5e:10:00",
        "02:00:5e:10:00:01:02",
        "02:00:5e:10:00:zz",
        "002:00:5e:10:00:01",
        "02::5e:10:00:01",
        "02:00:5e:10:00:01:",
        "0200.5e10.0001",
        b"\x02\x00\x5e\x10\x00",
        b"\x02\x00\x5e\x10\x00\x01\x02",
        b"",
    ],
)
def test_mac_address_rejects(value: str | bytes) -> None:
    with pytest.raises(ValueError):
        MacAddress(value)


@pytest.mark.parametrize("text", ["+2:00:5e:10:00:01", " 2:00:5e:10:00:01", "02:00:5e:10:00:1 "])
def test_mac_address_rejects_non_hex_characters(text: str) -> None:
    # Each part must be one or two hex digits; a sign or a space is not one.
    with pytest.raises(ValueError):
        MacAddress(text)


def test_mac_address_kinds() -> None:
    assert MacAddress(BROADCAST).is_broadcast and MacAddress(BROADCAST).is_multicast
    assert MacAddress("01:00:5e:00:00:01").is_multicast
    assert not MacAddress("01:00:5e:00:00:01").is_broadcast
    assert not MAC_A.is_multicast and not MAC_A.is_broadcast


def test_random_mac_is_locally_administered_unicast() -> None:
    macs = [MacAddress.random() for _ in range(200)]
    for mac in macs:
        assert isinstance(mac, MacAddress) and len(mac) == 6
        assert mac[0] & 0x01 == 0, f"{mac} is a group address"
        assert mac[0] & 0x02 == 0x02, f"{mac} is not locally administered"
    assert len(set(macs)) > 190


def test_links_get_random_macs_by_default() -> None:
    a, b = MemoryLink.pair()
    assert a.mac != b.mac
    assert not a.mac.is_multicast and a.mac[0] & 0x02
    assert MemoryLink(mac=MAC_C).mac == MAC_C


# -- QueuedTransmitter over a Link without transmit --------------------------------------------


class AsyncOnlyLink:
    """Implements only the Link protocol: async write/writev/listen/disconnect, stats."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.mac = MacAddress("02:00:00:00:00:99")
        self.mtu = 1500
        self.written: list[bytes] = []
        self.fail_on = fail_on
        self._stats = LinkStats()
        self._closed: asyncio.Event | None = None

    async def write(self, frame: Buffer) -> None:
        await asyncio.sleep(0)  # a real link would wait for the device
        if self.fail_on is not None and len(self.written) == self.fail_on:
            raise LinkError("device went away")
        self.written.append(bytes(frame))
        self._stats.tx_packets += 1

    async def writev(self, parts: Sequence[Buffer]) -> None:
        await self.write(b"".join(parts))

    async def listen(self, on_frame: FrameCallback) -> None:
        self._closed = asyncio.Event()
        await self._closed.wait()

    def stats(self) -> LinkStats:
        return LinkStats(**self._stats.as_dict())

    def reset_stats(self) -> None:
        self._stats = LinkStats()

    async def disconnect(self) -> None:
        if self._closed is not None:
            self._closed.set()


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


async def test_async_only_link_satisfies_the_protocol() -> None:
    link = AsyncOnlyLink()
    assert isinstance(link, Link)
    assert not hasattr(link, "transmit")
    assert isinstance(MemoryLink(), Link)


async def test_queued_transmitter_writes_in_order() -> None:
    link = AsyncOnlyLink()
    qt = QueuedTransmitter(link)
    frames = [numbered(i) for i in range(20)]
    for f in frames[:10]:
        qt.transmit(f)
    await wait_until(lambda: len(link.written) == 10)
    for f in frames[10:]:
        qt.transmit(bytearray(f))
    await wait_until(lambda: len(link.written) == 20)
    assert link.written == frames
    assert qt.dropped == 0 and qt.error is None
    await qt.close()


async def test_queued_transmitter_drops_when_full() -> None:
    link = AsyncOnlyLink()
    qt = QueuedTransmitter(link, limit=3)
    for i in range(5):
        qt.transmit(numbered(i))  # no await: the writer task has not run yet
    assert qt.dropped == 2
    await wait_until(lambda: len(link.written) == 3)
    await settle()
    assert [number(f) for f in link.written] == [0, 1, 2]
    await qt.close()


async def test_queued_transmitter_reports_a_write_error_on_the_next_transmit() -> None:
    link = AsyncOnlyLink(fail_on=2)
    qt = QueuedTransmitter(link)
    for i in range(5):
        qt.transmit(numbered(i))
    await wait_until(lambda: qt.error is not None)
    assert isinstance(qt.error, LinkError)
    with pytest.raises(LinkError):
        qt.transmit(numbered(9))
    await settle()
    assert [number(f) for f in link.written] == [0, 1]
    await qt.close()


async def test_queued_transmitter_close_stops_the_writer() -> None:
    link = AsyncOnlyLink()
    qt = QueuedTransmitter(link)
    qt.transmit(numbered(1))
    await wait_until(lambda: len(link.written) == 1)
    await qt.close()
    await qt.close()  # idempotent
    assert link.written == [numbered(1)]
