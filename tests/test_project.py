"""The project's own commands: ``make test`` (and so CI) runs the suite on both event loops,
and each run is on the loop it says."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_make_test_runs_the_suite_on_both_loops() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    plan = subprocess.run(
        ["make", "-n", "-B", "test", "BIN=bin"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    runs = [line for line in plan.splitlines() if "-m pytest" in line]
    assert any(line.startswith("NETSTACK_LOOP=asyncio ") for line in runs), plan
    assert any(line.startswith("NETSTACK_LOOP=uvloop ") for line in runs), plan
    assert len(runs) == 2, plan


def test_tox_runs_both_loops() -> None:
    tox = (ROOT / "tox.ini").read_text()
    assert "setenv = NETSTACK_LOOP = asyncio" in tox
    assert "setenv = NETSTACK_LOOP = uvloop" in tox


async def test_running_on_the_loop_asked_for(request: pytest.FixtureRequest) -> None:
    wanted = request.config.getoption("--netstack-loop") or os.environ.get(
        "NETSTACK_LOOP", "asyncio"
    )
    module = type(asyncio.get_running_loop()).__module__
    assert module.split(".")[0] == wanted, module


def test_run_is_exported() -> None:
    """``netstack.run`` (DESIGN.md, the README's first example) is the runner's."""
    import netstack
    import netstack.runner

    assert netstack.run is netstack.runner.run
    assert "run" in netstack.__all__
