"""Response caching: a key over everything that shapes the output, single-flight, stream replay.

>>> from middlewares.cache import Cache, MemoryCache
>>> cache = Cache(MemoryCache(max_entries=10_000, ttl=3600))

What a user relies on:

- **What is cached without asking**: answers that do not sample. A chat
  completion is cached only with ``temperature=0``; embeddings, speech, and
  transcriptions at temperature 0 are cached; images never are. A sampled
  answer (any other chat completion) is cached only when asked: ``cache=True``
  or a ``cache={...}`` dict on the call, or ``Cache(sampled=True)`` for every
  request. Otherwise nobody gets a frozen sampled answer back.
- **How long**: ``MemoryCache()`` keeps an entry an hour (``ttl=3600``);
  ``ttl=None`` keeps it until evicted; ``cache={"ttl": ...}`` per call.
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
  only when the stream ends cleanly; a stream that fails (its end marker
  missing included) or is closed early stores nothing. A hit replays the
  stored chunks as a ``Stream`` with ``cache_hit=True``.
- **Single-flight**: identical concurrent misses of a whole response make one
  upstream call; the others wait for it and get a copy of its result (marked
  ``cache_hit=True``), or their own copy of its error (chained to it by
  ``__cause__``). If the leading call is cancelled, one of the waiters takes
  over. Streams do not wait on each other: each streamed miss makes its own
  call. Waiting is per event loop: a pipeline used from several loops keeps
  one table of calls in flight for each.
- **Per request**, ``cache=`` on the call: ``False`` bypasses the cache (no
  read, no write); ``True`` caches even a sampled answer; a dict with ``ttl``
  (seconds, overrides the backend's), ``no_store`` (read, never write) and
  ``no_cache`` (never read or wait on another call, still write) does too.
  Anything else is an ``InvalidRequestError``.
- A hit is a copy, marked ``cache_hit=True`` and ``cost=0.0`` (nothing was
  spent for it); changing it never changes the stored entry. It says where
  its answer came from: ``provider``, ``model`` and ``attempts`` are those of
  the call that was stored, so a fallback's answer served from the cache
  still shows the fallback. Errors are never
  cached. A failing backend is logged and treated as a miss.
- A :class:`MemoryCache` may be shared by several pipelines and threads (it
  takes a lock).
- **Several processes** share one :class:`RedisCache` (the ``[redis]``
  extra): entries are JSON (never pickle), and identical concurrent misses
  in different processes make one upstream call too: the first takes a short
  lock in Redis, the others wait (bounded) for its entry, and call upstream
  themselves if it ends without one (failed, died, or stored nothing). A
  Redis that is down or slow makes the cache a miss, never an error or a hang.
"""

from typing import TYPE_CHECKING, Any

from middlewares.cache._key import cache_key, key_namespace, samples
from middlewares.cache._memory import (
    DEFAULT_TTL,
    CacheBackend,
    CachedStream,
    Claim,
    MemoryCache,
    SharedFlights,
)
from middlewares.cache._middleware import Cache

if TYPE_CHECKING:
    from middlewares.cache._redis import RedisCache

__all__ = [
    "DEFAULT_TTL",
    "Cache",
    "CacheBackend",
    "CachedStream",
    "Claim",
    "MemoryCache",
    "RedisCache",
    "SharedFlights",
    "cache_key",
    "key_namespace",
    "samples",
]


def __getattr__(name: str) -> Any:
    # RedisCache imports the Redis client (the [redis] extra): only when asked for.
    if name == "RedisCache":
        from middlewares.cache._redis import RedisCache

        return RedisCache
    raise AttributeError(f"module 'middlewares.cache' has no attribute {name!r}")
