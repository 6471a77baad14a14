"""Response caching: a key over everything that shapes the output, single-flight, stream replay.

>>> from middlewares.cache import Cache, MemoryCache
>>> cache = Cache(MemoryCache(max_entries=10_000, ttl=3600))

What a user relies on:

- **The key** (:func:`cache_key`) is a sha256 over canonical JSON (sorted
  keys, no whitespace) of the endpoint, provider, model, messages, input
  (bytes are hashed), every param (provider-specific extras included), the
  stream flag, ``api_base`` and ``api_version``. Never the API key, the
  timeout or the middleware options. A request holding a value that has no
  canonical JSON form (a set, an arbitrary object) is not cached at all.
- **Namespaces** keep tenants apart: by default entries are filed under a
  one-way fingerprint of the request's ``api_key``, or ``"env"`` when no key
  was passed (the provider's configured or environment key). So two keys
  never share entries. ``Cache(namespace="shared")`` shares across keys;
  ``Cache(namespace=fn)`` files by ``fn(request)`` (a tenant id; ``None``
  falls back to the key fingerprint).
- **Streams** are cached apart from whole responses (the stream flag is in
  the key: a cached reply never changes shape). On a miss the stream passes
  through unbuffered, a copy of each chunk is kept, and the chunks are stored
  only when the stream ends cleanly; a stream that fails or is closed early
  stores nothing. A hit replays the stored chunks as a ``Stream`` with
  ``cache_hit=True``.
- **Single-flight**: identical concurrent misses of a whole response make one
  upstream call; the others wait for it and get a copy of its result (marked
  ``cache_hit=True``), or its error. If the leading call is cancelled, one of
  the waiters takes over. Streams do not wait on each other: each streamed
  miss makes its own call.
- **Per request**, ``cache=`` on the call: ``False`` bypasses the cache (no
  read, no write); a dict with ``ttl`` (seconds, overrides the backend's),
  ``no_store`` (read, never write) and ``no_cache`` (never read or wait on
  another call, still write). Anything else is an ``InvalidRequestError``.
- A hit is a copy, marked ``cache_hit=True``, with ``attempts=()`` (no
  provider was tried for it) and ``cost=0.0`` (nothing was spent for it);
  changing it never changes the stored entry.
  Errors are never cached. A failing backend is logged and treated as a miss.
- A :class:`Cache` (its single-flight table) belongs to one event loop; a
  :class:`MemoryCache` may be shared more widely (it takes a lock).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import anyio
import anyio.lowlevel
import attrs

from middlewares._log import logger
from pipeline import ChatChunk, Handler, Request, Response, Result, Stream, errors, observe

__all__ = [
    "Cache",
    "CacheBackend",
    "CachedStream",
    "MemoryCache",
    "cache_key",
    "key_namespace",
]


KEY_VERSION = 1  # bump when the key's contents change, so old entries stop matching


# -- the key -----------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """The JSON form of what ``json`` cannot encode by itself, or TypeError."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$sha256": hashlib.sha256(value).hexdigest()}
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    raise TypeError(f"{type(value).__name__} has no canonical JSON form")


_encode = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    default=_canonical,
).encode


def cache_key(request: Request) -> str | None:
    """The sha256 hex digest of everything in ``request`` that shapes the output.

    ``None`` when a value has no canonical JSON form: such a request is not cached.
    The API key is never part of it (see :func:`key_namespace`).
    """
    try:
        text = _encode(
            [
                KEY_VERSION,
                request.endpoint,
                request.provider,
                request.model,
                request.messages,
                request.input,
                request.params,
                request.stream,
                request.api_base,
                request.api_version,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()
    except (TypeError, ValueError, RecursionError):
        return None


def key_namespace(request: Request) -> str:
    """The default namespace: the API key's one-way fingerprint, or ``"env"``."""
    if request.api_key is None:
        return "env"
    return "key-" + request.api_key.fingerprint()


# -- copies --------------------------------------------------------------------

_Copier = Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _attrs_copier(cls: type) -> _Copier:
    names = tuple(field.name for field in attrs.fields(cls))
    new = object.__new__
    assign = object.__setattr__

    def copy_instance(value: Any) -> Any:
        out: Any = new(cls)
        for name in names:
            field = getattr(value, name)
            assign(out, name, field if type(field) in _ATOMIC else _copy(field))
        return out

    return copy_instance


_ATOMIC: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes})
_COPIERS: dict[type, _Copier] = {
    **dict.fromkeys(_ATOMIC, _same),
    list: lambda value: [_copy(item) for item in value],
    tuple: lambda value: tuple(_copy(item) for item in value) if value else value,
    dict: lambda value: {key: _copy(item) for key, item in value.items()},
}


def _copy(value: Any) -> Any:
    """A deep copy of a response (attrs classes, lists, dicts, scalars).

    About seven times faster than ``copy.deepcopy`` on responses; other types
    fall back to ``copy.deepcopy``.
    """
    cls = type(value)
    copier = _COPIERS.get(cls)
    if copier is None:
        copier = _COPIERS[cls] = _attrs_copier(cls) if attrs.has(cls) else copy.deepcopy
    return copier(value)


# -- backends ------------------------------------------------------------------


@attrs.frozen
class CachedStream:
    """A completed stream, as stored: its chunks in order and where it came from."""

    chunks: tuple[ChatChunk, ...]
    provider: str = ""
    model: str = ""
    request_id: str | None = None


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


