"""The fast NamedTuple constructors (netstack/proto/wire.py): one per class, checked against the
class's fields at import, and every call site passing a tuple of that many values; no bare
``tuple.__new__`` anywhere else in the package.

Call sites that build their tuple with ``*`` (the IPv4 layer's header from a struct unpack)
cannot be counted here; tests/proto/test_fast_paths.py compares what they build with
``wire.parse``'s header.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest

import netstack
from netstack.proto.wire import fast_new

PACKAGE = Path(netstack.__file__).parent
HELPER = PACKAGE / "proto" / "wire.py"


def modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for path in sorted(PACKAGE.rglob("*.py"))]


class Constructor(NamedTuple):
    module: Path
    cls: str
    arity: int


def constructors() -> dict[str, Constructor]:
    """Every module-level ``name = fast_new(Class, "fields")``."""
    found: dict[str, Constructor] = {}
    for path, tree in modules():
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
                continue
            call = node.value
            if not (isinstance(call.func, ast.Name) and call.func.id == "fast_new"):
                continue
            (target,) = node.targets
            assert isinstance(target, ast.Name), path
            cls, fields = call.args
            assert isinstance(cls, ast.Name) and isinstance(fields, ast.Constant), path
            assert target.id not in found, f"two constructors named {target.id}"
            found[target.id] = Constructor(path, cls.id, len(str(fields.value).split()))
    return found


def test_no_bare_tuple_new() -> None:
    offenders = []
    for path, tree in modules():
        if path == HELPER:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "__new__"
                and isinstance(node.value, ast.Name)
                and node.value.id == "tuple"
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def test_one_constructor_per_class() -> None:
    found = constructors()
    assert len(found) >= 6  # Segment, TcpOptions, IPv4Header, IPv6Header, FragmentHeader, Chain
    per_class = Counter((c.module, c.cls) for c in found.values())
    assert max(per_class.values()) == 1


def test_every_call_passes_one_value_per_field() -> None:
    found = constructors()
    checked: Counter[str] = Counter()
    dynamic: list[str] = []
    for path, tree in modules():
        # Local aliases (``new = _new_segment`` before a loop) count as the constructor.
        aliases = {
            target.id: node.value.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Name)
            and node.value.id in found
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            name = aliases.get(name, name) if name is not None else None
            if name not in found or name == "fast_new":
                continue
            where = f"{path.relative_to(PACKAGE)}:{node.lineno}"
            assert len(node.args) == 1 and not node.keywords, where
            (values,) = node.args
            assert isinstance(values, ast.Tuple), where
            if any(isinstance(v, ast.Starred) for v in values.elts):
                dynamic.append(where)
                continue
            assert len(values.elts) == found[name].arity, where
            checked[name] += 1
    # Every constructor is used; only the IPv4 layer's header is built with ``*``.
    assert set(checked) | {"new_ipv4_header"} == set(found)
    assert [where.split(":")[0] for where in dynamic] == ["proto/ipv4/layer.py"]


class Pair(NamedTuple):
    left: int
    right: int = 0


def test_fast_new_checks_the_fields_at_once() -> None:
    new = fast_new(Pair, "left right")
    made = new((1, 2))
    assert made == Pair(1, 2) and type(made) is Pair and made.right == 2
    with pytest.raises(TypeError, match="right"):
        fast_new(Pair, "left")
    with pytest.raises(TypeError):
        fast_new(Pair, "right left")
    with pytest.raises(TypeError):
        fast_new(tuple, "left right")  # not a NamedTuple
