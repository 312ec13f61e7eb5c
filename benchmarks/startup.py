"""What netstack's pytest plugin costs a project that does not use it.

The plugin (entry point ``pytest11``) loads in every pytest run of an environment where
netstack is installed. Two measurements:

- ``pytest_startup`` (ms): the wall time of ``python -m pytest`` running one synchronous test
  in a project of its own, with the plugin (``impl`` "with plugin") and with it disabled by
  ``-p no:netstack`` ("without plugin"), the two runs interleaved so that load on the machine
  falls on both alike; ``header_lines`` counts the lines netstack added to pytest's header.
  The difference of the medians is the plugin's cost, to be read against their spread.
- ``plugin_import`` (ms): in a fresh interpreter that has imported pytest, the time to import
  ``netstack.testing`` (what loading the plugin does), beside ``netstack.stack`` (the stack,
  which the plugin imported before its imports became lazy).

Environment variables ``NETSTACK_*`` are cleared in the children, so the plugin sees a
project that does not use it, and they write and use bytecode caches as an installed package
does (in a temporary ``PYTHONPYCACHEPREFIX``, also where ``PYTHONDONTWRITEBYTECODE`` is set):
the first, warming run of each is not counted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import Emitter, Settings, log, summarize

#: In a fresh interpreter: import pytest, then time one import (milliseconds).
_TIME_IMPORT = (
    "import time, pytest\n"
    "t = time.perf_counter()\n"
    "import {module}\n"
    "print((time.perf_counter() - t) * 1000)\n"
)


def _env(pycache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETSTACK_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _pytest_once(project: Path, *extra: str) -> tuple[float, int]:
    """One pytest run in ``project``: its wall time (ms) and the header lines netstack added."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *extra],
        cwd=project, capture_output=True, text=True, timeout=120, env=_env(project / "pyc"),
        check=True,
    )  # fmt: skip
    elapsed = (time.perf_counter() - started) * 1000
    header = [line for line in done.stdout.splitlines() if line.startswith("netstack")]
    return elapsed, len(header)


def _import_once(module: str, pycache: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _TIME_IMPORT.format(module=module)],
        capture_output=True, text=True, timeout=60, env=_env(pycache), check=True,
    )  # fmt: skip
    return float(done.stdout)


def run_startup(emit: Emitter, settings: Settings) -> None:
    repeats = 5 if settings.quick else 20
    with tempfile.TemporaryDirectory(prefix="netstack-startup-") as tmp:
        project = Path(tmp)
        (project / "pytest.ini").write_text(
            "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        )
        (project / "test_plain.py").write_text("def test_nothing():\n    pass\n")
        _pytest_once(project)  # warm the file and bytecode caches
        _pytest_once(project, "-p", "no:netstack")
        runs: dict[str, list[float]] = {"with plugin": [], "without plugin": []}
        headers: dict[str, int] = {"with plugin": 0, "without plugin": 0}
        for i in range(repeats):
            order = ["with plugin", "without plugin"]
            for impl in order if i % 2 == 0 else order[::-1]:
                extra = () if impl == "with plugin" else ("-p", "no:netstack")
                elapsed, header = _pytest_once(project, *extra)
                runs[impl].append(elapsed)
                headers[impl] = max(headers[impl], header)
        for impl, samples in runs.items():
            emit.emit_summary(
                "pytest_startup", impl, "ms", summarize(samples), loop=None,
                header_lines=headers[impl],
            )  # fmt: skip
        medians = {impl: summarize(samples)["value"] for impl, samples in runs.items()}
        cost = medians["with plugin"] - medians["without plugin"]
        log(f"pytest_startup: with - without the plugin = {cost:.1f} ms (medians)")
        for module in ("netstack.testing", "netstack.stack"):
            _import_once(module, project / "pyc")
            samples = [_import_once(module, project / "pyc") for _ in range(repeats)]
            emit.emit_summary("plugin_import", module, "ms", summarize(samples), loop=None)
