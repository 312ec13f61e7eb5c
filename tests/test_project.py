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


def test_license_changelog_and_urls() -> None:
    """What a user checks before trusting a package: its license (the file pyproject names),
    a changelog in Keep a Changelog's form, and where the project lives."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "netstack contributors" in license_text
    urls = project["urls"]
    assert {"Homepage", "Source", "Changelog", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    assert urls["Changelog"].endswith("/CHANGELOG.md")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "https://keepachangelog.com/" in changelog
    versions = re.findall(r"^## \[([^\]]+)\]", changelog, re.M)
    assert versions[0] == "Unreleased" and project["version"] in versions
    for version in versions:  # each heading links somewhere
        assert re.search(rf"^\[{re.escape(version)}\]: https://", changelog, re.M), version
    for section in re.findall(r"^### (\w+)", changelog, re.M):
        assert section in {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
