"""What every wire module may share: the checked fast constructor of a NamedTuple.

A header or segment built for every packet is a NamedTuple, and building one through its
class (``IPv6Header(a, b, ...)``) runs the generated ``__new__`` in Python: about twice the
work of ``tuple.__new__(IPv6Header, (a, b, ...))``, which fills the tuple in C. That speed comes
with a risk: ``tuple.__new__`` takes any number of values, so a field added to, removed from or
moved in the class would leave the fast call sites building misaligned objects without a word.

:func:`fast_new` gives each NamedTuple one fast constructor, defined next to the class, that
states the field list its callers follow and checks it against the class once, at import; a
test (``tests/test_fast_constructors.py``) checks that every call site passes a tuple of that
many values, and that nothing else in the package calls ``tuple.__new__``. The constructor is
a method object binding ``tuple.__new__`` to the class, so a call costs what the bare
``tuple.__new__`` call did (one argument fewer to pass, in fact).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["fast_new"]

_T = TypeVar("_T", bound=tuple[Any, ...])


def fast_new(cls: type[_T], fields: str) -> Callable[[tuple[Any, ...]], _T]:
    """The fast constructor of the NamedTuple ``cls``: ``new((value, ...))`` with one value
    per field, in the class's order, and no checks at call time.

    Args:
        cls: a NamedTuple class.
        fields: its field names as the callers write their tuples, separated by spaces.

    Returns:
        ``tuple.__new__`` bound to ``cls``.

    Raises:
        TypeError: ``cls`` is not a NamedTuple, or its fields are not ``fields`` (in order).
    """
    expected = tuple(fields.split())
    actual = getattr(cls, "_fields", None)
    if actual != expected:
        raise TypeError(
            f"{cls.__qualname__} has the fields {actual}, but its fast constructor's callers "
            f"pass {expected}: update both together"
        )
    # classmethod's binding of a builtin: a method object whose call prepends ``cls``.
    binder: Any = classmethod(tuple.__new__)
    constructor: Callable[[tuple[Any, ...]], _T] = binder.__get__(None, cls)
    return constructor
