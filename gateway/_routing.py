"""``[router]``: routing groups, rules, strategy, breaker and hedging from the config file.

::

    [router]
    strategy = "weighted"     # | "priority" | "least_busy" | "latency" | "cost" | "module:name"
    max_wait = 2.0            # seconds a request may wait when every deployment is out
    max_attempts = 3          # deployments tried per request, at most
    latency_decay = 10        # the latency estimate's time constant (seconds)
    breaker = { min_requests = 5, failure_ratio = 0.5, cooldown = 30, window = 60 }
                              # true (these defaults) | false (none) | options
    hedge = { after = "p95", max_extra = 1 }   # absent or false: no hedging
    token_counter = "package.module:count"     # request -> prompt tokens (default: an estimate)

    [[router.groups.chat-fast]]                # one table per deployment, in order
    target = "openai/gpt-4o-mini"
    weight = 3
    rpm = 500

    [[router.rules]]                           # first match wins
    target = "chat-fast"
    model = "gpt-4*"
    max_tokens = 2000

A deployment takes every ``Deployment`` option (``api_key`` usually as
``"${ENV}"``, or ``api_key_env``, read at each call); a rule every
``RoutingRule`` option; ``breaker`` and ``hedge`` those of ``CircuitBreaker``
and ``Hedge`` (``hedge.budget`` those of its ``RetryBudget``). Each value is
checked as it is read, and the Router is built once while the file is read,
so whatever it refuses is an error naming the file, line and key too.

A reload builds a new Router. Its state (in-flight counts, rate windows,
breakers, latency estimates) carries over from the last one while no
deployment both know has changed what that state is about: its target,
credentials, address, ``rpm``, ``tpm``, ``max_concurrency``, and the
breaker's and latency's settings. Otherwise the new Router starts fresh.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Collection, Mapping
from functools import partial
from typing import Any

import attrs

from gateway._build import Renewed, toggle
from gateway._reader import Table
from gateway._redis import RedisLink
from middlewares.router import STRATEGIES, CircuitBreaker, Deployment, Hedge, Router, RoutingRule
from middlewares.router._deployments import build_groups
from middlewares.state import MemoryState, State

__all__ = ["read_router"]

_CARRY = ("router",)  # the key under which a pipeline leaves its router's state


def _made(table: Table, key: str, make: Callable[[], Any]) -> Any:
    """``make()``; what it refuses is an error about ``key`` of ``table``."""
    try:
        return make()
    except (TypeError, ValueError) as exc:
        raise table.error(key, str(exc)) from exc


def _imported(table: Table, key: str) -> Any:
    """``"package.module:name"``: that object; a class is instantiated."""
    spec: str = table.text(key)
    module, _, name = spec.partition(":")
    if not module or not name:
        raise table.error(key, f"expected 'package.module:name', got {spec!r}")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise table.error(key, f"cannot import {spec!r}: {exc}") from exc
    return _made(table, key, found) if isinstance(found, type) else found


def _deployment(entry: Table, providers: Collection[str]) -> Deployment:
    target: str = entry.text("target")
    provider, _, model = target.partition("/")
    if not provider or not model:
        raise entry.error("target", f"expected 'provider/model', got {target!r}")
    if provider not in providers:
        close = difflib.get_close_matches(provider, sorted(providers), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"a new one needs [providers.{provider}]"
        raise entry.error("target", f"no provider {provider!r} ({hint})")
    options: dict[str, Any] = {
        "name": entry.text("name", None),
        "api_key": entry.secret("api_key", None),
        "api_key_env": entry.text("api_key_env", None),
        "api_base": entry.text("api_base", None),
        "api_version": entry.text("api_version", None),
        "weight": entry.number("weight", 1.0),
        "priority": entry.integer("priority", 0, low=0),
        "rpm": entry.integer("rpm", None),
        "tpm": entry.integer("tpm", None),
        "max_concurrency": entry.integer("max_concurrency", None),
        "max_input_tokens": entry.integer("max_input_tokens", None),
        "tags": entry.strings("tags", ()),
        "input_cost_per_token": entry.number("input_cost_per_token", None, positive=False),
        "output_cost_per_token": entry.number("output_cost_per_token", None, positive=False),
    }
    entry.done()
    if options["api_key"] is not None and options["api_key_env"] is not None:
        raise entry.error("api_key_env", "give api_key or api_key_env, not both")
    deployment: Deployment = _made(entry, "", lambda: Deployment(target, **options))
    return deployment


def _groups(table: Table, providers: Collection[str]) -> dict[str, list[Deployment]]:
    groups: dict[str, list[Deployment]] = {}
    named: dict[str, tuple[str, str, Deployment]] = {}  # an explicit name -> group, key, what
    names = table.keys()
    for group in names:
        entries = table.tables(group)
        if not group.strip():
            raise table.error(group, "a group name must not be empty")
        if not entries:
            raise table.error(group, f"the group is empty: give it [[{table.path(group)}]] tables")
        deployments = groups[group] = []
        for entry in entries:
            deployment = _deployment(entry, providers)
            name = deployment.name
            if name is not None:
                where, key, other = named.setdefault(name, (group, entry.path("name"), deployment))
                if where == group and other is not deployment:
                    raise entry.error("name", f"{name!r} is already the name of {key}")
                if other != deployment:  # one deployment in two groups: configured alike
                    raise entry.error("name", f"{name!r} is already {key}, configured otherwise")
            deployments.append(deployment)
    if not groups:
        raise table.error("", "no groups: give at least one [[router.groups.NAME]]")
    return groups


def _rules(table: Table, groups: Collection[str], providers: Collection[str]) -> list[RoutingRule]:
    rules = []
    for entry in table.tables("rules"):
        target: str = entry.text("target")
        provider, _, model = target.partition("/")
        if target not in groups and not (provider in providers and model):
            raise entry.error(
                "target",
                f"points nowhere: {target!r} is neither a group ({', '.join(groups)}) "
                "nor 'provider/model' of a configured provider",
            )
        options: dict[str, Any] = {
            "model": entry.text("model", "*"),
            "max_tokens": entry.integer("max_tokens", None, low=0),
            "max_temperature": entry.number("max_temperature", None, positive=False),
            "tags": entry.strings("tags", ()),
        }
        entry.done()
        rules.append(_made(entry, "", partial(RoutingRule, target=target, **options)))
    return rules


def _strategy(table: Table) -> Any:
    value = table.raw("strategy", "weighted")
    if isinstance(value, str) and value in STRATEGIES:
        return value
    if isinstance(value, str) and ":" in value:
        strategy = _imported(table, "strategy")
        if not callable(getattr(strategy, "order", None)):
            raise table.error("strategy", f"{value!r} has no order(deployments, context) method")
        return strategy
    choices = ", ".join(STRATEGIES)
    raise table.error("strategy", f"expected one of {choices}, or 'package.module:name'")


def _breaker(table: Table) -> Callable[[], CircuitBreaker]:
    options = {
        "min_requests": table.integer("min_requests", 5),
        "failure_ratio": table.number("failure_ratio", 0.5),
        "cooldown": table.number("cooldown", 30.0),
        "window": table.number("window", 60.0),
    }
    return lambda: CircuitBreaker(**options)


def _seconds_or_p95(value: Any) -> bool:
    if value == "p95":
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _hedge(table: Table) -> Hedge | None:
    value = table.raw("hedge", False)
    if value is False:
        return None
    if not isinstance(value, dict):
        raise table.error("hedge", f"expected false or a table of options, got {value!r}")
    options = table.table("hedge")
    after = options.get("after", 'a number of seconds >= 0, or "p95"', _seconds_or_p95)
    given: dict[str, Any] = {
        "max_extra": options.integer("max_extra", 1),
        "tools": options.flag("tools", False),
        "min_samples": options.integer("min_samples", 20),
    }
    budget = options.table("budget", None)
    if budget is not None:
        from middlewares import RetryBudget

        spent = {
            "min_per_second": budget.number("min_per_second", 0.1, positive=False),
            "window": budget.number("window", 10.0),
        }
        ratio = budget.number("ratio", 0.1, positive=False)
        budget.done()
        given["budget"] = _made(budget, "", lambda: RetryBudget(ratio, **spent))
    options.done()
    hedge: Hedge = _made(options, "", lambda: Hedge(after, **given))
    return hedge


@attrs.frozen
class _Carried:
    """What a router leaves to the next one built from the file: its state, and
    every deployment that state has known (by name), as far as the state cares."""

    state: State
    known: Mapping[str, Deployment] = attrs.field(repr=False)
    settings: tuple[Any, ...]


def _as_state_sees(deployment: Deployment) -> Deployment:
    """The deployment without what its state does not depend on."""
    return attrs.evolve(
        deployment,
        weight=1.0,
        priority=0,
        tags=frozenset(),
        max_input_tokens=None,
        input_cost_per_token=None,
        output_cost_per_token=None,
    )


def _renewed(
    groups: Mapping[str, list[Deployment]],
    settings: tuple[Any, ...],
    build: Callable[..., Router],
    new_state: Callable[[], State],
) -> Callable[[Any], tuple[Router, _Carried]]:
    known = {
        d.name or d.target: _as_state_sees(d)
        for group in build_groups(groups).values()
        for d in group.deployments
    }

    def renew(left: _Carried | None) -> tuple[Router, _Carried]:
        if (
            left is not None
            and left.settings == settings
            and all(left.known.get(name, d) == d for name, d in known.items())
        ):
            carried = _Carried(left.state, {**left.known, **known}, settings)
        else:
            carried = _Carried(new_state(), known, settings)
        return build(state=carried.state), carried

    return renew


def _state(redis: RedisLink | None) -> Callable[[], State]:
    """The router's state: in this process, or in ``[redis]`` when it shares ``router``."""
    if redis is None or not redis.shares("router"):
        return MemoryState

    from middlewares.state import RedisState  # needs [redis], which a [redis] section asks for

    def shared() -> State:
        return RedisState(redis.redis, prefix=redis.settings.prefix)

    return shared


