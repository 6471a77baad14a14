"""Every async test runs on asyncio and on trio (the anyio pytest plugin)."""

from __future__ import annotations

from pathlib import Path

import pytest

RECORDED = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "recorded"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
