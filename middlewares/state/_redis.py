"""The shared State: :class:`RedisState`, one set of limits, breakers and latencies."""

from __future__ import annotations

import itertools
import math
import secrets
from typing import Any, NamedTuple

from middlewares.shared import RedisBacked, RedisUnavailable, SharedRedis
from middlewares.state._memory import MemoryState
from middlewares.state._protocol import (
    BREAKER_STEPS,
    SHORT_WAIT,
    WINDOW_STEPS,
    BreakerState,
    DeploymentState,
    Grant,
    Outcome,
    Policy,
)
from middlewares.state._scripts import ACQUIRE, RELEASE, VIEW

__all__ = ["RedisState"]

DAY = 86_400.0


def _number(value: float | None) -> str:
    return "" if value is None else str(value)


def _float(value: Any) -> float | None:
    return float(value) if value not in (b"", "", None) else None


class _Seen(NamedTuple):
    """A deployment's shared record as of this process's last round trip."""

    in_flight: int
    open_until: float | None
    requests: int | None
    tokens: int | None
    estimate: float | None
    estimated_at: float

    @classmethod
    def of(cls, reply: Any) -> _Seen:
        in_flight, open_until, _probing, requests, tokens, estimate, at = reply
        return cls(
            int(in_flight),
            _float(open_until),
            None if requests in (b"", "") else int(requests),
            None if tokens in (b"", "") else int(tokens),
            _float(estimate),
            _float(at) or 0.0,
        )

    def latency(self, policy: Policy, now: float) -> float:
        if self.estimate is None:
            return 0.0
        return self.estimate * math.exp(-max(now - self.estimated_at, 0.0) / policy.decay)


_NOTHING_SEEN = _Seen(0, None, None, None, None, 0.0)


