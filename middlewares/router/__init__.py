"""Routing: groups of deployments, rules, strategies, limits, circuit breaking, hedging.

>>> from middlewares import Router, Deployment, RoutingRule, CircuitBreaker, Hedge
>>> router = Router({"chat-fast": [
...     Deployment("openai/gpt-4o-mini"),
...     Deployment("groq/llama-3.1-8b-instant")]})

A group name is then used like a model name: ``pipe.acompletion("chat-fast", ...)``.
See the README's "Routing" section.
"""

from __future__ import annotations

from middlewares.router._breaker import NO_CAPACITY, CircuitBreaker, calls_for_failover, outcome_of
from middlewares.router._deployments import Deployment
from middlewares.router._hedge import Hedge
from middlewares.router._router import ROUTED, Router
from middlewares.router._rules import RoutingRule
from middlewares.router._snapshot import DeploymentSnapshot, RouterSnapshot
from middlewares.router._strategies import (
    STRATEGIES,
    Context,
    CostStrategy,
    LatencyStrategy,
    LeastBusyStrategy,
    PriorityStrategy,
    Strategy,
    WeightedStrategy,
)
from middlewares.router._tokens import Estimate, TokenCounter, estimate_prompt_tokens

__all__ = [
    "NO_CAPACITY",
    "ROUTED",
    "STRATEGIES",
    "CircuitBreaker",
    "Context",
    "CostStrategy",
    "Deployment",
    "DeploymentSnapshot",
    "Estimate",
    "Hedge",
    "LatencyStrategy",
    "LeastBusyStrategy",
    "PriorityStrategy",
    "Router",
    "RouterSnapshot",
    "RoutingRule",
    "Strategy",
    "TokenCounter",
    "WeightedStrategy",
    "calls_for_failover",
    "estimate_prompt_tokens",
    "outcome_of",
]
