"""Connection tracking of TCP's sequence space (window tracking): segments outside what the
flow's ends allowed are INVALID and change nothing; resets follow RFC 5961 (3.2) as seen
from between the ends. Machine tests, and a property: a connection that keeps to its
windows is never INVALID, whatever its sizes, losses, retransmissions and sequence wrap."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from nfkit import ACK, FIN, RST, SYN, fields, tcp4
from test_nat import LAN, ROUTER_WAN, WAN, forward, make

from netstack.proto.ip.hooks import Hook, Verdict
from netstack.proto.netfilter import Netfilter, Rule

CLIENT, SERVER = "198.18.1.10", "198.18.2.80"
C_ISS, S_ISS = 1_000_000, 5_000_000


def handshake(nf: Netfilter, window: int = 65535) -> int:
    """A masqueraded connection through its handshake; returns the external port."""
    syn = tcp4(CLIENT, 40000, SERVER, 80, SYN, seq=C_ISS, window=window)
    assert forward(nf, syn, LAN, WAN) == Verdict.ACCEPT
    eport = fields(syn)[1]
    synack = tcp4(SERVER, 80, ROUTER_WAN, eport, SYN | ACK, seq=S_ISS, ack=C_ISS + 1,
                  window=window)  # fmt: skip
    assert forward(nf, synack, WAN, LAN) == Verdict.ACCEPT
    ack = tcp4(CLIENT, 40000, SERVER, 80, ACK, seq=C_ISS + 1, ack=S_ISS + 1, window=window)
    assert forward(nf, ack, LAN, WAN) == Verdict.ACCEPT
    assert nf.flows()[0]["state"] == "ESTABLISHED"
    return eport


def inbound(nf: Netfilter, eport: int, flags: int, seq: int, ack: int = 0,
            payload: bytes = b"", now: float = 1.0) -> Verdict:  # fmt: skip
    """A segment from the server's side to the masqueraded port: PREROUTING, then FORWARD
    when it was translated, else INPUT (the router's own address)."""
    d = tcp4(SERVER, 80, ROUTER_WAN, eport, flags, payload, seq=seq, ack=ack)
    v = nf.run(Hook.PREROUTING, d, WAN, None, now)
    if v != Verdict.ACCEPT:
        return v
    if fields(d)[2] == ROUTER_WAN:
        return nf.run(Hook.INPUT, d, WAN, None, now)
    for hook in (Hook.FORWARD, Hook.POSTROUTING):
        v = nf.run(hook, d, WAN, LAN, now)
        if v != Verdict.ACCEPT:
            return v
    return v


def test_blind_reset_outside_the_window_leaves_the_flow_alone() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    eport = handshake(nf)
    before = nf.stats()["invalid"]
    # A reset guessed a long way off the server's sequence number.
    assert inbound(nf, eport, RST, seq=S_ISS + 10_000_000) == Verdict.DROP
    flow = nf.flows()[0]
    assert flow["state"] == "ESTABLISHED"
    assert flow["expires"] > 7000  # still an established flow's time-out
    s = nf.stats()
    assert s["invalid"] == before + 1
    assert s["conntrack"]["tcp_out_of_window"] == 1
    assert s["conntrack"]["tcp_resets"] == 0
    # Not handed to the router's own TCP (which would answer it with a reset of its own).
    assert s["drops"]["invalid_of_translated_flow"] == 1
    # The connection goes on.
    assert inbound(nf, eport, ACK, seq=S_ISS + 1, ack=C_ISS + 1, payload=b"data") == (
        Verdict.ACCEPT
    )


def test_out_of_window_data_fin_and_acks_are_invalid_and_change_nothing() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    eport = handshake(nf, window=1000)
    for seq, ack, flags in (
        (S_ISS + 1 + 5000, C_ISS + 1, ACK),  # data beyond the client's 1000-byte window
        (S_ISS + 1 - 3_000_000, C_ISS + 1, ACK),  # data from long before the window
        (S_ISS + 1, C_ISS + 1 + 500, ACK),  # acknowledges what the client never sent
        (S_ISS + 1, C_ISS + 1 - 200_000, ACK),  # an ACK from far in the past
        (S_ISS + 1 + 5000, C_ISS + 1, FIN | ACK),  # a FIN out of the window
    ):
        assert inbound(nf, eport, flags, seq=seq, ack=ack, payload=b"x" * 10) == Verdict.DROP
        assert nf.flows()[0]["state"] == "ESTABLISHED"
    assert nf.stats()["conntrack"]["tcp_out_of_window"] == 5
    # In the window, a FIN does move the state.
    assert inbound(nf, eport, FIN | ACK, seq=S_ISS + 1, ack=C_ISS + 1) == Verdict.ACCEPT
    assert nf.flows()[0]["state"] == "FIN_WAIT"


def test_the_filter_matches_out_of_window_segments_as_invalid() -> None:
    nf = make()
    nf.filter.rules = [Rule("drop", chain="forward", state="invalid")]
    syn = tcp4(CLIENT, 40000, SERVER, 80, SYN, seq=C_ISS)
    assert forward(nf, syn, LAN, WAN) == Verdict.ACCEPT
    synack = tcp4(SERVER, 80, CLIENT, 40000, SYN | ACK, seq=S_ISS, ack=C_ISS + 1)
    assert forward(nf, synack, WAN, LAN) == Verdict.ACCEPT
    blind = tcp4(SERVER, 80, CLIENT, 40000, RST, seq=S_ISS + 400_000)
    assert forward(nf, blind, WAN, LAN) == Verdict.DROP
    assert nf.filter.counters()[0]["packets"] == 1
    assert nf.flows()[0]["state"] == "SYN_RECEIVED"


def test_in_window_reset_closes_only_on_an_exact_match_rfc5961() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    eport = handshake(nf)
    # In the window, not exact: let through (the client answers with a challenge ACK), the
    # flow kept but on a short time-out.
    assert inbound(nf, eport, RST, seq=S_ISS + 1 + 3000) == Verdict.ACCEPT
    flow = nf.flows()[0]
    assert flow["state"] == "ESTABLISHED" and flow["expires"] < 60
    assert nf.stats()["conntrack"]["tcp_resets_unconfirmed"] == 1
    # The challenge ACK restores the time-out.
    challenge = tcp4(CLIENT, 40000, SERVER, 80, ACK, seq=C_ISS + 1, ack=S_ISS + 1)
    assert forward(nf, challenge, LAN, WAN, 2.0) == Verdict.ACCEPT
    assert nf.flows()[0]["expires"] > 7000
    # The exact reset (at the ACK the client sent) closes.
    assert inbound(nf, eport, RST, seq=S_ISS + 1, now=3.0) == Verdict.ACCEPT
    assert nf.flows()[0]["state"] == "CLOSED"


def test_reset_in_syn_sent_must_acknowledge_the_syn() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    syn = tcp4(CLIENT, 40000, SERVER, 80, SYN, seq=C_ISS)
    forward(nf, syn, LAN, WAN)
    eport = fields(syn)[1]
    # RFC 9293 (3.10.7.3): no ACK, or the wrong one: not acceptable.
    assert inbound(nf, eport, RST, seq=0) == Verdict.DROP
    assert inbound(nf, eport, RST | ACK, seq=0, ack=C_ISS + 77) == Verdict.DROP
    assert nf.flows()[0]["state"] == "SYN_SENT"
    assert inbound(nf, eport, RST | ACK, seq=0, ack=C_ISS + 1) == Verdict.ACCEPT
    assert nf.flows()[0]["state"] == "CLOSED"


def test_window_scaling_counts_when_both_syns_carry_it() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    ws7 = bytes([1, 3, 3, 7])  # NOP, Window Scale 7 (RFC 7323 2.2)
    syn = tcp4(CLIENT, 40000, SERVER, 80, SYN, seq=C_ISS, window=1000, options=ws7)
    forward(nf, syn, LAN, WAN)
    eport = fields(syn)[1]
    synack = tcp4(SERVER, 80, ROUTER_WAN, eport, SYN | ACK, seq=S_ISS, ack=C_ISS + 1,
                  window=1000, options=ws7)  # fmt: skip
    assert forward(nf, synack, WAN, LAN) == Verdict.ACCEPT
    # The client's window of 1000 << 7 = 128 000 bytes lets the server send 100 000 ahead.
    ack = tcp4(CLIENT, 40000, SERVER, 80, ACK, seq=C_ISS + 1, ack=S_ISS + 1, window=1000)
    assert forward(nf, ack, LAN, WAN) == Verdict.ACCEPT
    assert inbound(nf, eport, ACK, seq=S_ISS + 1 + 100_000, ack=C_ISS + 1,
                   payload=b"y" * 100) == Verdict.ACCEPT  # fmt: skip
    assert nf.stats()["conntrack"]["tcp_out_of_window"] == 0
    # Without the option on both SYNs the window is not scaled.
    nf2 = make()
    nf2.nat.masquerade(WAN)
    syn = tcp4(CLIENT, 40000, SERVER, 80, SYN, seq=C_ISS, window=1000, options=ws7)
    forward(nf2, syn, LAN, WAN)
    eport = fields(syn)[1]
    synack = tcp4(SERVER, 80, ROUTER_WAN, eport, SYN | ACK, seq=S_ISS, ack=C_ISS + 1,
                  window=1000)  # fmt: skip
    forward(nf2, synack, WAN, LAN)
    ack = tcp4(CLIENT, 40000, SERVER, 80, ACK, seq=C_ISS + 1, ack=S_ISS + 1, window=1000)
    forward(nf2, ack, LAN, WAN)
    assert inbound(nf2, eport, ACK, seq=S_ISS + 1 + 100_000, ack=C_ISS + 1,
                   payload=b"y" * 100) == Verdict.DROP  # fmt: skip
    assert nf2.stats()["conntrack"]["tcp_out_of_window"] == 1


def test_a_reused_connection_starts_its_windows_again() -> None:
    nf = make()
    nf.nat.masquerade(WAN)
    eport = handshake(nf)
    assert inbound(nf, eport, RST, seq=S_ISS + 1) == Verdict.ACCEPT
    assert nf.flows()[0]["state"] == "CLOSED"
    # A new connection on the same ports, its sequence numbers anywhere.
    syn = tcp4(CLIENT, 40000, SERVER, 80, SYN, seq=3_000_000_000)
    assert forward(nf, syn, LAN, WAN, 2.0) == Verdict.ACCEPT
    synack = tcp4(SERVER, 80, ROUTER_WAN, eport, SYN | ACK, seq=7, ack=3_000_000_001)
    assert forward(nf, synack, WAN, LAN, 2.0) == Verdict.ACCEPT
    assert nf.stats()["conntrack"]["tcp_out_of_window"] == 0


# -- the property ------------------------------------------------------------------------------


@dataclass
class End:
    """One end of a connection that keeps to the windows it is given (RFC 9293 3.8.6)."""

    addr: str
    port: int
    iss: int
    window: int  # the receive window it offers, in bytes (a multiple of 1 << shift)
    shift: int
    una: int = 0
    nxt: int = 0
    rcv_nxt: int = 0
    peer_right: int = 0  # what the other end last allowed: its ACK plus its window

    def field(self) -> int:
        return self.window >> self.shift


M32 = 0xFFFFFFFF


@st.composite
def conversations(draw: st.DrawFn) -> tuple[int, int, int, int, int, int, list[tuple[int, ...]]]:
    c_iss = draw(st.integers(0, M32))
    s_iss = draw(st.sampled_from([0, M32 - 50, M32 - 70_000])) if draw(st.booleans()) else (
        draw(st.integers(0, M32))
    )  # fmt: skip
    shift = draw(st.integers(0, 9))
    c_win = draw(st.integers(1, 65535)) << shift
    s_win = draw(st.integers(1, 65535)) << shift
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(0, 1),  # which end
                st.sampled_from(["send", "ack", "retransmit"]),
                st.integers(0, 1 << 20),  # bytes wanted
                st.booleans(),  # delivered or lost beyond the router
            ),
            max_size=60,
        )
    )
    return c_iss, s_iss, shift, c_win, s_win, 0, steps