def _check_ttl(ttl: object, name: str = "ttl") -> float | None:
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
    - ``ttl``: default seconds an entry lives (``None``: until evicted);
    - ``clock``: monotonic seconds, injectable for tests.

    Entries are kept as objects; every ``get`` returns a fresh copy.
    """

    def __init__(
        self,
        max_entries: int = 1024,
        *,
        max_bytes: int | None = None,
        ttl: float | None = None,
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
        self._ttl = _check_ttl(ttl)
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
        return _copy(entry[0])

    async def set(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        ttl = self._ttl if ttl is None else _check_ttl(ttl)
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


# -- per-request control -----------------------------------------------------


@attrs.frozen
class _Control:
    read: bool = True
    store: bool = True
    ttl: float | None = None


_DEFAULT = _Control()
_OPTIONS = frozenset({"ttl", "no_store", "no_cache"})


def _control(value: object) -> _Control | None:
    """``request.options["cache"]`` read: None means bypass."""
    if value is None or value is True:
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
        ttl = _check_ttl(value.get("ttl"), "cache ttl")
    except ValueError as exc:
        raise errors.InvalidRequestError(str(exc)) from None
    return _Control(read=not flags["no_cache"], store=not flags["no_store"], ttl=ttl)


# -- the middleware ------------------------------------------------------------


class _Flight:
    """One upstream call that identical concurrent requests wait on."""

    __slots__ = ("_done", "error", "traceback", "value")

    def __init__(self) -> None:
        self._done: anyio.Event | None = None  # made when the first follower waits
        self.value: Any = None  # a snapshot of the result, never handed out itself
        self.error: Exception | None = None
        self.traceback: TracebackType | None = None

    async def wait(self) -> None:
        if self._done is None:
            self._done = anyio.Event()
        await self._done.wait()

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
    if isinstance(entry, CachedStream):
        replay = _Replay(entry.chunks)
        hit = Stream(
            replay,
            replay.aclose,
            provider=entry.provider,
            model=entry.model,
            cache_hit=True,
            request_id=entry.request_id,
        )
        hit.cost = 0.0
        return hit
    if isinstance(entry, Response):
        entry.cache_hit = True
        entry.attempts = ()
        entry.cost = 0.0
    return entry  # type: ignore[no-any-return]


Namespace = str | Callable[[Request], str | None]


class Cache:
    """The caching middleware; see the module docstring for what it promises.

    ``backend`` defaults to a new :class:`MemoryCache`. ``namespace`` is a
    fixed string (shared by every key), or ``fn(request) -> str | None``;
    by default, the API key's fingerprint (see :func:`key_namespace`).
    """

    def __init__(
        self, backend: CacheBackend | None = None, *, namespace: Namespace | None = None
    ) -> None:
        if backend is not None and not isinstance(backend, CacheBackend):
            raise TypeError(f"{backend!r} is not a cache backend (async get, set and delete)")
        if not (
            namespace is None or callable(namespace) or (isinstance(namespace, str) and namespace)
        ):
            raise TypeError(f"namespace must be a non-empty str or a callable, got {namespace!r}")
        self._backend: CacheBackend = backend if backend is not None else MemoryCache()
        self._namespace = namespace
        self._flights: dict[str, _Flight] = {}

    @property
    def backend(self) -> CacheBackend:
        return self._backend

    def __repr__(self) -> str:
        namespace = self._namespace
        if namespace is None or isinstance(namespace, str):
            shown = repr(namespace or "api-key fingerprint")
        else:
            shown = getattr(namespace, "__qualname__", type(namespace).__name__)
        return f"Cache({self._backend!r}, namespace={shown})"

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

    async def __call__(self, request: Request, call_next: Handler) -> Result:
        control = _control(request.options.get("cache"))
        if control is None:
            return await call_next(request)
        key = self.key(request)
        if key is None:
            logger().debug("cache.bypass", reason="request has no canonical JSON form")
            return await call_next(request)
        if request.stream:
            return await self._stream(request, call_next, key, control)
        while control.read:
            flight = self._flights.get(key)
            if flight is not None:
                await flight.wait()
                if flight.error is not None:
                    raise flight.error.with_traceback(flight.traceback)
                if flight.value is not None:
                    return _as_hit(_copy(flight.value))
                continue  # the leader was cancelled: look again, maybe lead
            entry = await self._get(key)
            if entry is not None:
                return _as_hit(entry)
            if key not in self._flights:  # none started while the backend was awaited
                break
        return await self._fetch(request, call_next, key, control)

    async def _fetch(
        self, request: Request, call_next: Handler, key: str, control: _Control
    ) -> Result:
        flight = None
        if key not in self._flights:
            flight = self._flights[key] = _Flight()
        try:
            result = await call_next(request)
            if not isinstance(result, Stream):
                snapshot = _snapshot(result)
                if flight is not None:
                    flight.value = snapshot
                if snapshot is not None and control.store:
                    await self._set(key, snapshot, control.ttl)
            return result
        except Exception as exc:
            if flight is not None:
                flight.error, flight.traceback = exc, exc.__traceback__
            raise
        finally:
            if flight is not None:
                del self._flights[key]
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


def _snapshot(result: Any) -> Any | None:
    try:
        return _copy(result)
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
        self._chunks.append(_copy(chunk))

    async def finish(self, completed: bool) -> None:
        if not completed:
            return
        stream = self._stream
        entry = CachedStream(
            tuple(self._chunks),
            provider=stream.provider,
            model=stream.model,
            request_id=stream.request_id,
        )
        await self._cache._set(self._key, entry, self._ttl)
