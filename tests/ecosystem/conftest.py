"""Shared fixtures of the library matrix: real asyncio libraries from PyPI (the ``ecosystem``
extra), each used unmodified, as its documentation shows it, on netstack through
``netstack.use`` and nothing else.

- ``net``: two stacks on one in-memory cable, a client (198.18.0.1, ``client.test``) and a
  server (198.18.0.2, ``server.test``), each knowing both names (``stack.dns.hosts``);
- ``pki``: a test CA and a certificate for ``server.test``, with ``server_ssl()`` /
  ``client_ssl()`` OpenSSL contexts made from them.

A test runs the library's server under ``netstack.use(net.server)`` and its client under
``netstack.use(net.client)``; a server stays on the stack it was started under.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netstack import Stack

CLIENT_IP, SERVER_IP = "198.18.0.1", "198.18.0.2"
NAMES = {"client.test": [CLIENT_IP], "server.test": [SERVER_IP]}
#: The bound on each step of a test.
STEP = 20.0


@dataclass
class Net:
    client: Stack
    server: Stack


@pytest.fixture
async def net(stack_pair: tuple[Stack, Stack]) -> AsyncIterator[Net]:
    """A client and a server stack on one cable, each knowing both names."""
    client, server = stack_pair
    for stack in stack_pair:
        stack.dns.hosts.update(NAMES)
    yield Net(client, server)


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path

    def server_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and a certificate for server.test (and its address)."""
    from netstack.tls import certs

    d = tmp_path_factory.mktemp("ecosystem-pki")
    ca, ca_key = certs.make_ca("netstack ecosystem CA")
    cert, key = certs.issue(ca, ca_key, "server.test", dns_names=["server.test"],
                            ips=[SERVER_IP])  # fmt: skip
    certs.write_pem(d / "ca.pem", ca)
    certs.write_pem(d / "server.pem", cert)
    certs.write_pem(d / "server.key", None, key)
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key")
