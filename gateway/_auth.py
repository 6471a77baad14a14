"""Who may call the gateway: a master key and virtual keys, stored as sha256 digests.

A caller sends ``Authorization: Bearer <key>``. The key's sha256 is compared
with every stored digest in constant time (``hmac.compare_digest``, no early
exit), so timing tells nothing about which key, or how much of one, matched.
Every authentication failure gets the same 401 body.

A virtual key carries what it may do: ``models`` (globs matched against the
model as the caller wrote it; empty means any), ``rpm`` (requests in any 60
second window) and ``budget`` (USD per ``budget_period``, counted from the
cost the pipeline reports: a config with such a key turns Costs on).
Usage is counted in this process, and survives a reload.
"""

from __future__ import annotations

import calendar
import fnmatch
import hashlib
import hmac
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from pipeline import errors

if TYPE_CHECKING:
    from gateway._reader import Table

PERIODS = ("hour", "day", "month")


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@attrs.frozen(kw_only=True)
class VirtualKey:
    """One virtual key: a name (for logs and stats), its digest and its limits."""

    name: str
    sha256: bytes = attrs.field(repr=False)
    models: tuple[str, ...] = ()
    rpm: int | None = None
    budget: float | None = None
    budget_period: str = "month"
    admin: bool = False

    def allows(self, model: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model, p) for p in self.models)


MASTER = VirtualKey(name="master", sha256=b"", admin=True)
OPEN = VirtualKey(name="anonymous", sha256=b"", admin=True)


def read_keys(tables: Iterable[Table]) -> Iterator[VirtualKey]:
    """``[[server.keys]]`` (or ``[[keys]]`` in a keys file): ``name``, then ``sha256``
    (hex) or ``key`` (the key itself, usually ``${ENV}``), and the limits."""
    for table in tables:
        name = table.text("name")
        hexdigest = table.text("sha256", None)
        plain = table.secret("key", None)
        if (hexdigest is None) == (plain is None):
            raise table.error("sha256", "give exactly one of sha256 (hex digest) and key")
        if hexdigest is not None:
            try:
                stored = bytes.fromhex(hexdigest)
            except ValueError:
                stored = b""
            if len(stored) != 32:
                raise table.error("sha256", "expected 64 hex digits (sha256 of the key)")
        else:
            stored = digest(plain.reveal())
        period = table.text("budget_period", "month")
        if period not in PERIODS:
            raise table.error("budget_period", f"expected one of {', '.join(PERIODS)}")
        yield VirtualKey(
            name=name,
            sha256=stored,
            models=table.strings("models", ()),
            rpm=table.integer("rpm", None),
            budget=table.number("budget", None, positive=False),
            budget_period=period,
        )
        table.done()


def _period_start(period: str, now: float) -> float:
    t = time.gmtime(now)
    if period == "hour":
        fields = (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, 0, 0)
    elif period == "day":
        fields = (t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)
    else:
        fields = (t.tm_year, t.tm_mon, 1, 0, 0, 0)
    return float(calendar.timegm((*fields, 0, 0, 0)))


class Usage:
    """One key's counters in this process: its last minute of requests, its spend."""

    __slots__ = ("period_start", "recent", "spent")

    def __init__(self) -> None:
        self.recent: deque[float] = deque()
        self.spent = 0.0
        self.period_start = 0.0


class Keyring:
    """The keys of one config; :meth:`authenticate` then :meth:`admit` per request."""

    def __init__(
        self,
        master_key: str | None,
        keys: Iterable[VirtualKey] = (),
        *,
        usage: dict[str, Usage] | None = None,
        clock: Any = time.monotonic,
        wall: Any = time.time,
    ) -> None:
        self._master = digest(master_key) if master_key else None
        self._keys = tuple(keys)
        self.usage: dict[str, Usage] = usage if usage is not None else {}
        self._clock = clock
        self._wall = wall

    @property
    def open(self) -> bool:
        """No key configured: every caller is let in (bind to loopback only)."""
        return self._master is None and not self._keys

    def authenticate(self, authorization: str | None) -> VirtualKey | None:
        """The key presented, or None (answer the generic 401)."""
        if self.open:
            return OPEN
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        presented = digest(token)
        found: VirtualKey | None = None
        if self._master is not None and hmac.compare_digest(presented, self._master):
            found = MASTER
        for key in self._keys:  # no early exit: every digest is compared
            if hmac.compare_digest(presented, key.sha256) and found is None:
                found = key
        return found

    def admit(self, key: VirtualKey, model: str) -> None:
        """Raise when ``key`` may not send this request now (model, rpm, budget)."""
        if key.admin:
            return
        if not key.allows(model):
            raise errors.PermissionDeniedError(
                f"this key may not use the model {model!r}", code="model_not_allowed"
            )
        usage = self.usage.setdefault(key.name, Usage())
        if key.budget is not None:
            self._check_budget(key, usage)
        if key.rpm is not None:
            now = self._clock()
            recent = usage.recent
            while recent and recent[0] <= now - 60.0:
                recent.popleft()
            if len(recent) >= key.rpm:
                raise errors.RateLimitError(
                    f"this key is limited to {key.rpm} requests per minute",
                    retry_after=max(0.001, recent[0] + 60.0 - now),
                    code="rate_limit_exceeded",
                )
            recent.append(now)

    def _check_budget(self, key: VirtualKey, usage: Usage) -> None:
        now = self._wall()
        start = _period_start(key.budget_period, now)
        if start != usage.period_start:
            usage.period_start, usage.spent = start, 0.0
        if key.budget is not None and usage.spent >= key.budget:
            raise budget_error(key, usage.spent)

    def charge(self, key: VirtualKey, cost: float | None) -> None:
        """Add a finished request's cost (USD) to the key's spend."""
        if cost and key.budget is not None:
            self.usage.setdefault(key.name, Usage()).spent += cost


def budget_error(key: VirtualKey, spent: float) -> errors.DispatchError:
    """The pipeline's BudgetExceededError where it exists, else a non-retryable 429."""
    message = f"this key has spent its budget of {key.budget} USD for this {key.budget_period}"
    cls = getattr(errors, "BudgetExceededError", None)
    if cls is not None:
        try:
            made: errors.DispatchError = cls(
                message, scope=f"key:{key.name}", spent=spent, limit=key.budget, resets_at=None
            )
            return made
        except TypeError:
            pass
    return errors.RateLimitError(message, retryable=False, code="budget_exceeded")
