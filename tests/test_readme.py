"""Every code block of README.md is run, each bounded in time, and a block of a kind none of
these tests runs fails ``test_every_block_is_run``:

* ```python blocks that define ``test_`` functions are pytest examples: they run through
  pytester in a child pytest, configured by the README's ```toml block (pytest-asyncio's
  default strict mode), and again in auto mode;
* the other ```python blocks are programs: each runs in a child interpreter, which must exit
  0 with nothing on stderr (no traceback, no warning, no error logged by the event loop);
* the ```toml block is the pytest configuration the examples run with;
* ```sh blocks: ``make`` targets must exist (``make -n``); ``netstack`` command lines must
  parse, and run to a clean exit -- ``sudo`` ones as root (skipped otherwise, failed in CI),
  ``serve`` until the Ctrl-C it says stops it; a line naming a TAP device (``--tap``) is only
  parsed, since a test may create TAP devices only inside a namespace of its own; ``python
  examples/...`` and ``pytest examples/...`` run from the repository's root; ``pip install``
  lines install nothing here, but the extras and packages they name must be the project's;
* the block without a language is the layout: every path it lists exists.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest

from netstack.testing import require_net_admin

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: The bound on each block (a child interpreter or a child pytest).
BLOCK_TIMEOUT = 120.0


class Block(NamedTuple):
    lang: str
    line: int  # where the block starts in README.md
    text: str

    @property
    def id(self) -> str:
        return f"{self.lang}@{self.line}"


def readme_blocks() -> list[Block]:
    """The fenced code blocks of README.md, in order."""
    blocks: list[Block] = []
    lang: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(README.read_text().splitlines(), 1):
        if lang is None:
            if line.startswith("```"):
                lang, start, body = line[3:].strip(), number, []
        elif line.startswith("```"):
            blocks.append(Block(lang, start, "\n".join(body) + "\n"))
            lang = None
        else:
            body.append(line)
    assert lang is None, f"README.md: the block at line {start} is not closed"
    return blocks


def kind(block: Block) -> str | None:
    """Which test runs ``block`` (None: none does)."""
    if block.lang == "python":
        return "pytest" if "def test_" in block.text else "program"
    if block.lang == "toml" and "[tool.pytest.ini_options]" in block.text:
        return "pytest-config"
    if block.lang == "sh":
        return "shell"
    if block.lang == "" and block.text.startswith("netstack/"):
        return "layout"
    return None


BLOCKS = readme_blocks()
PYTEST_EXAMPLES = [b for b in BLOCKS if kind(b) == "pytest"]
PROGRAMS = [b for b in BLOCKS if kind(b) == "program"]
LAYOUTS = [b for b in BLOCKS if kind(b) == "layout"]
SHELL_LINES = [
    pytest.param(
        line,
        id=f"{b.id}:{line.split('#')[0].strip()}",
        marks=[pytest.mark.peers] if line.startswith("sudo ") else [],
    )
    for b in BLOCKS
    if kind(b) == "shell"
    for line in b.text.splitlines()
    if line.split("#")[0].strip()
]


def test_every_block_is_run() -> None:
    """Each block is of a kind a test here runs (a new kind needs a test here first)."""
    unrun = [b.id for b in BLOCKS if kind(b) is None]
    assert unrun == [], f"README blocks no test runs: {unrun}"
    assert PROGRAMS and PYTEST_EXAMPLES and SHELL_LINES and LAYOUTS
    assert [b.line for b in BLOCKS if kind(b) == "pytest-config"], "no pytest configuration"


def test_the_first_example_is_a_program() -> None:
    """The first python block, the one a reader tries first, is run as a program."""
    first = next(b for b in BLOCKS if b.lang == "python")
    assert first in PROGRAMS and "netstack.run(main())" in first.text


@pytest.mark.parametrize("block", LAYOUTS, ids=lambda b: b.id)
def test_layout(block: Block) -> None:
    """Every path the layout lists exists."""
    paths = [line.split()[0] for line in block.text.splitlines() if line[:1].strip()]
    missing = [p for p in paths if not (ROOT / p.rstrip(";,")).exists()]
    assert paths and missing == [], missing


@pytest.mark.parametrize("block", PROGRAMS, ids=lambda b: b.id)
def test_program(block: Block, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", block.text],
        cwd=tmp_path, capture_output=True, text=True, timeout=BLOCK_TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", result.stderr


def pytest_configuration() -> str:
    """The README's ```toml block: the pytest settings its examples assume."""
    tomls = [b for b in BLOCKS if b.lang == "toml"]
    assert len(tomls) == 1, "one toml block: the pytest configuration of the examples"
    settings = tomllib.loads(tomls[0].text)
    assert "ini_options" in settings["tool"]["pytest"]
    return tomls[0].text


