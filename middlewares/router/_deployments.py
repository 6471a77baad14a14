"""Deployments, and groups of them checked and named once, when the Router is built."""

from __future__ import annotations

import math
import os
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Any

import attrs

from middlewares.router._rules import tag_set
from pipeline import Request, Secret, errors

__all__ = ["Deployment", "Group", "Tier", "build_groups"]


def _secret(value: str | Secret | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("a deployment's api_key must be a non-empty string")
    return Secret(value)


def _positive_int(name: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"a deployment's {name} must be a positive int or None, got {value!r}")

    return check


def _price(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0
    ):
        raise ValueError(f"a deployment's {attribute.name} must be >= 0 or None, got {value!r}")


@attrs.frozen(kw_only=True)
class Deployment:
    """One concrete target with its own credentials, weight, priority and limits.

    ``Deployment("openai/gpt-4o-mini", weight=3, rpm=500, tpm=200_000)``

    - ``target``: ``"provider/model"``;
    - ``api_key`` (kept as a :class:`pipeline.Secret`), ``api_key_env`` (an
      environment variable read at each call), ``api_base``, ``api_version``:
      the deployment's own credentials; unset ones come from the provider's
      configuration, as for any call;
    - ``weight`` (> 0): its share under the ``"weighted"`` strategy;
    - ``priority``: its tier, lower first; a higher tier is used only when
      every deployment of the tiers above is unavailable for the request;
    - ``rpm``, ``tpm``, ``max_concurrency``: limits; at a limit it is skipped;
    - ``max_input_tokens``: its context window; a prompt estimated larger skips it;
    - ``tags``: free labels (budgets and statistics may use them);
    - ``input_cost_per_token``/``output_cost_per_token``: its own price (USD),
      which wins over the price library's;
    - ``name``: defaults to the target, suffixed ``#2``, ``#3`` when a group
      repeats it.
    """

    target: str = attrs.field(kw_only=False)
    name: str | None = None
    api_key: Secret | None = attrs.field(default=None, converter=_secret, repr=False)
    api_key_env: str | None = None
    api_base: str | None = None
    api_version: str | None = None
    weight: float = 1.0
    priority: int = 0
    rpm: int | None = attrs.field(default=None, validator=_positive_int("rpm"))
    tpm: int | None = attrs.field(default=None, validator=_positive_int("tpm"))
    max_concurrency: int | None = attrs.field(
        default=None, validator=_positive_int("max_concurrency")
    )
    max_input_tokens: int | None = attrs.field(
        default=None, validator=_positive_int("max_input_tokens")
    )
    tags: frozenset[str] = attrs.field(default=frozenset(), converter=tag_set)
    input_cost_per_token: float | None = attrs.field(default=None, validator=_price)
    output_cost_per_token: float | None = attrs.field(default=None, validator=_price)

    def __attrs_post_init__(self) -> None:
        provider, _, model = self.target.partition("/") if isinstance(self.target, str) else "  "
        if not provider or not model:
            raise ValueError(f"a deployment's target is 'provider/model', got {self.target!r}")
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ValueError(f"{self.target}: weight must be a positive number, got {weight!r}")
        if not math.isfinite(weight):
            raise ValueError(f"{self.target}: weight must be finite, got {weight!r}")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise ValueError(f"{self.target}: priority must be an int, got {self.priority!r}")
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ValueError(f"{self.target}: name must be a non-empty string")

    @property
    def provider(self) -> str:
        return self.target.partition("/")[0]

    @property
    def model(self) -> str:
        return self.target.partition("/")[2]

    def key(self) -> Secret | None:
        """The key to send: ``api_key``, else ``$api_key_env``, else None (the provider's own).

        Raises :class:`errors.AuthenticationError` (before any I/O) when
        ``api_key_env`` names a variable that is not set.
        """
        if self.api_key is not None or self.api_key_env is None:
            return self.api_key
        value = os.environ.get(self.api_key_env)
        if not value:
            raise errors.AuthenticationError(
                f"deployment {self.name!r}: environment variable {self.api_key_env} is not set",
                provider=self.provider,
                model=self.model,
            )
        return Secret(value)

    def routed(self, request: Request) -> Request:
        """``request`` sent to this deployment, with its credentials and itself in options."""
        provider, _, model = self.target.partition("/")
        return Request(  # attrs.evolve, spelled out: this is on every routed call
            endpoint=request.endpoint,
            provider=provider,
            model=model,
            messages=request.messages,
            input=request.input,
            params=request.params,
            stream=request.stream,
            api_key=self.key(),
            api_base=self.api_base,
            api_version=self.api_version,
            timeout=request.timeout,
            options={**request.options, "deployment": self},
        )


class Tier(tuple[Deployment, ...]):
    """The deployments of one priority, in list order, with their cumulative weights."""

    cumulative: list[float]
    total: float

    def __new__(cls, deployments: Iterable[Deployment]) -> Tier:
        tier = super().__new__(cls, deployments)
        tier.cumulative = list(accumulate(d.weight for d in tier))
        tier.total = tier.cumulative[-1] if tier.cumulative else 0.0
        return tier

    def by_weight(self, point: float) -> Deployment:
        """The deployment whose share of ``[0, total)`` holds ``point``."""
        return self[min(bisect_right(self.cumulative, point), len(self) - 1)]


@attrs.frozen
class Group:
    name: str
    deployments: tuple[Deployment, ...]
    tiers: tuple[Tier, ...]
    weighs_tokens: bool  # some deployment has a tpm or a context window to check


def _default_name(
    deployment: Deployment, count: int, explicit: Counter[str], taken: dict[str, Deployment]
) -> tuple[str, int]:
    """The first free ``target``, ``target#2``, ... from ``count`` on (a name held by
    an identical deployment in another group is shared, not taken)."""
    while True:
        name = deployment.target if count == 1 else f"{deployment.target}#{count}"
        held = taken.get(name)
        if name not in explicit and (held is None or held == attrs.evolve(deployment, name=name)):
            return name, count
        count += 1


def _named(
    group: str, deployments: Sequence[Deployment], taken: dict[str, Deployment]
) -> list[Deployment]:
    """Each deployment with its final name; ``taken`` holds every name given so far."""
    explicit = Counter(d.name for d in deployments if d.name)
    for given, count in explicit.items():
        if count > 1:
            raise ValueError(f"group {group!r}: two deployments are named {given!r}")
    seen: Counter[str] = Counter()
    named = []
    for deployment in deployments:
        name = deployment.name
        if name is None:
            name, seen[deployment.target] = _default_name(
                deployment, seen[deployment.target] + 1, explicit, taken
            )
        final = attrs.evolve(deployment, name=name)
        held = taken.get(name)
        if held is not None and held != final:
            raise ValueError(
                f"group {group!r}: the name {name!r} is already used by a different deployment"
            )
        taken[name] = final
        named.append(final)
    return named


def build_groups(groups: Mapping[str, Sequence[Deployment]]) -> dict[str, Group]:
    """Check and name every group's deployments; raises ValueError on bad configuration.

    A name is a deployment's key in the router's state: the same name in two
    groups is the same deployment (its limits and breaker are shared), which
    is allowed only when both are configured alike.
    """
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("Router needs groups: {'group-name': [Deployment(...), ...]}")
    taken: dict[str, Deployment] = {}
    built: dict[str, Group] = {}
    for name, members in groups.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a group name must be a non-empty string, got {name!r}")
        if isinstance(members, Deployment | str) or not isinstance(members, Sequence):
            raise ValueError(f"group {name!r} must be a list of Deployment")
        if not members:
            raise ValueError(f"group {name!r} is empty")
        for member in members:
            if not isinstance(member, Deployment):
                raise ValueError(f"group {name!r}: {member!r} is not a Deployment")
        named = _named(name, members, taken)
        priorities = sorted({d.priority for d in named})
        tiers = tuple(Tier(d for d in named if d.priority == p) for p in priorities)
        weighs = any(d.tpm is not None or d.max_input_tokens is not None for d in named)
        built[name] = Group(name, tuple(named), tiers, weighs)
    return built
