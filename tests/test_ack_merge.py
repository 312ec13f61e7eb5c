"""Merging plain ACKs: in a batch of received frames, a run of cumulative ACKs of one
connection that each acknowledge new data goes up as the last of them, standing for them
all (``acks_merged``), as a GRO-based stack's receive path sees one ACK for a burst. These
tests hand one stack the other's real ACKs of a first flight in one batch, and one per
batch, and check that the connection ends up in the same state either way, and that a
duplicate ACK (a loss signal) is never merged."""

from __future__ import annotations

import asyncio
import random
import struct

from test_interfaces import FAST

from netstack import Stack
from netstack.link import MemoryLink
from netstack.proto.checksum import checksum_pseudo

DATA = bytes(range(256)) * 256  # 64 KiB: more than the first flight
PORT = 7001


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def _first_flight_acked(how: str) -> tuple[tuple[int, ...], int, int]:
    """``a`` sends its first flight to ``b``, which gets it one segment per batch and
    answers with several ACKs; these reach ``a`` as ``how`` says: ``batch`` (all in one),
    ``single`` (one per batch), ``duplicate`` (one batch, the last ACK twice), ``beyond``
    (one batch, and after it an ACK of data never sent) or ``corrupt`` (one batch, one ACK
    in the middle with a bad checksum). Returns
    ``a``'s connection state relative to its ISS, the ACKs merged and the ACKs."""
    la, lb = MemoryLink.pair()
    # The same seed for every run: the same ISNs, ports and timestamps offsets.
    a = await Stack.open(la, ipv4="198.18.0.1/24", config=FAST, rng=random.Random(1))
    b = await Stack.open(lb, ipv4="198.18.0.2/24", config=FAST, rng=random.Random(2))

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    server = await b.start_server(sink, "198.18.0.2", PORT)
    try:
        _, writer = await a.open_connection("198.18.0.2", PORT)
        await asyncio.sleep(0.05)  # the handshake's last ACK is through
        to_b, to_a = la._peer, lb._peer
        data: list[bytes] = []
        acks: list[bytes] = []
        la._peer = lambda frame, meta=None: data.append(bytes(frame))
        lb._peer = lambda frame, meta=None: acks.append(bytes(frame))
        # No timer of either stack fires meanwhile (a loss probe from a, a delayed ACK
        # from b on a slow machine): both runs see the same segments.
        timeouts = a._timeouts, b._timeouts
        a._timeouts = b._timeouts = ()
        writer.write(DATA)
        await _turns()
        assert len(data) >= 8
        for frame in data:  # one segment per batch: b acknowledges as they come
            lb._receive(frame)
            await _turns()
        assert len(acks) >= 3
        (conn,) = a.tcp.connections.values()
        if how == "duplicate":
            acks.append(acks[-1])
        elif how == "beyond":
            # One more ACK, for data never sent: dropped on its own (RFC 5961 5.2), and
            # it must not take the ACKs before it down with it.
            bad = bytearray(acks[-1])
            ack = (struct.unpack_from("!I", bad, 42)[0] + 10 * len(DATA)) & 0xFFFFFFFF
            struct.pack_into("!I", bad, 42, ack)
            bad[50:52] = b"\0\0"
            struct.pack_into("!H", bad, 50, checksum_pseudo(bad[34:], bad[26:30], bad[30:34], 6))
            acks.append(bytes(bad))
        elif how == "corrupt":
            bad = bytearray(acks[len(acks) // 2])
            bad[-1] ^= 0x01  # the last byte of TSecr: the TCP checksum no longer holds
            acks[len(acks) // 2] = bytes(bad)
        counted = a.ethernet.rx_packets, a.ipv4.rx_packets
        for frame in acks:
            la._receive(frame)
            if how == "single":
                await _turns()
        await _turns()
        a._timeouts, b._timeouts = timeouts
        iss = conn.iss
        state = (
            (conn.snd_una - iss) & 0xFFFFFFFF,
            conn.cc.cwnd,
            conn.snd_wnd,
            conn._dupacks,
            (conn.snd_nxt - iss) & 0xFFFFFFFF,  # what the ACKs clocked out
        )
        tcp = a.stats()["tcp"]
        # Every frame counted by the Ethernet and IP layers, merged or not.
        assert a.ethernet.rx_packets - counted[0] == len(acks)
        assert a.ipv4.rx_packets - counted[1] == len(acks)
        assert tcp["drops"].get("bad_checksum", 0) == (how == "corrupt")
        la._peer, lb._peer = to_b, to_a
        writer.close()
        return state, tcp["acks_merged"], len(acks)
    finally:
        server.close()
        await a.close()
        await b.close()


async def test_a_batch_of_acks_goes_up_as_one_with_the_same_outcome() -> None:
    single, merged_single, n = await _first_flight_acked("single")
    batch, merged_batch, n_batch = await _first_flight_acked("batch")
    assert n == n_batch and merged_single == 0
    assert merged_batch == n - 1  # only the last went up...
    assert batch == single  # ...and left the connection as all of them one by one
    assert batch[1] > 14600  # slow start grew the window once per ACK


async def test_a_duplicate_ack_is_never_merged() -> None:
    state, merged, n = await _first_flight_acked("duplicate")
    assert merged == n - 2  # the run before it, not the duplicate
    assert state[3] == 1  # counted as a duplicate: RFC 5681's loss signal


async def test_an_ack_with_a_bad_checksum_goes_up_and_is_dropped_there() -> None:
    state, merged, n = await _first_flight_acked("corrupt")
    assert merged == n - 2  # all but the first and the bad one
    single, _, _ = await _first_flight_acked("single")
    assert state[0] == single[0]  # the later ACKs acknowledged what it did


async def test_an_ack_beyond_what_was_sent_is_not_merged() -> None:
    state, merged, n = await _first_flight_acked("beyond")
    assert merged == n - 2  # the run before it
    single, _, _ = await _first_flight_acked("single")
    assert state[0] == single[0]  # the run went up; the bad one alone was dropped
