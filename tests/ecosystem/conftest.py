"""Shared fixtures of the library matrix: real asyncio libraries from PyPI (the ``ecosystem``
extra), each used unmodified, as its documentation shows it, on netstack through
``netstack.use`` and nothing else.

- ``net``: two stacks on one in-memory cable, a client (198.18.0.1, ``client.test``) and a
  server (198.18.0.2, ``server.test``), each knowing both names (``stack.dns.hosts``);
- ``pki``: a test CA and a certificate for ``server.test``, with ``server_ssl()`` /
  ``client_ssl()`` OpenSSL contexts and ``server_tls()`` / ``client_tls()`` netstack
  ``TLSConfig`` s made from them (the two TLS engines every ``ssl=`` takes);
- ``kernel``: the Linux kernel in a network namespace at the other end of a TAP device
  (the plugin's ``tap_netns`` / ``tap_stack``), where the kernel's own clients and servers
  run (curl, ssh, ``python -m http.server``, the library itself on kernel sockets in a
  Python of this environment) with ``kernel.run()`` / ``kernel.start()``.

A test runs the library's server under ``netstack.use(net.server)`` and its client under
``netstack.use(net.client)``; a server stays on the stack it was started under.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netstack import Stack
from netstack.testing import TapSandbox

CLIENT_IP, SERVER_IP = "198.18.0.1", "198.18.0.2"
NAMES = {"client.test": [CLIENT_IP], "server.test": [SERVER_IP]}
#: Over TAP: the kernel in its namespace, and the stack on the TAP device.
KERNEL_IP, STACK_IP = "198.18.0.1", "198.18.0.2"
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
    #: A certificate for the kernel's side of the TAP tests (kernel.test, 198.18.0.1).
    kernel_cert: Path
    kernel_key: Path

    def server_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)

    def server_tls(self) -> Any:
        from netstack.tls import TLSConfig

        return TLSConfig.server(self.cert, self.key)

    def client_tls(self) -> Any:
        from netstack.tls import TLSConfig

        return TLSConfig.client(cafile=self.ca)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and certificates for server.test and kernel.test (and their addresses)."""
    from netstack.tls import certs

    d = tmp_path_factory.mktemp("ecosystem-pki")
    ca, ca_key = certs.make_ca("netstack ecosystem CA")
    certs.write_pem(d / "ca.pem", ca)
    for name, ip in (("server", SERVER_IP), ("kernel", KERNEL_IP)):
        cert, key = certs.issue(ca, ca_key, f"{name}.test", dns_names=[f"{name}.test"],
                                ips=[ip])  # fmt: skip
        certs.write_pem(d / f"{name}.pem", cert)
        certs.write_pem(d / f"{name}.key", None, key)
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "kernel.pem",
               d / "kernel.key")  # fmt: skip


# -- the kernel over TAP -------------------------------------------------------------------------
@dataclass
class Kernel:
    """The kernel in a namespace (198.18.0.1) and the stack on the other end of its TAP
    device (198.18.0.2)."""

    sandbox: TapSandbox
    stack: Stack
    ip: str = KERNEL_IP
    stack_ip: str = STACK_IP

    async def run(self, *argv: str, timeout: float = STEP, status: int = 0) -> str:
        """Run a command in the namespace to its end without blocking the loop (the stack
        must answer it); its standard output, asserting it exited with ``status``."""
        done = await self.sandbox.arun(*argv, check=False, timeout=timeout)
        assert done.returncode == status, f"{argv} exited {done.returncode}: {done.stderr}"
        return str(done.stdout)

    async def python(self, code: str, *args: str, timeout: float = STEP) -> str:
        """Run Python code in the namespace, on the kernel's sockets, with this
        environment's libraries."""
        return await self.run(sys.executable, "-c", code, *args, timeout=timeout)

    @contextlib.asynccontextmanager
    async def start(self, *argv: str, port: int) -> AsyncIterator[subprocess.Popen[bytes]]:
        """A server in the namespace, once it listens on TCP ``port``; killed afterwards."""
        proc: subprocess.Popen[bytes] = self.sandbox.popen(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            async with asyncio.timeout(STEP):
                while not (await self.run("ss", "-Hltn", f"sport = :{port}")).strip():
                    assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
                    await asyncio.sleep(0.05)
            yield proc
        finally:
            proc.kill()
            proc.wait()
            proc.stderr.close()  # type: ignore[union-attr]


@pytest.fixture
async def kernel(tap_netns: TapSandbox, tap_stack: Stack) -> AsyncIterator[Kernel]:
    """The kernel in a namespace and a stack on its TAP device, which knows the kernel as
    ``kernel.test``."""
    tap_stack.dns.hosts["kernel.test"] = [KERNEL_IP]
    yield Kernel(tap_netns, tap_stack)
