"""The standard middlewares. Each is an ``async (request, call_next)`` callable."""

from __future__ import annotations

from typing import Any

from pipeline import Middleware

__all__ = ["default_stack"]


def default_stack(**options: Any) -> list[Middleware]:
    """The recommended middlewares, outermost first (filled in by the middlewares issue)."""
    if options:
        raise TypeError(f"unknown options: {', '.join(sorted(options))}")
    return []
