"""Typed reads of decoded JSON: a wrong type is a TypeError, which ``parsing`` maps
to ProviderResponseError. Adapters read provider bodies only through these."""

from __future__ import annotations

from typing import Any


def as_dict(value: Any, what: str = "object") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{what} should be an object, got {type(value).__name__}")
    return value


def as_list(value: Any, what: str = "array") -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{what} should be an array, got {type(value).__name__}")
    return value


def opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{key} should be a string, got {type(value).__name__}")


def req_str(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if isinstance(value, str):
        return value
    raise TypeError(f"{key} should be a string, got {type(value).__name__}")


def opt_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} should be an integer, got {type(value).__name__}")
    return value


def opt_dict(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    return None if value is None else as_dict(value, key)


def opt_list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return [] if value is None else as_list(value, key)


def floats(value: Any, what: str = "embedding") -> list[float]:
    items = as_list(value, what)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise TypeError(f"{what} should hold numbers")
    return [float(item) for item in items]
