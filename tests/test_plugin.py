"""The pytest plugin itself, run in a child pytest (pytester) as users run it: fixtures, the
seed report of a failed impaired test, captures kept for failed tests only; the fixtures
under pytest-asyncio's default strict mode and in auto mode, for tests on function-,
module- and session-scoped event loops; the report header only when netstack's options are
in use. The child inherits NETSTACK_LOOP, so under ``make test`` all of it runs on asyncio's
loop and again on uvloop (the child tests check they are on the loop asked for)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from netstack.link.pcap import read_pcap
from netstack.netns import have_net_admin
from netstack.testing import peers_required

pytest_plugins = ["pytester"]

#: The child's own bound.
CHILD_TIMEOUT = 300.0


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        test_user="""
        import asyncio
        from netstack.link import Impairment

        async def test_pair(stack_pair):
            a, b = stack_pair
            assert await a.ping("198.18.0.2") > 0

        async def test_network(network):
            hosts = [await network.host() for _ in range(3)]
            assert [str(h.addresses[0]) for h in hosts] == [
                "198.18.0.1/24", "198.18.0.2/24", "198.18.0.3/24"]
            for h in hosts[1:]:
                assert await hosts[0].ping(str(h.addresses[0].ip)) > 0

        async def test_impaired_failure(network):
            a = await network.host("198.18.0.5/24", impairment=Impairment(loss=0.5, seed=1234))
            b = await network.host("198.18.0.6/24")
            await asyncio.sleep(0)
            assert False, "deliberate failure"
        """
    )
    return pytester


def test_fixtures_seeds_and_captures(project: pytest.Pytester) -> None:
    captures = project.path / "captures"
    result = project.runpytest_subprocess("--netstack-pcap", str(captures))
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*netstack impairment seeds*", "*seed=1234*"])
    kept = sorted(captures.iterdir())
    # One pcapng file for the failed test, with an interface per host and its frames.
    assert [p.name for p in kept] == [kept[0].name] and "test_impaired_failure" in kept[0].name
    assert kept[0].suffix == ".pcapng"
    records = list(read_pcap(kept[0]))
    assert {r.interface for r in records} == {0, 1}
    result.stdout.fnmatch_lines(["*capture kept in*.pcapng (interfaces: *, *)"])


def test_uvloop_option(project: pytest.Pytester) -> None:
    pytest.importorskip("uvloop")
    result = project.runpytest_subprocess("--netstack-loop", "uvloop", "-k", "test_pair")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines(["*event loop policy from uvloop*"])


# -- strict mode and loop scopes --------------------------------------------------------------
#: A user's test module: every fixture of the plugin, on the loop scope of the module's
#: marker; each test notes its loop, and the last checks they are shared as the scope says.
SCOPED_TESTS = """
import asyncio
import os

import pytest

from netstack.link import Impairment

pytestmark = pytest.mark.asyncio(loop_scope="{scope}")
LOOPS = []


def note_loop():
    loop = asyncio.get_running_loop()
    wanted = os.environ.get("NETSTACK_LOOP") or "asyncio"
    assert type(loop).__module__.split(".")[0] == wanted, type(loop)
    LOOPS.append(loop)


async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_pair(stack_pair):
    note_loop()
    a, b = stack_pair
    await b.start_server(echo, port=7)
    reader, writer = await a.open_connection("198.18.0.2", 7)
    writer.write(b"over the pair\\n")
    assert await reader.readline() == b"over the pair\\n"
    writer.close()


async def test_pair_again(stack_pair):
    note_loop()
    a, b = stack_pair
    assert await b.ping("198.18.0.1") > 0


async def test_lossy_network(network):
    note_loop()
    a = await network.host("198.18.0.5/24", impairment=Impairment(loss=0.1, seed=5))
    b = await network.host("198.18.0.6/24")
    await b.start_server(echo, port=7)
    reader, writer = await a.open_connection("198.18.0.6", 7)
    data = os.urandom(100_000)
    writer.write(data)
    writer.write_eof()
    assert await reader.read() == data
    writer.close()


async def test_kernel(tap_stack, tap_netns):
    note_loop()
    assert await tap_stack.ping(tap_netns.kernel_ipv4) > 0
    # The kernel pings netstack: only a command that leaves the loop free gets its answer.
    done = await tap_netns.arun("ping", "-c", "2", "-i", "0.2", "-W", "2", "198.18.0.2")
    assert "2 received" in done.stdout, done.stdout


async def test_loops_as_scoped():
    distinct = len({{id(loop) for loop in LOOPS}})
    if "{scope}" == "function":
        assert distinct == len(LOOPS)
    else:
        assert distinct == 1, LOOPS
"""

#: A second module, for the session scope: the session loop is the first module's.
SESSION_TESTS = """
import asyncio

import pytest