@pytest.mark.parametrize("mode", ["strict", "auto"])
@pytest.mark.parametrize("block", PYTEST_EXAMPLES, ids=lambda b: b.id)
def test_pytest_example(block: Block, mode: str, pytester: pytest.Pytester) -> None:
    """As the README configures pytest (strict mode), and in auto mode."""
    configuration = pytest_configuration()
    assert "asyncio_mode" not in configuration  # pytest-asyncio's default: strict
    if mode == "auto":
        configuration += 'asyncio_mode = "auto"\n'
    (pytester.path / "pyproject.toml").write_text(configuration)
    pytester.makepyfile(test_readme_example=block.text)
    tests = re.findall(r"^async def (test_\w+)|^def (test_\w+)", block.text, re.M)
    result = pytester.runpytest_subprocess("-rs", timeout=BLOCK_TIMEOUT)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.outlines
    assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) == len(tests), outcomes
    assert outcomes.get("passed", 0) >= 1
    # Skipped only for want of root (the TAP example), as pytest -rs says.
    for line in result.outlines:
        if line.startswith("SKIPPED"):
            assert "CAP_NET_ADMIN" in line or "root" in line, line


@pytest.mark.parametrize("line", SHELL_LINES)
def test_shell_line(line: str, tmp_path: Path) -> None:
    argv = shlex.split(line, comments=True)
    privileged = argv[0] == "sudo"
    if privileged:
        argv = argv[1:]
    if argv[:2] == ["pip", "install"]:
        check_install(argv[2:])
        return
    if argv[0] in ("python", "pytest"):
        run_example(argv, privileged)
        return
    if argv[0] == "make":
        if shutil.which("make") is None:
            pytest.skip("make is not installed")
        subprocess.run(["make", "-n", *argv[1:]], cwd=ROOT, check=True, capture_output=True,
                       timeout=30)  # fmt: skip
        return
    assert argv[0] == "netstack", f"a README command this test does not know: {line}"
    from netstack.cli import _parser

    args = _parser().parse_args(argv[1:])
    if getattr(args, "tap", None):
        return  # parsed only: a TAP device outside a namespace of the test's own
    if privileged:
        require_net_admin()
    command = [sys.executable, "-m", "netstack", *argv[1:]]
    if args.command == "serve":
        serve_until_interrupted(command, tmp_path)
        return
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                            timeout=BLOCK_TIMEOUT)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    if args.command == "demo" and args.pcap:
        assert (tmp_path / args.pcap).stat().st_size > 0


def check_install(targets: list[str]) -> None:
    """``pip install .[extra]`` names extras of this project; ``pip install name`` a package
    its ``test`` extra lists (nothing is installed here)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    test_packages = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0] for d in extras["test"]}
    for target in targets:
        if target.startswith("."):
            wanted = re.fullmatch(r"\.(?:\[([a-z,]+)\])?", target)
            assert wanted, target
            named = wanted.group(1).split(",") if wanted.group(1) else []
            assert set(named) <= set(extras), f"no extra {named} in {sorted(extras)}"
        else:
            assert target in test_packages, f"{target} is not among {sorted(test_packages)}"


def run_example(argv: list[str], privileged: bool) -> None:
    """``python examples/X.py`` or ``pytest examples/test_X.py``, from the repository's root
    (examples/ is the place; tests/test_examples.py checks what each does)."""
    assert argv[1].startswith("examples/") and (ROOT / argv[1]).is_file(), argv
    if privileged:
        require_net_admin()
    if argv[0] == "pytest":
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *argv[1:]]
    else:
        command = [sys.executable, *argv[1:]]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                            timeout=BLOCK_TIMEOUT)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def serve_until_interrupted(command: list[str], cwd: Path) -> None:
    """Start ``netstack serve``, wait until it serves, then Ctrl-C: it stops cleanly."""
    # faulthandler: a stop that hangs shows where (SIGABRT dumps every thread's stack).
    # SIGINT as at a terminal: a suite started in the background (`make test &` in a script)
    # passes SIGINT on ignored, and Python then leaves Ctrl-C ignored.
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"},
                            preexec_fn=_default_sigint)  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], BLOCK_TIMEOUT)
        assert ready, "netstack serve printed nothing"
        first = proc.stdout.readline()
        assert "serving on" in first, first + (proc.stderr.read() if proc.stderr else "")
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            out, err = proc.communicate(timeout=10)
            pytest.fail(f"netstack serve did not stop on Ctrl-C:\n{out}\n{err}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
