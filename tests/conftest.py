"""Shared test plumbing.

Every async test runs on asyncio and on trio (the anyio pytest plugin, through
the ``anyio_backend`` fixture below); sync-API tests take ``sync_backend``.
Recorded provider exchanges are read from ``../shared/fixtures/recorded``
beside the checkout, never copied here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Hypothesis imports its target-phase optimiser lazily, in the middle of a test;
# with PYTHONDONTWRITEBYTECODE set that compile sometimes trips a CPython 3.11
# bug ("AST constructor recursion depth mismatch"). Importing it up front avoids it.
import hypothesis.internal.conjecture.optimiser  # noqa: F401
import pytest

from tests._redis import own_redis, redis_prefix, redis_server, redis_url  # noqa: F401 - fixtures

RECORDED = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "recorded"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["asyncio", "trio"])
def sync_backend(request: pytest.FixtureRequest) -> str:
    """The event loop a sync-API test's pipeline runs its calls on."""
    return str(request.param)


def load_recorded(name: str) -> dict[str, Any]:
    """``provider/case.json`` from the shared recordings.

    Outside CI a missing ``../shared`` skips with a reason; in CI (``CI`` set)
    it fails, since CI always has the folder beside the checkout.
    """
    path = RECORDED / name
    if not path.exists():
        reason = f"recorded fixtures not found at {RECORDED}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def recorded_names(provider: str) -> list[str]:
    """Every recording of one provider, for parametrizing (empty if absent)."""
    folder = RECORDED / provider
    return sorted(f"{provider}/{p.name}" for p in folder.glob("*.json")) if folder.exists() else []
