"""What ``stats.snapshot()`` returns: frozen attrs objects, and their JSON form.

``StatsSnapshot.to_dict()``::

    {"targets": {"<provider>/<model>": {
        "requests", "successes", "failures": {"<ErrorClass>": n}, "cancelled",
        "cache_hits", "latency_ms": {"p50", "p95", "p99"},
        "first_chunk_ms": {"p50", "p95"}, "prompt_tokens", "completion_tokens",
        "reasoning_tokens", "cached_tokens", "cost"}},
     "deployments": {"<deployment name>": {...the same}}}
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

__all__ = ["FirstChunk", "Latency", "StatsSnapshot", "TargetStats"]

_NONE: Mapping[str, Any] = MappingProxyType({})


@attrs.frozen
class Latency:
    """Milliseconds at the 50th, 95th and 99th percentiles; None before any sample."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99}


@attrs.frozen
class FirstChunk:
    """Milliseconds until a stream's first chunk, at the 50th and 95th percentiles."""

    p50: float | None = None
    p95: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {"p50": self.p50, "p95": self.p95}


@attrs.frozen(kw_only=True)
class TargetStats:
    """One target's (or deployment's) counts since the last reset.

    ``requests`` counts ended requests: ``successes`` + every failure +
    ``cancelled``. ``cache_hits`` are successes answered by the cache; they
    add no latency, tokens or cost. ``cost`` is USD, None until some reply
    had a known price.
    """

    requests: int = 0
    successes: int = 0
    failures: Mapping[str, int] = _NONE
    cancelled: int = 0
    cache_hits: int = 0
    latency_ms: Latency = Latency()
    first_chunk_ms: FirstChunk = FirstChunk()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "successes": self.successes,
            "failures": dict(self.failures),
            "cancelled": self.cancelled,
            "cache_hits": self.cache_hits,
            "latency_ms": self.latency_ms.to_dict(),
            "first_chunk_ms": self.first_chunk_ms.to_dict(),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_tokens": self.cached_tokens,
            "cost": self.cost,
        }


@attrs.frozen
class StatsSnapshot:
    """Per ``provider/model`` target, and per deployment for routed requests."""

    targets: Mapping[str, TargetStats] = _NONE
    deployments: Mapping[str, TargetStats] = _NONE

    def to_dict(self) -> dict[str, Any]:
        return {
            "targets": {key: value.to_dict() for key, value in self.targets.items()},
            "deployments": {key: value.to_dict() for key, value in self.deployments.items()},
        }
