"""The shape of netstack's import graph: no cycle, and drivers that depend on the narrow core.

- No cycle among netstack's modules, counting every import statement: at module level,
  inside functions, and under ``if TYPE_CHECKING:``.
- The drivers (``netstack/drivers``, TLS's ``tls/stream.py`` and ``tls/driver.py``) never
  import the stack (they are typed against :mod:`netstack.core`), and only the composition
  root (``netstack.stack``) and the public faces that re-export them import the drivers.
- No driver touches a private member of the stack it is given (``stack._x``, ``core._x``,
  ``getattr(stack, "_x")``).

Imports are read with ``ast`` as in ``test_layering.py``. An edge goes to the module an
import names: ``from a import b`` is an edge to ``a.b`` when that is a module (a submodule
imported), else to ``a`` (a name from it). Importing ``a.b`` also runs package ``a``'s
``__init__``, which is not counted as an edge of the importer: every submodule would
otherwise be in a cycle with a package that imports it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

from test_layering import PACKAGE_ROOT, _resolve, module_name

#: Modules allowed to import a driver: the composition root, and the public or old names
#: that re-export one (``netstack.dhcp``, ``netstack.datagram``, ``netstack.streams``).
DRIVER_IMPORTERS = frozenset(
    {
        "netstack.stack",
        "netstack.dhcp",
        "netstack.datagram",
        "netstack.streams",
        # Read by mypy only (the Stack/HostStack contract check), imported by nothing.
        "netstack._typecheck",
    }
)
#: Shared by every driver (the machine timer, the socket-like stand-ins of the transports).
DRIVER_HELPERS = frozenset({"netstack.drivers.timer", "netstack.drivers.sockets"})
#: What the drivers are, by module.
EXTRA_DRIVERS = frozenset({"netstack.tls.stream", "netstack.tls.driver"})
#: The names a driver gives the stack it runs on.
STACK_NAMES = frozenset({"stack", "core", "_stack", "_core"})


def package_modules(root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    return {module_name(path): path for path in sorted(root.rglob("*.py"))}


def import_edges(source: str, module: str, is_package: bool, known: Iterable[str]) -> set[str]:
    """The netstack modules ``source`` (the text of ``module``) imports."""
    modules = set(known)
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, package)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.append(full if full in modules else base)
        found.update(name for name in names if name in modules and name != module)
    return found


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    return {
        name: import_edges(
            path.read_text(encoding="utf-8"), name, path.name == "__init__.py", modules
        )
        for name, path in modules.items()
    }


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of ``graph`` as ``[a, b, ..., a]``, or None (a depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def is_driver(module: str) -> bool:
    return module.startswith("netstack.drivers.") or module in EXTRA_DRIVERS


# -- the package -------------------------------------------------------------------------------


def test_netstack_has_no_import_cycle() -> None:
    graph = import_graph(package_modules())
    assert "netstack.stack" in graph and graph["netstack.stack"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_drivers_never_import_the_stack() -> None:
    graph = import_graph(package_modules())
    drivers = sorted(m for m in graph if is_driver(m))
    assert "netstack.drivers.tcp" in drivers and "netstack.tls.stream" in drivers
    offenders = {
        m: sorted(graph[m] & {"netstack", "netstack.stack", "netstack.host"}) for m in drivers
    }
    assert {m: bad for m, bad in offenders.items() if bad} == {}


def test_only_the_composition_root_imports_the_drivers() -> None:
    graph = import_graph(package_modules())
    wrong: list[str] = []
    for importer, imported in sorted(graph.items()):
        for driver in sorted(m for m in imported if m.startswith("netstack.drivers.")):
            allowed = importer in DRIVER_IMPORTERS or (
                driver in DRIVER_HELPERS and is_driver(importer)
            )
            if not allowed:
                wrong.append(f"{importer} imports {driver}")
    assert wrong == []


def private_stack_uses(source: str) -> list[str]:
    """Where ``source`` reaches into the stack it was given: an attribute with a leading
    underscore of ``stack``/``core`` (or ``self._stack``/``self._core``), directly or through
    ``getattr``/``hasattr``/``setattr``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if _names_the_stack(node.value):
                found.append((node.lineno, ast.unparse(node)))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
            and _names_the_stack(node.args[0])
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            found.append((node.lineno, ast.unparse(node)))
    return [f"{line}: {text}" for line, text in sorted(found)]


def _names_the_stack(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in STACK_NAMES
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr in STACK_NAMES
    )


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")


def test_drivers_use_no_private_member_of_the_stack() -> None:
    problems = {
        name: uses
        for name, path in package_modules().items()
        if is_driver(name) and (uses := private_stack_uses(path.read_text(encoding="utf-8")))
    }
    assert problems == {}


# -- the checks themselves ---------------------------------------------------------------------


def test_find_cycle_finds_one_and_only_one_that_exists() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"x"}}) == ["x", "x"]


def test_edges_include_type_checking_and_function_level_imports() -> None:
    known = {"netstack.a", "netstack.b", "netstack.c", "netstack.pkg", "netstack.pkg.mod"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "from .pkg import mod, Name\n"
        "if TYPE_CHECKING:\n"
        "    from .b import Thing\n"
        "def later() -> None:\n"
        "    from . import c\n"
    )
    edges = import_edges(source, "netstack.a", False, known)
    assert edges == {"netstack.pkg.mod", "netstack.pkg", "netstack.b", "netstack.c"}


def test_a_driver_importing_the_stack_under_type_checking_is_a_cycle() -> None:
    # The shape of the cycle this redesign removed: stack -> streams -> (TYPE_CHECKING) stack.
    known = {"netstack.stack", "netstack.streams"}
    graph = {
        "netstack.stack": import_edges("from .streams import Server\n", "netstack.stack",
                                       False, known),
        "netstack.streams": import_edges(
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .stack import Stack\n",
            "netstack.streams", False, known,
        ),
    }  # fmt: skip
    assert find_cycle(graph) == ["netstack.stack", "netstack.streams", "netstack.stack"]


def test_private_members_of_the_stack_are_found() -> None:
    source = (
        "def f(stack, core, other):\n"
        "    stack._touch()\n"
        "    core.touch()\n"
        "    other._x = 1\n"
        "    getattr(stack, '_rng')\n"
        "    getattr(stack, 'loop')\n"
        "    getattr(other, '_y')\n"
        "class D:\n"
        "    def g(self):\n"
        "        self._stack._forget_endpoint(self)\n"
        "        self._stack.udp.unbind(self)\n"
        "        self._conn._private\n"
    )
    assert private_stack_uses(source) == [
        "2: stack._touch",
        "5: getattr(stack, '_rng')",
        "10: self._stack._forget_endpoint",
    ]