def read_router(
    table: Table, providers: Collection[str], redis: RedisLink | None = None
) -> Mapping[str, Any]:
    """``[router]`` -> ``{"router": ...}`` for ``Pipeline.default`` (nothing when absent).
    With ``[redis]`` sharing ``router``, its state is a RedisState."""
    if not table.keys():
        return {}
    groups = _groups(table.table("groups"), providers)
    rules = _rules(table, list(groups), providers)
    given = toggle(table, "breaker", _breaker)  # True, False or Fresh(factory)
    breaker = (
        given.factory() if not isinstance(given, bool) else CircuitBreaker() if given else None
    )
    latency_decay = table.number("latency_decay", 10.0)
    options: dict[str, Any] = {
        "rules": rules,
        "strategy": _strategy(table),
        "breaker": breaker,
        "max_wait": table.number("max_wait", 0.0, positive=False),
        "max_attempts": table.integer("max_attempts", 3),
        "hedge": _hedge(table),
        "latency_decay": latency_decay,
    }
    if "token_counter" in table:
        options["token_counter"] = _imported(table, "token_counter")
    table.done()

    def build(**more: Any) -> Router:
        return Router(groups, **options, **more)

    _made(table, "", build)  # what the Router itself refuses, named as this section
    new_state = _state(redis)
    where = redis.key if redis is not None and new_state is not MemoryState else None
    settings = (breaker, latency_decay, where)
    return {"router": Renewed(_CARRY, _renewed(groups, settings, build, new_state))}
