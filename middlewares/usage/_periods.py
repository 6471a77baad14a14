"""What a budget has spent in its period: a calendar window in UTC, or a rolling window.

A ledger answers three questions at a given time ``now`` (Unix seconds):
how much was spent in the period that holds ``now``, add a spend, and when
spending under ``limit`` will be allowed again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Literal, Protocol

__all__ = ["CALENDAR", "Ledger", "Period", "ledger_factory"]

Period = Literal["hour", "day", "month"] | float
Bounds = Callable[[float], tuple[float, float]]


class Ledger(Protocol):
    def spent(self, now: float) -> float: ...

    def add(self, now: float, amount: float) -> None: ...

    def resets_at(self, now: float, limit: float) -> float: ...


def _fixed(seconds: int) -> Bounds:
    # Unix time has no leap seconds: UTC hours and days are exact multiples.
    def bounds(now: float) -> tuple[float, float]:
        start = now - now % seconds
        return start, start + seconds

    return bounds


def _month(now: float) -> tuple[float, float]:
    at = datetime.fromtimestamp(now, UTC)
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    end = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


CALENDAR: dict[str, Bounds] = {"hour": _fixed(3600), "day": _fixed(86400), "month": _month}


class CalendarLedger:
    """Spend in the current calendar window; a new window starts from zero."""

    __slots__ = ("_bounds", "_end", "_spent")

    def __init__(self, bounds: Bounds) -> None:
        self._bounds = bounds
        self._end = -math.inf
        self._spent = 0.0

    def _roll(self, now: float) -> None:
        if now >= self._end:
            self._end = self._bounds(now)[1]
            self._spent = 0.0

    def spent(self, now: float) -> float:
        self._roll(now)
        return self._spent

    def add(self, now: float, amount: float) -> None:
        self._roll(now)
        self._spent += amount

    def resets_at(self, now: float, limit: float) -> float:
        self._roll(now)
        return self._end

    @classmethod
    def holding(cls, bounds: Bounds, now: float, spent: float) -> CalendarLedger:
        """The ledger of the window holding ``now``, ``spent`` in it so far."""
        ledger = cls(bounds)
        ledger._roll(now)
        ledger._spent = spent
        return ledger


class RollingLedger:
    """Spend in the last ``seconds``, kept in :attr:`SLOTS` time slots (bounded memory).

    A spend counts from when it is added until its slot's end plus ``seconds``:
    for at least ``seconds`` and at most ``seconds * (1 + 1/SLOTS)``.
    """

    __slots__ = ("_seconds", "_slots", "_total", "_width")

    SLOTS = 60

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._width = seconds / self.SLOTS
        self._slots: deque[list[float]] = deque()  # [slot number, amount], oldest first
        self._total = 0.0

    def _expire(self, now: float) -> None:
        slots, width, seconds = self._slots, self._width, self._seconds
        while slots and (slots[0][0] + 1) * width + seconds <= now:
            self._total -= slots.popleft()[1]
        if not slots:
            self._total = 0.0

    def spent(self, now: float) -> float:
        self._expire(now)
        return self._total

    def add(self, now: float, amount: float) -> None:
        self._expire(now)
        slot = self.slot(now)
        if self._slots and self._slots[-1][0] == slot:
            self._slots[-1][1] += amount
        else:
            self._slots.append([slot, amount])
        self._total += amount

    @classmethod
    def holding(cls, seconds: float, slots: Iterable[tuple[int, float]]) -> RollingLedger:
        """The ledger of these ``(slot number, amount)`` spends (any order)."""
        ledger = cls(seconds)
        for slot, amount in sorted(slots):
            ledger._slots.append([slot, amount])
            ledger._total += amount
        return ledger

    def slot(self, now: float) -> int:
        """The number of the slot a spend at ``now`` goes to."""
        return math.floor(now / self._width)

    def resets_at(self, now: float, limit: float) -> float:
        self._expire(now)
        left = self._total
        for slot, amount in self._slots:
            left -= amount
            if left < limit:
                return (slot + 1) * self._width + self._seconds
        return now


def ledger_factory(period: Period) -> Callable[[], Ledger]:
    """A maker of empty ledgers for ``period``; ValueError if it is not one."""
    if isinstance(period, str):
        bounds = CALENDAR.get(period)
        if bounds is None:
            raise ValueError(
                f"period must be 'hour', 'day', 'month' or a number of seconds, got {period!r}"
            )
        return lambda: CalendarLedger(bounds)
    if (
        isinstance(period, int | float)
        and not isinstance(period, bool)
        and math.isfinite(period)
        and period > 0
    ):
        seconds = float(period)
        return lambda: RollingLedger(seconds)
    raise ValueError(f"period must be 'hour', 'day', 'month' or seconds > 0, got {period!r}")