@settings(max_examples=150, deadline=None)
@given(conversations())
def test_a_connection_in_its_windows_is_never_invalid(
    conv: tuple[int, int, int, int, int, int, list[tuple[int, ...]]],
) -> None:
    c_iss, s_iss, shift, c_win, s_win, _, steps = conv
    nf = make()
    nf.nat.masquerade(WAN)
    ws = bytes([1, 3, 3, shift])
    client = End(CLIENT, 40000, c_iss, c_win, shift)
    server = End(SERVER, 80, s_iss, s_win, shift)

    def out(flags: int, seq: int, ack: int, field: int, payload: bytes = b"",
            opts: bytes = b"") -> None:  # fmt: skip
        d = tcp4(CLIENT, 40000, SERVER, 80, flags, payload, seq=seq & M32, ack=ack & M32,
                 window=field, options=opts)  # fmt: skip
        assert forward(nf, d, LAN, WAN) == Verdict.ACCEPT

    eport = 0

    def back(flags: int, seq: int, ack: int, field: int, payload: bytes = b"",
             opts: bytes = b"") -> None:  # fmt: skip
        d = tcp4(SERVER, 80, ROUTER_WAN, eport, flags, payload, seq=seq & M32, ack=ack & M32,
                 window=field, options=opts)  # fmt: skip
        assert forward(nf, d, WAN, LAN) == Verdict.ACCEPT

    # The handshake (SYN windows are not scaled: the ends offer at most 65535 in them).
    syn = tcp4(CLIENT, 40000, SERVER, 80, SYN, seq=c_iss, window=min(c_win, 65535), options=ws)
    assert forward(nf, syn, LAN, WAN) == Verdict.ACCEPT
    eport = fields(syn)[1]
    back(SYN | ACK, s_iss, c_iss + 1, min(s_win, 65535), opts=ws)
    client.una = client.nxt = c_iss + 1
    client.rcv_nxt = s_iss + 1
    client.peer_right = c_iss + 1 + min(s_win, 65535)
    server.una = server.nxt = s_iss + 1
    server.rcv_nxt = c_iss + 1
    out(ACK, client.nxt, client.rcv_nxt, client.field())
    server.peer_right = s_iss + 1 + client.window
    ends = (client, server)
    sends = (out, back)
    for who, what, size, delivered in steps:
        me, peer, send = ends[who], ends[1 - who], sends[who]
        if what == "send":
            n = min(size, me.peer_right - me.nxt, 4000)
            if n <= 0:
                continue
            seq = me.nxt
            me.nxt += n
        elif what == "retransmit":
            n = min(size, me.nxt - me.una, 4000)
            if n <= 0:
                continue
            seq = me.una
        else:
            n, seq = 0, me.nxt
        send(ACK, seq, me.rcv_nxt, me.field(), b"z" * n)
        if not delivered:
            continue
        # The other end takes what is in order and learns the ACK and window.
        if seq <= peer.rcv_nxt < seq + n:
            peer.rcv_nxt = seq + n
        if peer.una < me.rcv_nxt <= peer.nxt:
            peer.una = me.rcv_nxt
        if me.rcv_nxt >= peer.una:
            peer.peer_right = max(peer.peer_right, me.rcv_nxt + me.window)
    # Everything gets there in the end (retransmitted beyond the router); then both close.
    client.rcv_nxt, server.rcv_nxt = server.nxt, client.nxt
    out(ACK, client.nxt, client.rcv_nxt, client.field())
    back(ACK, server.nxt, server.rcv_nxt, server.field())
    out(FIN | ACK, client.nxt, client.rcv_nxt, client.field())
    client.nxt += 1
    back(FIN | ACK, server.nxt, client.nxt, server.field())
    server.nxt += 1
    out(ACK, client.nxt, server.nxt, client.field())
    s = nf.stats()
    assert s["invalid"] == 0, s
    assert s["conntrack"]["tcp_out_of_window"] == 0
    assert nf.flows()[0]["state"] == "TIME_WAIT"
