"""Stats in the Prometheus text format, written by ``prometheus_client`` (``[prometheus]``).

Per target (labels ``provider``, ``model``)::

    dispatchline_requests_total{outcome="success"|"failure"|"cancelled"}   counter
    dispatchline_failures_total{error="<ErrorClass>"}                      counter
    dispatchline_cache_hits_total                                          counter
    dispatchline_request_duration_seconds{quantile="0.5"|"0.95"|"0.99"}    summary
    dispatchline_first_chunk_seconds{quantile="0.5"|"0.95"}                summary
    dispatchline_tokens_total{type="prompt"|"completion"|"reasoning"|"cached"}  counter
    dispatchline_cost_usd_total                                            counter

and the same per deployment (when requests were routed), named
``dispatchline_deployment_...`` with a ``deployment`` label instead of
``provider`` and ``model``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from middlewares.usage._extras import missing

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, Metric, SummaryMetricFamily
except ImportError as exc:  # pragma: no cover - exercised by the missing-extra test
    raise missing("prometheus_client", "prometheus", "Stats.prometheus()") from exc

if TYPE_CHECKING:
    from middlewares.usage.stats import Stats, Tally

__all__ = ["Exposition", "StatsCollector"]

_LATENCY_QUANTILES = (0.5, 0.95, 0.99)
_FIRST_CHUNK_QUANTILES = (0.5, 0.95)
_TOKENS = {  # token type -> Tally attribute
    "prompt": "prompt_tokens",
    "completion": "completion_tokens",
    "reasoning": "reasoning_tokens",
    "cached": "cached_tokens",
}

Row = tuple[list[str], "Tally"]  # label values, tally


def _families(prefix: str, labels: Sequence[str], rows: Sequence[Row]) -> Iterator[Metric]:
    names = list(labels)
    requests = CounterMetricFamily(
        f"{prefix}requests", "Requests that ended, by outcome.", labels=[*names, "outcome"]
    )
    failures = CounterMetricFamily(
        f"{prefix}failures", "Failed requests, by error class.", labels=[*names, "error"]
    )
    hits = CounterMetricFamily(
        f"{prefix}cache_hits", "Requests answered from the cache.", labels=names
    )
    duration = SummaryMetricFamily(
        f"{prefix}request_duration_seconds",
        "Seconds to the reply (a stream: to its end), successes not from the cache.",
        labels=names,
    )
    first_chunk = SummaryMetricFamily(
        f"{prefix}first_chunk_seconds", "Seconds to a stream's first chunk.", labels=names
    )
    tokens = CounterMetricFamily(
        f"{prefix}tokens", "Tokens reported by providers, by type.", labels=[*names, "type"]
    )
    cost = CounterMetricFamily(f"{prefix}cost_usd", "USD spent, as priced.", labels=names)
    for values, tally in rows:
        requests.add_metric([*values, "success"], tally.successes)
        requests.add_metric([*values, "failure"], sum(tally.failures.values()))
        requests.add_metric([*values, "cancelled"], tally.cancelled)
        for error, count in sorted(tally.failures.items()):
            failures.add_metric([*values, error], count)
        hits.add_metric(values, tally.cache_hits)
        for family, sketch, quantiles in (
            (duration, tally.latency, _LATENCY_QUANTILES),
            (first_chunk, tally.first_chunk, _FIRST_CHUNK_QUANTILES),
        ):
            labelled = dict(zip(names, values, strict=True))
            for quantile in quantiles:
                value = sketch.get_quantile_value(quantile)
                if value is not None:
                    family.add_sample(family.name, {**labelled, "quantile": str(quantile)}, value)
            family.add_sample(f"{family.name}_sum", labelled, sketch.sum)
            family.add_sample(f"{family.name}_count", labelled, sketch.count)
        for kind, attribute in _TOKENS.items():
            tokens.add_metric([*values, kind], getattr(tally, attribute))
        cost.add_metric(values, tally.cost or 0.0)
    yield from (requests, failures, hits, duration, first_chunk, tokens, cost)


def _all_families(targets: list[Tally], deployments: list[tuple[str, Tally]]) -> list[Metric]:
    return [
        *_families(
            "dispatchline_",
            ("provider", "model"),
            [([tally.provider, tally.model], tally) for tally in targets],
        ),
        *(
            _families(
                "dispatchline_deployment_",
                ("deployment",),
                [([name], tally) for name, tally in deployments],
            )
            if deployments
            else ()
        ),
    ]


class StatsCollector:
    """A ``prometheus_client`` collector reading a :class:`Stats` when scraped."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        yield from self._stats.export(_all_families)


class _Fixed:
    """A collector over tallies already read (the shared totals)."""

    def __init__(self, targets: list[Tally], deployments: list[tuple[str, Tally]]) -> None:
        self._families = _all_families(targets, deployments)

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def render(targets: list[Tally], deployments: list[tuple[str, Tally]]) -> str:
    """These tallies in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(targets, deployments))
    return generate_latest(registry).decode()


class Exposition:
    """The text a Prometheus scrape of one :class:`Stats` gets."""

    def __init__(self, stats: Stats) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(StatsCollector(stats))

    def text(self) -> str:
        return generate_latest(self._registry).decode()
