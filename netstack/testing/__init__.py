"""netstack's pytest plugin (entry point ``pytest11``): networks of stacks as fixtures.

Fixtures:
    stack_pair: two stacks on one in-memory cable, 198.18.0.1/24 and 198.18.0.2/24.
    network: a factory of hosts on an in-memory learning switch:
        ``await network.host("198.18.0.5/24", impairment=Impairment(loss=0.1))``.
    tap_netns: a fresh network namespace whose kernel (198.18.0.1/24, fd00:198:18::1/64)
        sits at the other end of a TAP device; deleted afterwards, also on failure.
        ``await tap_netns.arun("ping", "-c1", "198.18.0.2")`` runs a command in it without
        blocking the event loop (``run`` blocks, as :func:`subprocess.run` does).
    tap_stack: a stack (198.18.0.2/24) on that TAP device, the kernel as its peer.

The async fixtures are pytest-asyncio fixtures, so they work in its default *strict* mode
(tests marked ``@pytest.mark.asyncio``) as in auto mode, and each is set up on the event loop
of the test that asks for it, whatever that test's ``loop_scope`` (function, class, module,
package or session): a stack lives on one loop and must be used on that one.

Tests that need root or a peer program skip when it is missing, with the reason in
``pytest -rs``; with ``NETSTACK_REQUIRE_PEERS=1`` (as CI sets) they fail instead.

Options:
    --netstack-pcap=DIR: keep a pcapng capture of each failed test in DIR (one file per test,
      one interface per link).
    --netstack-loop=uvloop: run the tests on uvloop (also ``NETSTACK_LOOP=uvloop``).

A failed test whose links had an :class:`~netstack.link.Impairment` reports the seeds, so the
run can be replayed with the same losses, reorderings and corruptions.

The plugin loads wherever netstack is installed, so this module imports nothing but pytest
and the standard library's light modules: the stacks, asyncio and pytest-asyncio are imported
when a fixture is first used, and the report header says nothing unless one of netstack's
options (or ``NETSTACK_LOOP`` / ``NETSTACK_REQUIRE_PEERS``) is in use.

:mod:`netstack.testing.conformance` is the stream conformance suite, for any transport.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import subprocess

    from ..link.base import BaseLink, Link
    from ..link.memory import Impairment, Switch
    from ..link.pcap import PcapLink, PcapngWriter
    from ..netns import Namespace
    from ..stack import Stack

__all__ = [
    "Network",
    "TapSandbox",
    "peers_required",
    "require_net_admin",
    "require_program",
]

_SEEDS = pytest.StashKey[list[str]]()
_REPORT = pytest.StashKey[pytest.TestReport]()

#: pytest-asyncio's loop scopes, narrowest first.
_LOOP_SCOPES = ("function", "class", "module", "package", "session")


def peers_required() -> bool:
    """True when missing peers must fail tests rather than skip them (CI)."""
    return os.environ.get("NETSTACK_REQUIRE_PEERS", "") not in ("", "0")


def _unavailable(reason: str) -> None:
    if peers_required():
        pytest.fail(f"{reason} (NETSTACK_REQUIRE_PEERS is set)", pytrace=False)
    pytest.skip(reason)


def require_program(*names: str) -> str:
    """The path of the first of ``names`` on PATH; skips (or fails in CI) without one."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    for name in names:
        found = shutil.which(name, path=path)
        if found is not None:
            return found
    _unavailable(f"peer program {' or '.join(names)} is not installed")
    raise AssertionError("unreachable")


def require_net_admin() -> None:
    """Skip (or fail in CI) unless TAP devices and namespaces can be created."""
    from ..netns import tap_unavailable_reason

    reason = tap_unavailable_reason()
    if reason is not None:
        _unavailable(reason)


# -- options and hooks ------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netstack")
    group.addoption(
        "--netstack-pcap",
        metavar="DIR",
        default=None,
        help="keep a pcapng capture of each failed test (an interface per link) in DIR",
    )
    group.addoption(
        "--netstack-loop",
        choices=("asyncio", "uvloop"),
        default=None,
        help="event loop for the tests (default: $NETSTACK_LOOP or asyncio)",
    )


