"""The usage benchmark: measures every variant over the default stack and says met or missed.

Structure only: no timing is asserted.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

if not importlib.util.find_spec("aiohttp"):  # benchmarks.overhead needs the [bench] extra
    if os.environ.get("CI"):
        pytest.fail("the [bench] extra is not installed", pytrace=False)
    pytest.skip("the [bench] extra is not installed", allow_module_level=True)

from benchmarks import usage
from benchmarks.overhead import Load
from benchmarks.stats import Summary

pytestmark = pytest.mark.anyio


async def test_every_variant_is_measured_against_the_default_stack() -> None:
    rows, skipped = await usage.measure(Load(5, 0.0, 0.0, rounds=2))
    assert skipped == []
    assert [row.variant for row in rows] == [
        usage.DEFAULT,
        "+ Costs",
        "+ Stats",
        "+ Telemetry (no SDK)",
        usage.ALL,
    ]
    assert all(row.latency_us.count == 6 for row in rows)  # 3 per round, 2 rounds
    base = rows[0].latency_us.median
    assert all(row.over_default_us == row.latency_us.median - base for row in rows)
    assert rows[0].alone_us is None
    assert all(row.alone_us is not None for row in rows[1:])
    verdict = usage.verdict(rows)
    assert verdict is not None and ("met" in verdict or "missed" in verdict)


def test_the_verdict_names_the_largest_part_when_missed() -> None:
    def row(name: str, over: float, alone: float | None = None) -> usage.UsageRow:
        return usage.UsageRow(name, Summary(100.0 + over, 0.0, 0.0, 1), over, alone)

    rows = [
        row(usage.DEFAULT, 0.0),
        row("+ Costs", 30.0, 25.0),
        row("+ Stats", 2.0, 1.5),
        row(usage.ALL, 33.0, 27.0),
    ]
    assert usage.verdict(rows) == (
        "Costs + Stats + Telemetry (no SDK) over Pipeline.default(): +33.0 µs per request, "
        "median (target: within 10): missed. The largest part: Costs, +30.0 µs. "
        "Timed alone (µs per request): Costs 25.0, Stats 1.5."
    )
    rows = [row(usage.DEFAULT, 0.0), row(usage.ALL, 4.0)]
    assert usage.verdict(rows) is not None and usage.verdict(rows).endswith("met.")  # type: ignore[union-attr]
