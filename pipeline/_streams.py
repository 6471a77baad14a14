"""Streams: async iterables of chunks that pass through every middleware unbuffered.

A :class:`Stream` is what ``acompletion(..., stream=True)`` returns. Close it
(``await stream.aclose()`` or ``async with stream:``) when you stop early: that
closes the provider's HTTP response.

Middlewares that need to see a stream (cache, logging, callbacks) wrap it with
:func:`observe`, which calls their hooks as chunks pass, never collecting them
first. Exactly one of ``on_end`` or ``on_error`` fires per observed stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pipeline._responses import Attempt

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.from_thread import BlockingPortal

T = TypeVar("T")

Hook = Callable[..., Awaitable[None] | None]


class Stream(Generic[T]):
    """An async iterator of chunks, with the response's provenance beside it."""

    __slots__ = (
        "_close",
        "_closed",
        "_iterator",
        "attempts",
        "cache_hit",
        "cost",
        "latency",
        "model",
        "provider",
        "request_id",
    )

    def __init__(
        self,
        iterator: AsyncIterator[T] | None = None,
        close: Callable[[], Awaitable[None]] | None = None,
        *,
        provider: str = "",
        model: str = "",
        cache_hit: bool = False,
        attempts: tuple[Attempt, ...] = (),
        request_id: str | None = None,
    ) -> None:
        self._iterator = iterator
        self._close = close
        self._closed = False
        self.provider = provider
        self.model = model
        self.cache_hit = cache_hit
        self.attempts = attempts
        self.request_id = request_id
        self.latency = 0.0  # for a stream: seconds until its first chunk was ready
        self.cost: float | None = None  # USD, once the stream has ended (middlewares.Costs)

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        if self._iterator is None:
            raise StopAsyncIteration
        return await self._iterator.__anext__()

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Stop the stream and release its connection; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._close is not None:
            await self._close()

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _copy_meta(self, other: Stream[Any]) -> None:
        self.provider = other.provider
        self.model = other.model
        self.cache_hit = other.cache_hit
        self.attempts = other.attempts
        self.request_id = other.request_id
        self.latency = other.latency
        self.cost = other.cost

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.provider}/{self.model}>"


async def _call(hook: Hook | None, *args: Any) -> None:
    if hook is not None:
        result = hook(*args)
        if result is not None:
            await result


class ObservedStream(Stream[T]):
    """``inner``, with hooks called as it is consumed. See :func:`observe`."""

    __slots__ = ("_done", "_inner", "_on_chunk", "_on_end", "_on_error")

    def __init__(
        self,
        inner: Stream[T],
        on_chunk: Hook | None,
        on_end: Hook | None,
        on_error: Hook | None,
    ) -> None:
        super().__init__()
        self._copy_meta(inner)
        self._inner = inner
        self._on_chunk = on_chunk
        self._on_end = on_end
        self._on_error = on_error
        self._done = False

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        try:
            chunk = await self._inner.__anext__()
        except StopAsyncIteration:
            self._done = True
            self.cost = self._inner.cost
            await _call(self._on_end, True)
            raise
        except BaseException as exc:
            self._done = True
            self.cost = self._inner.cost
            await _call(self._on_error, exc)
            raise
        if self._on_chunk is not None:
            await _call(self._on_chunk, chunk)
        return chunk

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._inner.aclose()
        finally:
            if not self._done:
                self._done = True
                self.cost = self._inner.cost
                await _call(self._on_end, False)


def observe(
    stream: Stream[T],
    *,
    on_chunk: Hook | None = None,
    on_end: Hook | None = None,
    on_error: Hook | None = None,
) -> Stream[T]:
    """Wrap ``stream`` so hooks see it pass, without buffering it.

    - ``on_chunk(chunk)``: each chunk, as the caller receives it;
    - ``on_end(completed)``: once, with ``True`` when the stream was exhausted,
      ``False`` when the caller closed it early;
    - ``on_error(exc)``: once, when iterating raised (cancellation included);
      the exception then propagates unchanged.

    The wrapper takes ``stream``'s ``cost`` as it ends, before its own end
    hook runs, so a cost set by an inner layer's hook reaches the caller.

    Hooks may be plain or async functions. Exactly one of ``on_end`` and
    ``on_error`` is called.
    """
    return ObservedStream(stream, on_chunk, on_end, on_error)


class SyncStream(Generic[T]):
    """A :class:`Stream` driven from sync code through the pipeline's event-loop thread."""

    def __init__(self, stream: Stream[T], portal: BlockingPortal) -> None:
        self._stream = stream
        self._portal = portal

    @property
    def provider(self) -> str:
        return self._stream.provider

    @property
    def model(self) -> str:
        return self._stream.model

    @property
    def cache_hit(self) -> bool:
        return self._stream.cache_hit

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return self._stream.attempts

    @property
    def cost(self) -> float | None:
        return self._stream.cost

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        try:
            return self._portal.call(self._stream.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        self._portal.call(self._stream.aclose)

    def __enter__(self) -> SyncStream[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
