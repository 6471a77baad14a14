"""The default State: :class:`MemoryState`, this process's memory."""

from __future__ import annotations

import math
from collections import deque

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

__all__ = ["MemoryState"]


class _Window:
    """Sums over the last ``steps + 1`` buckets, kept as they move."""

    __slots__ = ("buckets", "first", "second", "step", "steps")

    def __init__(self, seconds: float, steps: int) -> None:
        self.steps = steps
        self.step = seconds / steps
        self.buckets: deque[list[int]] = deque()  # [index, first, second]
        self.first = 0
        self.second = 0

    def roll(self, now: float) -> int:
        """The current bucket's index, once the buckets that left the window are dropped."""
        index = int(now // self.step)
        buckets = self.buckets
        while buckets and buckets[0][0] < index - self.steps:
            gone = buckets.popleft()
            self.first -= gone[1]
            self.second -= gone[2]
        return index

    def add(self, index: int, first: int, second: int) -> None:
        buckets = self.buckets
        if not buckets or buckets[-1][0] != index:
            buckets.append([index, 0, 0])
        bucket = buckets[-1]
        bucket[1] += first
        bucket[2] += second
        self.first += first
        self.second += second

    def adjust(self, index: int, second: int) -> None:
        for bucket in reversed(self.buckets):
            if bucket[0] == index:
                bucket[2] += second
                self.second += second
                return
            if bucket[0] < index:
                return

    def clear(self) -> None:
        self.buckets.clear()
        self.first = self.second = 0

    def wait(self, now: float, used: int, limit: int, cost: int, which: int) -> float:
        """Seconds until ``used - freed + cost <= limit`` as old buckets leave."""
        for bucket in self.buckets:
            used -= bucket[which]
            if used + cost <= limit:
                return max((bucket[0] + self.steps + 1) * self.step - now, 0.0)
        return max(self.step, 0.0)  # pragma: no cover - cost <= limit always fits an empty window


class _Record:
    __slots__ = (
        "estimate",
        "estimated_at",
        "in_flight",
        "open_until",
        "outcomes",
        "probing",
        "sampled",
        "usage",
    )

    def __init__(self, policy: Policy, now: float) -> None:
        self.in_flight = 0
        # requests and tokens, counted only for a deployment with an rpm or tpm
        limited = policy.rpm is not None or policy.tpm is not None
        self.usage = _Window(policy.window, WINDOW_STEPS) if limited else None
        self.outcomes = _Window(policy.breaker_window, BREAKER_STEPS)  # requests, failures
        self.open_until: float | None = None
        self.probing = False
        self.estimate = 0.0
        self.estimated_at = now
        self.sampled = False


def _decayed(record: _Record, policy: Policy, now: float) -> float:
    elapsed = max(now - record.estimated_at, 0.0)
    return record.estimate * math.exp(-elapsed / policy.decay)


class MemoryState:
    """:class:`State` in this process's memory: the default.

    Operations never await, so each is atomic within one event loop; one
    MemoryState belongs to one loop (a pipeline's), like the rest of a router.
    """

    __slots__ = ("_records",)

    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}

    def __repr__(self) -> str:
        return f"MemoryState({len(self._records)} deployments)"

    def _record(self, key: str, policy: Policy, now: float) -> _Record:
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = _Record(policy, now)
        return record

    async def acquire(self, key: str, policy: Policy, cost: int, now: float) -> Grant:
        record = self._records.get(key) or self._record(key, policy, now)
        probe = False
        until = record.open_until
        if until is not None:
            if now < until:
                return Grant(key, policy, False, reason="breaker", retry_after=until - now)
            if record.probing:
                return Grant(key, policy, False, reason="breaker", retry_after=SHORT_WAIT)
            probe = True
        limit = policy.max_concurrency
        if limit is not None and record.in_flight >= limit:
            return Grant(key, policy, False, reason="concurrency", retry_after=SHORT_WAIT)
        usage = record.usage
        index = 0
        if usage is not None:
            index = usage.roll(now)
            rpm, tpm = policy.rpm, policy.tpm
            if rpm is not None and usage.first + 1 > rpm:
                wait = usage.wait(now, usage.first, rpm, 1, 1)
                return Grant(key, policy, False, reason="rpm", retry_after=wait)
            if tpm is not None and usage.second + cost > tpm:
                never = cost > tpm  # this request alone is over the limit
                after = None if never else usage.wait(now, usage.second, tpm, cost, 2)
                return Grant(key, policy, False, reason="tpm", retry_after=after)
            usage.add(index, 1, cost)
        record.in_flight += 1
        if probe:
            record.probing = True
        return Grant(key, policy, True, cost, index, probe)

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
        key, policy = grant.key, grant.policy
        record = self._records.get(key) or self._record(key, policy, now)
        if record.in_flight:
            record.in_flight -= 1
        usage = record.usage
        if usage is not None and tokens is not None and tokens != grant.cost:
            usage.adjust(grant.bucket, tokens - grant.cost)
        if latency is not None:
            # Peak-EWMA: the first sample, or one above the estimate (decayed
            # towards 0 while idle), replaces it; one below pulls it down by how
            # long it has been since the last sample.
            weight = math.exp((record.estimated_at - now) / policy.decay)
            current = record.estimate * weight
            if latency >= current or not record.sampled:
                record.estimate = latency
                record.sampled = True
            else:
                record.estimate = current * weight + latency * (1.0 - weight)
            record.estimated_at = now
        if policy.min_requests == 0:
            return
        if outcome == "ignored":
            if grant.probe:
                record.probing = False
            return
        if grant.probe:
            record.probing = False
            record.outcomes.clear()
            reopen = now + max(policy.cooldown, retry_after or 0.0)
            record.open_until = None if outcome == "success" else reopen
            return
        outcomes = record.outcomes
        failed = outcome == "failure"
        outcomes.add(outcomes.roll(now), 1, failed)
        if not failed:
            return
        reopen = now + max(policy.cooldown, retry_after or 0.0)
        if record.open_until is not None:
            record.open_until = max(record.open_until, reopen)
        elif (
            outcomes.first >= policy.min_requests
            and outcomes.second >= policy.failure_ratio * outcomes.first
        ):
            record.open_until = reopen
            outcomes.clear()

    def in_flight(self, key: str) -> int:
        record = self._records.get(key)
        return 0 if record is None else record.in_flight

    def latency(self, key: str, policy: Policy, now: float) -> float:
        return _decayed(self._record(key, policy, now), policy, now)

    def view(self, key: str, policy: Policy, now: float) -> DeploymentState:
        record = self._record(key, policy, now)
        usage = record.usage
        if usage is not None:
            usage.roll(now)
        until = record.open_until
        breaker: BreakerState = (
            "closed" if until is None else "open" if now < until else "half_open"
        )
        return DeploymentState(
            in_flight=record.in_flight,
            breaker=breaker,
            reopens_at=until,
            rpm_used=None if usage is None else usage.first,
            tpm_used=None if usage is None else usage.second,
            latency=_decayed(record, policy, now) if record.sampled else None,
        )

    async def aview(self, key: str, policy: Policy, now: float) -> DeploymentState:
        return self.view(key, policy, now)
