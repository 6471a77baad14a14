"""Usage: what every call cost, budgets, per-target statistics, OpenTelemetry.

>>> from middlewares import Budget, Costs, Stats, Telemetry
>>> stats = Stats()
>>> pipe = Pipeline.default(
...     costs=Costs(), budgets=[Budget(10.0, period="day", scope="provider")],
...     stats=stats, telemetry=Telemetry(),
... )

- :class:`Costs` sets ``response.cost`` (USD) from genai-prices (``[prices]``);
- :class:`Budget` refuses requests before I/O once their scope has spent its limit;
- :class:`Stats` counts requests, failures, latency percentiles, tokens and
  cost per target and deployment (``[stats]``; Prometheus text with ``[prometheus]``);
- :class:`Telemetry` emits OpenTelemetry spans and metrics by the GenAI
  semantic conventions (``[otel]``).

Each optional library is imported when the piece that needs it is built;
without it, building that piece raises :class:`MissingExtraError` naming
the extra to install. ``import middlewares`` never imports any of them.
"""

from __future__ import annotations

from middlewares.usage._extras import MissingExtraError
from middlewares.usage._snapshot import FirstChunk, Latency, StatsSnapshot, TargetStats
from middlewares.usage.budgets import Budget, Scope
from middlewares.usage.costs import Costs, TokenPrice, estimate_cost
from middlewares.usage.stats import Stats
from middlewares.usage.telemetry import Telemetry

__all__ = [
    "Budget",
    "Costs",
    "FirstChunk",
    "Latency",
    "MissingExtraError",
    "Scope",
    "Stats",
    "StatsSnapshot",
    "TargetStats",
    "Telemetry",
    "TokenPrice",
    "estimate_cost",
]
