"""One target's (or deployment's) running counts, as Stats keeps them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from middlewares.usage._snapshot import FirstChunk, Latency, TargetStats
from pipeline import Usage

__all__ = ["Sketch", "Tally"]


class Sketch(Protocol):
    """The part of a DDSketch Stats uses (:class:`middlewares.usage._sketch.Sketch`)."""

    def add(self, val: float, weight: float = ...) -> None: ...

    def get_quantile_value(self, quantile: float) -> float | None: ...

    def bins(self) -> dict[int, float]: ...

    @property
    def zeros(self) -> float: ...

    @property
    def count(self) -> float: ...

    @property
    def sum(self) -> float: ...


def _ms(sketch: Sketch, quantile: float) -> float | None:
    value = sketch.get_quantile_value(quantile)
    return None if value is None else round(value * 1000.0, 3)


class Tally:
    """One target's (or deployment's) running counts."""

    __slots__ = (
        "cache_hits",
        "cached_tokens",
        "cancelled",
        "completion_tokens",
        "cost",
        "failures",
        "first_chunk",
        "latency",
        "model",
        "prompt_tokens",
        "provider",
        "reasoning_tokens",
        "successes",
    )

    def __init__(self, provider: str, model: str, sketch: Callable[[], Sketch]) -> None:
        self.provider = provider
        self.model = model
        self.successes = 0
        self.failures: dict[str, int] = {}
        self.cancelled = 0
        self.cache_hits = 0
        self.latency = sketch()
        self.first_chunk = sketch()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        self.cached_tokens = 0
        self.cost: float | None = None

    @property
    def requests(self) -> int:
        return self.successes + sum(self.failures.values()) + self.cancelled

    def success(
        self,
        cache_hit: bool,
        latency: float,
        first_chunk: float | None,
        usage: Usage | None,
        cost: float | None,
    ) -> None:
        self.successes += 1
        if cache_hit:
            self.cache_hits += 1
            return
        self.latency.add(latency)
        if first_chunk is not None:
            self.first_chunk.add(first_chunk)
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
            self.reasoning_tokens += usage.reasoning_tokens or 0
            self.cached_tokens += usage.cached_tokens or 0
        if cost is not None:
            self.cost = cost if self.cost is None else self.cost + cost

    def failure(self, error: str) -> None:
        self.failures[error] = self.failures.get(error, 0) + 1

    def view(self) -> TargetStats:
        return TargetStats(
            requests=self.requests,
            successes=self.successes,
            failures=dict(self.failures),
            cancelled=self.cancelled,
            cache_hits=self.cache_hits,
            latency_ms=Latency(
                _ms(self.latency, 0.5), _ms(self.latency, 0.95), _ms(self.latency, 0.99)
            ),
            first_chunk_ms=FirstChunk(_ms(self.first_chunk, 0.5), _ms(self.first_chunk, 0.95)),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            reasoning_tokens=self.reasoning_tokens,
            cached_tokens=self.cached_tokens,
            cost=self.cost,
        )
