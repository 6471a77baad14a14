"""How the Router orders the deployments of one priority tier for one request.

A strategy is any object with one method::

    def order(self, deployments: Sequence[Deployment], context: Context) -> Iterable[Deployment]

It returns the tier's deployments best first; the router takes the first one
that is available (breaker closed, under its limits, big enough, not yet
failed for this request) and asks for more only when it must, so a lazy
iterable that yields its favourite first costs little however large the tier.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from middlewares.router._deployments import Deployment, Tier
from middlewares.router._tokens import Estimate, TokenCounter, estimate_tokens
from middlewares.state import Policy, State
from pipeline import Request

__all__ = [
    "STRATEGIES",
    "Context",
    "CostStrategy",
    "LatencyStrategy",
    "LeastBusyStrategy",
    "PriorityStrategy",
    "Strategy",
    "WeightedStrategy",
    "strategy_named",
]

_UNKNOWN_BUSY = 1e9  # the load of a deployment with no estimate and a call out
# Completion tokens the cost strategy assumes when a call gives no max_tokens.
ASSUMED_COMPLETION_TOKENS = 256


class Context:
    """What a strategy may consult for one request: the ``request``, its
    estimated ``tokens``, the router's clock reading ``now`` and its ``rng``."""

    __slots__ = ("_count", "_tokens", "now", "policies", "request", "rng", "state")

    def __init__(
        self,
        request: Request,
        count: TokenCounter,
        now: float,
        rng: random.Random,
        state: State,
        policies: dict[str, Policy],
    ) -> None:
        self.request = request
        self.now = now
        self.rng = rng
        self.state = state
        self.policies = policies
        self._count = count
        self._tokens: Estimate | None = None

    @property
    def tokens(self) -> Estimate:
        """The request's estimated tokens (counted on first use)."""
        tokens = self._tokens
        if tokens is None:
            tokens = self._tokens = estimate_tokens(self.request, self._count)
        return tokens

    def in_flight(self, deployment: Deployment) -> int:
        """Calls now in flight on ``deployment`` (this process's view)."""
        return self.state.in_flight(deployment.name or deployment.target)

    def latency(self, deployment: Deployment) -> float:
        """Its peak-EWMA latency estimate in seconds (time to first chunk for streams)."""
        key = deployment.name or deployment.target
        return self.state.latency(key, self.policies[key], self.now)

    def load(self, deployment: Deployment) -> float:
        """Peak-EWMA load: the latency estimate times (in flight + 1). A deployment
        with no estimate yet is the most attractive while idle and the least
        while its first call is out (Finagle's rule), so each is tried once soon."""
        latency, pending = self.latency(deployment), self.in_flight(deployment)
        if latency == 0.0:
            return _UNKNOWN_BUSY + pending if pending else 0.0
        return latency * (pending + 1)


class Strategy(Protocol):
    def order(
        self, deployments: Sequence[Deployment], context: Context
    ) -> Iterable[Deployment]: ...


class WeightedStrategy:
    """Weighted random: each deployment's share of traffic is its weight over the
    tier's total, whatever the list order. The first pick is one bisection into
    cumulative weights; the rest follow in a weighted random order."""

    def order(self, deployments: Sequence[Deployment], context: Context) -> Iterator[Deployment]:
        tier = deployments if isinstance(deployments, Tier) else Tier(deployments)
        if len(tier) == 1:
            yield tier[0]
            return
        rng = context.rng
        first = tier.by_weight(rng.random() * tier.total)
        yield first
        # The rest without replacement (Efraimidis-Spirakis keys).
        rest = [d for d in tier if d is not first]
        rest.sort(key=lambda d: rng.random() ** (1.0 / d.weight), reverse=True)
        yield from rest

    def __repr__(self) -> str:
        return "'weighted'"


class PriorityStrategy:
    """Strict list order within a tier: deterministic failover, no spreading."""

    def order(self, deployments: Sequence[Deployment], context: Context) -> Sequence[Deployment]:
        return deployments

    def __repr__(self) -> str:
        return "'priority'"


class LeastBusyStrategy:
    """Fewest calls in flight first; ties broken at random."""

    def order(self, deployments: Sequence[Deployment], context: Context) -> list[Deployment]:
        rng = context.rng
        return sorted(deployments, key=lambda d: (context.in_flight(d), rng.random()))

    def __repr__(self) -> str:
        return "'least_busy'"


