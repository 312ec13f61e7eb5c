"""Shared pieces of the TLS tests: a test PKI and a loop that moves bytes between two
machines in memory (no event loop, no sockets)."""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cryptography import x509

from netstack.tls import TLSConfig, TLSConnection, TLSEvent
from netstack.tls.certs import PrivateKey, issue, make_ca

NOW = time.time()
#: Certificate key types of the test PKI: P-256, RSA-2048, Ed25519, P-384, P-521.
KEY_TYPES = ("ec", "rsa", "ed25519", "ec-p384", "ec-p521")


@dataclass
class Pki:
    ca: x509.Certificate
    ca_key: PrivateKey
    server: dict[str, tuple[x509.Certificate, PrivateKey]] = field(default_factory=dict)
    client: dict[str, tuple[x509.Certificate, PrivateKey]] = field(default_factory=dict)


@cache
def pki() -> Pki:
    """One CA; a server certificate for server.test (and 198.18.0.2) and a client
    certificate of each key type."""
    ca, ca_key = make_ca("netstack test CA")
    result = Pki(ca, ca_key)
    for key_type in KEY_TYPES:
        result.server[key_type] = issue(
            ca,
            ca_key,
            "server.test",
            dns_names=["server.test"],
            ips=["198.18.0.2"],
            key_type=key_type,  # type: ignore[arg-type]
        )
        result.client[key_type] = issue(
            ca,
            ca_key,
            f"client-{key_type}",
            client=True,
            key_type=key_type,  # type: ignore[arg-type]
        )
    return result


def server_config(key_type: str = "ec", **options: Any) -> TLSConfig:
    p = pki()
    cert, key = p.server[key_type]
    if options.get("verify_client"):
        options.setdefault("cafile", [p.ca])
    return TLSConfig.server([cert], key, **options)


def client_config(*, client_key_type: str | None = None, **options: Any) -> TLSConfig:
    p = pki()
    if client_key_type is not None:
        cert, key = p.client[client_key_type]
        options.update(certfile=[cert], keyfile=key)
    options.setdefault("cafile", [p.ca])
    return TLSConfig.client(**options)


def make_pair(
    client_cfg: TLSConfig,
    server_cfg: TLSConfig,
    *,
    server_hostname: str | None = "server.test",
    session: Any = None,
) -> tuple[TLSConnection, TLSConnection]:
    client = TLSConnection(
        client_cfg,
        server_side=False,
        server_hostname=server_hostname,
        random=os.urandom,
        session=session,
    )
    server = TLSConnection(server_cfg, server_side=True, random=os.urandom)
    return client, server


def events(conn: TLSConnection) -> list[TLSEvent]:
    found = []
    while (event := conn.next_event()) is not None:
        found.append(event)
    return found


def pump(
    client: TLSConnection, server: TLSConnection, *, now: float = NOW, rounds: int = 20
) -> tuple[list[TLSEvent], list[TLSEvent]]:
    """Move bytes both ways until neither side has anything to send; the events of each."""
    client_events: list[TLSEvent] = []
    server_events: list[TLSEvent] = []
    if not client._started:
        client.start(now)
    for _ in range(rounds):
        to_server = client.data_to_send()
        if to_server:
            server.receive_data(to_server, now)
        to_client = server.data_to_send()
        if to_client:
            client.receive_data(to_client, now)
        client_events += events(client)
        server_events += events(server)
        if not to_server and not to_client:
            break
    return client_events, server_events


def handshake(
    client_cfg: TLSConfig, server_cfg: TLSConfig, **kwargs: Any
) -> tuple[TLSConnection, TLSConnection, list[TLSEvent], list[TLSEvent]]:
    client, server = make_pair(client_cfg, server_cfg, **kwargs)
    ce, se = pump(client, server)
    return client, server, ce, se


def expired_window() -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    return start, start + datetime.timedelta(days=30)
