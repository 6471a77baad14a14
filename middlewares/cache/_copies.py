"""Copies of responses: a hit never shares an object with the stored entry."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["copy_response"]

_Copier = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


_ATOMIC: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes})


def _attrs_copier(cls: type) -> _Copier:
    """A copier for one attrs class, written out field by field (as attrs writes its
    own ``__init__``): a new instance, each field shared when it is an immutable
    scalar, copied otherwise. An instance of a frozen class whose fields are all
    scalars (an ``Attempt``) cannot change, so it is shared rather than copied."""
    names = [field.name for field in attrs.fields(cls)]
    frozen = _is_frozen(cls)
    lines = [f"def copy_{cls.__name__}(value):"]
    lines += [f"    f{i} = value.{name}" for i, name in enumerate(names)]
    if frozen:
        scalars = " and ".join(f"f{i}.__class__ in atomic" for i in range(len(names))) or "True"
        lines.append(f"    if {scalars}:")
        lines.append("        return value")
    lines.append("    out = new(cls)")
    plain = getattr(cls, "__setattr__", None) is object.__setattr__  # no frozen guard or hook
    for i, name in enumerate(names):
        value = f"f{i} if f{i}.__class__ in atomic else deep(f{i})"
        set_field = f"out.{name} = {value}" if plain else f"assign(out, {name!r}, {value})"
        lines.append(f"    {set_field}")
    lines.append("    return out")
    scope: dict[str, Any] = {
        "new": object.__new__,
        "cls": cls,
        "assign": object.__setattr__,
        "atomic": _ATOMIC,
        "deep": copy_response,
    }
    exec(compile("\n".join(lines), f"<copier for {cls.__qualname__}>", "exec"), scope)
    return scope[f"copy_{cls.__name__}"]  # type: ignore[no-any-return]


def _is_frozen(cls: type) -> bool:
    """Whether ``cls`` is a frozen attrs class, where attrs can say (``attrs.inspect``,
    attrs 25.4+); otherwise treated as not frozen, which only costs a copy."""
    inspect = getattr(attrs, "inspect", None)
    try:
        return inspect is not None and bool(inspect(cls).is_frozen)
    except Exception:
        return False


def _tuple(value: tuple[Any, ...]) -> tuple[Any, ...]:
    # A tuple whose items are all shared (scalars, frozen attempts) cannot change: keep it.
    for item in value:
        if copy_response(item) is not item:
            return tuple(copy_response(item) for item in value)
    return value


_COPIERS: dict[type, _Copier] = {
    **dict.fromkeys(_ATOMIC, _same),
    list: lambda value: [copy_response(item) for item in value],
    tuple: _tuple,
    dict: lambda value: {key: copy_response(item) for key, item in value.items()},
}


def copy_response(value: Any) -> Any:
    """A deep copy of a response (attrs classes, lists, dicts, scalars).

    Several times faster than ``copy.deepcopy`` on responses; other types
    fall back to ``copy.deepcopy``.
    """
    cls = type(value)
    copier = _COPIERS.get(cls)
    if copier is None:
        copier = _COPIERS[cls] = _attrs_copier(cls) if attrs.has(cls) else copy.deepcopy
    return copier(value)
