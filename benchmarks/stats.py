"""Summaries of timing samples: median and interquartile range."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import attrs


@attrs.frozen
class Summary:
    """The median of some samples, with the 25th and 75th percentiles as spread."""

    median: float
    p25: float
    p75: float
    count: int

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.05 is +-2.5%)."""
        return (self.p75 - self.p25) / self.median if self.median else 0.0


def summarize(samples: Sequence[float]) -> Summary:
    if not samples:
        raise ValueError("no samples to summarize")
    if len(samples) == 1:
        only = float(samples[0])
        return Summary(only, only, only, 1)
    p25, _, p75 = statistics.quantiles(samples, n=4, method="inclusive")
    return Summary(float(statistics.median(samples)), p25, p75, len(samples))


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")