class LatencyStrategy:
    """Power of two choices over peak-EWMA load (tower's ``p2c`` + ``PeakEwma``):
    of two deployments drawn at random, the one with the lower latency estimate
    times (in flight + 1) goes first. A failure counts as a slow sample, so a
    deployment that fails fast does not look fast; an idle estimate decays, so a
    deployment that slowed is tried again and wins back traffic once it recovers.
    """

    def order(self, deployments: Sequence[Deployment], context: Context) -> Iterator[Deployment]:
        count = len(deployments)
        if count == 1:
            yield deployments[0]
            return
        rng = context.rng
        i = rng.randrange(count)
        j = rng.randrange(count - 1)
        j += j >= i
        a, b = deployments[i], deployments[j]
        first, second = (a, b) if context.load(a) <= context.load(b) else (b, a)
        yield first
        yield second
        if count > 2:
            rest = [d for d in deployments if d is not a and d is not b]
            yield from sorted(rest, key=context.load)

    def __repr__(self) -> str:
        return "'latency'"


PriceLookup = Callable[[str, str, int, int], float | None]


def _library_prices() -> PriceLookup | None:
    """``middlewares.usage.estimate_cost`` when the usage part and its price library are there."""
    try:
        usage = importlib.import_module("middlewares.usage")
    except ImportError:
        return None
    lookup: PriceLookup | None = getattr(usage, "estimate_cost", None)
    return lookup


class CostStrategy:
    """Cheapest first for this request's estimated tokens (prompt, plus its
    ``max_tokens`` or 256 completion tokens). A deployment's own
    ``input_cost_per_token``/``output_cost_per_token`` wins; otherwise the usage
    part's price library; a deployment with no known price goes last."""

    def __init__(self, prices: PriceLookup | None = None) -> None:
        self._lookup = prices
        self._looked_up = prices is not None
        self._per_token: dict[Deployment, tuple[float, float] | None] = {}

    def per_token(self, deployment: Deployment) -> tuple[float, float] | None:
        """(input, output) USD per token, or None when unknown."""
        known = self._per_token.get(deployment, ())
        if known != ():
            return known  # type: ignore[return-value]
        found = self._find(deployment)
        self._per_token[deployment] = found
        return found

    def _find(self, deployment: Deployment) -> tuple[float, float] | None:
        given_in, given_out = deployment.input_cost_per_token, deployment.output_cost_per_token
        if given_in is not None and given_out is not None:
            return given_in, given_out
        if not self._looked_up:
            self._lookup, self._looked_up = _library_prices(), True
        lookup, million = self._lookup, 1_000_000
        if lookup is None:
            return None
        found_in = lookup(deployment.provider, deployment.model, million, 0)
        found_out = lookup(deployment.provider, deployment.model, 0, million)
        price_in = given_in if given_in is not None else found_in and found_in / million
        price_out = given_out if given_out is not None else found_out and found_out / million
        if price_in is None or price_out is None:
            return None
        return price_in, price_out

    def order(self, deployments: Sequence[Deployment], context: Context) -> list[Deployment]:
        prompt = context.tokens.prompt
        completion = context.tokens.completion or ASSUMED_COMPLETION_TOKENS

        def price(d: Deployment) -> tuple[bool, float]:
            each = self.per_token(d)
            if each is None:
                return True, 0.0
            return False, prompt * each[0] + completion * each[1]

        return sorted(deployments, key=price)

    def __repr__(self) -> str:
        return "'cost'"


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "weighted": WeightedStrategy,
    "priority": PriorityStrategy,
    "least_busy": LeastBusyStrategy,
    "latency": LatencyStrategy,
    "cost": CostStrategy,
}


def strategy_named(strategy: str | Strategy) -> Strategy:
    if isinstance(strategy, str):
        make = STRATEGIES.get(strategy)
        if make is None:
            raise ValueError(
                f"unknown routing strategy {strategy!r}; choose one of "
                f"{', '.join(STRATEGIES)} or pass an object with an order() method"
            )
        return make()
    if not callable(getattr(strategy, "order", None)):
        raise ValueError(f"a routing strategy needs an order() method, got {strategy!r}")
    return strategy
