"""The routing benchmark section: what it measures and reports (no timing is checked)."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

if not importlib.util.find_spec("aiohttp"):
    if os.environ.get("CI"):
        pytest.fail("the [bench] extra is not installed", pytrace=False)
    pytest.skip("the [bench] extra is not installed", allow_module_level=True)

from benchmarks import routing
from benchmarks.overhead import Load


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_the_routing_section_reports_cost_flatness_and_verdicts() -> None:
    results = await routing.measure(Load(5, 0.0, 0.0, rounds=1), 1)
    data = json.loads(json.dumps(routing.to_json(results)))
    assert data["routed_us"] > 0 and data["plain_us"] > 0
    assert data["added_us"] == pytest.approx(data["routed_us"] - data["plain_us"])
    assert set(data["alone_us"]) == set(routing.STRATEGIES)
    assert all(set(by) == {str(n) for n in routing.SIZES} for by in data["alone_us"].values())
    assert data["flatness_met"] == (data["flatness"] <= routing.TARGET_FLATNESS)
    _title, columns, rows, notes = routing.table(results)
    assert len(rows) == len(routing.STRATEGIES) and all(len(r) == len(columns) for r in rows)
    assert any("met" in note or "missed" in note for note in notes)
