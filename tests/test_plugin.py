"""The pytest plugin itself, run in a child pytest (pytester): fixtures, the seed report of a
failed impaired test, and captures kept for failed tests only."""

from __future__ import annotations

import pytest

from netstack.link.pcap import read_pcap

pytest_plugins = ["pytester"]


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
