"""What the usage layers read of a routed request, and of the path an outcome took.

A Router passes the deployment it chose down the chain in
``request.options["deployment"]`` and records it on each try
(``attempts[-1].deployment``). These layers read both by attribute, through
the :class:`Deployment` protocol: they never import the router.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from pipeline import Request

__all__ = ["Deployment", "Served", "deployment_of", "served_by", "tags_of"]


class Deployment(Protocol):
    """What the usage layers read of a routed deployment."""

    @property
    def name(self) -> str: ...

    @property
    def tags(self) -> Collection[str]: ...

    @property
    def input_cost_per_token(self) -> float | None: ...

    @property
    def output_cost_per_token(self) -> float | None: ...


def deployment_of(request: Request) -> Deployment | None:
    """The deployment a Router chose for ``request``, if it was routed."""
    return request.options.get("deployment")


Served = tuple[str, str, str | None]  # provider, model, deployment name


def served_by(request: Request, outcome: Any) -> Served:
    """Where a response, stream or error came from: the last try its path
    records, else the request's own target (and deployment, if routed)."""
    attempts = getattr(outcome, "attempts", ())
    if attempts:
        last = attempts[-1]
        return last.provider, last.model, getattr(last, "deployment", None)
    deployment = deployment_of(request)
    return request.provider, request.model, None if deployment is None else deployment.name


def tags_of(request: Request) -> frozenset[str]:
    """The request's ``metadata["tags"]`` and its deployment's tags."""
    metadata = request.options.get("metadata")
    tags = metadata.get("tags") if isinstance(metadata, Mapping) else None
    if isinstance(tags, str):
        tags = (tags,)
    found = frozenset(t for t in tags if isinstance(t, str)) if tags else frozenset()
    deployment = deployment_of(request)
    if deployment is not None:
        found |= frozenset(getattr(deployment, "tags", ()))
    return found
