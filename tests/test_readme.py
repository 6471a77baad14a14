"""The README's generated parts stay in step with the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers import default_registry
from providers.__main__ import capability_table

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parent.parent / "README.md"


async def test_capability_table_matches_the_registry() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- capabilities:start -->") + len("<!-- capabilities:start -->")
    end = text.index("<!-- capabilities:end -->")
    expected = capability_table(default_registry(load_entry_points=False).capabilities())
    assert text[start:end].strip() == expected.strip(), "run: python -m providers --builtin"


async def test_registry_holds_at_least_47_providers() -> None:
    assert len(default_registry(load_entry_points=False)) >= 47
