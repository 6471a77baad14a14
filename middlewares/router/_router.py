"""The Router middleware: a group name in, one deployment's response out."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import attrs

from middlewares._attempts import record
from middlewares.router._breaker import (
    SKIPPED,
    CircuitBreaker,
    calls_for_failover,
    outcome_of,
)
from middlewares.router._deployments import Deployment, Group, build_groups
from middlewares.router._hedge import Hedge, Latencies, race
from middlewares.router._rules import RoutingRule, first_match
from middlewares.router._run import (
    ROUTED,
    Refusal,
    Run,
    attempts_at,
    failed_on,
    failure,
    policy_for,
)
from middlewares.router._snapshot import DeploymentSnapshot, RouterSnapshot
from middlewares.router._strategies import Context, Strategy, strategy_named
from middlewares.router._tokens import TokenCounter, estimate_prompt_tokens, used_tokens
from middlewares.state import Grant, MemoryState, Policy, State
from pipeline import Attempt, Handler, Request, Result, Stream, errors, observe
from pipeline.adapter import Endpoint

__all__ = ["ROUTED", "Router"]


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]

# A failed call counts as a latency sample of at least this many seconds (and
# of twice the current estimate), so failing fast never looks fast.
FAILURE_LATENCY = 5.0
_Pick = tuple[Deployment, Grant]


class Router:
    """Routes group names (and calls matching its rules) to deployments.

    See the README's "Routing" section. Options:

    - ``groups``: ``{"name": [Deployment(...), ...]}``; a group name is used as
      a model name;
    - ``rules``: :class:`RoutingRule` list, first match wins;
    - ``strategy``: ``"weighted"`` (default), ``"priority"``, ``"least_busy"``,
      ``"latency"``, ``"cost"``, or an object with ``order(deployments, context)``;
    - ``breaker``: a :class:`CircuitBreaker` per deployment (None: none);
    - ``max_wait``: seconds a request may wait for capacity when every
      deployment is out; then :class:`errors.RateLimitError` with ``retry_after``;
    - ``max_attempts``: deployments tried per request, at most;
    - ``hedge``: a :class:`Hedge`, or None;
    - ``state``: where counts, windows, breakers and latencies live
      (:class:`~middlewares.state.MemoryState` by default);
    - ``token_counter``: ``request -> prompt tokens`` (a cheap estimate by default);
    - ``clock`` (wall-clock seconds), ``sleep``, ``rng``: injectable for tests.
    """

    def __init__(
        self,
        groups: Mapping[str, Sequence[Deployment]],
        *,
        rules: Sequence[RoutingRule] = (),
        strategy: str | Strategy = "weighted",
        breaker: CircuitBreaker | None = CircuitBreaker(),  # noqa: B008 - frozen, shared safely
        max_wait: float = 0.0,
        max_attempts: int = 3,
        hedge: Hedge | None = None,
        state: State | None = None,
        token_counter: TokenCounter = estimate_prompt_tokens,
        latency_decay: float = 10.0,
        clock: Clock = time.time,
        sleep: Sleep = anyio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._groups = build_groups(groups)
        self._rules = tuple(rules)
        for rule in self._rules:
            if not isinstance(rule, RoutingRule):
                raise ValueError(f"rules takes RoutingRule objects, got {rule!r}")
            provider, _, model = rule.target.partition("/")
            if rule.target not in self._groups and not (provider and model):
                raise ValueError(
                    f"rule {rule!r} points nowhere: {rule.target!r} is neither a group "
                    f"({', '.join(self._groups)}) nor 'provider/model'"
                )
        self._strategy = strategy_named(strategy)
        if breaker is not None and not isinstance(breaker, CircuitBreaker):
            raise ValueError(f"breaker takes a CircuitBreaker or None, got {breaker!r}")
        if isinstance(max_wait, bool) or not isinstance(max_wait, int | float) or not max_wait >= 0:
            raise ValueError(f"max_wait must be a number of seconds >= 0, got {max_wait!r}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        if hedge is not None and not isinstance(hedge, Hedge):
            raise ValueError(f"hedge takes a Hedge or None, got {hedge!r}")
        if not latency_decay > 0:
            raise ValueError(f"latency_decay must be > 0 seconds, got {latency_decay!r}")
        self._breaker = breaker
        self._max_wait = float(max_wait)
        self._max_attempts = max_attempts
        self._hedge = hedge
        self._latencies = Latencies() if hedge is not None and hedge.after == "p95" else None
        self._state: State = state if state is not None else MemoryState()
        self._count = token_counter
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._policies: dict[str, Policy] = {}
        self._memberships: dict[str, tuple[Deployment, tuple[str, ...]]] = {}
        for group in self._groups.values():
            for deployment in group.deployments:
                name = deployment.name or deployment.target
                self._policies[name] = policy_for(deployment, breaker, latency_decay)
                held = self._memberships.get(name, (deployment, ()))
                self._memberships[name] = (deployment, (*held[1], group.name))

    def __repr__(self) -> str:
        shown = f"groups={list(self._groups)!r}, strategy={self._strategy!r}"
        if self._rules:
            shown += f", rules={len(self._rules)}"
        if self._hedge is not None:
            shown += f", hedge={self._hedge.after!r}"
        return f"Router({shown})"

    @property
    def groups(self) -> tuple[str, ...]:
        """The group names, each usable as a model name."""
        return tuple(self._groups)

    @property
    def state(self) -> State:
        return self._state

    # -- names --------------------------------------------------------------

    def claim_model(
        self,
        model: str,
        *,
        endpoint: Endpoint,
        params: Mapping[str, Any],
        metadata: Mapping[str, Any] | None,
    ) -> tuple[str, str] | None:
        """The pipeline's hook: ``(ROUTED, name)`` for a name this router routes."""
        if self._rules and first_match(self._rules, model, params, metadata) is not None:
            return ROUTED, model
        if model in self._groups:
            return ROUTED, model
        if model.startswith("router/") and model[7:] in self._groups:
            return ROUTED, model[7:]
        return None

    def _target(self, request: Request) -> Group | tuple[str, str]:
        if not self._rules:
            group = self._groups.get(request.model)
            if group is not None:
                return group
        rule = first_match(
            self._rules, request.model, request.params, request.options.get("metadata")
        )
        name = rule.target if rule is not None else request.model
        group = self._groups.get(name)
        if group is not None:
            return group
        provider, _, model = name.partition("/")
        if rule is not None:
            return provider, model
        raise errors.ProviderNotFoundError(
            f"no routing group or rule for {request.model!r}; groups: {', '.join(self._groups)}",
            provider=request.provider,
            model=request.model,
        )

    # -- routing ------------------------------------------------------------

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        if request.provider != ROUTED:
            return await call_next(request)
        target = self._target(request)
        if not isinstance(target, Group):
            return await call_next(attrs.evolve(request, provider=target[0], model=target[1]))
        if request.api_key is not None or request.api_base is not None:
            raise errors.InvalidRequestError(
                f"{request.model!r} is a routing group: its deployments carry their own "
                "credentials (Deployment(api_key=..., api_base=...)); none may be given per call",
                provider=ROUTED,
                model=request.model,
            )
        context = Context(
            request, self._count, self._clock(), self._rng, self._state, self._policies
        )
        run = Run(target, request, context)
        hedge = self._hedge
        if hedge is not None:
            if hedge.applies_to(request):
                hedge.budget.deposit()
            else:
                hedge = None
        tries, waited = 0, 0.0
        refusal: Refusal | None = None
        while tries < self._max_attempts:
            picked = await self._pick(run, run.excluded)
            if isinstance(picked, Refusal):
                refusal = picked
                wait = picked.retry_after
                if wait is None or waited + wait > self._max_wait:
                    break
                wait = max(wait, 0.001)
                await self._sleep(wait)
                waited += wait
                context.now = self._clock()
                continue
            deployment, grant = picked
            delay = None if hedge is None else self._hedge_delay(hedge, deployment)
            if delay is not None:
                result = await self._race(run, picked, call_next, hedge, delay)  # type: ignore[arg-type]
            else:
                try:
                    result = await self._call(deployment, grant, request, call_next)
                except Exception as exc:
                    failed_on(run, deployment, exc)
                    result = None
                else:
                    run.path.extend(attempts_at(deployment, result))
            if result is not None:
                record(result, run.path)
                return result
            error = run.failures[-1]
            if not isinstance(error, SKIPPED):
                tries += 1
            if not calls_for_failover(error):
                break
        raise failure(run, refusal or Refusal())

    async def _pick(self, run: Run, excluded: set[str]) -> _Pick | Refusal:
        """The best available deployment, its slot taken; or why none is."""
        context, floor = run.context, run.floor
        # Without a tpm or a context window to check, the estimate waits: the
        # real usage is counted when the call ends all the same.
        prompt, completion = context.tokens if run.group.weighs_tokens else (0, 0)
        cost = prompt + completion
        refusal: Refusal | None = None  # made only when something is refused
        acquire, policies = self._state.acquire, self._policies
        for tier in run.group.tiers:
            for deployment in self._strategy.order(tier, context):
                name = deployment.name or deployment.target
                if name in excluded:
                    continue
                window = deployment.max_input_tokens
                if window is not None and (prompt > window or (floor and window <= floor)):
                    excluded.add(name)
                    refusal = refusal or Refusal()
                    refusal.reasons.append(f"{name}: context window {window}")
                    continue
                grant = await acquire(name, policies[name], cost, context.now)
                if grant.ok:
                    return deployment, grant
                refusal = refusal or Refusal()
                refusal.refused(name, grant)
        return refusal or Refusal()

    async def _call(
        self, deployment: Deployment, grant: Grant, request: Request, call_next: Handler
    ) -> Result:
        """``request`` sent to ``deployment`` holding its slot, released when the
        call (or, for a stream, the stream) ends, with the outcome for its breaker."""
        clock = self._clock
        started = clock()
        try:
            result = await call_next(deployment.routed(request))
        except BaseException as exc:
            await self._release_failed(grant, exc, clock() - started)
            raise
        ended = clock()
        elapsed = ended - started
        if self._latencies is not None:
            self._latencies.add(grant.key, elapsed)
        if isinstance(result, Stream):
            return self._watch(result, grant, elapsed)
        await self._state.release(
            grant, "success", ended, tokens=used_tokens(result), latency=elapsed
        )
        return result

    async def _release_failed(self, grant: Grant, exc: BaseException, elapsed: float) -> None:
        outcome = outcome_of(exc)
        now = self._clock()
        current = self._state.latency(grant.key, grant.policy, now)
        latency: float | None = None
        if outcome == "failure":
            latency = max(elapsed, 2.0 * current, FAILURE_LATENCY)
        elif not isinstance(exc, Exception) and elapsed > current:
            latency = elapsed  # cancelled (a hedge's loser): it took at least this long
        retry_after = getattr(exc, "retry_after", None)
        with anyio.CancelScope(shield=True):
            await self._state.release(grant, outcome, now, retry_after=retry_after, latency=latency)

    def _watch(self, stream: Stream[Any], grant: Grant, first_chunk: float) -> Stream[Any]:
        """Release the slot when the stream ends, is closed, or fails."""
        seen: list[int | None] = [None]
        state, clock = self._state, self._clock

        def on_chunk(chunk: Any) -> None:
            usage = chunk.usage
            if usage is not None:
                seen[0] = usage.total_tokens

        async def on_end(completed: bool) -> None:
            tokens = seen[0] if completed else None
            with anyio.CancelScope(shield=True):
                await state.release(grant, "success", clock(), tokens=tokens, latency=first_chunk)

        async def on_error(exc: BaseException) -> None:
            await self._release_failed(grant, exc, first_chunk)

        return observe(stream, on_chunk=on_chunk, on_end=on_end, on_error=on_error)

    # -- hedging ------------------------------------------------------------

    def _hedge_delay(self, hedge: Hedge, deployment: Deployment) -> float | None:
        if hedge.after != "p95":
            return hedge.after
        assert self._latencies is not None
        return self._latencies.p95(deployment.name or deployment.target, hedge.min_samples)

    async def _race(
        self, run: Run, first: _Pick, call_next: Handler, hedge: Hedge, delay: float
    ) -> Result | None:
        running: set[str] = set()

        async def call(pick: _Pick) -> Result:
            deployment, grant = pick
            running.add(grant.key)
            return await self._call(deployment, grant, run.request, call_next)

        async def more() -> _Pick | None:
            if not hedge.budget.withdraw():
                return None
            picked = await self._pick(run, run.excluded | running)
            if not isinstance(picked, Refusal):
                return picked
            deployment, grant = first  # no other one: the same deployment again
            again = await self._state.acquire(grant.key, grant.policy, grant.cost, self._clock())
            return (deployment, again) if again.ok else None

        outcome = await race(
            first, call, more, after=delay, max_extra=hedge.max_extra, sleep=self._sleep
        )
        for deployment, _ in outcome.cancelled:
            run.path.append(
                Attempt(deployment.provider, deployment.model, "Cancelled", deployment.name)
            )
        for (deployment, _), exc in outcome.failures:
            failed_on(run, deployment, exc)
        if outcome.winner is None:
            return None
        (deployment, _), result = outcome.winner
        run.path.extend(attempts_at(deployment, result))
        return result

    # -- what it knows --------------------------------------------------------

    def snapshot(self) -> RouterSnapshot:
        """Each deployment as this process sees it (synchronous)."""
        now = self._clock()
        view = self._state.view
        return RouterSnapshot(
            {
                name: DeploymentSnapshot.of(d, groups, view(name, self._policies[name], now))
                for name, (d, groups) in self._memberships.items()
            }
        )

    async def asnapshot(self) -> RouterSnapshot:
        """Each deployment as the shared state sees it (the same with MemoryState)."""
        now = self._clock()
        views = {
            name: await self._state.aview(name, self._policies[name], now)
            for name in self._memberships
        }
        return RouterSnapshot(
            {
                name: DeploymentSnapshot.of(d, groups, views[name])
                for name, (d, groups) in self._memberships.items()
            }
        )
