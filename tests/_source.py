"""Parsing the project's own source for the tests that check its shape."""

from __future__ import annotations

import ast


def parse_source(source: str) -> ast.Module:
    """``ast.parse(source)``, tried again on CPython 3.11's spurious
    ``SystemError: AST constructor recursion depth mismatch`` (python/cpython
    gh-106905 and its kin: it appears now and then while other threads run, as
    the sync facade's loop threads do during the suite), which says nothing of
    the source. Any other error, or that one three times, is raised."""
    for attempt in range(3):
        try:
            return ast.parse(source)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")
