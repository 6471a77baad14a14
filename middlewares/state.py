"""Routing state: in-flight counts, rate windows, breaker states and latency estimates.

The :class:`~middlewares.Router` keeps everything it learns about its
deployments behind one small protocol, :class:`State`, so that many processes
can share it. :class:`MemoryState` (this process only) is the default; a
shared implementation (Redis) implements the same four operations.

The writes are **coarse**: each one checks and changes a deployment's record
in one step, never as a read followed by a write, so a shared implementation
can run each as one atomic script (a Redis ``EVALSHA`` over one hash and its
window keys):

``acquire(key, policy, cost, now) -> Grant``
    In one step: (1) the breaker: refuse while open (``now < open_until``);
    once the cooldown has passed (half-open) grant exactly one probe, refuse
    others while it is out; (2) ``max_concurrency`` against ``in_flight``;
    (3) ``rpm`` (one request) and ``tpm`` (``cost`` tokens) against the sums
    of the window's buckets; then take the slot: ``in_flight += 1``, add 1
    and ``cost`` to the current bucket, mark the probe taken. A refusal says
    why (``reason``) and when a slot is expected (``retry_after`` seconds,
    None when this cost can never fit). Nothing is taken on a refusal.

``release(grant, outcome, now, tokens=, retry_after=, latency=)``
    In one step: ``in_flight -= 1``; move ``tokens - grant.cost`` into the
    bucket the cost was counted in (the real usage replaces the estimate;
    nothing if that bucket has left the window); fold ``latency`` into the
    peak-EWMA estimate; then the breaker, by ``outcome``:

    - ``"ignored"`` (bad request, cancellation, budget...): nothing counted;
      a probe that ends so gives its turn back (still half-open);
    - the probe's ``"success"`` closes the breaker; its ``"failure"`` opens it
      again for ``max(cooldown, retry_after)``;
    - otherwise the outcome is counted in the breaker window; a failure while
      open or half-open moves ``open_until`` to the later of the two deadlines
      (never earlier); a failure that makes ``requests >= min_requests`` and
      ``failures / requests >= failure_ratio`` opens it until
      ``now + max(cooldown, retry_after)``. Opening and closing clear the
      window's counts.

``in_flight(key)``, ``latency(key, policy, now)``
    This process's view, synchronous and cheap: what strategies rank by.

``view(key, policy, now)`` / ``await aview(key, policy, now)``
    A :class:`DeploymentState`: this process's view, and the shared one.

Rate windows are ``WINDOW_STEPS`` buckets of ``window / WINDOW_STEPS``
seconds, keyed by ``int(now // step)``; a bucket counts while its index is
within ``WINDOW_STEPS`` of the current one, so the counted span is at least
the window: a limit is never exceeded over any window-long stretch, at the
price of up to one step of idle capacity. They are kept only for a
deployment with an ``rpm`` or ``tpm``. The breaker's window is
``BREAKER_STEPS`` buckets, the same way. ``now`` is wall-clock seconds (the
Router's clock, ``time.time`` unless injected), so processes on several hosts
agree on buckets and deadlines.

For a shared implementation, one layout that makes each write one script:
a hash per deployment key (``in_flight``, ``open_until``, ``probing``,
``estimate``, ``estimated_at``, ``sampled``), a hash of usage buckets
(``index -> requests``, ``index -> tokens``) and one of breaker buckets
(``index -> requests``, ``index -> failures``), each with a TTL of two
windows; ``acquire`` sums the buckets at or after ``index - WINDOW_STEPS``
and deletes older ones. Every number the script needs is in the
:class:`Policy` and the arguments (send them as ARGV); nothing is read
first and written back later. A process that dies never releases its slots,
so shared in-flight slots should expire: keep them as a sorted set of lease
ids scored by a deadline (``Grant.lease`` carries the id) and count only the
live ones. When the shared store is slow or down, fall back to a
:class:`MemoryState` with a logged warning rather than hang a request.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal, NamedTuple, Protocol

import attrs

__all__ = [
    "BREAKER_STEPS",
    "WINDOW_STEPS",
    "BreakerState",
    "DeploymentState",
    "Grant",
    "MemoryState",
    "Outcome",
    "Policy",
    "State",
]

Outcome = Literal["success", "failure", "ignored"]
BreakerState = Literal["closed", "open", "half_open"]

WINDOW_STEPS = 60
BREAKER_STEPS = 10
# A refusal with nothing to wait for but another request's end (a concurrency
# slot, the half-open probe): a short hint.
SHORT_WAIT = 0.1


@attrs.frozen
class Policy:
    """What a State enforces for one deployment: plain numbers, one per field.

    ``min_requests == 0`` means no breaker. ``decay`` is the latency
    estimate's time constant (seconds); a deployment with no sample yet has
    an estimate of 0.
    """

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    window: float = 60.0
    min_requests: int = 0
    failure_ratio: float = 0.5
    cooldown: float = 30.0
    breaker_window: float = 60.0
    decay: float = 10.0


class Grant(NamedTuple):
    """The answer to :meth:`State.acquire`: a slot (``ok``) or a refusal.

    A granted one is handed back to :meth:`State.release` exactly once.
    """

    key: str
    policy: Policy
    ok: bool
    cost: int = 0
    bucket: int = 0  # the window bucket the cost was counted in
    probe: bool = False  # this call is the half-open breaker's probe
    reason: str = ""  # refused: "breaker", "concurrency", "rpm" or "tpm"
    retry_after: float | None = None  # refused: seconds until a slot is expected
    lease: str = ""  # a shared State's own handle on the slot (MemoryState needs none)


@attrs.frozen
class DeploymentState:
    in_flight: int
    breaker: BreakerState
    reopens_at: float | None  # when an open breaker lets its probe through
    rpm_used: int | None  # in the window; None for a deployment without rpm or tpm
    tpm_used: int | None
    latency: float | None  # peak-EWMA estimate, seconds (None before any sample)


class State(Protocol):
    """Where a Router keeps what it knows; see the module docstring for each operation."""

    async def acquire(self, key: str, policy: Policy, cost: int, now: float) -> Grant: ...

    async def release(
        self,
        grant: Grant,
        outcome: Outcome,
        now: float,
        *,
        tokens: int | None = None,
        retry_after: float | None = None,
        latency: float | None = None,
    ) -> None: ...

    def in_flight(self, key: str) -> int: ...

    def latency(self, key: str, policy: Policy, now: float) -> float: ...

    def view(self, key: str, policy: Policy, now: float) -> DeploymentState: ...

    async def aview(self, key: str, policy: Policy, now: float) -> DeploymentState: ...


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
