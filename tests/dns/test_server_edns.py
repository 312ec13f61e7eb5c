"""Header flags and OPT records of the server's answers, on the answering logic alone (no
stack, no loop): the DO bit (RFC 3225 3), NOTIMP for opcodes other than QUERY (RFC 1035
4.1.1, RFC 6895 2), an OPT in every answer to a query that had one (RFC 6891 6.1.1, 7), and
EDNS padding (RFC 7830, RFC 8467) on encrypted transports only, with DNS over TLS (RFC 7858)
on in-memory stacks."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import pytest
from dnskit import ZONE, tcp_query

from netstack import Stack
from netstack.dns import load_zones, serve
from netstack.dns.server import Authority, Responder
from netstack.tls import TLSConfig

DO = int(dns.flags.DO)


@pytest.fixture
def responder() -> Responder:
    return Responder(Authority(load_zones(ZONE)))


def ask(responder: Responder, query: dns.message.Message | bytes) -> dns.message.Message:
    wire = query if isinstance(query, bytes) else query.to_wire()
    out = responder.respond(wire, udp=True)
    assert out is not None
    return dns.message.from_wire(out)


def q(name: str, rdtype: str = "A", **kwargs: object) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]


# -- RFC 3225 3: the DO bit ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "rdtype", "rcode"),
    [
        ("web.example.test.", "A", dns.rcode.NOERROR),
        ("nope.example.test.", "A", dns.rcode.NXDOMAIN),
        ("v4only.example.test.", "AAAA", dns.rcode.NOERROR),  # NODATA
        ("www.example.org.", "A", dns.rcode.REFUSED),
        ("example.test.", "AXFR", dns.rcode.REFUSED),
        ("big.example.test.", "TXT", dns.rcode.NOERROR),  # truncated over UDP
    ],
)
def test_do_bit_is_copied_into_every_answer(
    responder: Responder, name: str, rdtype: str, rcode: int
) -> None:
    # RFC 3225 3: "The DO bit of the query MUST be copied in the response."
    for want in (True, False):
        query = q(name, rdtype, use_edns=0, payload=512, want_dnssec=want)
        response = ask(responder, query)
        assert response.rcode() == rcode
        assert response.edns == 0
        assert bool(response.ednsflags & DO) is want


def test_do_bit_is_copied_into_badvers(responder: Responder) -> None:
    response = ask(responder, q("web.example.test.", use_edns=1, want_dnssec=True))
    assert response.rcode() == dns.rcode.BADVERS and response.ednsflags & DO


# -- NOTIMP for other opcodes ---------------------------------------------------------------------
ALL_QUERY_FLAGS = dns.flags.RD | dns.flags.CD | dns.flags.AD | dns.flags.AA | dns.flags.TC


@pytest.mark.parametrize("opcode", [1, 2, 3, 4, 5, 6, 15])
def test_notimp_keeps_no_flag_of_an_opcode_it_does_not_know(
    responder: Responder, opcode: int
) -> None:
    # The bits between Opcode and RCODE mean what the opcode says they mean (RFC 6895 2; an
    # UPDATE has a Z field there, RFC 2136 2.2): an answer to an opcode not implemented
    # cannot claim to copy RD. Only QR, the ID and the opcode come back (as BIND does: its
    # test of opcode 15 with RD, CD, AD and Z set expects "qr" alone).
    query = q("web.example.test.")
    query.set_opcode(opcode)
    query.flags |= ALL_QUERY_FLAGS
    wire = bytearray(query.to_wire())
    wire[3] |= 0x40  # Z
    response = ask(responder, bytes(wire))
    assert response.rcode() == dns.rcode.NOTIMP
    assert response.opcode() == opcode and response.id == query.id
    assert response.flags & 0x87F0 == dns.flags.QR  # QR; no AA TC RD RA Z AD CD


def test_notimp_to_an_edns_query_has_an_opt(responder: Responder) -> None:
    # RFC 6891 6.1.1: "If an OPT record is present in a received request, compliant
    # responders MUST include an OPT record in their respective responses."
    query = q("example.test.", "SOA", use_edns=0, want_dnssec=True)
    query.set_opcode(dns.opcode.NOTIFY)
    response = ask(responder, query)
    assert response.rcode() == dns.rcode.NOTIMP
    assert response.edns == 0 and response.ednsflags & DO
    assert response.payload == 1232
    # Without one in the query, none in the answer (RFC 6891 7).
    query = q("example.test.", "SOA")
    query.set_opcode(dns.opcode.STATUS)
    response = ask(responder, query)
    assert response.rcode() == dns.rcode.NOTIMP and response.opt is None


def test_notimp_to_an_edns_query_of_a_higher_version_has_an_opt_of_version_0(
    responder: Responder,
) -> None:
    query = q("example.test.", "SOA", use_edns=3)
    query.set_opcode(15)
    response = ask(responder, query)
    assert response.rcode() == dns.rcode.NOTIMP and response.edns == 0


# -- RFC 7830 / RFC 8467: padding ---------------------------------------------------------------
PADDING = dns.edns.OptionType.PADDING


def padded_query() -> dns.message.Message:
    return q("web.example.test.", use_edns=0, payload=1232, pad=128)


@pytest.mark.parametrize("udp", [True, False])
def test_cleartext_answers_are_never_padded(responder: Responder, udp: bool) -> None:
    # RFC 8467 4.1 and RFC 7830 6: padding is for encrypted transports; padded cleartext
    # answers only make the server a better amplifier (468 bytes for a 60-byte query).
    query = padded_query()
    out = responder.respond(query.to_wire(), udp=udp)
    assert out is not None
    response = dns.message.from_wire(out)
    assert response.answer and response.edns == 0
    assert all(o.otype != PADDING for o in response.options)
    assert len(out) < 200


def test_encrypted_answers_to_padded_queries_are_padded_to_468(responder: Responder) -> None:
    # RFC 8467 4.1: the Block-Length Padding strategy, 468-byte blocks for responses; a
    # response is padded only if the query was (RFC 7830 4).
    out = responder.respond(padded_query().to_wire(), udp=False, encrypted=True)
    assert out is not None and len(out) % 468 == 0
    response = dns.message.from_wire(out)
    assert any(o.otype == PADDING for o in response.options)
    plain = q("web.example.test.", use_edns=0, payload=1232)
    out = responder.respond(plain.to_wire(), udp=False, encrypted=True)
    assert out is not None and len(out) < 468


# -- DNS over TLS (RFC 7858): the encrypted transport padding is for -----------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from netstack.tls import certs

    d = tmp_path_factory.mktemp("dot")
    ca, ca_key = certs.make_ca("netstack DoT test CA")
    cert, key = certs.issue(ca, ca_key, "ns.example.test", dns_names=["ns.example.test"],
                            ips=["198.18.0.2"])  # fmt: skip
    certs.write_pem(d / "ca.pem", ca)
    certs.write_pem(d / "server.pem", cert)
    certs.write_pem(d / "server.key", None, key)
    return d / "ca.pem", d / "server.pem", d / "server.key"


@pytest.mark.parametrize("engine", ["openssl", "netstack"])
async def test_dns_over_tls_pads_answers_to_padded_queries(
    stack_pair: tuple[Stack, Stack], pki: tuple[Path, Path, Path], engine: str
) -> None:
    # RFC 7858 3.3: DNS over TLS on port 853, messages framed as over TCP (RFC 1035 4.2.2);
    # RFC 8467 4.1: answers to padded queries padded to a multiple of 468 bytes there only.
    a, b = stack_pair
    ca, cert, key = pki
    if engine == "netstack":
        server_tls: object = TLSConfig.server(cert, key)
        client_tls: object = TLSConfig.client(cafile=ca)
    else:
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
        server_tls, client_tls = server_ctx, ssl.create_default_context(cafile=str(ca))
    async with await serve(b, ZONE, tls=server_tls) as srv:
        assert srv.tls_port == 853
        reader, writer = await a.open_connection(
            "198.18.0.2", 853, ssl=client_tls, server_hostname="ns.example.test"
        )
        try:
            for query, padded in ((padded_query(), True), (q("web.example.test."), False)):
                writer.write(query.to_wire(prepend_length=True))
                size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 5), "big")
                wire = await reader.readexactly(size)
                response = dns.message.from_wire(wire)
                assert response.id == query.id and response.answer
                assert (size % 468 == 0) is padded
        finally:
            writer.close()
        assert srv.stats()["tls_queries"] == 2
        # Plain TCP and UDP on the same server stay unpadded.
        (plain,) = await tcp_query(a, padded_query())
        assert all(o.otype != PADDING for o in plain.options)
