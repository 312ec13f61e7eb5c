"""The multicast listener machine (netstack.proto.mld.listener) without a stack or a loop,
time passed in: MLDv2 reports (RFC 3810 6), and MLDv1 compatibility mode (RFC 3810 8.2.1):
an MLDv1 Query turns it on for the Older Version Querier Present Timeout (9.12), during which
only MLDv1 is spoken (RFC 2710: reports to the group itself, Done to all routers, one timer
per group, suppression by another listener's report), and its expiry turns it off."""

from __future__ import annotations

import ipaddress
import random

import pytest

from netstack.proto.mld.listener import (
    MldConfig,
    MulticastListener,
    SendDone,
    SendReport,
    SendV2Report,
)
from netstack.proto.mld.wire import GroupRecord, MldQuery, RecordType


def g(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


G1, G2, G3 = g("ff02::1:ff00:1"), g("ff02::1:ff00:2"), g("ff05::42")
ALL_NODES = g("ff02::1")
UNSPECIFIED = bytes(16)


def v1_query(delay: float = 10.0, group: bytes = UNSPECIFIED) -> MldQuery:
    return MldQuery(delay, group, 1, False, 0, 0.0, ())


def v2_query(delay: float = 10.0, group: bytes = UNSPECIFIED) -> MldQuery:
    return MldQuery(delay, group, 2, False, 2, 125.0, ())


def listener(*groups: bytes, now: float = 0.0) -> MulticastListener:
    m = MulticastListener(random.Random(7))
    for group in groups:
        m.join(group, now)
    run(m, 100.0)  # the unsolicited reports and their repetitions are over
    m.messages_to_send()
    return m


def run(m: MulticastListener, until: float) -> float:
    """Fire every timer due up to ``until``; the time of the last one fired."""
    last = 0.0
    while (at := m.poll_at()) is not None and at <= until:
        m.handle_timeout(at)
        last = at
    return last


# -- MLDv2 --------------------------------------------------------------------------------------
def test_join_and_leave_are_reported_with_mldv2_state_changes() -> None:
    m = MulticastListener(random.Random(1))
    assert m.version == 2
    m.join(G1, 0.0)
    assert m.messages_to_send() == [SendV2Report((GroupRecord(RecordType.CHANGE_TO_EXCLUDE, G1),))]
    run(m, 10.0)  # RFC 3810 6.1: repeated Robustness Variable times in all
    assert m.messages_to_send() == [SendV2Report((GroupRecord(RecordType.CHANGE_TO_EXCLUDE, G1),))]
    m.leave(G1, 20.0)
    assert m.messages_to_send() == [SendV2Report((GroupRecord(RecordType.CHANGE_TO_INCLUDE, G1),))]


def test_all_nodes_and_interface_local_groups_are_never_reported() -> None:
    # RFC 3810 6: not the link-scope all-nodes address, nor scope 0 or 1 addresses.
    m = MulticastListener(random.Random(1))
    m.join(ALL_NODES, 0.0)
    m.join(g("ff01::7"), 0.0)
    assert m.messages_to_send() == []
    m.receive_query(v2_query(), 1.0)
    run(m, 20.0)
    assert m.messages_to_send() == []


def test_mldv2_query_gets_one_mldv2_report_of_every_group() -> None:
    m = listener(G1, G2)
    m.receive_query(v2_query(delay=5.0), 200.0)
    assert m.messages_to_send() == []
    at = run(m, 300.0)
    assert 200.0 <= at <= 205.0
    (out,) = m.messages_to_send()
    assert isinstance(out, SendV2Report)
    assert {(r.type, r.group) for r in out.records} == {
        (RecordType.MODE_IS_EXCLUDE, G1),
        (RecordType.MODE_IS_EXCLUDE, G2),
    }


# -- MLDv1 compatibility (RFC 3810 8.2.1) ----------------------------------------------------------
def test_mldv1_query_is_answered_with_mldv1_reports_one_per_group() -> None:
    m = listener(G1, G2)
    m.receive_query(v1_query(delay=10.0), 200.0)
    assert m.version == 1
    at = run(m, 300.0)
    assert 200.0 <= at <= 210.0  # each within the query's Maximum Response Delay
    out = m.messages_to_send()
    assert sorted(out) == sorted([SendReport(G1), SendReport(G2)])  # no MLDv2 report


def test_mldv1_group_specific_query() -> None:
    m = listener(G1, G2)
    m.receive_query(v1_query(delay=1.0, group=G2), 200.0)
    run(m, 300.0)
    assert m.messages_to_send() == [SendReport(G2)]
    m.receive_query(v1_query(delay=1.0, group=G3), 300.0)  # not listened to
    run(m, 400.0)
    assert m.messages_to_send() == []


def test_switching_to_mldv1_cancels_pending_mldv2_reports() -> None:
    # "Whenever a host changes its compatibility mode, it cancels all its pending responses
    # and retransmission timers."
    m = MulticastListener(random.Random(3))
    m.join(G1, 0.0)  # a state change report now, its repetition pending
    m.messages_to_send()
    m.receive_query(v2_query(delay=10.0), 0.0)  # a response pending too
    m.receive_query(v1_query(delay=0.0, group=G2), 0.0)  # not ours: only the mode changes
    run(m, 50.0)
    assert m.messages_to_send() == []


def test_in_mldv1_mode_join_sends_a_v1_report_and_leave_a_done() -> None:
    m = listener(G1)
    m.receive_query(v1_query(delay=1.0), 200.0)
    run(m, 210.0)
    m.messages_to_send()
    m.join(G2, 220.0)
    assert m.messages_to_send() == [SendReport(G2)]
    # RFC 2710 4: repeated once after up to [Unsolicited Report Interval] (10 s in MLDv1).
    at = run(m, 240.0)
    assert 220.0 < at <= 230.0
    assert m.messages_to_send() == [SendReport(G2)]
    m.leave(G2, 241.0)
    assert m.messages_to_send() == [SendDone(G2)]  # RFC 2710 4: to all routers


def test_another_listeners_report_suppresses_ours() -> None:
    # RFC 2710 4: a node that hears another node's Report for a group it has a timer for
    # stops the timer and sends nothing.
    m = listener(G1, G2)
    m.receive_query(v1_query(delay=10.0), 200.0)
    m.receive_report(G1, 200.0)
    run(m, 300.0)
    assert m.messages_to_send() == [SendReport(G2)]


def test_a_later_query_only_shortens_a_running_timer() -> None:
    m = listener(G1)
    m.receive_query(v1_query(delay=100.0), 200.0)
    first = m.poll_at()
    assert first is not None
    m.receive_query(v1_query(delay=1000.0), 200.0)
    assert m.poll_at() == first  # a longer delay does not push it back
    m.receive_query(v1_query(delay=0.0), 200.0)
    assert m.poll_at() == 200.0  # Maximum Response Delay 0: at once


def test_mldv2_queries_in_mldv1_mode_are_answered_as_mldv1() -> None:
    m = listener(G1)
    m.receive_query(v1_query(delay=1.0), 200.0)
    run(m, 210.0)
    m.messages_to_send()
    m.receive_query(v2_query(delay=1.0), 220.0)
    assert m.version == 1  # a v2 query does not end the compatibility mode
    run(m, 230.0)
    assert m.messages_to_send() == [SendReport(G1)]


def test_older_version_querier_present_timer() -> None:
    # RFC 3810 9.12: Robustness Variable (2) x Query Interval (125 s, an MLDv1 query has no
    # QQIC) + Query Response Interval (10 s) = 260 s, restarted by every MLDv1 query.
    assert MulticastListener(random.Random(1)).older_querier_timeout == 260.0
    m = listener(G1)
    m.receive_query(v1_query(delay=1.0), 1000.0)
    run(m, 1200.0)
    m.receive_query(v1_query(delay=1.0), 1200.0)
    run(m, 1459.0)
    assert m.version == 1
    m.messages_to_send()
    run(m, 1461.0)
    assert m.version == 2
    m.join(G2, 1470.0)
    assert m.messages_to_send() == [SendV2Report((GroupRecord(RecordType.CHANGE_TO_EXCLUDE, G2),))]


class Late:
    """An RNG that always draws near the top of the range."""

    def random(self) -> float:
        return 0.99


def test_going_back_to_mldv2_cancels_mldv1_timers() -> None:
    m = MulticastListener(Late())
    m.join(G1, 0.0)
    run(m, 100.0)
    m.receive_query(v1_query(delay=1.0), 1000.0)
    run(m, 1001.0)
    assert m.messages_to_send()[-1] == SendReport(G1)
    # An MLDv2 query with a long delay, in MLDv1 mode: a v1 timer at 1002 + 990 s, after the
    # mode ends at 1260 s. It is cancelled then: no MLDv1 report once back in MLDv2.
    m.receive_query(v2_query(delay=1000.0), 1002.0)
    run(m, 5000.0)
    assert m.version == 2
    assert m.messages_to_send() == []


@pytest.mark.parametrize("robustness", [1, 2, 3])
def test_configured_robustness(robustness: int) -> None:
    m = MulticastListener(random.Random(1), MldConfig(robustness=robustness))
    assert m.older_querier_timeout == robustness * 125.0 + 10.0
    m.join(G1, 0.0)
    run(m, 100.0)
    assert len(m.messages_to_send()) == robustness
