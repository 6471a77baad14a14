"""The Cache middleware: per-request control, single-flight per event loop, stream recording.

What it promises is in the package docstring (:mod:`middlewares.cache`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import anyio
import anyio.lowlevel
import attrs

from middlewares._log import logger
from middlewares.cache._copies import copy_response
from middlewares.cache._key import cache_key, key_namespace, samples
from middlewares.cache._memory import (
    CacheBackend,
    CachedStream,
    Claim,
    MemoryCache,
    SharedFlights,
    check_ttl,
)
from pipeline import ChatChunk, Handler, Request, Response, Result, Stream, errors, observe
from pipeline._loops import running_loop

__all__ = ["Cache"]


# -- per-request control -----------------------------------------------------


@attrs.frozen
class _Control:
    read: bool = True
    store: bool = True
    ttl: float | None = None


_DEFAULT = _Control()
_OPTIONS = frozenset({"ttl", "no_store", "no_cache"})
_NO_FLIGHTS: Mapping[str, Any] = MappingProxyType({})


def _control(value: object) -> _Control | None:
    """``request.options["cache"]`` when given (not None): None means bypass."""
    if value is True:
        return _DEFAULT
    if value is False:
        return None
    if not isinstance(value, Mapping):
        raise errors.InvalidRequestError(
            f"cache must be True, False or a dict of {sorted(_OPTIONS)}, got {value!r}"
        )
    unknown = set(value) - _OPTIONS
    if unknown:
        raise errors.InvalidRequestError(
            f"unknown cache option(s) {sorted(unknown)}; known: {sorted(_OPTIONS)}"
        )
    flags = {name: value.get(name, False) for name in ("no_store", "no_cache")}
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise errors.InvalidRequestError(f"cache {name} must be a bool, got {flag!r}")
    try:
        ttl = check_ttl(value.get("ttl"), "cache ttl")
    except ValueError as exc:
        raise errors.InvalidRequestError(str(exc)) from None
    return _Control(read=not flags["no_cache"], store=not flags["no_store"], ttl=ttl)


# -- the middleware ------------------------------------------------------------


class _Flight:
    """One upstream call that identical concurrent requests wait on."""

    __slots__ = ("_done", "error", "value")

    def __init__(self) -> None:
        self._done: anyio.Event | None = None  # made when the first follower waits
        self.value: Any = None  # a snapshot of the result, never handed out itself
        self.error: Exception | None = None

    async def wait(self) -> None:
        if self._done is None:
            self._done = anyio.Event()
        await self._done.wait()

    @property
    def waited(self) -> bool:
        """Whether another request waits for this call."""
        return self._done is not None

    def finish(self) -> None:
        if self._done is not None:
            self._done.set()


class _Replay:
    """Stored chunks as an async iterator (a checkpoint per chunk, like a real stream)."""

    __slots__ = ("_chunks",)

    def __init__(self, chunks: Sequence[ChatChunk]) -> None:
        self._chunks = iter(chunks)

    def __aiter__(self) -> _Replay:
        return self

    async def __anext__(self) -> ChatChunk:
        await anyio.lowlevel.checkpoint()
        chunk = next(self._chunks, None)
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        self._chunks = iter(())


def _as_hit(entry: Any) -> Result:
    """A stored entry as the answer to a request: marked a hit, provenance kept, and
    ``cost=0.0`` (nothing was spent for it)."""
    if isinstance(entry, CachedStream):
        replay = _Replay(entry.chunks)
        hit = Stream(
            replay,
            replay.aclose,
            provider=entry.provider,
            model=entry.model,
            cache_hit=True,
            attempts=entry.attempts,
            request_id=entry.request_id,
        )
        hit.cost = 0.0  # nothing was spent for it
        return hit
    if isinstance(entry, Response):
        entry.cache_hit = True
        entry.cost = 0.0
    return entry  # type: ignore[no-any-return]


def _own_copy(error: Exception) -> Exception:
    """A copy of ``error`` for one single-flight waiter (its own traceback and
    ``attempts``), made without calling ``__init__``; ``error`` itself when its
    class cannot be copied so."""
    cls = type(error)
    try:
        clone = cls.__new__(cls, *error.args)
        clone.__dict__.update(error.__dict__)
    except Exception:
        return error
    return clone


Namespace = str | Callable[[Request], str | None]


class Cache:
    """The caching middleware; see :mod:`middlewares.cache` for what it promises.

    ``backend`` defaults to a new :class:`MemoryCache` (entries live an hour).
    ``namespace`` is a fixed string (shared by every key), or ``fn(request) ->
    str | None``; by default, the API key's fingerprint (see :func:`key_namespace`).
    ``sampled=True`` also caches sampled answers without being asked per call.
    """

    __slots__ = ("_backend", "_flights", "_namespace", "_sampled", "_shared")

    def __init__(
        self,
        backend: CacheBackend | None = None,
        *,
        namespace: Namespace | None = None,
        sampled: bool = False,
    ) -> None:
        if backend is not None and not isinstance(backend, CacheBackend):
            raise TypeError(f"{backend!r} is not a cache backend (async get, set and delete)")
        if not (
            namespace is None or callable(namespace) or (isinstance(namespace, str) and namespace)
        ):
            raise TypeError(f"namespace must be a non-empty str or a callable, got {namespace!r}")
        if not isinstance(sampled, bool):
            raise TypeError(f"sampled must be a bool, got {sampled!r}")
        self._backend: CacheBackend = backend if backend is not None else MemoryCache()
        # A backend shared by several processes also leads their identical misses.
        self._shared = self._backend if isinstance(self._backend, SharedFlights) else None
        self._namespace = namespace
        self._sampled = sampled
        # Calls in flight, per event loop (a flight's event belongs to one loop).
        self._flights: dict[object, dict[str, _Flight]] = {}

    @property
    def backend(self) -> CacheBackend:
        return self._backend

    def __repr__(self) -> str:
        namespace = self._namespace
        if namespace is None or isinstance(namespace, str):
            shown = repr(namespace or "api-key fingerprint")
        else:
            shown = getattr(namespace, "__qualname__", type(namespace).__name__)
        return f"Cache({self._backend!r}, namespace={shown}, sampled={self._sampled})"

    def key(self, request: Request) -> str | None:
        """The backend key for ``request``: ``namespace:digest``; None if not cacheable."""
        digest = cache_key(request)
        if digest is None:
            return None
        namespace = self._namespace
        if namespace is None:
            name: str | None = key_namespace(request)
        elif isinstance(namespace, str):
            name = namespace
        else:
            name = namespace(request) or key_namespace(request)
        return f"{name}:{digest}"

    def _control(self, request: Request) -> _Control | None:
        asked = request.options.get("cache")
        if asked is not None:
            return _control(asked)
        return _DEFAULT if self._sampled or not samples(request) else None

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        control = self._control(request)
        if control is None:
            return await call_next(request)
        key = self.key(request)
        if key is None:
            logger().debug("cache.bypass", reason="request has no canonical JSON form")
            return await call_next(request)
        if request.stream:
            return await self._stream(request, call_next, key, control)
        loop = running_loop()
        while control.read:
            flight = self._flights.get(loop, _NO_FLIGHTS).get(key)
            if flight is not None:
                await flight.wait()
                if flight.error is not None:
                    raise _own_copy(flight.error) from flight.error
                if flight.value is not None:
                    return _as_hit(copy_response(flight.value))
                continue  # the leader was cancelled: look again, maybe lead
            if self._shared is not None:
                break  # the shared backend looks (and leads) for this process: _fetch
            entry = await self._get(key)
            if entry is not None:
                return _as_hit(entry)
            if key not in self._flights.get(loop, _NO_FLIGHTS):  # none started meanwhile
                break
        return await self._fetch(request, call_next, key, control, loop)

    async def _fetch(
        self, request: Request, call_next: Handler, key: str, control: _Control, loop: object
    ) -> Result:
        flights = self._flights.setdefault(loop, {})
        flight = None
        if key not in flights:
            flight = flights[key] = _Flight()
        claim: Claim | None = None
        try:
            if self._shared is not None and control.read and flight is not None:
                # One round trip: the entry, or the lead across processes, or a
                # (bounded) wait for another process's answer.
                claim = await self._claim(self._shared, key)
                if claim.value is not None:
                    if flight.waited:  # others here wait for it: they copy a snapshot
                        flight.value = copy_response(claim.value)
                    return _as_hit(claim.value)
            result = await call_next(request)
            if not isinstance(result, Stream):
                snapshot = _snapshot(result)
                if flight is not None:
                    flight.value = snapshot
                stored = snapshot if control.store else None
                if claim is not None and claim.token is not None:
                    held, claim = claim, None  # settled here: not again below
                    await self._settle(key, held, stored, control.ttl)
                elif stored is not None:
                    await self._set(key, stored, control.ttl)
            return result
        except Exception as exc:
            if flight is not None:
                flight.error = exc
            raise
        finally:
            if claim is not None and claim.token is not None:  # ended without an answer
                with anyio.CancelScope(shield=True):
                    await self._settle(key, claim, None, None)
            if flight is not None:
                del flights[key]
                if not flights:  # this loop has no call in flight: forget its table
                    self._flights.pop(loop, None)
                flight.finish()

    async def _stream(
        self, request: Request, call_next: Handler, key: str, control: _Control
    ) -> Result:
        if control.read:
            entry = await self._get(key)
            if isinstance(entry, CachedStream):
                return _as_hit(entry)
        result = await call_next(request)
        if not control.store or not isinstance(result, Stream):
            return result
        recording = _Recording(self, key, control.ttl, result)
        return observe(result, on_chunk=recording.add, on_end=recording.finish)

    async def _get(self, key: str) -> Any | None:
        try:
            return await self._backend.get(key)
        except Exception as exc:
            logger().warning("cache.backend_failed", operation="get", error=type(exc).__name__)
            return None

    async def _set(self, key: str, value: Any, ttl: float | None) -> None:
        try:
            await self._backend.set(key, value, ttl=ttl)
        except Exception as exc:
            logger().warning("cache.backend_failed", operation="set", error=type(exc).__name__)

    async def _claim(self, shared: SharedFlights, key: str) -> Claim:
        try:
            return await shared.claim(key)
        except Exception as exc:
            logger().warning("cache.backend_failed", operation="claim", error=type(exc).__name__)
            return Claim()

    async def _settle(self, key: str, claim: Claim, value: Any | None, ttl: float | None) -> None:
        assert self._shared is not None
        try:
            await self._shared.settle(key, claim, value, ttl=ttl)
        except Exception as exc:
            logger().warning("cache.backend_failed", operation="settle", error=type(exc).__name__)


def _snapshot(result: Any) -> Any | None:
    try:
        return copy_response(result)
    except Exception as exc:
        logger().warning(
            "cache.not_stored", reason="result cannot be copied", error=type(exc).__name__
        )
        return None


class _Recording:
    """One streamed miss being recorded: copies of its chunks, stored if it completes."""

    __slots__ = ("_cache", "_chunks", "_key", "_stream", "_ttl")

    def __init__(self, cache: Cache, key: str, ttl: float | None, stream: Stream[Any]) -> None:
        self._cache = cache
        self._key = key
        self._ttl = ttl
        self._stream = stream
        self._chunks: list[ChatChunk] = []

    def add(self, chunk: ChatChunk) -> None:
        self._chunks.append(copy_response(chunk))

    async def finish(self, completed: bool) -> None:
        if not completed:
            return
        stream = self._stream
        entry = CachedStream(
            tuple(self._chunks),
            provider=stream.provider,
            model=stream.model,
            request_id=stream.request_id,
            attempts=stream.attempts,
        )
        await self._cache._set(self._key, entry, self._ttl)