class RedisState(RedisBacked):
    """:class:`~middlewares.state.State` in Redis, shared by every process using it.

    >>> router = Router(groups, state=RedisState("redis://127.0.0.1:6379/0"))

    - ``url``: a Redis URL, or a :class:`~middlewares.shared.SharedRedis` to
      share one pool (and its timeouts) with other layers;
    - ``prefix``: keys are ``<prefix>:state:{<deployment>}:<part>``;
    - ``lease``: seconds an in-flight slot is held at most: a process that
      dies mid-call never releases its slots, so each expires (set it above
      your longest call: a live call past it no longer counts as in flight).

    Each operation is one Lua script (one round trip): limits are checked and
    counted atomically, a breaker opened by one process is open for all.
    ``in_flight``, ``latency`` and ``view`` answer from this process's last
    round trip for that deployment; ``aview`` asks Redis. While Redis is out
    (down or slower than its timeout), a :class:`MemoryState` of this process
    takes over, with one warning; Redis is used again once it answers.
    """

    __slots__ = ("_ids", "_lease", "_local", "_process", "_seen")

    def __init__(
        self,
        url: str | SharedRedis,
        *,
        prefix: str = "dispatchline",
        lease: float = 300.0,
    ) -> None:
        fallback = "this process's own state (MemoryState)"
        super().__init__(url, prefix=prefix, layer="state", fallback=fallback)
        if isinstance(lease, bool) or not isinstance(lease, int | float) or not 0 < lease < DAY:
            raise ValueError(f"lease must be a number of seconds in (0, 86400), got {lease!r}")
        self._lease = float(lease)
        self._local = MemoryState()  # while Redis is out
        self._seen: dict[str, _Seen | None] = {}  # None: out, the local state answers
        self._process = secrets.token_hex(6)
        self._ids = itertools.count()

    def __repr__(self) -> str:
        return f"RedisState({self._redis.url!r}, prefix={self._prefix!r})"

    def _keys(self, key: str) -> list[str]:
        base = f"{self._prefix}:state:{{{key}}}"
        return [f"{base}:rec", f"{base}:usage", f"{base}:outcomes", f"{base}:leases"]

    def _ttl_ms(self, policy: Policy) -> int:
        longest = max(DAY, 2 * policy.window, 2 * policy.breaker_window, 2 * self._lease)
        return int(longest * 1000)

    # -- State ----------------------------------------------------------------

    async def acquire(self, key: str, policy: Policy, cost: int, now: float) -> Grant:
        step = policy.window / WINDOW_STEPS
        index = int(now // step)
        lease = f"{self._process}:{next(self._ids)}"
        args = [
            *(str(now), cost, _number(policy.rpm), _number(policy.tpm)),
            *(_number(policy.max_concurrency), index, WINDOW_STEPS, str(step)),
            *(lease, str(now + self._lease), self._ttl_ms(policy), str(SHORT_WAIT)),
        ]
        try:
            reply = await self._user.eval(ACQUIRE, self._keys(key), args)
        except RedisUnavailable:
            self._seen[key] = None
            return await self._local.acquire(key, policy, cost, now)
        ok, reason, after, probe = reply[:4]
        self._seen[key] = _Seen.of(reply[4:])
        if ok:
            return Grant(key, policy, True, cost, index, bool(probe), lease=lease)
        return Grant(key, policy, False, reason=reason.decode(), retry_after=_float(after))

    async def release(
        self,
        grant: Grant,
        outcome: Outcome,
        now: float,
        *,
        tokens: int | None = None,
        retry_after: float | None = None,
        latency: float | None = None,
    ) -> None:
        if not grant.lease:  # taken from the local state while Redis was out
            await self._local.release(
                grant, outcome, now, tokens=tokens, retry_after=retry_after, latency=latency
            )
            return
        key, policy = grant.key, grant.policy
        limited = policy.rpm is not None or policy.tpm is not None
        delta = None if tokens is None else tokens - grant.cost
        args = [
            *(str(now), grant.lease, int(grant.probe), grant.bucket, _number(delta)),
            *(_number(latency), outcome, policy.min_requests, str(policy.failure_ratio)),
            *(str(policy.cooldown), _number(retry_after)),
            *(int(now // (policy.breaker_window / BREAKER_STEPS)), BREAKER_STEPS),
            *(str(policy.decay), self._ttl_ms(policy)),
            *(int(now // (policy.window / WINDOW_STEPS)), WINDOW_STEPS, int(limited)),
        ]
        try:
            reply = await self._user.eval(RELEASE, self._keys(key), args)
        except RedisUnavailable:
            return  # its lease expires by itself; this outcome is not counted
        self._seen[key] = _Seen.of(reply)

    def _last(self, key: str) -> _Seen | None:
        """What this process last saw of ``key`` in Redis; None while Redis is out."""
        return self._seen.get(key, _NOTHING_SEEN)

    def in_flight(self, key: str) -> int:
        seen = self._last(key)
        return self._local.in_flight(key) if seen is None else seen.in_flight

    def latency(self, key: str, policy: Policy, now: float) -> float:
        seen = self._last(key)
        return self._local.latency(key, policy, now) if seen is None else seen.latency(policy, now)

    def view(self, key: str, policy: Policy, now: float) -> DeploymentState:
        seen = self._last(key)
        if seen is None:
            return self._local.view(key, policy, now)
        return _view(seen, policy, now)

    async def aview(self, key: str, policy: Policy, now: float) -> DeploymentState:
        limited = policy.rpm is not None or policy.tpm is not None
        args = [str(now), int(now // (policy.window / WINDOW_STEPS)), WINDOW_STEPS, int(limited)]
        try:
            reply = await self._user.eval(VIEW, self._keys(key), args)
        except RedisUnavailable:
            return self._local.view(key, policy, now)
        return _view(_Seen.of(reply), policy, now)


def _view(seen: _Seen, policy: Policy, now: float) -> DeploymentState:
    until = seen.open_until
    breaker: BreakerState = "closed" if until is None else "open" if now < until else "half_open"
    counted = 0 if policy.rpm is not None or policy.tpm is not None else None
    return DeploymentState(
        in_flight=seen.in_flight,
        breaker=breaker,
        reopens_at=until,
        rpm_used=counted if seen.requests is None else seen.requests,
        tpm_used=counted if seen.tokens is None else seen.tokens,
        latency=None if seen.estimate is None else seen.latency(policy, now),
    )
