"""Tests of netstack.proto.tcp.sendbuf: the sender's buffer of queued, unacknowledged bytes,
alone.

Fixed cases for each operation; hypothesis queues a stream in arbitrary writes, sends and
resends arbitrary ranges of it and acknowledges it in arbitrary steps (partial, repeated,
old, beyond the data as a FIN's sequence number does), near the sequence-number wrap, and
checks that every byte sent is the byte queued at that place, that what is held is exactly
the unacknowledged rest, and that the buffer does not keep acknowledged bytes without bound.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.proto.tcp.sendbuf import COMPACT_AFTER, SendBuffer
from netstack.proto.tcp.seq import MOD, add, diff

SETTINGS = settings(max_examples=300, deadline=None)


def test_append_take_acknowledge() -> None:
    b = SendBuffer(1000)
    assert b.end == 1000 and len(b) == 0
    b.append(b"hello ")
    b.append(memoryview(b"world"))
    assert b.end == 1011 and len(b) == 11
    assert b.take(1000, 5) == b"hello"
    assert b.take(1006, 5) == b"world"
    b.acknowledge(1006)
    assert b.seq == 1006 and len(b) == 5 and b.end == 1011
    assert b.take(1006, 5) == b"world"


def test_acknowledge_clamped() -> None:
    """The SYN's acknowledgement (ISS + 1) frees nothing; the FIN's (one beyond the data)
    frees the data and no more; an old one changes nothing."""
    b = SendBuffer(1001)
    b.acknowledge(1001)
    b.append(b"abc")
    b.acknowledge(1005)  # the FIN, after the three bytes
    assert len(b) == 0 and b.seq == 1004 and b.end == 1004
    b.acknowledge(1002)
    assert b.seq == 1004


def test_take_is_a_copy() -> None:
    """What was handed out stays as it was when the buffer grows or is compacted."""
    b = SendBuffer(0)
    b.append(b"a" * (COMPACT_AFTER + 10))
    seg = b.take(COMPACT_AFTER, 10)
    b.append(b"b" * 10)
    b.acknowledge(COMPACT_AFTER + 5)  # compacts: more than 64 KiB and more than half
    assert b.off == 0 and len(b.buf) == 15
    assert seg == b"a" * 10
    assert b.take(COMPACT_AFTER + 5, 10) == b"aaaaabbbbb"


def test_across_the_wrap() -> None:
    b = SendBuffer(MOD - 3)
    b.append(b"abcdef")
    assert b.end == 3
    assert b.take(MOD - 1, 3) == b"cde"
    b.acknowledge(1)
    assert b.seq == 1 and b.take(1, 2) == b"ef"


def test_clear() -> None:
    b = SendBuffer(10)
    b.append(b"abc")
    b.acknowledge(11)
    b.clear()
    assert len(b) == 0 and b.end == b.seq == 11


# -- properties -----------------------------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 40_000)),
        st.tuples(st.just("send"), st.integers(0, 3000)),
        st.tuples(st.just("resend"), st.floats(0.0, 1.0), st.integers(1, 3000)),
        st.tuples(st.just("ack"), st.floats(-0.2, 1.2)),
    ),
    max_size=60,
)


@SETTINGS
@given(ops=ops, base=st.one_of(st.integers(0, MOD - 1), st.integers(MOD - 100_000, MOD - 1)))
def test_bytes_out_equal_bytes_in(ops: list[tuple[object, ...]], base: int) -> None:
    b = SendBuffer(base)
    stream = bytearray()  # everything written, from base on
    acked = 0  # bytes acknowledged
    sent = 0  # bytes sent once (SND.NXT - base)
    wire = bytearray()  # the first transmission of every byte, in order
    counter = 0
    for op in ops:
        kind = op[0]
        if kind == "write":
            n = op[1]
            assert isinstance(n, int)
            data = bytes((counter + i) % 251 for i in range(n))
            counter += n
            b.append(data)
            stream += data
        elif kind == "send":
            n = op[1]
            assert isinstance(n, int)
            n = min(n, len(stream) - sent)
            seg = b.take(add(base, sent), n)
            assert seg == stream[sent : sent + n]
            wire += seg
            sent += n
        elif kind == "resend":
            where, n = op[1], op[2]
            assert isinstance(where, float) and isinstance(n, int)
            start = acked + int((sent - acked) * where)
            n = min(n, sent - start)
            assert b.take(add(base, start), n) == stream[start : start + n]
        else:
            where = op[1]
            assert isinstance(where, float)
            # Anywhere from a little before SND.UNA to SND.NXT, or one beyond when all was
            # sent (the FIN's acknowledgement).
            if where <= 1.0:
                target = int(sent * where)
            else:
                target = sent + 1 if sent == len(stream) else sent
            b.acknowledge(add(base, target))
            acked = min(max(acked, target), len(stream))
        # What is held: exactly the unacknowledged bytes, addressed by sequence number.
        assert b.seq == add(base, acked)
        assert b.end == add(base, len(stream))
        assert diff(b.end, b.seq) == len(b) == len(stream) - acked
        assert bytes(b.buf[b.off :]) == stream[acked:]
        # Acknowledged bytes are cut once they are many and most of the buffer.
        assert b.off <= COMPACT_AFTER or b.off * 2 <= len(b.buf)
    assert wire == stream[: len(wire)]