def _loop_option(config: pytest.Config) -> str | None:
    loop: str | None = config.getoption("--netstack-loop") or os.environ.get("NETSTACK_LOOP")
    return loop or None


def _asyncio_plugin(config: pytest.Config) -> bool:
    """Whether pytest-asyncio runs in this session (installed, and not ``-p no:asyncio``)."""
    return any(
        getattr(plugin, "__name__", "") == "pytest_asyncio.plugin"
        for plugin in config.pluginmanager.get_plugins()
    )


def pytest_configure(config: pytest.Config) -> None:
    if _asyncio_plugin(config):  # else the public fixtures say what is missing
        from . import _async_fixtures

        _async_fixtures.declare(_ASYNC_FIXTURES, _LOOP_SCOPES)
        config.pluginmanager.register(_async_fixtures, "netstack.testing._async_fixtures")
    if _loop_option(config) == "uvloop":
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def pytest_report_header(config: pytest.Config) -> str | None:
    """One line, only when one of netstack's options or environment variables is in use."""
    if not (_loop_option(config) or config.getoption("--netstack-pcap") or peers_required()):
        return None
    import asyncio

    policy = type(asyncio.get_event_loop_policy()).__module__
    return f"netstack: event loop policy from {policy}; peers required: {peers_required()}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" or (report.when == "setup" and report.failed):
        item.stash[_REPORT] = report
    if report.failed:
        seeds = item.stash.get(_SEEDS, [])
        if seeds:
            report.sections.append(("netstack impairment seeds", "\n".join(seeds)))
    return report


def _failed(item: pytest.Item) -> bool:
    report = item.stash.get(_REPORT, None)
    return report is not None and report.failed


# -- captures ---------------------------------------------------------------------------------
class _Captures:
    """Wraps links in :class:`PcapLink` when --netstack-pcap is given, all of one test's links
    in one pcapng file (an interface per link, named for it), and keeps the files of failed
    tests."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        option = request.config.getoption("--netstack-pcap")
        self.dir = Path(option) if option else None
        self.writer: PcapngWriter | None = None
        self.links: list[PcapLink] = []

    def wrap(self, link: Link, name: str) -> Link:
        if self.dir is None:
            return link
        from ..link.pcap import PcapLink, PcapngWriter

        if self.writer is None:
            tmp: Path = self.request.getfixturevalue("tmp_path")
            self.writer = PcapngWriter(tmp / "capture.pcapng")
        pcap = PcapLink(link, self.writer, name=name)
        self.links.append(pcap)
        return pcap

    def finish(self) -> None:
        for link in self.links:
            link.close()
        writer = self.writer
        if writer is None:
            return
        writer.close()
        if self.dir is None or writer.path is None or not _failed(self.request.node):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.request.node.nodeid)
        target = self.dir / f"{stem}.pcapng"
        shutil.copyfile(writer.path, target)
        names = ", ".join(link.name for link in writer.interfaces)
        print(f"netstack: capture kept in {target} (interfaces: {names})")


def _record_seed(request: pytest.FixtureRequest, what: str, impairment: Impairment) -> None:
    seeds = request.node.stash.setdefault(_SEEDS, [])
    seeds.append(f"{what}: {impairment!r}")


# -- what the fixtures hold -------------------------------------------------------------------
def _new_switch() -> Switch:
    from ..link.memory import Switch

    return Switch()


@dataclass
class Network:
    """Hosts on one in-memory :class:`~netstack.link.Switch`."""

    request: pytest.FixtureRequest
    switch: Switch = field(default_factory=_new_switch)
    stacks: list[Stack] = field(default_factory=list)
    _captures: _Captures | None = None

    async def host(
        self,
        ipv4: str | None = None,
        *,
        impairment: Impairment | None = None,
        mtu: int | None = None,
        **options: Any,
    ) -> Stack:
        """A new stack on a new switch port.

        Args:
            ipv4: its address (``"198.18.0.5/24"``); by default the next of 198.18.0.N/24.
            impairment: what its port does to frames both ways.
            mtu: the port's MTU (the switch's by default).
            options: more keyword arguments for :meth:`Stack.open` (``gateway=``...).
        """
        from ..stack import Stack

        if ipv4 is None and not options.get("dhcp"):
            ipv4 = f"198.18.0.{len(self.stacks) + 1}/24"
        link: Link = self.switch.port(mtu=mtu, impairment=impairment)
        name = f"host{len(self.stacks) + 1}"
        if impairment is not None:
            _record_seed(self.request, f"{name} ({ipv4})", impairment)
        if self._captures is not None:
            link = self._captures.wrap(link, name)
        stack = await Stack.open(link, ipv4=ipv4, **options)
        self.stacks.append(stack)
        return stack

    def impair(self, stack: Stack, impairment: Impairment | None) -> None:
        """Change the impairment of ``stack``'s port from the next frame on."""
        from ..link.memory import MemoryLink

        link = stack.link
        inner = getattr(link, "link", link)  # through a PcapLink
        if not isinstance(inner, MemoryLink):
            raise TypeError("only hosts of this network can be impaired")
        inner.impairment = impairment
        if impairment is not None:
            _record_seed(self.request, repr(stack), impairment)

    async def close(self) -> None:
        for stack in self.stacks:
            await stack.close()


