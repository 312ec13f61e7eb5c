"""Every program in examples/ runs, as a user runs it, and does what its docstring says:
programs in a child interpreter (exit 0, nothing on stderr), the pytest example in a child
pytest under pytest-asyncio's default strict mode. A new example needs a test here first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netstack.testing import require_net_admin, require_program

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 120.0


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, timeout=TIMEOUT, env=dict(os.environ), cwd=EXAMPLES,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == "", done.stderr
    return done


def test_every_example_has_a_test() -> None:
    tested = {"echo.py", "pinata.py", "aiohttp_tap.py", "test_lossy_network.py", "firewall.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_echo() -> None:
    out = run_example("echo.py").stdout
    assert "echoed b'hello\\n'" in out and "echoed b'from netstack\\n'" in out
    assert "1 MiB echoed intact: True" in out


def test_pinata() -> None:
    out = run_example("pinata.py").stdout.splitlines()
    got = {line.split(":", 1)[0]: line.split(":", 1)[1] for line in out if ": " in line}
    holder = "key holder (netstack TLS, certificate from the piñata's CA)"
    assert "the secret is" in got[holder]
    for other in ("no certificate (netstack TLS)", "no certificate (OpenSSL)",
                  "certificate from another CA"):  # fmt: skip
        assert got[other].startswith(" refused"), got[other]
    assert "TLS alert record" in got["no TLS at all"]
    assert got["the secret went to"] == f" {holder}"
    assert any(line.endswith("the secret in clear in any: False") for line in out), out


@pytest.mark.peers
def test_aiohttp_on_a_tap() -> None:
    pytest.importorskip("aiohttp")
    require_net_admin()
    require_program("curl")
    out = run_example("aiohttp_tap.py").stdout
    assert "hello curl, from aiohttp on netstack (you are 198.18.0.1)" in out, out
    assert "(100000 bytes) -> 100000 bytes back" in out, out


@pytest.mark.peers
def test_firewall() -> None:
    """Run as a user runs it; tests/peers/test_firewall.py checks each flow and the frames."""
    require_net_admin()
    for program in ("busybox", "curl", "dig", "dnsmasq", "ping"):
        require_program(program)
    out = run_example("firewall.py").stdout
    assert out.endswith("all flows as the rules say\n"), out
    assert "the web server saw the client as: 198.18.2.2" in out, out
    assert "firewall resident memory: " in out, out


def test_lossy_network(pytester: pytest.Pytester) -> None:
    """The example as a user's own test: copied into a project that leaves pytest-asyncio in
    its default strict mode."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    source = (EXAMPLES / "test_lossy_network.py").read_text()
    pytester.makepyfile(test_lossy_network=source)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=TIMEOUT)
    result.assert_outcomes(passed=1)
