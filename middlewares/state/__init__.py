"""Routing state: in-flight counts, rate windows, breaker states and latency estimates.

The :class:`~middlewares.Router` keeps everything it learns about its
deployments behind one small protocol, :class:`State`, so that many processes
can share it. :class:`MemoryState` (this process only) is the default;
:class:`RedisState` (below) shares it between processes.

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

**RedisState** (the ``[redis]`` extra) is the shared implementation: every
process that uses it enforces one set of limits, one breaker and one latency
estimate per deployment. Each write is one Lua script (``EVALSHA``, one round
trip) over four keys per deployment (:mod:`middlewares.state._scripts`): a
hash (``open_until``, ``probing``, ``estimate``, ``estimated_at``), a hash
of usage buckets, one of breaker buckets (each expiring when unused) and a
sorted set of in-flight *leases* scored by their deadline: a process that
dies never releases its slots, so each lease expires (``RedisState(lease=)``)
and only live ones count. A half-open probe's turn is a lease too. When
Redis is slow or down, a :class:`MemoryState` of this process takes over,
with one logged warning, until Redis answers again.
"""

from typing import TYPE_CHECKING, Any

from middlewares.state._memory import MemoryState
from middlewares.state._protocol import (
    BREAKER_STEPS,
    WINDOW_STEPS,
    BreakerState,
    DeploymentState,
    Grant,
    Outcome,
    Policy,
    State,
)

if TYPE_CHECKING:
    from middlewares.state._redis import RedisState

__all__ = [
    "BREAKER_STEPS",
    "WINDOW_STEPS",
    "BreakerState",
    "DeploymentState",
    "Grant",
    "MemoryState",
    "Outcome",
    "Policy",
    "RedisState",
    "State",
]


def __getattr__(name: str) -> Any:
    # RedisState imports the Redis client (the [redis] extra): only when asked for.
    if name == "RedisState":
        from middlewares.state._redis import RedisState

        return RedisState
    raise AttributeError(f"module 'middlewares.state' has no attribute {name!r}")
