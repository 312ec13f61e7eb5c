"""The stream conformance suite (:mod:`netstack.testing.conformance`) run unchanged over every
backend, one test per check:

* ``memory``: netstack to netstack over an in-memory cable (the ``stack_pair`` fixture);
* ``memory-ipv6``: the same over IPv6 (fd00::1 to fd00::2);
* ``memory-tls``: the same over netstack's own TLS 1.3 (``netstack.tls.TLSConfig``), whose
  ``write_eof`` sends close_notify and keeps reading, so even the half-close checks apply;
* ``host``: HostStack to HostStack on loopback (the operating system's sockets);
* ``host-tls``: the same over netstack's own TLS 1.3, on the event loop's socket transports;
* ``tap-netstack-client``: netstack on a TAP device connecting to the Linux kernel in a
  network namespace, where an agent (``python conformance.py agent``) drives the kernel's
  sockets with asyncio;
* ``tap-netstack-server``: the same, the kernel connecting to netstack.

The TAP backends need root (``tap_netns``); without it they skip, unless
``NETSTACK_REQUIRE_PEERS=1``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from netstack import HostStack, Stack, StackConfig
from netstack.link import MemoryLink
from netstack.proto.ipv6.addrconf import AddrconfConfig
from netstack.proto.ipv6.layer import IPv6Config
from netstack.testing.conformance import (
    CHECKS,
    DIRECTIONAL_CHECKS,
    DIRECTIONS,
    Agent,
    Harness,
    RemoteEndpoint,
    run_check,
)

BACKENDS = [
    "memory",
    "memory-ipv6",
    "memory-tls",
    "host",
    "host-tls",
    pytest.param("tap-netstack-client", marks=pytest.mark.peers),
    pytest.param("tap-netstack-server", marks=pytest.mark.peers),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """The backend's name and the netstack fixtures it is built on (resolved here, outside
    the event loop, so that the TAP ones can skip)."""
    name = request.param
    if name in ("memory", "memory-tls"):
        return name, request.getfixturevalue("stack_pair")
    if name.startswith("tap-"):
        return name, (request.getfixturevalue("tap_stack"), request.getfixturevalue("tap_netns"))
    return name, None


@pytest.fixture
async def harness(backend: tuple[str, Any]) -> AsyncIterator[Harness]:
    name, parts = backend
    agent: Agent | None = None
    host: HostStack | None = None
    stacks: list[Stack] = []
    if name == "memory":
        a, b = parts
        h = Harness(name, client=a, server=b, server_host="198.18.0.2")
    elif name == "memory-tls":
        a, b = parts
        server_cfg, client_cfg = _tls_configs()
        h = Harness(
            name, client=a, server=b, server_host="198.18.0.2",
            client_kwargs={"ssl": client_cfg, "server_hostname": "server.test"},
            server_kwargs={"ssl": server_cfg},
        )  # fmt: skip
    elif name == "memory-ipv6":
        a_link, b_link = MemoryLink.pair()
        # Quick DAD: a memory cable need not wait the RFC's second.
        quick = AddrconfConfig(retrans_timer=0.01, max_rtr_solicitation_delay=0.01)
        config = StackConfig(ipv6=IPv6Config(addrconf=quick))
        stacks.append(await Stack.open(a_link, ipv6="fd00::1/64", config=config))
        stacks.append(await Stack.open(b_link, ipv6="fd00::2/64", config=config))
        h = Harness(name, client=stacks[0], server=stacks[1], server_host="fd00::2")
    elif name == "host":
        host = HostStack()
        h = Harness(name, host, host, server_host="127.0.0.1", listen_host="127.0.0.1")
    elif name == "host-tls":
        host = HostStack()
        server_cfg, client_cfg = _tls_configs()
        h = Harness(
            name, host, host, server_host="127.0.0.1", listen_host="127.0.0.1",
            client_kwargs={"ssl": client_cfg, "server_hostname": "server.test"},
            server_kwargs={"ssl": server_cfg},
        )  # fmt: skip
    else:
        stack, sandbox = parts
        agent = await Agent.start(["ip", "netns", "exec", sandbox.name, *Agent.argv()])
        kernel = RemoteEndpoint(agent)
        if name == "tap-netstack-client":
            h = Harness(name, stack, kernel, server_host="198.18.0.1", listen_host="198.18.0.1")
        else:
            h = Harness(name, kernel, stack, server_host="198.18.0.2")
    try:
        yield h
    finally:
        await h.aclose()
        if host is not None:
            await host.close()
        for stack in stacks:
            await stack.close()
        if agent is not None:
            await agent.close()
            agent.check()


_TLS: list[tuple[Any, Any]] = []


def _tls_configs() -> tuple[Any, Any]:
    """A server and a client configuration of netstack's TLS, one CA for the whole run."""
    if not _TLS:
        from netstack.tls import TLSConfig, certs

        ca, ca_key = certs.make_ca("conformance CA")
        cert, key = certs.issue(ca, ca_key, "server.test", dns_names=["server.test"])
        _TLS.append((TLSConfig.server([cert], key), TLSConfig.client(cafile=[ca])))
    return _TLS[0]


def _name(fn: Callable[..., Awaitable[None]]) -> str:
    return fn.__name__.removeprefix("check_")


@pytest.mark.parametrize("check", CHECKS, ids=_name)
async def test_stream(harness: Harness, check: Callable[[Harness], Awaitable[None]]) -> None:
    await run_check(harness, check)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("check", DIRECTIONAL_CHECKS, ids=_name)
async def test_stream_direction(
    harness: Harness, check: Callable[[Harness, str], Awaitable[None]], direction: str
) -> None:
    await run_check(harness, check, direction)