import test_scoped

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_same_session_loop(stack_pair):
    a, b = stack_pair
    assert await a.ping("198.18.0.2") > 0
    assert asyncio.get_running_loop() is test_scoped.LOOPS[0]
"""


def _assert_all_ran(result: pytest.RunResult, tests: int) -> None:
    """Every test passed; without root the TAP one may skip, unless peers are required."""
    outcomes = result.parseoutcomes()
    if not have_net_admin() and not peers_required():
        assert outcomes.get("skipped", 0) == 1, result.outlines
        tests -= 1
    assert outcomes.get("passed", 0) == tests, result.outlines
    assert not outcomes.get("failed") and not outcomes.get("errors"), result.outlines
    assert not outcomes.get("warnings"), result.outlines


@pytest.mark.parametrize("mode", ["strict", "auto"])
@pytest.mark.parametrize("scope", ["function", "module", "session"])
def test_fixtures_on_every_loop_scope(pytester: pytest.Pytester, mode: str, scope: str) -> None:
    """In strict mode (pytest-asyncio's default, so the ini leaves it out) and in auto mode,
    the fixtures run on the loop of the test that uses them, for each loop scope."""
    mode_line = "" if mode == "strict" else "asyncio_mode = auto\n"
    pytester.makeini(f"[pytest]\n{mode_line}asyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_scoped=SCOPED_TESTS.format(scope=scope))
    tests = 5
    if scope == "session":
        pytester.makepyfile(test_session=SESSION_TESTS)
        tests += 1
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=CHILD_TIMEOUT)
    header = [line for line in result.outlines if line.startswith("asyncio: mode=")]
    assert header and mode in header[0].lower(), result.outlines
    _assert_all_ran(result, tests)


def test_strict_mode_without_markers_says_so(pytester: pytest.Pytester) -> None:
    """In strict mode an unmarked async test is not run by pytest-asyncio: the user sees
    pytest's failure for it (which the README's markers avoid), not a hang or a silent pass."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_unmarked="""
        async def test_pair(stack_pair):
            a, b = stack_pair
            assert await a.ping("198.18.0.2") > 0
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=CHILD_TIMEOUT)
    assert result.parseoutcomes().get("passed", 0) == 0, result.outlines
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])


def test_without_pytest_asyncio_a_fixture_says_so(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_sync="def test_pair(stack_pair):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:asyncio", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*stack_pair fixture is async: it needs the pytest-asyncio*"])


def test_plugins_named_on_the_command_line(pytester: pytest.Pytester) -> None:
    """With plugin autoloading off, ``-p asyncio -p netstack`` (the entry points' names)
    loads both, and the fixtures work in strict mode."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_scoped=SCOPED_TESTS.format(scope="module"))
    env = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        result = pytester.runpytest_subprocess(
            "-p", "asyncio", "-p", "netstack", "-p", "no:cacheprovider", timeout=CHILD_TIMEOUT
        )
    _assert_all_ran(result, 5)


# -- the header and the cost --------------------------------------------------------------------
@pytest.fixture
def plain_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project that does not use netstack: one synchronous test."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")
    return pytester


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("NETSTACK_")}


def test_no_header_line_unless_netstack_options_are_used(plain_project: pytest.Pytester) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("NETSTACK_")]:
            patch.delenv(key)
        quiet = plain_project.runpytest_subprocess("-p", "no:cacheprovider")
        asked = plain_project.runpytest_subprocess("--netstack-loop", "asyncio")
        by_env = plain_project.runpytest_subprocess()
        patch.setenv("NETSTACK_REQUIRE_PEERS", "1")
        required = plain_project.runpytest_subprocess()
    quiet.assert_outcomes(passed=1)
    assert not [line for line in quiet.outlines if line.startswith("netstack")], quiet.outlines
    asked.stdout.fnmatch_lines(["netstack: event loop policy from asyncio*"])
    assert not [line for line in by_env.outlines if line.startswith("netstack:")]
    required.stdout.fnmatch_lines(["netstack: *peers required: True"])


def test_the_plugin_imports_nothing_heavy() -> None:
    """What loading the plugin costs a project that does not use it: importing
    ``netstack.testing`` (and so ``netstack``) after pytest brings in neither the stacks,
    asyncio, pytest-asyncio's users' loops, dnspython nor cryptography."""
    code = textwrap.dedent(
        """
        import sys
        import pytest
        before = set(sys.modules)
        import netstack.testing
        new = sorted(set(sys.modules) - before)
        heavy = [m for m in new if m.split(".")[0] in ("asyncio", "dns", "cryptography", "uvloop")
                 or m.startswith(("netstack.stack", "netstack.proto", "netstack.drivers",
                                  "netstack.link", "netstack.host", "netstack.tls"))]
        print(heavy)
        print(new)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
        env=_plain_env(),
    )  # fmt: skip
    heavy, new = done.stdout.splitlines()
    assert heavy == "[]", new
