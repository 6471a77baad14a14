"""The backend protocol and the in-process backend, :class:`MemoryCache`."""

from __future__ import annotations

import math
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import attrs

from middlewares.cache._copies import copy_response
from pipeline import Attempt, ChatChunk

__all__ = [
    "DEFAULT_TTL",
    "CacheBackend",
    "CachedStream",
    "Claim",
    "MemoryCache",
    "SharedFlights",
    "check_ttl",
]

DEFAULT_TTL = 3600.0  # seconds a MemoryCache() entry lives unless told otherwise


@attrs.frozen
class CachedStream:
    """A completed stream, as stored: its chunks in order and where it came from
    (``attempts``: the path the request took, a fallback's included)."""

    chunks: tuple[ChatChunk, ...]
    provider: str = ""
    model: str = ""
    request_id: str | None = None
    attempts: tuple[Attempt, ...] = ()


@runtime_checkable
class CacheBackend(Protocol):
    """Where a :class:`Cache` keeps its entries.

    Values are response objects or :class:`CachedStream` (attrs classes, which
    pickle). ``set`` takes ownership of ``value``: the cache never touches it
    again. ``get`` returns a value the caller owns and may change. ``ttl`` is
    seconds; ``None`` means the backend's default. A shared backend (Redis)
    serialises values, which satisfies both rules by itself.
    """

    async def get(self, key: str) -> Any | None: ...

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...


@attrs.frozen
class Claim:
    """What :meth:`SharedFlights.claim` found: the answer (``value``, a hit), the
    lead (``token``: make the call, then :meth:`~SharedFlights.settle`), or
    neither (make the call without storing through the lock)."""

    value: Any | None = None
    token: str | None = None


@runtime_checkable
class SharedFlights(Protocol):
    """A backend that also makes identical misses in *other processes* wait on one call.

    ``claim(key)`` returns the stored answer, or the lead (a lock held for a
    bounded time), or, when another process leads, waits (bounded) for its
    answer: a hit, or neither when it ends without one. ``settle`` stores the
    leader's ``value`` (None: nothing to store) and gives the lock back. Both
    degrade (to "neither", to nothing) rather than raise.
    """

    async def claim(self, key: str) -> Claim: ...

    async def settle(
        self, key: str, claim: Claim, value: Any | None, *, ttl: float | None = None
    ) -> None: ...


def check_ttl(ttl: object, name: str = "ttl") -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < math.inf:
        raise ValueError(f"{name} must be a positive number of seconds or None, got {ttl!r}")
    return float(ttl)


class MemoryCache:
    """An in-process LRU cache with optional expiry; O(1) get and set.

    - ``max_entries``: the least recently used entry is evicted beyond it;
    - ``max_bytes``: also bound the total size, counted as each entry's
      pickled size (measured on ``set`` only); an entry larger than the bound
      is not stored;
    - ``ttl``: default seconds an entry lives: an hour unless given (``None``:
      until evicted);
    - ``clock``: monotonic seconds, injectable for tests.

    Entries are kept as objects; every ``get`` returns a fresh copy.
    """

    def __init__(
        self,
        max_entries: int = 1024,
        *,
        max_bytes: int | None = None,
        ttl: float | None = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be a positive integer, got {max_entries!r}")
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1
        ):
            raise ValueError(f"max_bytes must be a positive integer or None, got {max_bytes!r}")
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._ttl = check_ttl(ttl)
        self._clock = clock
        # key -> (value, expires_at, size)
        self._entries: OrderedDict[str, tuple[Any, float, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # cheap insurance for a cache shared across threads

    def __repr__(self) -> str:
        return (
            f"MemoryCache(max_entries={self._max_entries}, "
            f"max_bytes={self._max_bytes}, ttl={self._ttl})"
        )

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """The total size of the entries (0 unless ``max_bytes`` is set)."""
        return self._bytes

    async def get(self, key: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= self._clock():
                self._pop(key)
                return None
            self._entries.move_to_end(key)
        return copy_response(entry[0])

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        ttl = self._ttl if ttl is None else check_ttl(ttl)
        size = 0
        if self._max_bytes is not None:
            size = len(key) + len(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
        with self._lock:
            self._pop(key)
            if self._max_bytes is not None and size > self._max_bytes:
                return
            expires = self._clock() + ttl if ttl is not None else math.inf
            self._entries[key] = (value, expires, size)
            self._bytes += size
            while len(self._entries) > self._max_entries or (
                self._max_bytes is not None and self._bytes > self._max_bytes
            ):
                self._bytes -= self._entries.popitem(last=False)[1][2]

    async def delete(self, key: str) -> None:
        with self._lock:
            self._pop(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _pop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[2]
