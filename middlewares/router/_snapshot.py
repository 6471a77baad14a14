"""``router.snapshot()``: what the router knows of each deployment, as attrs and as JSON."""

from __future__ import annotations

from typing import Any

import attrs

from middlewares.router._deployments import Deployment
from middlewares.state import BreakerState, DeploymentState

__all__ = ["DeploymentSnapshot", "RouterSnapshot"]


@attrs.frozen
class DeploymentSnapshot:
    name: str
    target: str
    groups: tuple[str, ...]
    weight: float
    priority: int
    in_flight: int
    breaker: BreakerState
    reopens_at: float | None  # the router's clock (epoch seconds by default)
    rpm_used: int | None  # requests in the rate window (None without an rpm or tpm)
    tpm_used: int | None  # tokens in it (estimates, replaced by the real usage)
    rpm: int | None
    tpm: int | None
    max_concurrency: int | None
    latency: float | None  # peak-EWMA estimate, seconds; None before any call

    @classmethod
    def of(
        cls, deployment: Deployment, groups: tuple[str, ...], state: DeploymentState
    ) -> DeploymentSnapshot:
        return cls(
            name=deployment.name or deployment.target,
            target=deployment.target,
            groups=groups,
            weight=deployment.weight,
            priority=deployment.priority,
            in_flight=state.in_flight,
            breaker=state.breaker,
            reopens_at=state.reopens_at,
            rpm_used=state.rpm_used,
            tpm_used=state.tpm_used,
            rpm=deployment.rpm,
            tpm=deployment.tpm,
            max_concurrency=deployment.max_concurrency,
            latency=state.latency,
        )

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["groups"] = list(self.groups)
        return data


@attrs.frozen
class RouterSnapshot:
    """Per deployment name, in the order the router's groups list them."""

    deployments: dict[str, DeploymentSnapshot]

    def to_dict(self) -> dict[str, Any]:
        return {"deployments": {name: d.to_dict() for name, d in self.deployments.items()}}