@dataclass
class TapSandbox:
    """A namespace whose kernel is at the far end of :attr:`link`."""

    namespace: Namespace
    link: BaseLink
    kernel_ipv4: str = "198.18.0.1"
    kernel_ipv6: str = "fd00:198:18::1"
    stack_ipv4: str = "198.18.0.2/24"
    stack_ipv6: str = "fd00:198:18::2/64"

    @property
    def name(self) -> str:
        return str(self.namespace.name)

    @property
    def dev(self) -> str:
        return str(getattr(self.link, "name", ""))

    def run(self, *argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a command in the namespace and wait for it, blocking (``subprocess.run``);
        in a coroutine, use :meth:`arun`."""
        return self.namespace.run(*argv, **kwargs)

    async def arun(self, *argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a command in the namespace and await it without blocking the event loop, so
        that a stack on the TAP device can answer it (:meth:`Namespace.arun
        <netstack.netns.Namespace.arun>`: ``check``, ``timeout``, ``input``)."""
        return await self.namespace.arun(*argv, **kwargs)

    def popen(self, *argv: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a command in the namespace; it is killed when the sandbox goes."""
        return self.namespace.popen(*argv, **kwargs)


# -- the async fixtures, as context managers ---------------------------------------------------
@contextlib.asynccontextmanager
async def _stack_pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Stack, Stack]]:
    from ..link.memory import MemoryLink
    from ..stack import Stack

    captures = _Captures(request)
    a_link, b_link = MemoryLink.pair()
    a = await Stack.open(captures.wrap(a_link, "a"), ipv4="198.18.0.1/24")
    try:
        b = await Stack.open(captures.wrap(b_link, "b"), ipv4="198.18.0.2/24")
        try:
            yield a, b
        finally:
            await b.close()
    finally:
        await a.close()
        captures.finish()


@contextlib.asynccontextmanager
async def _network(request: pytest.FixtureRequest) -> AsyncIterator[Network]:
    captures = _Captures(request)
    net = Network(request, _captures=captures)
    try:
        yield net
    finally:
        await net.close()
        captures.finish()


@contextlib.asynccontextmanager
async def _tap_stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    from ..stack import Stack

    sandbox: TapSandbox = request.getfixturevalue("tap_netns")
    captures = _Captures(request)
    stack = await Stack.open(captures.wrap(sandbox.link, "tap"), ipv4=sandbox.stack_ipv4)
    try:
        yield stack
    finally:
        await stack.close()
        captures.finish()


_ASYNC_FIXTURES: dict[str, Callable[[pytest.FixtureRequest], Any]] = {
    "stack_pair": _stack_pair,
    "network": _network,
    "tap_stack": _tap_stack,
}


def _test_loop_scope(request: pytest.FixtureRequest) -> str:
    """The loop scope of the test that asked (pytest-asyncio's rule): the ``loop_scope`` of
    its closest ``asyncio`` marker, else the ``asyncio_default_test_loop_scope`` setting."""
    marker = request.node.get_closest_marker("asyncio")
    scope = None
    if marker is not None:
        scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")
    if scope is None:
        try:
            scope = request.config.getini("asyncio_default_test_loop_scope")
        except ValueError:  # pytest-asyncio before 0.26 has no such setting
            scope = None
    return str(scope or "function")


def _on_the_tests_loop(name: str, request: pytest.FixtureRequest) -> Any:
    """The value of fixture ``name``, set up on the event loop of the test that asked.

    A pytest-asyncio fixture runs on the loop of its own ``loop_scope``, fixed when it is
    declared; netstack's fixtures serve tests of any loop scope, so each is declared once per
    scope (``_netstack_<name>_<scope>``, in :mod:`._async_fixtures`) and the public one
    picks the test's.
    """
    if not _asyncio_plugin(request.config):
        pytest.fail(
            f"netstack's {name} fixture is async: it needs the pytest-asyncio plugin "
            "(pip install pytest-asyncio; not disabled with -p no:asyncio)",
            pytrace=False,
        )
    scope = _test_loop_scope(request)
    if scope not in _LOOP_SCOPES:
        pytest.fail(f"{request.node.nodeid}: unknown asyncio loop scope {scope!r}", pytrace=False)
    return request.getfixturevalue(f"_netstack_{name}_{scope}")


# -- the public fixtures ----------------------------------------------------------------------
@pytest.fixture
def stack_pair(request: pytest.FixtureRequest) -> tuple[Stack, Stack]:
    """Two stacks on one in-memory cable: 198.18.0.1/24 and 198.18.0.2/24."""
    pair: tuple[Stack, Stack] = _on_the_tests_loop("stack_pair", request)
    return pair


@pytest.fixture
def network(request: pytest.FixtureRequest) -> Network:
    """A factory of hosts on an in-memory switch; everything is closed afterwards."""
    net: Network = _on_the_tests_loop("network", request)
    return net


@pytest.fixture
def tap_netns(request: pytest.FixtureRequest) -> Iterator[TapSandbox]:
    """A fresh namespace with a TAP device whose kernel side is 198.18.0.1/24.

    Without root, where unprivileged user namespaces are allowed, the namespace is a user
    and network namespace of this user's (:class:`netstack.netns.UserNamespace`) and the
    device is made inside and passed out, as slirp4netns does: the same sandbox, no privilege.
    """
    from ..netns import (
        Namespace,
        UserNamespace,
        open_tap_in_namespace,
        open_tap_in_user_namespace,
        rootless_tap_unavailable_reason,
        tap_unavailable_reason,
    )

    reason = tap_unavailable_reason()
    if reason is not None:
        rootless = rootless_tap_unavailable_reason()
        if rootless is not None:
            _unavailable(f"{reason}; {rootless}")
    ns = Namespace.create() if reason is None else UserNamespace.create()
    try:
        if isinstance(ns, UserNamespace):
            link = open_tap_in_user_namespace(ns)
        else:
            link = open_tap_in_namespace(ns)
        yield TapSandbox(ns, link)
    finally:
        ns.delete()


@pytest.fixture
def tap_stack(request: pytest.FixtureRequest, tap_netns: TapSandbox) -> Stack:
    """A stack at 198.18.0.2/24 on the TAP device of :func:`tap_netns`."""
    stack: Stack = _on_the_tests_loop("tap_stack", request)
    return stack
