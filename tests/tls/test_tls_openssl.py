"""netstack's TLS machines against OpenSSL (the ``ssl`` module over ``ssl.MemoryBIO``, in
process, no sockets): our client with an ``ssl.SSLContext`` server, and our server with an
``ssl.SSLContext`` client."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from tls_helpers import KEY_TYPES, NOW, client_config, events, pki, server_config

from netstack.tls import (
    AlertReceived,
    CloseNotifyReceived,
    ConnectionFailed,
    DataReceived,
    HandshakeCompleted,
    SessionTicketReceived,
    TLSConfig,
    TLSConnection,
)
from netstack.tls.certs import write_pem

pytestmark = pytest.mark.skipif(not ssl.HAS_TLSv1_3, reason="this Python's OpenSSL has no TLS 1.3")


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    p = pki()
    write_pem(directory / "ca.pem", p.ca)
    for key_type in KEY_TYPES:
        write_pem(
            directory / f"server-{key_type}.pem", p.server[key_type][0], p.server[key_type][1]
        )
        write_pem(
            directory / f"client-{key_type}.pem", p.client[key_type][0], p.client[key_type][1]
        )
    return directory


class OpenSSLPeer:
    """An ``ssl.SSLObject`` over memory BIOs."""

    def __init__(self, context: ssl.SSLContext, *, server_side: bool, hostname: str | None) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(
            self.incoming, self.outgoing, server_side=server_side, server_hostname=hostname
        )
        self.error: ssl.SSLError | None = None
        self.received = b""

    def step(self, data: bytes) -> bytes:
        if data:
            self.incoming.write(data)
        if self.error is None:
            try:
                if self.obj.version() is None:
                    self.obj.do_handshake()
                while True:
                    chunk = self.obj.read(65536)
                    if not chunk:
                        break
                    self.received += chunk
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass
            except ssl.SSLError as error:
                self.error = error
        return self.outgoing.read()


def exchange(ours: TLSConnection, theirs: OpenSSLPeer, rounds: int = 12) -> list[object]:
    found: list[object] = []
    to_them = ours.data_to_send()
    for _ in range(rounds):
        back = theirs.step(to_them)
        if back:
            ours.receive_data(back, NOW)
        found += events(ours)
        to_them = ours.data_to_send()
        if not back and not to_them:
            break
    return found


def openssl_server(pem: Path, key_type: str, **settings: object) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(pem / f"server-{key_type}.pem")
    if settings.get("client_ca"):
        context.load_verify_locations(pem / "ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED
    if settings.get("alpn"):
        context.set_alpn_protocols(settings["alpn"])  # type: ignore[arg-type]
    if settings.get("ciphers"):
        context.set_ciphersuites(settings["ciphers"])  # type: ignore[attr-defined]
    return context


def openssl_client(pem: Path, client_key_type: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pem / "ca.pem"))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    if client_key_type:
        context.load_cert_chain(pem / f"client-{client_key_type}.pem")
    return context


def our_client(
    config: TLSConfig, hostname: str = "server.test", session: object = None
) -> TLSConnection:
    client = TLSConnection(
        config,
        server_side=False,
        server_hostname=hostname,
        random=os.urandom,
        session=session,  # type: ignore[arg-type]
    )
    client.start(NOW)
    return client


# -- our client, OpenSSL server --------------------------------------------------------------


@pytest.mark.parametrize(
    "suite", ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
)
@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_our_client_with_openssl_server(pem: Path, key_type: str, suite: str) -> None:
    peer = OpenSSLPeer(openssl_server(pem, key_type), server_side=True, hostname=None)
    client = our_client(client_config(cipher_suites=[suite]))
    found = exchange(client, peer)
    assert isinstance(found[0], HandshakeCompleted), (found, peer.error)
    assert found[0].cipher[0] == suite
    assert peer.obj.cipher()[0] == suite  # type: ignore[index]
    assert peer.obj.version() == "TLSv1.3"
    assert any(isinstance(e, SessionTicketReceived) for e in found)
    client.send_data(b"hello openssl")
    exchange(client, peer)
    assert peer.received == b"hello openssl"
    peer.obj.write(b"hello netstack" * 3000)
    assert b"".join(e.data for e in exchange(client, peer) if isinstance(e, DataReceived)) == (
        b"hello netstack" * 3000
    )


@pytest.mark.parametrize("group", ["x25519", "secp256r1"])
def test_our_client_groups_with_openssl(pem: Path, group: str) -> None:
    peer = OpenSSLPeer(openssl_server(pem, "ec"), server_side=True, hostname=None)
    client = our_client(client_config(groups=[group]))
    found = exchange(client, peer)
    assert isinstance(found[0], HandshakeCompleted), (found, peer.error)


def test_openssl_server_asks_for_a_retry(pem: Path) -> None:
    # OpenSSL prefers x25519: a client whose only key share is secp256r1 but which also
    # supports x25519 gets a HelloRetryRequest... unless OpenSSL accepts the share it has.
    context = openssl_server(pem, "ec")
    context.set_ecdh_curve("prime256v1")  # the server accepts only secp256r1
    peer = OpenSSLPeer(context, server_side=True, hostname=None)
    client = our_client(client_config(groups=["x25519", "secp256r1"]))
    found = exchange(client, peer)
    assert isinstance(found[0], HandshakeCompleted), (found, peer.error)
    assert client._hrr_suite is not None


def test_our_client_certificate_with_openssl_server(pem: Path) -> None:
    for key_type in KEY_TYPES:
        peer = OpenSSLPeer(
            openssl_server(pem, "ec", client_ca=True), server_side=True, hostname=None
        )
        client = our_client(client_config(client_key_type=key_type))
        found = exchange(client, peer)
        assert isinstance(found[0], HandshakeCompleted), (found, peer.error)
        assert peer.obj.getpeercert()["subject"] == ((("commonName", f"client-{key_type}"),),)


def test_our_client_without_certificate_when_openssl_requires_one(pem: Path) -> None:
    peer = OpenSSLPeer(openssl_server(pem, "ec", client_ca=True), server_side=True, hostname=None)
    client = our_client(client_config())
    found = exchange(client, peer)
    # TLS 1.3: our client completes, then OpenSSL's alert arrives.
    assert any(isinstance(e, AlertReceived) for e in found), found
    alert = [e for e in found if isinstance(e, AlertReceived)][0]
    assert alert.error.description.name == "certificate_required"
    assert peer.error is not None


def test_our_client_alpn_with_openssl(pem: Path) -> None:
    peer = OpenSSLPeer(
        openssl_server(pem, "ec", alpn=["h2", "http/1.1"]), server_side=True, hostname=None
    )
    client = our_client(client_config(alpn_protocols=["http/1.1"]))
    found = exchange(client, peer)
    assert isinstance(found[0], HandshakeCompleted) and found[0].alpn_protocol == "http/1.1"
    assert peer.obj.selected_alpn_protocol() == "http/1.1"


def test_our_client_rejects_openssl_server_with_a_wrong_name(pem: Path) -> None:
    peer = OpenSSLPeer(openssl_server(pem, "ec"), server_side=True, hostname=None)
    client = our_client(client_config(), hostname="wrong.test")
    found = exchange(client, peer)
    assert isinstance(found[-1], ConnectionFailed)
    assert found[-1].error.description.name == "bad_certificate"
    assert peer.error is not None and "BAD_CERTIFICATE" in str(peer.error).upper()


def test_our_client_resumes_with_openssl(pem: Path) -> None:
    context = openssl_server(pem, "ec")
    peer = OpenSSLPeer(context, server_side=True, hostname=None)
    client = our_client(client_config())
    exchange(client, peer)
    assert client.session is not None
    peer2 = OpenSSLPeer(context, server_side=True, hostname=None)
    resumed = our_client(client_config(), session=client.session)
    found = exchange(resumed, peer2)
    assert isinstance(found[0], HandshakeCompleted) and found[0].session_resumed
    assert peer2.obj.session_reused


def test_key_update_and_close_with_openssl(pem: Path) -> None:
    peer = OpenSSLPeer(openssl_server(pem, "ec"), server_side=True, hostname=None)
    client = our_client(client_config())
    exchange(client, peer)
    client.key_update(request_peer=True)
    client.send_data(b"after update")
    found = exchange(client, peer)
    assert peer.received == b"after update"
    peer.obj.write(b"answer")
    found += exchange(client, peer)
    assert DataReceived(b"answer") in found
    client.close()
    exchange(client, peer)
    # OpenSSL completes its shutdown at once only if it has our close_notify.
    peer.obj.unwrap()
    client.receive_data(peer.outgoing.read(), NOW)
    assert events(client) == [CloseNotifyReceived()]


def test_openssl_close_notify_reaches_our_client(pem: Path) -> None:
    peer = OpenSSLPeer(openssl_server(pem, "ec"), server_side=True, hostname=None)
    client = our_client(client_config())
    exchange(client, peer)
    try:
        peer.obj.unwrap()
    except ssl.SSLWantReadError:
        pass
    client.receive_data(peer.outgoing.read(), NOW)
    assert CloseNotifyReceived() in events(client)


def test_tls12_only_openssl_server_gets_protocol_version(pem: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pem / "server-ec.pem")
    peer = OpenSSLPeer(context, server_side=True, hostname=None)
    client = our_client(client_config())
    found = exchange(client, peer)
    # OpenSSL answers a TLS-1.3-only ClientHello with protocol_version itself.
    assert found, peer.error
    event = found[-1]
    assert isinstance(event, (AlertReceived, ConnectionFailed))
    assert event.error.description.name == "protocol_version"


# -- OpenSSL client, our server --------------------------------------------------------------


def run_openssl_client(
    config: TLSConfig, context: ssl.SSLContext, hostname: str = "server.test"
) -> tuple[TLSConnection, OpenSSLPeer, list[object]]:
    server = TLSConnection(config, server_side=True, random=os.urandom)
    peer = OpenSSLPeer(context, server_side=False, hostname=hostname)
    found: list[object] = []
    to_server = peer.step(b"")
    for _ in range(12):
        if to_server:
            server.receive_data(to_server, NOW)
        found += events(server)
        back = server.data_to_send()
        to_server = peer.step(back)
        if not back and not to_server:
            break
    return server, peer, found


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_openssl_client_with_our_server(pem: Path, key_type: str) -> None:
    server, peer, found = run_openssl_client(server_config(key_type), openssl_client(pem))
    assert isinstance(found[0], HandshakeCompleted), (found, peer.error)
    assert peer.obj.version() == "TLSv1.3"
    assert peer.obj.getpeercert()["subject"] == ((("commonName", "server.test"),),)
    peer.obj.write(b"hello netstack")
    server.receive_data(peer.outgoing.read(), NOW)
    assert events(server) == [DataReceived(b"hello netstack")]
    server.send_data(b"hello openssl")
    peer.step(server.data_to_send())
    assert peer.received == b"hello openssl"


@pytest.mark.parametrize(
    "suite", ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
)
def test_openssl_client_each_suite(pem: Path, suite: str) -> None:
    server, peer, found = run_openssl_client(
        server_config(cipher_suites=[suite]), openssl_client(pem)
    )
    assert isinstance(found[0], HandshakeCompleted), (found, peer.error)
    assert peer.obj.cipher()[0] == suite  # type: ignore[index]


def test_openssl_client_gets_a_retry_request(pem: Path) -> None:
    # OpenSSL's key share is x25519; a server preferring secp256r1 asks again.
    server, peer, found = run_openssl_client(
        server_config(groups=["secp256r1", "x25519"]), openssl_client(pem)
    )
    assert isinstance(found[0], HandshakeCompleted), (found, peer.error)
    assert server._hrr_group is not None


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_openssl_client_certificate_with_our_server(pem: Path, key_type: str) -> None:
    server, peer, found = run_openssl_client(
        server_config(verify_client=True), openssl_client(pem, key_type)
    )
    assert isinstance(found[0], HandshakeCompleted), (found, peer.error)
    assert server.getpeercert()["subject"] == ((("commonName", f"client-{key_type}"),),)  # type: ignore[index]


def test_openssl_client_without_certificate_gets_certificate_required(pem: Path) -> None:
    server, peer, found = run_openssl_client(server_config(verify_client=True), openssl_client(pem))
    assert isinstance(found[-1], ConnectionFailed)
    assert found[-1].error.description.name == "certificate_required"
    peer.step(b"")
    assert peer.error is not None and "CERTIFICATE_REQUIRED" in str(peer.error).upper()


def test_openssl_client_alpn_and_sni(pem: Path) -> None:
    p = pki()
    from netstack.tls.certs import issue

    other = issue(p.ca, p.ca_key, "other.test")
    cert, key = p.server["ec"]
    config = TLSConfig.server(
        [cert],
        key,
        alpn_protocols=["h2", "http/1.1"],
        sni_certificates={"other.test": ([other[0]], other[1])},
    )
    context = openssl_client(pem)
    context.set_alpn_protocols(["http/1.1", "h2"])
    server, peer, found = run_openssl_client(config, context, hostname="other.test")
    assert isinstance(found[0], HandshakeCompleted), (found, peer.error)
    assert peer.obj.selected_alpn_protocol() == "h2"
    assert server.requested_server_name == "other.test"
    assert peer.obj.getpeercert()["subject"] == ((("commonName", "other.test"),),)


def test_openssl_client_alpn_mismatch(pem: Path) -> None:
    context = openssl_client(pem)
    context.set_alpn_protocols(["spdy/1"])
    server, peer, found = run_openssl_client(server_config(alpn_protocols=["h2"]), context)
    assert isinstance(found[-1], ConnectionFailed)
    assert found[-1].error.description.name == "no_application_protocol"
    assert peer.error is not None


def test_openssl_client_resumes_with_our_ticket(pem: Path) -> None:
    config = server_config()
    context = openssl_client(pem)
    server, peer, found = run_openssl_client(config, context)
    assert isinstance(found[0], HandshakeCompleted)
    peer.step(b"")  # read the ticket
    session = peer.obj.session
    assert session is not None and session.has_ticket
    server2 = TLSConnection(config, server_side=True, random=os.urandom)
    peer2 = OpenSSLPeer(context, server_side=False, hostname="server.test")
    peer2.obj.session = session
    to_server = peer2.step(b"")
    found2: list[object] = []
    for _ in range(12):
        if to_server:
            server2.receive_data(to_server, NOW)
        found2 += events(server2)
        back = server2.data_to_send()
        to_server = peer2.step(back)
        if not back and not to_server:
            break
    assert isinstance(found2[0], HandshakeCompleted) and found2[0].session_resumed, (
        found2,
        peer2.error,
    )
    assert peer2.obj.session_reused


def test_openssl_client_key_update_and_close(pem: Path) -> None:
    server, peer, found = run_openssl_client(server_config(), openssl_client(pem))
    server.key_update(request_peer=True)
    server.send_data(b"new keys")
    back = peer.step(server.data_to_send())
    assert peer.received == b"new keys"
    server.receive_data(back, NOW)  # OpenSSL's own KeyUpdate in answer
    peer.obj.write(b"answer")
    server.receive_data(peer.outgoing.read(), NOW)
    found = events(server)
    assert DataReceived(b"answer") in found
    try:
        peer.obj.unwrap()
    except ssl.SSLWantReadError:
        pass
    server.receive_data(peer.outgoing.read(), NOW)
    assert CloseNotifyReceived() in events(server)
    server.close()
    peer.incoming.write(server.data_to_send())
    peer.obj.unwrap()


def test_tls12_only_openssl_client_gets_protocol_version(pem: Path) -> None:
    context = ssl.create_default_context(cafile=str(pem / "ca.pem"))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    server, peer, found = run_openssl_client(server_config(), context)
    assert isinstance(found[-1], ConnectionFailed)
    assert found[-1].error.description.name == "protocol_version"
    assert peer.error is not None and "PROTOCOL_VERSION" in str(peer.error).upper()


def test_openssl_client_rejects_an_unknown_ca(pem: Path) -> None:
    from netstack.tls.certs import make_ca

    stranger = make_ca("stranger")[0]
    context = ssl.create_default_context(cadata=stranger.public_bytes(Encoding.PEM).decode())
    server, peer, found = run_openssl_client(server_config(), context)
    assert isinstance(found[-1], AlertReceived)
    assert found[-1].error.description.name == "unknown_ca"
    assert isinstance(peer.error, ssl.SSLCertVerificationError)
