"""The State protocol and the values it trades in (see :mod:`middlewares.state`)."""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol

import attrs

__all__ = [
    "BREAKER_STEPS",
    "SHORT_WAIT",
    "WINDOW_STEPS",
    "BreakerState",
    "DeploymentState",
    "Grant",
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
